//! One run of the suite on an SSH target: push the plan's files into a
//! fresh folder, start the agent (as root) and a reader of the kernel log,
//! feed both streams to the boot watcher exactly as a QEMU boot's channel
//! and console are fed, and remove everything afterwards, over a new
//! connection when the old one broke.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use btfvm_proto::Plan;
use ssh2::Channel;

use super::kmsg::{uptime_us, KmsgLines};
use super::remote::{self, Root};
use super::ssh::{Connection, SshError, SshParams};
use crate::boot::initramfs::Archive;
use crate::vm::fed::Fed;
use crate::vm::transcript::Recorder;
use crate::vm::watch::Input;
use crate::vm::{BootEnd, BootOutcome, Timeouts, VmEvent, Way};

/// Limit for each setup and cleanup command (mktemp, the push, rm).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Keepalives, and how long unacknowledged data may wait before the
/// kernel gives up on the connection (TCP_USER_TIMEOUT): a target that
/// vanished without a reset is then noticed in bounded time.
const KEEPALIVE: Duration = Duration::from_secs(5);
const IDLE_POLL: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{user} on {target} is not root and `sudo -n` does not work there: the agent loads modules and BPF programs, which needs root (log in as root, or allow {user} passwordless sudo)")]
    NotRoot { target: String, user: String },
    #[error("{0}")]
    Setup(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the target runs, read once before planning.
#[derive(Debug, Clone)]
pub struct TargetFacts {
    pub release: String,
    pub config_text: String,
    /// Where the config came from (for messages).
    pub config_from: &'static str,
    pub root: Root,
}

/// Connects and reads the target's kernel release, config and root.
pub fn inspect(p: &SshParams) -> Result<TargetFacts, TargetError> {
    let c = Connection::open(p)?;
    let release = c
        .check(remote::RELEASE, None, COMMAND_LIMIT)
        .map_err(TargetError::Setup)?
        .text();
    let uid = c
        .check(remote::UID, None, COMMAND_LIMIT)
        .map_err(TargetError::Setup)?
        .text();
    let root = if uid == "0" {
        Root::Login
    } else if c.run(remote::SUDO_CHECK, None, COMMAND_LIMIT)?.status == 0 {
        Root::Sudo
    } else {
        return Err(TargetError::NotRoot {
            target: c.target.clone(),
            user: p.url.user.clone(),
        });
    };
    let (bytes, from) = match c.run(remote::CONFIG_PROC, None, COMMAND_LIMIT)? {
        o if o.status == 0 && !o.stdout.is_empty() => (o.stdout, "/proc/config.gz"),
        _ => match c.run(remote::CONFIG_BOOT, None, COMMAND_LIMIT)? {
            o if o.status == 0 => (o.stdout, "/boot/config-<release>"),
            _ => {
                return Err(TargetError::Setup(format!(
                    "{} has no kernel config: neither /proc/config.gz (CONFIG_IKCONFIG_PROC) nor /boot/config-{release}",
                    c.target
                )))
            }
        },
    };
    let config_text = remote::config_text(&bytes).map_err(TargetError::Setup)?;
    Ok(TargetFacts {
        release,
        config_text,
        config_from: from,
        root,
    })
}

/// One run's inputs.
pub struct SshBoot<'a> {
    pub params: &'a SshParams,
    pub root: Root,
    pub archive: &'a Archive,
    /// The plan as the archive holds it (paths from /); rooted here.
    pub plan: &'a Plan,
    pub timeouts: Timeouts,
    /// Where the kernel log, as console lines, and the transcript go.
    pub console_log: PathBuf,
    pub transcript: PathBuf,
}

/// How the run went, and whether the target was left clean.
pub struct SshOutcome {
    pub outcome: BootOutcome,
    /// Err: what could not be removed or stopped, and why.
    pub cleanup: Result<(), String>,
}

fn io<'p>(
    what: &'static str,
    path: &'p std::path::Path,
) -> impl Fn(std::io::Error) -> TargetError + 'p {
    move |source| TargetError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Pushes, runs and cleans up.
