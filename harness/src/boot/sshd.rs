//! The initramfs of a guest that serves SSH: what btfvm's own SSH tests
//! (and `btfvm serve-ssh`) run the suite against, so `--target ssh://` is
//! tested on a real kernel without a lab. Debian's dropbear from the host,
//! with its libraries, runs through its own loader; a static busybox is the
//! shell and the few tools a target must have (tar, mktemp, cat, kill, rm);
//! the agent is PID 1 in its serving mode (`/serve.json`): it loads the
//! network driver, brings eth0 up and starts dropbear. The kernel's config
//! sits at `/boot/config-<release>`, where Debian systems keep it.

use std::path::{Path, PathBuf};

use btfvm_proto::ServePlan;

use super::initramfs::{Archive, Entry};
use super::modules::ModuleError;
use super::tools;
use crate::kernel::KernelImage;

/// Where dropbear and its libraries go in the guest.
const SSHD_ROOT: &str = "/sshd";
pub const HOST_KEY: &str = "/etc/dropbear/host_key";
/// A user without root and without sudo, for the "target without root"
/// fault.
pub const PLAIN_USER: &str = "plain";

/// What the host lends the guest.
#[derive(Debug, Clone)]
pub struct HostServer {
    /// `dropbear` (Debian's dropbear-bin), dynamically linked.
    pub dropbear: PathBuf,
    /// A static busybox (Debian's busybox-static).
    pub busybox: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SshdError {
    #[error(
        "{program} not found; install it: sudo apt-get install --no-install-recommends {package}"
    )]
    Missing {
        program: &'static str,
        package: &'static str,
    },
    #[error("{} is not statically linked (it needs {needs}); install Debian's busybox-static", path.display())]
    NotStatic { path: PathBuf, needs: String },
    #[error("{0}")]
    Place(String),
    #[error("the network driver of {release}: {source}")]
    Module {
        release: String,
        source: ModuleError,
    },
}

/// A program on PATH, else in the usual bin and sbin folders (sbin is
/// off an ordinary user's PATH, and dropbear lives there).
fn find_program(p: &'static str, package: &'static str) -> Result<PathBuf, SshdError> {
    crate::support::which(p)
        .or_else(|| {
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(p))
                .find(|c| c.is_file())
        })
        .ok_or(SshdError::Missing {
            program: p,
            package,
        })
}

/// A static busybox on the host: the SSH guest's shell, and what vng
/// builds its initramfs with.
pub fn static_busybox() -> Result<PathBuf, SshdError> {
    let busybox = find_program("busybox", "busybox-static")?;
    let needs = tools::needed(&busybox).map_err(SshdError::Place)?;
    if !needs.is_empty() {
        return Err(SshdError::NotStatic {
            path: busybox,
            needs: needs.join(", "),
        });
    }
    Ok(busybox)
}

impl HostServer {
    /// Finds dropbear and a static busybox on the host.
    pub fn find() -> Result<HostServer, SshdError> {
        Ok(HostServer {
            dropbear: find_program("dropbear", "dropbear-bin")?,
            busybox: static_busybox()?,
        })
    }
}

/// The keys: the server's own (dropbear's format, made by `dropbearkey`)
/// and the public keys allowed to log in (an authorized_keys text).
pub struct SshdKeys {
    pub host_key: Vec<u8>,
    pub authorized_keys: String,
}

/// The modules to load for a virtio-net NIC, leaves first: the PCI
/// transport and the driver, where the kernel has them as modules.
fn net_modules(image: &KernelImage) -> Result<Vec<PathBuf>, SshdError> {
    super::modules::needed_for(
        image,
        &[
            ("CONFIG_VIRTIO_PCI", "virtio_pci"),
            ("CONFIG_VIRTIO_NET", "virtio_net"),
        ],
    )
    .map_err(|source| SshdError::Module {
        release: image.release.clone(),
        source,
    })
}

/// root and a user without root, both letting in the same keys; the
/// server's key.
fn accounts(a: &mut Archive, keys: &SshdKeys) {
    a.add(Entry::file(HOST_KEY, 0o600, keys.host_key.clone()));
    a.add(Entry::file(
        "root/.ssh/authorized_keys",
        0o600,
        keys.authorized_keys.clone().into_bytes(),
    ));
    a.add(Entry::file(
        &format!("home/{PLAIN_USER}/.ssh/authorized_keys"),
        0o644,
        keys.authorized_keys.clone().into_bytes(),
    ));
    let passwd = format!("root:x:0:0:root:/root:/bin/sh\n{PLAIN_USER}:x:1000:1000:{PLAIN_USER}:/home/{PLAIN_USER}:/bin/sh\n");
    a.add(Entry::file("etc/passwd", 0o644, passwd.into_bytes()));
    a.add(Entry::file(
        "etc/group",
        0o644,
        format!("root:x:0:\n{PLAIN_USER}:x:1000:\n").into_bytes(),
    ));
    a.add(Entry::file("etc/shells", 0o644, b"/bin/sh\n".to_vec()));
}

