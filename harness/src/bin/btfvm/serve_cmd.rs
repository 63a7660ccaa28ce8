//! `btfvm serve-ssh`: a kernel booted as an SSH target (Debian's dropbear
//! on QEMU's user-mode network, root's key from the user), so `--target`
//! can be tried, and is tested, on a real kernel without a lab. Prints the
//! target's URL on stdout, then serves until Ctrl-C or the guest ends.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use btfvm::boot::agent::AGENT;
use btfvm::boot::sshd::{self, HostServer, SshdKeys};
use btfvm::inputs::kernelspec;
use btfvm::run::select::{select, KernelRequest, SelectedKernel};
use btfvm::support::cache::{write_atomic, Cache};
use btfvm::support::{interrupt, tmpdirs};
use btfvm::vm::args::{serve_command, QemuParams, UserNet};
use btfvm::vm::serve::{self, ServeError};
use btfvm::vm::{self, AccelChoice};

use crate::exit::{self, Classified, CmdResult};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The kernel to boot: a spec name, debian:<suite>[:<package>],
    /// build:..., or a path.
    kernel: String,
    /// Loopback port to forward to the guest's port 22 (default: a free one).
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Public key allowed to log in as root; repeatable (default:
    /// ~/.ssh/id_*.pub).
    #[arg(long = "authorized-key", value_name = "FILE")]
    authorized_keys: Vec<PathBuf>,
    /// Write the guest's host key, as a known_hosts line, here.
    #[arg(long, value_name = "FILE")]
    known_hosts_out: Option<PathBuf>,
    /// How long the guest may take to answer on its SSH port, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    ready_timeout: u64,
    #[arg(long, env = "BTFVM_DEBIAN_MIRROR", value_name = "URI")]
    debian_mirror: Option<String>,
    /// Directory of kernel spec YAML files.
    #[arg(long, value_name = "DIR")]
    kernels_dir: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    qemu: Option<PathBuf>,
    #[arg(long, default_value = "auto", env = "BTFVM_ACCEL")]
    accel: AccelChoice,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = btfvm::run::settings::DEFAULT_MEMORY_MIB, value_name = "MIB")]
    memory: u32,
}

/// The public keys to authorize: the ones given, or the user's own.
fn authorized(given: &[PathBuf]) -> Result<String, Classified> {
    let files: Vec<PathBuf> = if given.is_empty() {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
            .iter()
            .map(|f| home.join(".ssh").join(f))
            .filter(|p| p.is_file())
            .collect()
    } else {
        given.to_vec()
    };
    if files.is_empty() {
        return Err(Classified::input(anyhow!(
            "no public key to let in: give --authorized-key FILE.pub, or make one with ssh-keygen -t ed25519"
        )));
    }
    let mut text = String::new();
    for f in files {
        let t = std::fs::read_to_string(&f)
            .with_context(|| format!("reading the public key {}", f.display()))
            .map_err(Classified::input)?;
        if !t.trim_start().starts_with("ssh-") && !t.trim_start().starts_with("ecdsa-") {
            return Err(Classified::input(anyhow!(
                "{} is not an OpenSSH public key (it should start with ssh-ed25519, ssh-rsa or ecdsa-...)",
                f.display()
            )));
        }
        text.push_str(t.trim_end());
        text.push('\n');
    }
    Ok(text)
}

/// The kernel the word names, as `btfvm run --kernel` takes it.
fn chosen(a: &ServeArgs) -> Result<SelectedKernel, Classified> {
    let kernels_dir = btfvm::inputs::input_dir("kernels", a.kernels_dir.as_deref()).path;
    let specs = kernelspec::load_dir(&kernels_dir).map_err(Classified::input)?;
    let request = KernelRequest {
        words: vec![a.kernel.clone()],
        fragments_dir: kernels_dir.join("fragments"),
        ..KernelRequest::default()
    };
    select(&request, &specs)
        .map_err(Classified::input)?
        .pop()
        .ok_or_else(|| Classified::input(anyhow!("{}: no such kernel", a.kernel)))
}

