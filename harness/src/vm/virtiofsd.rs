//! virtiofsd, the vhost-user daemon behind `--share`: found once, started
//! per boot with std::process before QEMU, ready when its socket exists
//! (virtiofsd binds it before it listens, and it takes exactly one
//! connection, QEMU's, so it cannot be probed by connecting), and never
//! left behind: it dies with btfvm (PR_SET_PDEATHSIG) and is killed and
//! reaped when its guard goes.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::VmError;
use crate::support::child::{die_with_parent, KillOnDrop};

/// How long virtiofsd may take to create its socket (measured: 5-20 ms).
const READY_LIMIT: Duration = Duration::from_secs(10);

/// Where a virtiofsd may be: BTFVM_VIRTIOFSD, PATH, Debian's package
/// (trixie on) and cargo's bin folder.
fn candidates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("BTFVM_VIRTIOFSD")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    v.extend(crate::support::which("virtiofsd"));
    v.push(PathBuf::from("/usr/libexec/virtiofsd"));
    if let Some(home) = std::env::var_os("HOME") {
        v.push(Path::new(&home).join(".cargo/bin/virtiofsd"));
    }
    v
}

/// The Rust virtiofsd. QEMU's older C one (/usr/lib/qemu/virtiofsd) takes
/// other options (`-o source=`) and is not accepted.
pub fn find() -> Result<PathBuf, VmError> {
    for c in candidates().into_iter().filter(|c| c.is_file()) {
        let help = Command::new(&c)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if help.contains("--shared-dir") {
            return Ok(c);
        }
    }
    Err(VmError::NoVirtiofsd)
}

/// The arguments: read-only (a guest under test has no business writing
/// the developer's tree), no sandbox (namespaces need privileges btfvm does
/// not ask for; the guest is btfvm's own agent), no caching of guest
/// reads beyond virtiofsd's default.
pub fn args(socket: &Path, dir: &Path) -> Vec<std::ffi::OsString> {
    let mut sock = std::ffi::OsString::from("--socket-path=");
    sock.push(socket);
    let mut shared = std::ffi::OsString::from("--shared-dir=");
    shared.push(dir);
    vec![
        sock,
        shared,
        "--sandbox=none".into(),
        "--readonly".into(),
        "--log-level=error".into(),
    ]
}

/// A running virtiofsd; killed and reaped when dropped.
pub struct Virtiofsd {
    child: KillOnDrop,
    pub tag: String,
    stderr: Option<std::process::ChildStderr>,
}

impl Virtiofsd {
    pub fn start(
        binary: &Path,
        socket: &Path,
        dir: &Path,
        tag: &str,
    ) -> Result<Virtiofsd, VmError> {
        let _ = std::fs::remove_file(socket);
        let mut cmd = Command::new(binary);
        cmd.args(args(socket, dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| VmError::Spawn {
            qemu: binary.to_path_buf(),
            source,
        })?;
        let mut d = Virtiofsd {
            stderr: None,
            child: KillOnDrop(child),
            tag: tag.to_string(),
        };
        d.stderr = d.child.0.stderr.take();
        let start = Instant::now();
        loop {
            let ready = std::fs::metadata(socket).is_ok_and(|m| m.file_type().is_socket());
            if ready {
                return Ok(d);
            }
            if let Some(why) = d.exited() {
                return Err(VmError::Virtiofsd {
                    tag: tag.into(),
                    why,
                });
            }
            if start.elapsed() > READY_LIMIT {
                return Err(VmError::Virtiofsd {
                    tag: tag.into(),
                    why: format!(
                        "no socket at {} after {} s",
                        socket.display(),
                        READY_LIMIT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Why it is gone, if it exited: its status and what it said.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.0.try_wait().ok()??;
        let mut said = String::new();
        if let Some(e) = self.stderr.as_mut() {
            let _ = e.take(4096).read_to_string(&mut said);
        }
        Some(format!("virtiofsd exited ({status}): {}", said.trim()))
    }
}

/// The daemons of one boot, one per share the plan mounts.
#[derive(Default)]
pub struct Daemons {
    running: Vec<(PathBuf, Virtiofsd)>,
}

impl Daemons {
    /// Starts one virtiofsd per mount, serving the host folder of the share
    /// with that tag, its socket in `workdir`.
    pub fn start(
        binary: Option<&Path>,
        mounts: &[btfvm_proto::ShareMount],
        shares: &[crate::inputs::share::Share],
        workdir: &Path,
    ) -> Result<Daemons, VmError> {
        let mut d = Daemons::default();
        for m in mounts {
            let binary = binary.ok_or(VmError::NoVirtiofsd)?;
            let Some(share) = shares.iter().find(|s| s.tag == m.tag) else {
                continue;
            };
            let socket = workdir.join(format!("virtiofs-{}.sock", m.tag));
            let v = Virtiofsd::start(binary, &socket, &share.host_dir, &m.tag)?;
            d.running.push((socket, v));
        }
        Ok(d)
    }

    /// (socket, tag) per daemon, for QEMU's command line.
    pub fn sockets(&self) -> Vec<(PathBuf, String)> {
        self.running
            .iter()
            .map(|(s, v)| (s.clone(), v.tag.clone()))
            .collect()
    }

    /// Why one of them is gone, if one is.
    pub fn gone(&mut self) -> Option<String> {
        self.running.iter_mut().find_map(|(_, v)| {
            v.exited()
                .map(|why| format!("share {}: {why} while the guest used it", v.tag))
        })
    }
}