/// The archive of the SSH server guest.
pub fn archive(
    image: &KernelImage,
    agent: &[u8],
    server: &HostServer,
    keys: &SshdKeys,
) -> Result<Archive, SshdError> {
    let mut a = Archive::new();
    a.add(Entry::file("init", 0o755, agent.to_vec()));
    for d in ["dev", "proc", "sys", "tmp", "bin", "root/.ssh", "var/log"] {
        a.add(Entry::dir(d));
    }
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| SshdError::Place(format!("reading {}: {e}", p.display())))
    };
    a.add(Entry::file("bin/busybox", 0o755, read(&server.busybox)?));
    let loader = Path::new("lib64/ld-linux-x86-64.so.2");
    let dropbear_rel = server
        .dropbear
        .strip_prefix("/")
        .unwrap_or(&server.dropbear);
    tools::place_at(Path::new("/"), dropbear_rel, loader, SSHD_ROOT, &mut a)
        .map_err(SshdError::Place)?;
    accounts(&mut a, keys);
    a.add(Entry::file(
        &format!("boot/config-{}", image.release),
        0o644,
        image.config.text.as_bytes().to_vec(),
    ));
    let mut modules = Vec::new();
    for (i, path) in net_modules(image)?.iter().enumerate() {
        let elf = super::modules::read_module(path).map_err(|source| SshdError::Module {
            release: image.release.clone(),
            source,
        })?;
        let at = format!("/net/{i}.ko");
        a.add(Entry::file(&at, 0o644, elf));
        modules.push(at);
    }
    let lib_path = [SSHD_ROOT]
        .iter()
        .flat_map(|r| {
            crate::debian::program::LIB_DIRS
                .iter()
                .map(move |d| format!("{r}/{d}"))
        })
        .collect::<Vec<_>>()
        .join(":");
    let serve = ServePlan {
        modules,
        interface: "eth0".into(),
        address: [10, 0, 2, 15],
        prefix: 24,
        setup: vec![vec![
            "/bin/busybox".into(),
            "--install".into(),
            "-s".into(),
            "/bin".into(),
        ]],
        command: vec![
            format!("{SSHD_ROOT}/{}", loader.display()),
            "--library-path".into(),
            lib_path,
            format!("{SSHD_ROOT}/{}", dropbear_rel.display()),
            // Foreground, log to the console, keys only, this host key.
            "-F".into(),
            "-E".into(),
            "-s".into(),
            "-r".into(),
            HOST_KEY.into(),
            "-p".into(),
            "22".into(),
        ],
    };
    let json = serde_json::to_vec_pretty(&serve).unwrap_or_default();
    a.add(Entry::file("serve.json", 0o644, json));
    Ok(a)
}

/// A fresh ed25519 host key made by dropbearkey into `dir`, and its public
/// half as an OpenSSH key line ("ssh-ed25519 AAAA...").
pub fn host_key(dir: &Path) -> Result<(Vec<u8>, String), SshdError> {
    let dropbearkey = crate::support::which("dropbearkey")
        .or_else(|| Some(PathBuf::from("/usr/bin/dropbearkey")).filter(|p| p.is_file()))
        .ok_or(SshdError::Missing {
            program: "dropbearkey",
            package: "dropbear-bin",
        })?;
    let key = dir.join("host_key");
    let _ = std::fs::remove_file(&key);
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(&dropbearkey)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| SshdError::Place(format!("running {}: {e}", dropbearkey.display())))
            .and_then(|o| {
                if o.status.success() {
                    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
                } else {
                    Err(SshdError::Place(format!(
                        "{} failed ({}): {}",
                        dropbearkey.display(),
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    )))
                }
            })
    };
    run(&[
        "-t".as_ref(),
        "ed25519".as_ref(),
        "-f".as_ref(),
        key.as_os_str(),
    ])?;
    let public = run(&["-y".as_ref(), "-f".as_ref(), key.as_os_str()])?;
    let line = public_line(&public).ok_or_else(|| {
        SshdError::Place(format!("dropbearkey -y printed no public key: {public:?}"))
    })?;
    let bytes = std::fs::read(&key)
        .map_err(|e| SshdError::Place(format!("reading {}: {e}", key.display())))?;
    Ok((bytes, line))
}

/// The "type base64" of the line dropbearkey -y prints among others.
fn public_line(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let (t, k) = (w.next()?, w.next()?);
        t.starts_with("ssh-").then(|| format!("{t} {k}"))
    })
}

/// The known_hosts line for a forwarded loopback port.
pub fn known_hosts_line(port: u16, public: &str) -> String {
    format!("[127.0.0.1]:{port} {public}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_line_is_found_among_dropbearkeys_chatter() {
        let out = "Public key portion is:\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK root@host\nFingerprint: sha1!! 00:11\n";
        assert_eq!(
            public_line(out).as_deref(),
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK")
        );
        assert_eq!(public_line("nothing"), None);
        assert_eq!(
            known_hosts_line(2222, "ssh-ed25519 AAAA"),
            "[127.0.0.1]:2222 ssh-ed25519 AAAA\n"
        );
    }
}
