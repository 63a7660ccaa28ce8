//! One boot: QEMU started, the agent's frames read from the channel socket,
//! typed events passed up, everything killed and reaped at the end.

use std::io::{ErrorKind, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use btfvm_proto::{Decoder, FrameError, Message};

use super::args::{self, Accel};
use super::console;
use super::process::{die_with_parent, KillOnDrop};

/// Everything one boot needs.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline_extra: Vec<String>,
    pub memory_mib: u32,
    /// Wall-clock limit for the whole boot.
    pub timeout: Duration,
    /// Where the console log and the channel socket go.
    pub workdir: PathBuf,
}

impl BootSpec {
    pub fn console_log(&self) -> PathBuf {
        self.workdir.join("console.log")
    }
    fn socket(&self) -> PathBuf {
        self.workdir.join("channel.sock")
    }
    /// The full QEMU argument list, assembled from the parts in `args`.
    pub fn qemu_args(&self) -> Vec<String> {
        let mut v = args::base_args();
        v.extend(args::accel_args(self.accel));
        v.extend(args::memory_args(self.memory_mib, 1));
        v.extend(args::kernel_args(
            &self.kernel,
            &self.initrd,
            &args::cmdline(&self.cmdline_extra),
        ));
        v.extend(args::console_args(&self.console_log()));
        v.extend(args::channel_args(&self.socket()));
        v
    }
}

/// What happened, as it happened.
#[derive(Debug, Clone)]
pub enum VmEvent {
    Started { pid: u32 },
    Connected { after: Duration },
    Message(Message),
}

/// How the boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEnd {
    /// QEMU exited (the agent powered off, or the kernel panicked and
    /// panic=-1 with -no-reboot ended it).
    Exited {
        status: Option<i32>,
    },
    TimedOut {
        after: Duration,
    },
    /// The user interrupted the run (SIGINT/SIGTERM); QEMU was killed.
    Interrupted {
        signal: i32,
    },
    /// The agent sent something undecodable; QEMU was killed.
    Channel(FrameError),
}

#[derive(Debug, Clone)]
pub struct BootOutcome {
    pub end: BootEnd,
    pub messages: Vec<Message>,
    pub elapsed: Duration,
    pub console_log: PathBuf,
    pub console_tail: String,
    pub qemu_stderr: String,
}

impl BootOutcome {
    pub fn finished(&self) -> bool {
        self.messages
            .iter()
            .any(|m| matches!(m, Message::Done { .. }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot start {qemu}: {source} (install it: apt-get install qemu-system-x86)")]
    Spawn {
        qemu: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

const TAIL_LINES: usize = 30;

pub fn boot(spec: &BootSpec, on_event: &mut dyn FnMut(&VmEvent)) -> Result<BootOutcome, VmError> {
    let socket = spec.socket();
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|source| VmError::Io {
        what: "binding the channel socket",
        path: socket.clone(),
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| VmError::Io {
            what: "configuring",
            path: socket.clone(),
            source,
        })?;
    let mut cmd = Command::new(&spec.qemu);
    cmd.args(spec.qemu_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let start = Instant::now();
    let child = cmd.spawn().map_err(|source| VmError::Spawn {
        qemu: spec.qemu.clone(),
        source,
    })?;
    let mut child = KillOnDrop(child);
    on_event(&VmEvent::Started { pid: child.0.id() });
    let stderr = child.0.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut e) = stderr {
            // QEMU's own complaints are short; keep the first 64 KiB but go
            // on reading, so a chatty QEMU never blocks on a full pipe.
            let mut chunk = [0u8; 4096];
            while let Ok(n) = e.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let room = (64 * 1024usize).saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    });

    let deadline = start + spec.timeout;
    let mut messages = Vec::new();
    let end = pump(
        &listener,
        &mut child,
        deadline,
        start,
        &mut messages,
        on_event,
    );
    if !matches!(end, BootEnd::Exited { .. }) {
        let _ = child.0.kill();
    }
    let _ = child.0.wait();
    let qemu_stderr = stderr_reader.join().unwrap_or_default();
    drop(child);
    let _ = std::fs::remove_file(&socket);
    let console_log = spec.console_log();
    Ok(BootOutcome {
        console_tail: console::tail(&console_log, TAIL_LINES),
        end,
        messages,
        elapsed: start.elapsed(),
        console_log,
        qemu_stderr,
    })
}

fn exited(status: ExitStatus) -> BootEnd {
    BootEnd::Exited {
        status: status.code(),
    }
}

/// Accepts the channel, then reads frames until QEMU exits, the deadline
/// passes, or the stream is undecodable.
fn pump(
    listener: &UnixListener,
    child: &mut KillOnDrop,
    deadline: Instant,
    start: Instant,
    messages: &mut Vec<Message>,
    on_event: &mut dyn FnMut(&VmEvent),
) -> BootEnd {
    let mut stream: Option<UnixStream> = None;
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(signal) = crate::interrupt::requested() {
            return BootEnd::Interrupted { signal };
        }
        if Instant::now() >= deadline {
            return BootEnd::TimedOut {
                after: start.elapsed(),
            };
        }
        let Some(s) = stream.as_mut() else {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                    on_event(&VmEvent::Connected {
                        after: start.elapsed(),
                    });
                    stream = Some(s);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Ok(Some(st)) = child.0.try_wait() {
                        return exited(st);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
            continue;
        };
        match s.read(&mut buf) {
            Ok(0) => {
                // QEMU closes the socket when it exits.
                let status = super::process::wait_timeout(&mut child.0, Duration::from_secs(5));
                if let Err(e) = decoder.finish() {
                    return BootEnd::Channel(e);
                }
                return match status {
                    Some(st) => exited(st),
                    None => BootEnd::TimedOut {
                        after: start.elapsed(),
                    },
                };
            }
            Ok(n) => {
                decoder.push(&buf[..n]);
                if let Err(e) = take_messages(&mut decoder, messages, on_event) {
                    return BootEnd::Channel(e);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if let Ok(Some(st)) = child.0.try_wait() {
                    // Drain what is left before reporting the exit.
                    let _ = s.set_nonblocking(true);
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        decoder.push(&buf[..n]);
                    }
                    let taken = take_messages(&mut decoder, messages, on_event);
                    if let Err(e) = taken.and_then(|()| decoder.finish()) {
                        return BootEnd::Channel(e);
                    }
                    return exited(st);
                }
            }
            Err(_) => {
                let status = super::process::wait_timeout(&mut child.0, Duration::from_secs(5));
                return match status {
                    Some(st) => exited(st),
                    None => BootEnd::TimedOut {
                        after: start.elapsed(),
                    },
                };
            }
        }
    }
}

/// Moves every complete message out of the decoder, announcing each.
fn take_messages(
    decoder: &mut Decoder,
    messages: &mut Vec<Message>,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<(), FrameError> {
    while let Some(m) = decoder.next_message()? {
        on_event(&VmEvent::Message(m.clone()));
        messages.push(m);
    }
    Ok(())
}

/// Resolves `qemu-system-x86_64` on PATH, or says how to install it.
pub fn find_qemu(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let cand = dir.join("qemu-system-x86_64");
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err("qemu-system-x86_64 not found on PATH; install it with: sudo apt-get install --no-install-recommends qemu-system-x86".into())
}
