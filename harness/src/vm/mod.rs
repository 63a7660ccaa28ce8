//! Booting one kernel in QEMU and collecting what the agent reports. The
//! command line comes from small pure functions (`args`), the boot is
//! judged by a pure state machine (`watch`) that a thin I/O driver
//! (`driver`) feeds, and what the driver fed is recorded (`transcript`) so
//! a boot can be judged again without QEMU.

pub mod accel;
pub mod args;
pub mod cmdline;
pub mod console;
pub mod driver;
pub mod fed;
pub mod phases;
pub mod serve;
pub mod splat;
pub mod transcript;
pub mod virtiofsd;
pub mod watch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use btfvm_proto::{FrameError, Message};

pub use accel::{AccelChoice, AccelDecision, KvmRecord};
pub use args::{Accel, QemuCommand, QemuParams};
pub use driver::{boot, boot_with};
pub use splat::{Splat, SplatKind};

/// The limits of one boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    /// From QEMU's start to the agent's hello.
    pub hello: Duration,
    /// For each scenario, from its start message to its end message.
    pub scenario: Duration,
    /// For the whole boot.
    pub wall: Duration,
}

/// Everything one boot needs.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// Built once: what runs is what the report shows.
    pub command: QemuCommand,
    pub timeouts: Timeouts,
    /// The file QEMU writes the console to (in `command` too).
    pub console_log: PathBuf,
    /// The socket QEMU connects the agent's channel to (in `command` too).
    pub channel: PathBuf,
    /// Where the driver records what it fed the watcher.
    pub transcript: PathBuf,
}

impl BootSpec {
    /// A boot whose files all live in `workdir`.
    pub fn in_dir(
        workdir: &Path,
        params: impl FnOnce(&Path, &Path) -> QemuParams,
        timeouts: Timeouts,
    ) -> BootSpec {
        let console_log = workdir.join("console.log");
        let channel = workdir.join("channel.sock");
        let command = args::boot_command(&params(&console_log, &channel));
        BootSpec {
            command,
            timeouts,
            console_log,
            channel,
            transcript: workdir.join("transcript.bin"),
        }
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
    /// panic=-1 with -no-reboot ended it). None: killed by a signal.
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
    /// The connection to a target broke mid-run (SSH).
    Lost {
        why: String,
    },
}

/// The report's form of an end: a kind and its details.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum EndForm {
    Exited { status: Option<i32> },
    TimedOut { after_ms: u64 },
    NoHello { after_ms: u64 },
    ScenarioTimedOut { scenario: String, after_ms: u64 },
    Panicked,
    Interrupted { signal: i32 },
    Channel { error: String },
    Lost { why: String },
}

impl serde::Serialize for BootEnd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = |d: &Duration| d.as_millis().min(u64::MAX as u128) as u64;
        match self {
            BootEnd::Exited { status } => EndForm::Exited { status: *status },
            BootEnd::TimedOut { after } => EndForm::TimedOut {
                after_ms: ms(after),
            },
            BootEnd::NoHello { after } => EndForm::NoHello {
                after_ms: ms(after),
            },
            BootEnd::ScenarioTimedOut { scenario, after } => EndForm::ScenarioTimedOut {
                scenario: scenario.clone(),
                after_ms: ms(after),
            },
            BootEnd::Panicked => EndForm::Panicked,
            BootEnd::Interrupted { signal } => EndForm::Interrupted { signal: *signal },
            BootEnd::Channel(e) => EndForm::Channel {
                error: e.to_string(),
            },
            BootEnd::Lost { why } => EndForm::Lost { why: why.clone() },
        }
        .serialize(s)
    }
}

/// Read back from a report (`btfvm report merge`). A channel error comes
/// back as its text only: a report is for people and dashboards, and no
/// verdict is ever derived from it again.
impl<'de> serde::Deserialize<'de> for BootEnd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match EndForm::deserialize(d)? {
            EndForm::Exited { status } => BootEnd::Exited { status },
            EndForm::TimedOut { after_ms } => BootEnd::TimedOut {
                after: Duration::from_millis(after_ms),
            },
            EndForm::NoHello { after_ms } => BootEnd::NoHello {
                after: Duration::from_millis(after_ms),
            },
            EndForm::ScenarioTimedOut { scenario, after_ms } => BootEnd::ScenarioTimedOut {
                scenario,
                after: Duration::from_millis(after_ms),
            },
            EndForm::Panicked => BootEnd::Panicked,
            EndForm::Interrupted { signal } => BootEnd::Interrupted { signal },
            EndForm::Channel { error } => BootEnd::Channel(FrameError::Reported(error)),
            EndForm::Lost { why } => BootEnd::Lost { why },
        })
    }
}

