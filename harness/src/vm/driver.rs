//! The I/O around the watcher: starts QEMU, listens on the channel socket,
//! follows the console file, ticks the clock, and feeds each of these to
//! `watch::Watch` (recording each input), until the watcher says the boot
//! is over. All judgement is the watcher's.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::fed::Fed;
use super::transcript::Recorder;
use super::watch::Input;
use super::{BootEnd, BootOutcome, BootSpec, VmError, VmEvent};
use crate::support::child::{die_with_parent, wait_timeout, KillOnDrop, Waited};
use crate::support::stop::StopCheck;

const CONSOLE_POLL: Duration = Duration::from_millis(50);
const CHANNEL_READ_TIMEOUT: Duration = Duration::from_millis(50);
/// After QEMU closed the channel, how long its exit may take.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// QEMU's own complaints are short; more is kept from nobody.
const STDERR_KEEP: usize = 64 * 1024;
/// Console bytes read per poll, so one flood cannot stall the loop.
const CONSOLE_CHUNK: u64 = 4 << 20;

/// Reads what QEMU appended to the console file since the last call (or,
/// for virtme-ng, what the agent appended to its result file).
pub struct ConsoleFile {
    path: PathBuf,
    offset: u64,
}

impl ConsoleFile {
    pub fn new(path: &Path) -> ConsoleFile {
        ConsoleFile {
            path: path.to_path_buf(),
            offset: 0,
        }
    }

    pub fn read_new(&mut self) -> Vec<u8> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.by_ref().take(CONSOLE_CHUNK).read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        buf
    }
}

/// The fed watcher and where its events go.
struct Feeder<'a> {
    fed: Fed,
    on_event: &'a mut dyn FnMut(&VmEvent),
}

impl Feeder<'_> {
    fn feed(&mut self, input: Input) -> Option<BootEnd> {
        self.fed.feed(input, self.on_event)
    }

    fn console(&mut self, console: &mut ConsoleFile) {
        let bytes = console.read_new();
        if !bytes.is_empty() {
            self.feed(Input::Console(bytes));
        }
    }
}

fn bind(socket: &Path) -> Result<UnixListener, VmError> {
    let io = |what| {
        move |source| VmError::Io {
            what,
            path: socket.to_path_buf(),
            source,
        }
    };
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(io("binding the channel socket"))?;
    listener.set_nonblocking(true).map_err(io("configuring"))?;
    Ok(listener)
}

