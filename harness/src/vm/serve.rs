//! A guest that serves rather than reports: QEMU runs until it is stopped
//! (dropped), and it is ready when the forwarded port answers with an SSH
//! banner. QEMU's user-mode forward accepts a connection as soon as QEMU
//! listens, before the guest does, so an accepted connection proves
//! nothing; the banner comes from the guest's server.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::args::QemuCommand;
use super::VmError;
use crate::support::child::{die_with_parent, KillOnDrop};
use crate::support::stop::StopCheck;

/// A running guest; dropping it kills QEMU.
pub struct Served {
    child: KillOnDrop,
    pub port: u16,
    pub console_log: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("QEMU exited ({status}) before the guest's SSH server answered on 127.0.0.1:{port}; console: {console}")]
    Exited {
        status: String,
        port: u16,
        console: String,
    },
    #[error("no SSH banner on 127.0.0.1:{port} within {} s; console: {console}", after.as_secs())]
    NotReady {
        port: u16,
        after: Duration,
        console: String,
    },
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
}

/// A free loopback port, for QEMU's forward. Another process may take it
/// before QEMU does; QEMU then fails at once and says so.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The last lines of the console log, for an error message.
fn console_tail(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// Whether the port answers with an SSH identification line.
fn banner(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}

/// Starts QEMU and waits, up to `limit`, for the guest's SSH server.
pub fn start(
    command: &QemuCommand,
    port: u16,
    console_log: &Path,
    limit: Duration,
    stop: StopCheck<'_>,
) -> Result<Served, ServeError> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let child = cmd
        .spawn()
        .map(KillOnDrop)
        .map_err(|source| VmError::Spawn {
            qemu: command.program.clone(),
            source,
        })?;
    let mut served = Served {
        child,
        port,
        console_log: console_log.to_path_buf(),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if let Some(sig) = stop() {
            return Err(ServeError::Interrupted(sig));
        }
        if let Ok(Some(status)) = served.child.0.try_wait() {
            return Err(ServeError::Exited {
                status: status.to_string(),
                port,
                console: console_tail(console_log),
            });
        }
        if banner(addr) {
            return Ok(served);
        }
        if start.elapsed() > limit {
            return Err(ServeError::NotReady {
                port,
                after: limit,
                console: console_tail(console_log),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Served {
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}