/// The guest's initramfs, written into `dir` with a fresh host key;
/// returns its path and the host key's public half.
fn initramfs(
    image: &btfvm::kernel::KernelImage,
    server: &HostServer,
    authorized_keys: String,
    dir: &std::path::Path,
) -> Result<(PathBuf, String), Classified> {
    let (host_key, public) = sshd::host_key(dir).map_err(Classified::env)?;
    let keys = SshdKeys {
        host_key,
        authorized_keys,
    };
    let archive = sshd::archive(image, AGENT, server, &keys).map_err(Classified::env)?;
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, archive.to_bytes())
        .with_context(|| format!("writing {}", initrd.display()))
        .map_err(Classified::env)?;
    Ok((initrd, public))
}

/// Serves until Ctrl-C or until QEMU ends.
fn serve_until_stopped(mut served: serve::Served, console: &std::path::Path) -> CmdResult {
    loop {
        if let Some(sig) = interrupt::requested() {
            return Ok(ExitCode::from(exit::for_signal(sig)));
        }
        if !served.running() {
            return Err(Classified::env(anyhow!(
                "the guest ended (QEMU exited); console: {}",
                console.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn serve_ssh(a: ServeArgs) -> CmdResult {
    let chosen = chosen(&a)?;
    let server = HostServer::find().map_err(Classified::env)?;
    let authorized_keys = authorized(&a.authorized_keys)?;
    let qemu = vm::find_qemu(a.qemu.as_deref()).map_err(Classified::env)?;
    let cache = Cache::from_env().map_err(Classified::env)?;
    interrupt::install();
    let image = match chosen.resolved {
        Some(i) => i,
        None => crate::fetch_cmd::get(
            &chosen.spec.source,
            &cache,
            a.debian_mirror.as_deref(),
            &a.kernel,
        )?,
    };
    let work = tmpdirs::create().map_err(Classified::env)?;
    let (initrd, public) = initramfs(&image, &server, authorized_keys, work.path())?;
    let port = match a.port {
        Some(p) => p,
        None => serve::free_port().map_err(Classified::env)?,
    };
    if let Some(out) = &a.known_hosts_out {
        write_atomic(out, sshd::known_hosts_line(port, &public).as_bytes())
            .map_err(Classified::env)?;
    }
    let scratch = cache.subdir("tmp").map_err(Classified::env)?;
    // Hosts where KVM passed the probe but hung real boots are
    // remembered by `btfvm run` (see run::settings): skip KVM there too.
    let record = btfvm::support::state::state_dir()
        .unwrap_or_else(|| cache.root().to_path_buf())
        .join(btfvm::run::settings::KVM_RECORD);
    let decision = vm::accel::decide(&qemu, a.accel, &scratch, Some(&record));
    crate::say!(
        "btfvm: accelerator {} ({})",
        decision.accel,
        decision.reason
    );
    let console = work.path().join("console.log");
    let firmware = vm::find_qboot(&qemu);
    let pvh_dir = cache.subdir("pvh").map_err(Classified::env)?;
    let boot_image =
        btfvm::boot::pvh::boot_image(&image.vmlinuz, &pvh_dir).map_err(Classified::env)?;
    let net = UserNet {
        host_port: port,
        guest_port: 22,
    };
    let command = serve_command(
        &QemuParams {
            qemu,
            accel: decision.accel,
            kernel: boot_image.path().to_path_buf(),
            initrd,
            cmdline_extra: Vec::new(),
            memory_mib: a.memory,
            console_log: console.clone(),
            channel: work.path().join("channel.sock"),
            firmware,
            shares: Vec::new(),
        },
        net,
    );
    crate::say!(
        "btfvm: booting {} ({}) as an SSH target on 127.0.0.1:{port}",
        a.kernel,
        image.release
    );
    let served = match serve::start(
        &command,
        port,
        &console,
        Duration::from_secs(a.ready_timeout),
        &interrupt::requested,
    ) {
        Ok(s) => s,
        Err(ServeError::Interrupted(sig)) => return Ok(ExitCode::from(exit::for_signal(sig))),
        Err(e) => return Err(Classified::env(e)),
    };
    println!("ssh://root@127.0.0.1:{port}");
    crate::say!(
        "btfvm: serving (QEMU pid {}; console {}); Ctrl-C stops it",
        served.pid(),
        console.display()
    );
    serve_until_stopped(served, &console)
}
