//! Child processes that outlive neither a stop request nor btfvm. apt
//! forks its download methods and make its compilers, so those run as the
//! leaders of process groups of their own (a terminal's Ctrl-C does not
//! reach them; btfvm signals the whole group itself), die with btfvm even
//! when it is SIGKILLed (`PR_SET_PDEATHSIG`), and are waited on together
//! with the stop check. QEMU, a single process, uses [`KillOnDrop`].

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::stop::{self, Interrupted, StopCheck, POLL};

/// After SIGTERM, how long a group has before SIGKILL. make forwards
/// SIGTERM to its jobs and deletes their half-written targets; apt ends
/// its methods. Both take a few milliseconds; a compiler that does not
/// react in this long is killed.
const GRACE: Duration = Duration::from_millis(300);

/// How long to wait, once the leader is reaped, for the rest of a killed
/// group (reparented to init, which reaps them) to be gone from /proc.
const VANISH: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Spawning or waiting failed (`NotFound`: no such program).
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// A child leading a process group of its own; the group is killed when
/// this is dropped unreaped, so an early return or a panic leaves nothing.
pub struct GroupChild {
    child: Child,
    reaped: bool,
}

impl GroupChild {
    /// Spawns `cmd` in a new process group. `death_signal` reaches the
    /// child when the thread that spawned it dies, however it dies.
    pub fn spawn(cmd: &mut Command, death_signal: i32) -> io::Result<GroupChild> {
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(GroupChild {
            child: cmd.spawn()?,
            reaped: false,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// For taking its stdout and stderr.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    fn signal_group(&self, sig: i32) {
        // SAFETY: kill(2) on the group this child leads. Until the leader
        // is reaped its zombie keeps the group id from being reused.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), sig) };
    }

    /// Whether the leader has exited, without reaping it (`WNOWAIT`), so
    /// that its group can still be signalled safely.
    pub fn has_exited(&self) -> io::Result<bool> {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child, writing into `info` only.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(e),
            };
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo, or left it zeroed.
        Ok(unsafe { info.si_pid() } != 0)
    }

    /// Waits for the leader to exit, asking `stop` at least every `POLL`.
    /// A pidfd wakes the wait the moment the leader exits, and a signal
    /// delivered to this thread interrupts it; without pidfds (before
    /// Linux 5.3) the wait naps, 1 ms at first so that a quick command
    /// costs little more than its run. On a stop request the group is
    /// stopped (see `terminate`). On a normal exit, whatever the leader
    /// left running in its group is killed before the leader is reaped.
    pub fn wait(&mut self, stop: StopCheck<'_>) -> Result<ExitStatus, RunError> {
        let pidfd = pidfd_open(self.child.id());
        let mut nap = Duration::from_millis(1);
        while !self.has_exited()? {
            if let Some(signal) = stop() {
                self.terminate();
                return Err(Interrupted { signal }.into());
            }
            match &pidfd {
                Some(fd) => {
                    let mut p = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: poll(2) on one pollfd we own.
                    unsafe { libc::poll(&mut p, 1, POLL.as_millis() as libc::c_int) };
                }
                None => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(POLL);
                }
            }
        }
        self.signal_group(libc::SIGKILL);
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }

    /// SIGTERM to the whole group, SIGKILL to what is left of it after
    /// `GRACE`, the leader reaped, and a short wait for the rest to go.
    pub fn terminate(&mut self) {
        if self.reaped {
            return;
        }
        self.signal_group(libc::SIGTERM);
        let until = Instant::now() + GRACE;
        while Instant::now() < until && !self.has_exited().unwrap_or(true) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
        self.reaped = true;
        let pgid = self.child.id() as libc::pid_t;
        let until = Instant::now() + VANISH;
        while group_alive(pgid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// A descriptor that becomes readable when `pid` exits.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
    // descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Whether a process of the group is still alive. A killed member whose
/// parent died first waits as a zombie for init to reap it, which took
/// over 200 ms here for apt's http method, and kill(-pgid, 0) counts it
/// all that time: so /proc is read, and zombies are left out.
fn group_alive(pgid: libc::pid_t) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
        let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<libc::pid_t>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}

/// `Command::output()` that gives up on a stop request: the command runs
/// as a `GroupChild` (stdin from /dev/null, dying with us by SIGKILL), its
/// stdout and stderr are read on threads of their own (so neither pipe
/// can fill up and stall it), and its group is killed on a stop request.
pub fn output(cmd: &mut Command, stop: StopCheck<'_>) -> Result<Output, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = GroupChild::spawn(cmd, libc::SIGKILL)?;
    let stdout = drain(child.child.stdout.take())?;
    let stderr = drain(child.child.stderr.take())?;
    let status = child.wait(stop)?;
    Ok(Output {
        status,
        stdout: stdout.collect(stop)?,
        stderr: stderr.collect(stop)?,
    })
}

/// What a reader thread read, once its pipe is at its end.
struct Drain(Option<mpsc::Receiver<Vec<u8>>>);

fn drain<R: Read + Send + 'static>(r: Option<R>) -> io::Result<Drain> {
    let Some(mut r) = r else {
        return Ok(Drain(None));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("child-output".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        })?;
    Ok(Drain(Some(rx)))
}

impl Drain {
    /// A process outside the group (one that called setsid) may keep the
    /// pipe open: the stop check still wins, and the thread is left behind.
    fn collect(self, stop: StopCheck<'_>) -> Result<Vec<u8>, Interrupted> {
        let Some(rx) = self.0 else {
            return Ok(Vec::new());
        };
        loop {
            match rx.recv_timeout(POLL) {
                Ok(bytes) => return Ok(bytes),
                Err(mpsc::RecvTimeoutError::Timeout) => stop::check(stop)?,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(Vec::new()),
            }
        }
    }
}

/// How `wait_timeout` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    Exited(ExitStatus),
    /// The timeout passed (or the child could not be waited for).
    TimedOut,
    /// A stop was requested first (the signal).
    Stopped(i32),
}

/// Polls a child every 10 ms until it exits, the timeout passes or a stop
/// is requested. The child is left as it is.
pub fn wait_timeout(child: &mut Child, timeout: Duration, stop: StopCheck<'_>) -> Waited {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Waited::Exited(s),
            Err(_) => return Waited::TimedOut,
            Ok(None) => {}
        }
        if let Some(signal) = stop() {
            return Waited::Stopped(signal);
        }
        if Instant::now() >= deadline {
            return Waited::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The child gets SIGKILL when the harness dies, even by SIGKILL: a QEMU
/// left behind would burn a core for nothing until someone notices.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Kills and reaps on drop, so an early return or a panic in the harness
/// never leaves QEMU running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[cfg(test)]
#[path = "child_tests.rs"]
pub(crate) mod tests;