/// The way in that ran the agent: what messages about its end name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Way {
    /// btfvm's own QEMU boot.
    #[default]
    Qemu,
    /// An SSH target the agent was pushed to.
    Ssh,
    /// A virtme-ng guest.
    Vng,
}

impl Way {
    /// What exits or is killed.
    pub fn what(self) -> &'static str {
        match self {
            Way::Qemu => "QEMU",
            Way::Ssh => "the agent on the target",
            Way::Vng => "vng",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BootOutcome {
    pub way: Way,
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
    /// When the agent said hello, since QEMU started.
    pub hello_at: Option<Duration>,
    pub marks: phases::KernelMarks,
}

impl BootOutcome {
    pub fn from_watched(w: watch::Watched, console_log: PathBuf, qemu_stderr: String) -> Self {
        BootOutcome {
            way: Way::Qemu,
            end: w.end,
            messages: w.messages,
            elapsed: w.elapsed,
            console_log,
            console_tail: w.console_tail,
            qemu_stderr,
            splats: w.splats,
            console_dropped: w.console_dropped,
            hello_at: w.hello_at,
            marks: w.marks,
        }
    }

    /// The guest's uptime at the agent's hello (`done`: at its last
    /// message).
    pub fn uptime_ms(&self, done: bool) -> Option<u64> {
        self.messages.iter().find_map(|m| match m {
            Message::Hello { uptime_ms, .. } if !done => Some(*uptime_ms),
            Message::Done { uptime_ms } if done => Some(*uptime_ms),
            _ => None,
        })
    }

    /// Where the boot's time went.
    pub fn phases(&self) -> phases::BootPhases {
        phases::phases(
            phases::Clocks {
                hello_at: self.hello_at,
                elapsed: self.elapsed,
                hello_uptime_ms: self.uptime_ms(false),
                done_uptime_ms: self.uptime_ms(true),
            },
            self.marks,
        )
    }

    pub fn finished(&self) -> bool {
        self.messages
            .iter()
            .any(|m| matches!(m, Message::Done { .. }))
    }

    /// Whether the agent ever spoke: the kernel booted and ran /init.
    pub fn agent_reported(&self) -> bool {
        self.messages
            .iter()
            .any(|m| matches!(m, Message::Hello { .. }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot start {}: {source} (install it: apt-get install qemu-system-x86)", qemu.display())]
    Spawn {
        qemu: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("qemu-system-x86_64 not found on PATH; install it with: sudo apt-get install --no-install-recommends qemu-system-x86")]
    NoQemu,
    #[error("--share needs the Rust virtiofsd, and none was found (PATH, /usr/libexec/virtiofsd, ~/.cargo/bin, BTFVM_VIRTIOFSD): install Debian's virtiofsd package (trixie and later), or: apt-get install libcap-ng-dev libseccomp-dev && cargo install virtiofsd --locked")]
    NoVirtiofsd,
    #[error("virtiofsd for share {tag}: {why}")]
    Virtiofsd { tag: String, why: String },
}

/// QEMU's qboot firmware, from the data folder beside its binary
/// (`<prefix>/bin/qemu-system-x86_64` -> `<prefix>/share/qemu`), else
/// Debian's. Either QEMU or the firmware may be missing: then SeaBIOS.
pub fn find_qboot(qemu: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(qemu).ok();
    let beside = real
        .as_deref()
        .and_then(|q| q.parent()?.parent().map(|p| p.join("share/qemu/qboot.rom")));
    beside
        .into_iter()
        .chain([PathBuf::from("/usr/share/qemu/qboot.rom")])
        .find(|p| p.is_file())
}

/// Resolves `qemu-system-x86_64` on PATH, or says how to install it.
pub fn find_qemu(explicit: Option<&Path>) -> Result<PathBuf, VmError> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => crate::support::which("qemu-system-x86_64").ok_or(VmError::NoQemu),
    }
}