pub fn run(
    b: &SshBoot<'_>,
    cancelled: &dyn Fn() -> Option<i32>,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<SshOutcome, TargetError> {
    let c = Connection::open(b.params)?;
    let dir = c
        .check(remote::MAKE_DIR, None, COMMAND_LIMIT)
        .map_err(TargetError::Setup)?
        .text();
    let dir = remote::checked_dir(&dir)
        .ok_or_else(|| TargetError::Setup(format!("mktemp on {} answered {dir:?}", c.target)))?;
    let ran = push_and_watch(&c, b, &dir, cancelled, on_event);
    // Before the channels are freed: freeing one whose command still runs
    // waits for the server to close it, which `cat /dev/kmsg` never does.
    let cleanup = clean(&c, b, &dir);
    let (outcome, channels) = ran?;
    drop(channels);
    Ok(SshOutcome { outcome, cleanup })
}

fn push_and_watch(
    c: &Connection,
    b: &SshBoot<'_>,
    dir: &str,
    cancelled: &dyn Fn() -> Option<i32>,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<(BootOutcome, [Channel; 2]), TargetError> {
    let tar = remote::tar_of(b.archive)
        .map_err(|e| TargetError::Setup(format!("packing the plan's files: {e}")))?;
    c.check(&remote::unpack(dir), Some(&tar), COMMAND_LIMIT)
        .map_err(TargetError::Setup)?;
    let plan = serde_json::to_vec_pretty(&b.plan.rooted(dir)).unwrap_or_default();
    c.check(
        &format!("cat > {}/plan.json", remote::quote(dir)),
        Some(&plan),
        COMMAND_LIMIT,
    )
    .map_err(TargetError::Setup)?;
    let since = c
        .check(remote::UPTIME, None, COMMAND_LIMIT)
        .ok()
        .and_then(|o| uptime_us(&o.text()))
        .unwrap_or(0);
    let open = |cmd: &str| -> Result<Channel, TargetError> {
        let mut ch = c
            .session
            .channel_session()
            .map_err(|source| SshError::Command {
                target: c.target.clone(),
                command: cmd.to_string(),
                source,
            })?;
        ch.exec(cmd).map_err(|source| SshError::Command {
            target: c.target.clone(),
            command: cmd.to_string(),
            source,
        })?;
        Ok(ch)
    };
    let kmsg = open(&remote::follow_kmsg(dir, b.root))?;
    let transcript = File::create(&b.transcript).map_err(io("creating", &b.transcript))?;
    let recorder =
        Recorder::new(BufWriter::new(transcript)).map_err(io("writing", &b.transcript))?;
    let console = File::create(&b.console_log).map_err(io("creating", &b.console_log))?;
    let fed = Fed::new(b.timeouts, recorder);
    let agent = open(&remote::run_agent(dir, b.root))?;
    let mut s = Streams {
        fed,
        console: BufWriter::new(console),
        kmsg_lines: KmsgLines::new(since),
        agent,
        kmsg,
        stderr: Vec::new(),
    };
    c.session.set_blocking(false);
    let end = s.watch_loop(c, cancelled, on_event);
    c.session.set_blocking(true);
    let _ = s.console.flush();
    let elapsed = s.fed.elapsed();
    let watched = s.fed.finish();
    let mut outcome = BootOutcome::from_watched(
        watched,
        b.console_log.clone(),
        String::from_utf8_lossy(&s.stderr).into_owned(),
    );
    outcome.way = Way::Ssh;
    outcome.end = end;
    outcome.elapsed = elapsed;
    Ok((outcome, [s.agent, s.kmsg]))
}

struct Streams {
    fed: Fed,
    console: BufWriter<File>,
    kmsg_lines: KmsgLines,
    agent: Channel,
    kmsg: Channel,
    stderr: Vec<u8>,
}

/// One non-blocking read: Some(n) bytes, None when nothing is there yet.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> Result<Option<usize>, String> {
    match r.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

impl Streams {
    fn feed(&mut self, input: Input, on_event: &mut dyn FnMut(&VmEvent)) -> Option<BootEnd> {
        self.fed.feed(input, on_event)
    }

    fn watch_loop(
        &mut self,
        c: &Connection,
        cancelled: &dyn Fn() -> Option<i32>,
        on_event: &mut dyn FnMut(&VmEvent),
    ) -> BootEnd {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_keepalive = Instant::now();
        loop {
            if let Some(signal) = cancelled() {
                if let Some(end) = self.feed(Input::Interrupted { signal }, on_event) {
                    return end;
                }
            }
            if let Some(end) = self.feed(Input::Tick, on_event) {
                return end;
            }
            let mut busy = false;
            match read_some(&mut self.kmsg, &mut buf) {
                Ok(Some(n)) if n > 0 => {
                    busy = true;
                    let lines = self.kmsg_lines.feed(&buf[..n]);
                    let _ = self.console.write_all(&lines);
                    if !lines.is_empty() {
                        if let Some(end) = self.feed(Input::Console(lines), on_event) {
                            return end;
                        }
                    }
                }
                Ok(_) => {}
                Err(why) => return self.lost(why, on_event),
            }
            let mut err = [0u8; 4096];
            if let Ok(Some(n)) = read_some(&mut self.agent.stderr(), &mut err) {
                let room = (64 * 1024usize).saturating_sub(self.stderr.len());
                self.stderr.extend_from_slice(&err[..n.min(room)]);
            }
            match read_some(&mut self.agent, &mut buf) {
                Ok(Some(n)) if n > 0 => {
                    busy = true;
                    if let Some(end) = self.feed(Input::Channel(buf[..n].to_vec()), on_event) {
                        return end;
                    }
                }
                Ok(_) if self.agent.eof() => {
                    let status = self.agent.exit_status().ok();
                    return self
                        .feed(Input::Exited { status }, on_event)
                        .unwrap_or(BootEnd::Exited { status });
                }
                Ok(_) => {}
                Err(why) => return self.lost(why, on_event),
            }
            if last_keepalive.elapsed() >= KEEPALIVE {
                last_keepalive = Instant::now();
                if let Err(e) = c.session.keepalive_send() {
                    if e.code() != ssh2::ErrorCode::Session(-37) {
                        return self.lost(e.to_string(), on_event);
                    }
                }
            }
            if !busy {
                std::thread::sleep(IDLE_POLL);
            }
        }
    }

    fn lost(&mut self, why: String, on_event: &mut dyn FnMut(&VmEvent)) -> BootEnd {
        let input = Input::Lost(why.clone());
        self.feed(input, on_event).unwrap_or(BootEnd::Lost { why })
    }
}

/// Kills what is left and removes the folder; over a new connection when
/// the run's broke.
fn clean(c: &Connection, b: &SshBoot<'_>, dir: &str) -> Result<(), String> {
    let cmd = remote::cleanup(dir, b.root);
    let first = c.check(&cmd, None, COMMAND_LIMIT);
    if first.is_ok() {
        return Ok(());
    }
    let again = Connection::open(b.params)
        .map_err(|e| e.to_string())
        .and_then(|c2| c2.check(&cmd, None, COMMAND_LIMIT));
    again.map(|_| ()).map_err(|e| {
        format!(
            "{dir} on {} may be left behind, and the agent with it: {e}",
            c.target
        )
    })
}
