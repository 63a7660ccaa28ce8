//! Running make on a kernel tree: out of tree (`O=`), through ccache when
//! there is one, stdout and stderr merged in order into the build log, and
//! every line passed on for a live tail.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::BuildEvent;
use crate::support::child::{self, GroupChild, RunError};
use crate::support::interrupt;
use crate::support::stop::{Interrupted, StopCheck, POLL};

/// Lines of output kept for an error message.
const TAIL: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status})")]
    Failed {
        command: String,
        status: String,
        /// The last lines of its output.
        tail: Vec<String>,
        /// Whether a signal ended it (Ctrl-C): such a failure says nothing
        /// about the build and is never cached.
        signalled: bool,
    },
    #[error("writing the build log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// make's process group was stopped on a stop request.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// The build log, kept whole; each command is written before its output.
pub struct BuildLog {
    pub path: PathBuf,
    file: File,
}

impl BuildLog {
    pub fn create(path: &Path) -> Result<BuildLog, MakeError> {
        let file = File::create(path).map_err(|source| MakeError::Log {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(BuildLog {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn line(&mut self, text: &str) -> Result<(), MakeError> {
        writeln!(self.file, "{text}").map_err(|source| MakeError::Log {
            path: self.path.clone(),
            source,
        })
    }
}

/// How make is run for one build: every invocation gets the same variables
/// so Kconfig, the build and the test module see the same pahole and CC.
#[derive(Debug, Clone)]
pub struct Make {
    pub tree: PathBuf,
    pub out: PathBuf,
    pub jobs: usize,
    /// `NAME=value` arguments (PAHOLE, CC, HOSTCC...).
    pub vars: Vec<String>,
    /// Environment (ccache's settings).
    pub env: Vec<(String, String)>,
}

impl Make {
    pub fn command_line(&self, args: &[String]) -> String {
        let mut parts = vec![
            "make".to_string(),
            "-C".into(),
            self.tree.display().to_string(),
            format!("O={}", self.out.display()),
            format!("-j{}", self.jobs),
        ];
        parts.extend(self.vars.iter().cloned());
        parts.extend(args.iter().cloned());
        parts.join(" ")
    }

    /// make with its variables; stdout and stderr both into `writer`.
    fn command(&self, args: &[String], writer: OwnedFd) -> io::Result<Command> {
        let writer2 = writer.try_clone()?;
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(&self.tree)
            .arg(format!("O={}", self.out.display()))
            .arg(format!("-j{}", self.jobs))
            .args(&self.vars)
            .args(args)
            .env("LC_ALL", "C")
            // A stripped module has no .BTF to check; kbuild strips when set.
            .env_remove("INSTALL_MOD_STRIP")
            .env_remove("KBUILD_OUTPUT")
            .env_remove("ARCH")
            .env_remove("CROSS_COMPILE")
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Ok(cmd)
    }

    /// Runs `make <vars> <args>`; each output line goes to the log and to
    /// `events`. Returns the output's lines only on success.
    pub fn run(
        &self,
        args: &[String],
        log: &mut BuildLog,
        events: &mut dyn FnMut(BuildEvent),
    ) -> Result<Vec<String>, MakeError> {
        self.run_until(args, log, events, &interrupt::requested)
    }

    /// `run` with the stop check given. make leads a process group of its
    /// own, so that a stop request reaches every compiler it runs, and
    /// dies with us by SIGTERM (which make passes on to its jobs).
    pub fn run_until(
        &self,
        args: &[String],
        log: &mut BuildLog,
        events: &mut dyn FnMut(BuildEvent),
        stop: StopCheck<'_>,
    ) -> Result<Vec<String>, MakeError> {
        let command = self.command_line(args);
        let start = Instant::now();
        log.line(&format!("$ {command}"))?;
        let spawn_err = |source| MakeError::Spawn {
            command: command.clone(),
            source,
        };
        let (reader, writer) = pipe().map_err(spawn_err)?;
        let mut cmd = self.command(args, writer).map_err(spawn_err)?;
        let mut child = GroupChild::spawn(&mut cmd, libc::SIGTERM).map_err(spawn_err)?;
        // Our copies of the write end must go, or the read never ends.
        drop(cmd);
        let lines = match follow(reader, &mut child, log, events, stop) {
            Err(MakeError::Interrupted(i)) => return Err(interrupted(log, i, start)),
            other => other?,
        };
        let status = match child.wait(stop) {
            Ok(status) => status,
            Err(RunError::Interrupted(i)) => return Err(interrupted(log, i, start)),
            Err(RunError::Io(e)) => return Err(spawn_err(e)),
        };
        log.line(&format!(
            "# {} after {:.1} s",
            status,
            start.elapsed().as_secs_f64()
        ))?;
        if status.success() {
            return Ok(lines);
        }
        use std::os::unix::process::ExitStatusExt;
        let tail = lines[lines.len().saturating_sub(TAIL)..].to_vec();
        Err(MakeError::Failed {
            command,
            status: status.to_string(),
            tail,
            signalled: status.signal().is_some() || stop().is_some(),
        })
    }
}

/// Notes in the log where a stop request caught make.
fn interrupted(log: &mut BuildLog, i: Interrupted, start: Instant) -> MakeError {
    let _ = log.line(&format!(
        "# {i} after {:.1} s; make's process group stopped",
        start.elapsed().as_secs_f64()
    ));
    i.into()
}

/// Follows make's output to its end, line by line, into the log and the
/// events. The lines are read on a thread, so that the stop check is
/// asked every `POLL` even while make prints nothing (a link of vmlinux
/// is a minute of silence); on a stop request make's group is stopped.
fn follow(
    reader: OwnedFd,
    child: &mut GroupChild,
    log: &mut BuildLog,
    events: &mut dyn FnMut(BuildEvent),
    stop: StopCheck<'_>,
) -> Result<Vec<String>, MakeError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("make-output".into())
        .spawn(move || {
            for line in BufReader::new(File::from(reader)).split(b'\n') {
                let Ok(raw) = line else { break };
                if tx.send(raw).is_err() {
                    break;
                }
            }
        })
        .map_err(|source| MakeError::Spawn {
            command: "a thread to read make's output".into(),
            source,
        })?;
    let mut lines = Vec::new();
    loop {
        if let Some(signal) = stop() {
            child.terminate();
            return Err(Interrupted { signal }.into());
        }
        let raw = match rx.recv_timeout(POLL) {
            Ok(raw) => raw,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(lines),
        };
        let text = String::from_utf8_lossy(&raw).trim_end().to_string();
        log.line(&text)?;
        events(BuildEvent::Make { line: text.clone() });
        lines.push(text);
    }
}

/// A pipe whose ends are closed on exec (the child gets dup2'd copies).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// First line of `<program> --version`, for the cache key and metadata.
/// None also on a stop request, which the build's next wait reports.
pub fn tool_version(program: &str) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.arg("--version");
    let out = child::output(&mut cmd, &interrupt::requested).ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn merges_output_into_log_and_events() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Makefile"),
            "all:\n\t@echo out1\n\t@echo err1 >&2\n\t@echo out2\nbad:\n\t@echo boom; false\n",
        )
        .unwrap();
        let m = Make {
            tree: d.path().to_path_buf(),
            out: d.path().join("o"),
            jobs: 1,
            vars: vec![],
            env: vec![],
        };
        let mut log = BuildLog::create(&d.path().join("log")).unwrap();
        let mut seen = Vec::new();
        let lines = m
            .run(&["all".into()], &mut log, &mut |e| {
                if let BuildEvent::Make { line } = e {
                    seen.push(line)
                }
            })
            .unwrap();
        assert!(lines.iter().any(|l| l == "out1") && lines.iter().any(|l| l == "err1"));
        assert_eq!(seen.len(), lines.len());
        let e = m.run(&["bad".into()], &mut log, &mut |_| {}).unwrap_err();
        match e {
            MakeError::Failed {
                tail, signalled, ..
            } => {
                assert!(tail.iter().any(|l| l == "boom"), "{tail:?}");
                assert!(!signalled);
            }
            other => panic!("{other}"),
        }
        let text = std::fs::read_to_string(d.path().join("log")).unwrap();
        assert!(
            text.contains("$ make -C") && text.contains("err1"),
            "{text}"
        );
    }

    #[test]
    fn a_silent_make_is_stopped_within_a_second() {
        use crate::support::child::tests::{marked_sleep, stop_after, survivors};
        use std::sync::atomic::Ordering;
        let d = tempfile::tempdir().unwrap();
        let sleep = marked_sleep(d.path());
        // Two silent jobs, as a parallel link would be.
        std::fs::write(
            d.path().join("Makefile"),
            format!("all: a b\na:\n\t@{sleep} 30\nb:\n\t@{sleep} 30\n"),
        )
        .unwrap();
        let m = Make {
            tree: d.path().to_path_buf(),
            out: d.path().join("o"),
            jobs: 2,
            vars: vec![],
            env: vec![],
        };
        let mut log = BuildLog::create(&d.path().join("log")).unwrap();
        let (flag, at) = stop_after(Duration::from_millis(100));
        let stop = || Some(flag.load(Ordering::SeqCst)).filter(|s| *s != 0);
        let r = m.run_until(&["all".into()], &mut log, &mut |_| {}, &stop);
        let took = at.elapsed();
        assert!(
            matches!(r, Err(MakeError::Interrupted(Interrupted { signal: 2 }))),
            "{r:?}"
        );
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert!(survivors(&sleep).is_empty(), "{:?}", survivors(&sleep));
        let text = std::fs::read_to_string(d.path().join("log")).unwrap();
        assert!(text.contains("interrupted by SIGINT after"), "{text}");
    }
}
