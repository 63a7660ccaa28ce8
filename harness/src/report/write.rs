//! Writing a report where the user asked, without following links: a
//! regular file (or a new one) is replaced whole through a temporary file
//! and a rename; `-` is stdout; a device or a FIFO is written in place
//! (opened without blocking, so a FIFO nobody reads is an error, not a
//! hang); a link or a directory is refused. Renaming a temporary file
//! over `/dev/stdout` once replaced the device for the whole machine.
//!
//! A FIFO or device is also written without blocking: a reader that
//! opened it and stopped reading leaves the write waiting in poll(2),
//! which gives way to a stop request and gives up after `STALL_LIMIT`
//! without a byte taken. stdout is written on a thread, which a stop
//! request leaves behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::interrupt;
use crate::support::stop::{self, Interrupted, StopCheck, POLL};

/// How long the reader of a FIFO or device may take no byte before the
/// report is given up: `jq` or `tee` read at once; a pager left alone for
/// a minute loses the rest of the report (the warning says how much).
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: is a symbolic link; btfvm writes reports through no links (give the target itself, or `-` for stdout)", path.display())]
    Link { path: PathBuf },
    #[error("{}: is a directory", path.display())]
    Directory { path: PathBuf },
    #[error("{}: a FIFO with no reader", path.display())]
    NoReader { path: PathBuf },
    #[error("cannot write report {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("report {}: cut short, {source}", path.display())]
    Interrupted {
        path: PathBuf,
        #[source]
        source: Interrupted,
    },
    #[error(
        "report {}: its reader took no byte for {} s; gave up after {written} of {total} bytes",
        path.display(),
        secs
    )]
    Stalled {
        path: PathBuf,
        written: usize,
        total: usize,
        secs: u64,
    },
}

/// How a write that could not finish ended.
enum Cut {
    Io(io::Error),
    Interrupted(Interrupted),
    Stalled { written: usize },
}

pub fn write_report(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    // A stop requested before the write began is the one this partial
    // report is written for; a second signal is fatal (SA_RESETHAND), so
    // a write that begins after one gives way to none.
    let stop: StopCheck<'_> = match interrupt::requested() {
        Some(_) => &stop::never,
        None => &interrupt::requested,
    };
    write_report_until(path, bytes, stop, STALL_LIMIT)
}

/// `write_report` with the stop check and the stall limit given.
pub fn write_report_until(
    path: &Path,
    bytes: &[u8],
    stop: StopCheck<'_>,
    stall: Duration,
) -> Result<(), ReportError> {
    let io_err = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let cut = |c| match c {
        Cut::Io(source) => io_err(source),
        Cut::Interrupted(source) => ReportError::Interrupted {
            path: path.to_path_buf(),
            source,
        },
        Cut::Stalled { written } => ReportError::Stalled {
            path: path.to_path_buf(),
            written,
            total: bytes.len(),
            secs: stall.as_secs(),
        },
    };
    if path == Path::new("-") {
        return write_stdout(bytes, stop).map_err(cut);
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(ReportError::Link {
            path: path.to_path_buf(),
        }),
        Ok(m) if m.is_dir() => Err(ReportError::Directory {
            path: path.to_path_buf(),
        }),
        Ok(m) if !m.is_file() => {
            let ft = m.file_type();
            let f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENXIO) if ft.is_fifo() => ReportError::NoReader {
                        path: path.to_path_buf(),
                    },
                    _ => io_err(e),
                })?;
            write_polled(&f, bytes, stop, stall).map_err(cut)
        }
        Ok(_) => replace(path, bytes).map_err(io_err),
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(path, bytes).map_err(io_err),
        Err(e) => Err(io_err(e)),
    }
}

/// Writes to a descriptor opened `O_NONBLOCK`: a full pipe answers EAGAIN
/// instead of blocking, and poll(2) waits at most `POLL` for room, so the
/// stop check and the stall limit are asked between two tries.
fn write_polled(
    mut f: &File,
    bytes: &[u8],
    stop: StopCheck<'_>,
    stall: Duration,
) -> Result<(), Cut> {
    let mut written = 0;
    let mut progress = Instant::now();
    while written < bytes.len() {
        match f.write(&bytes[written..]) {
            Ok(0) => return Err(Cut::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n;
                progress = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                stop::check(stop).map_err(Cut::Interrupted)?;
                if progress.elapsed() >= stall {
                    return Err(Cut::Stalled { written });
                }
                let mut p = libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: poll(2) on one pollfd we own; a closed reader
                // shows as POLLERR and the next write says EPIPE.
                unsafe { libc::poll(&mut p, 1, POLL.as_millis() as libc::c_int) };
            }
            Err(e) => return Err(Cut::Io(e)),
        }
    }
    Ok(())
}