fn spawn(spec: &BootSpec) -> Result<KillOnDrop, VmError> {
    let mut cmd = Command::new(&spec.command.program);
    cmd.args(&spec.command.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    cmd.spawn()
        .map(KillOnDrop)
        .map_err(|source| VmError::Spawn {
            qemu: spec.command.program.clone(),
            source,
        })
}

/// Keeps reading QEMU's stderr so a chatty QEMU never blocks on a full
/// pipe; returns the first `STDERR_KEEP` bytes.
fn read_stderr(child: &mut KillOnDrop) -> JoinHandle<String> {
    let stderr = child.0.stderr.take();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut e) = stderr {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = e.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Boots `spec` and watches it to its end. `cancelled` is asked on every
/// turn of the loop (Ctrl-C reaches the boot through it).
pub fn boot(
    spec: &BootSpec,
    cancelled: &dyn Fn() -> Option<i32>,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<BootOutcome, VmError> {
    boot_with(spec, cancelled, &mut || None, on_event)
}

/// `boot`, with processes the guest depends on (virtiofsd): `gone` is
/// asked with the console's polls, and a reason from it ends the boot.
pub fn boot_with(
    spec: &BootSpec,
    cancelled: &dyn Fn() -> Option<i32>,
    gone: &mut dyn FnMut() -> Option<String>,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<BootOutcome, VmError> {
    let listener = bind(&spec.channel)?;
    let transcript = File::create(&spec.transcript).map_err(|source| VmError::Io {
        what: "creating",
        path: spec.transcript.clone(),
        source,
    })?;
    let recorder = Recorder::new(BufWriter::new(transcript)).map_err(|source| VmError::Io {
        what: "writing",
        path: spec.transcript.clone(),
        source,
    })?;
    let fed = Fed::new(spec.timeouts, recorder);
    let mut child = spawn(spec)?;
    on_event(&VmEvent::Started { pid: child.0.id() });
    let stderr = read_stderr(&mut child);
    let mut f = Feeder { fed, on_event };
    let mut console = ConsoleFile {
        path: spec.console_log.clone(),
        offset: 0,
    };
    let end = watch_loop(&mut f, &listener, &mut child, &mut console, cancelled, gone);
    if !matches!(end, BootEnd::Exited { .. }) {
        let _ = child.0.kill();
    }
    let _ = child.0.wait();
    // The last lines (a panic, typically) arrive as QEMU goes.
    f.console(&mut console);
    let qemu_stderr = stderr.join().unwrap_or_default();
    drop(child);
    let _ = std::fs::remove_file(&spec.channel);
    let elapsed = f.fed.elapsed();
    let watched = f.fed.finish();
    let mut outcome = BootOutcome::from_watched(watched, spec.console_log.clone(), qemu_stderr);
    outcome.elapsed = elapsed;
    Ok(outcome)
}

fn watch_loop(
    f: &mut Feeder<'_>,
    listener: &UnixListener,
    child: &mut KillOnDrop,
    console: &mut ConsoleFile,
    cancelled: &dyn Fn() -> Option<i32>,
    gone: &mut dyn FnMut() -> Option<String>,
) -> BootEnd {
    let mut buf = vec![0u8; 64 * 1024];
    let mut stream: Option<UnixStream> = None;
    let mut last_poll: Option<Instant> = None;
    loop {
        if last_poll.is_none_or(|t| t.elapsed() >= CONSOLE_POLL) {
            last_poll = Some(Instant::now());
            f.console(console);
            if let Some(why) = gone() {
                // virtiofsd also exits when QEMU, going, closes its socket:
                // that is QEMU's end, not the daemon's fault.
                let qemu_going = (0..20).any(|_| {
                    std::thread::sleep(Duration::from_millis(50));
                    !matches!(child.0.try_wait(), Ok(None))
                });
                if !qemu_going {
                    if let Some(end) = f.feed(Input::Lost(why)) {
                        return end;
                    }
                }
            }
        }
        if let Some(signal) = cancelled() {
            if let Some(end) = f.feed(Input::Interrupted { signal }) {
                return end;
            }
        }
        if let Some(end) = f.feed(Input::Tick) {
            return end;
        }
        let Some(s) = stream.as_mut() else {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_read_timeout(Some(CHANNEL_READ_TIMEOUT));
                    (f.on_event)(&VmEvent::Connected {
                        after: f.fed.elapsed(),
                    });
                    stream = Some(s);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Ok(Some(_)) = child.0.try_wait() {
                        return exited(f, child, console, None, &mut buf, cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
            continue;
        };
        match s.read(&mut buf) {
            // QEMU closes the socket when it exits.
            Ok(0) => return exited(f, child, console, stream.as_mut(), &mut buf, cancelled),
            Ok(n) => {
                if let Some(end) = f.feed(Input::Channel(buf[..n].to_vec())) {
                    return end;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if let Ok(Some(_)) = child.0.try_wait() {
                    return exited(f, child, console, stream.as_mut(), &mut buf, cancelled);
                }
            }
            Err(_) => return exited(f, child, console, stream.as_mut(), &mut buf, cancelled),
        }
    }
}

/// QEMU is going: what it wrote last, then how it went.
fn exited(
    f: &mut Feeder<'_>,
    child: &mut KillOnDrop,
    console: &mut ConsoleFile,
    stream: Option<&mut UnixStream>,
    buf: &mut [u8],
    cancelled: StopCheck<'_>,
) -> BootEnd {
    let status = wait_timeout(&mut child.0, EXIT_WAIT, cancelled);
    f.console(console);
    if let Some(s) = stream {
        let _ = s.set_nonblocking(true);
        while let Ok(n) = s.read(buf) {
            if n == 0 {
                break;
            }
            if let Some(end) = f.feed(Input::Channel(buf[..n].to_vec())) {
                return end;
            }
        }
    }
    let input = match status {
        Waited::Exited(st) => Input::Exited { status: st.code() },
        Waited::TimedOut => Input::Hung,
        // QEMU is killed next, as on any end but its own exit.
        Waited::Stopped(signal) => Input::Interrupted { signal },
    };
    f.feed(input)
        .or_else(|| f.fed.watch.ended().cloned())
        .unwrap_or(BootEnd::Exited { status: None })
}
