//! Writing a report where the user asked, without following links: a
//! regular file (or a new one) is replaced whole through a temporary file
//! and a rename; `-` is stdout; a device or a FIFO is written in place
//! (opened without blocking, so a FIFO nobody reads is an error, not a
//! hang); a link or a directory is refused. Renaming a temporary file
//! over `/dev/stdout` once replaced the device for the whole machine.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
}

pub fn write_report(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io_err = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let mut out = io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|_| out.flush())
            .map_err(io_err);
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
            let mut f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENXIO) if ft.is_fifo() => ReportError::NoReader {
                        path: path.to_path_buf(),
                    },
                    _ => io_err(e),
                })?;
            f.write_all(bytes).map_err(io_err)
        }
        Ok(_) => replace(path, bytes).map_err(io_err),
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(path, bytes).map_err(io_err),
        Err(e) => Err(io_err(e)),
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