/// stdout's flags belong to the shell too, so it is not made
/// non-blocking: a copy of it is written on a thread, and a stop request
/// leaves that thread blocked (it ends with the process). A pager may take
/// no byte for as long as its user reads, so no stall limit here.
fn write_stdout(bytes: &[u8], stop: StopCheck<'_>) -> Result<(), Cut> {
    use std::os::fd::AsFd;
    let mut out = io::stdout();
    // libtest's lines first, in order.
    out.flush().map_err(Cut::Io)?;
    let mut f = File::from(out.as_fd().try_clone_to_owned().map_err(Cut::Io)?);
    let data = bytes.to_vec();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("report-stdout".into())
        .spawn(move || {
            let _ = tx.send(f.write_all(&data).and_then(|_| f.flush()));
        })
        .map_err(Cut::Io)?;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(r) => return r.map_err(Cut::Io),
            Err(mpsc::RecvTimeoutError::Timeout) => stop::check(stop).map_err(Cut::Interrupted)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Cut::Io(io::Error::other("the writing thread died")))
            }
        }
    }
}

/// A temporary file beside the target, renamed over it: readers see the
/// old report or the new one, never a part.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".btfvm-report-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_replaced_links_and_dirs_refused_devices_written_in_place() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        write_report(&p, b"one").unwrap();
        write_report(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);

        let target = d.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write_report(&link, b"x").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());

        assert!(matches!(
            write_report(d.path(), b"x"),
            Err(ReportError::Directory { .. })
        ));
        write_report(Path::new("/dev/null"), b"x").unwrap();
        assert!(fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let e = write_report(Path::new("/dev/full"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("No space left on device"), "{e}");
    }

    /// A FIFO whose reader opened it and never reads, its pipe shrunk to
    /// one page (F_SETPIPE_SZ), so that a report of 20 KB cannot fit.
    fn stuck_fifo(dir: &Path) -> (PathBuf, File) {
        let p = dir.join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own, with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        // SAFETY: fcntl on a descriptor we own.
        let size = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert_eq!(size, 4096);
        (p, reader)
    }

    fn readable(f: &File) -> i32 {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int we own.
        unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
        n
    }

    #[test]
    fn a_fifo_that_is_never_read_gives_way_to_a_stop_and_to_the_stall_limit() {
        let d = tempfile::tempdir().unwrap();
        let (p, reader) = stuck_fifo(d.path());
        let report = vec![b'r'; 20_000];
        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            (asked.get() > 2).then_some(libc::SIGINT)
        };
        let t = Instant::now();
        let e = write_report_until(&p, &report, &stop, STALL_LIMIT).unwrap_err();
        assert!(matches!(e, ReportError::Interrupted { .. }), "{e}");
        assert!(e.to_string().contains("interrupted by SIGINT"), "{e}");
        // Two looks, each at most one POLL apart.
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(readable(&reader), 4096);

        let mut sink = vec![0u8; 4096];
        let _ = io::Read::read(&mut &reader, &mut sink);
        let t = Instant::now();
        let e =
            write_report_until(&p, &report, &stop::never, Duration::from_millis(150)).unwrap_err();
        let took = t.elapsed();
        assert!(
            matches!(
                e,
                ReportError::Stalled {
                    written: 4096,
                    total: 20_000,
                    ..
                }
            ),
            "{e}"
        );
        assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(1));
    }

    #[test]
    fn a_slow_reader_gets_the_whole_report() {
        let d = tempfile::tempdir().unwrap();
        let (p, reader) = stuck_fifo(d.path());
        let report: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let got = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            while all.len() < 20_000 {
                std::thread::sleep(Duration::from_millis(20));
                match io::Read::read(&mut &reader, &mut buf) {
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            all
        });
        // Each read frees room well inside the limit: progress resets it.
        write_report_until(&p, &report, &stop::never, Duration::from_millis(500)).unwrap();
        assert_eq!(got.join().unwrap(), report);
    }

    #[test]
    fn a_fifo_without_a_reader_is_an_error_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own, with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            write_report(&p, b"x"),
            Err(ReportError::NoReader { .. })
        ));
    }
}
