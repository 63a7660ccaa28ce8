//! One boot: QEMU started, the agent's frames read from the channel socket,
//! typed events passed up, everything killed and reaped at the end.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btfvm_proto::{FrameError, Message};

use super::args::{self, Accel};
use super::console::{self, ConsoleWatch};
use super::process::{die_with_parent, KillOnDrop};
use super::pump::{Pump, Timeouts};
use super::splat::{self, Splat, SplatKind};

/// Everything one boot needs.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline_extra: Vec<String>,
    pub memory_mib: u32,
    pub timeouts: Timeouts,
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
    Started {
        pid: u32,
    },
    /// QEMU connected the channel socket (at its start, not the agent's).
    Connected {
        after: Duration,
    },
    Message(Message),
    /// A console line that starts a kernel splat, as it arrives.
    Splat {
        kind: SplatKind,
        line: String,
        scenario: Option<String>,
    },
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
    /// No hello from the agent in time: the kernel did not reach /init, or
    /// the agent died before it could speak.
    NoHello {
        after: Duration,
    },
    /// A scenario ran past its limit; QEMU was killed.
    ScenarioTimedOut {
        scenario: String,
        after: Duration,
    },
    /// The kernel panicked and QEMU did not exit by itself; it was killed.
    Panicked,
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
    /// Kernel splats found on the console, in order.
    pub splats: Vec<Splat>,
    /// Console lines past the cap that were not kept.
    pub console_dropped: u64,
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

    let console = ConsoleWatch::new(&spec.console_log());
    let mut pump = Pump::new(&listener, console, start, spec.timeouts, on_event);
    let end = pump.run(&mut child);
    if !matches!(end, BootEnd::Exited { .. }) {
        let _ = child.0.kill();
    }
    let _ = child.0.wait();
    let splats = splat::find(pump.console.lines());
    let console_dropped = pump.console.dropped();
    let messages = std::mem::take(&mut pump.messages);
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
        splats,
        console_dropped,
    })
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
