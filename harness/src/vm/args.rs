//! The QEMU command line, one small pure function per part, so each part is
//! unit-tested and the whole line is easy to read in a log. Arguments are
//! `OsString`: paths go to QEMU byte for byte, and the one list built here
//! is both what runs and what the report shows.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

pub use super::cmdline::{cmdline, BASE_CMDLINE, LEAN_CMDLINE};

/// How the guest's CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

fn os(parts: &[&str]) -> Vec<OsString> {
    parts.iter().map(OsString::from).collect()
}

/// QEMU's option parser splits on ',' and takes ",," for a literal comma, so
/// a path with a comma would otherwise silently become two options.
pub fn escape_opt(value: &OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// `prefix` followed by a path, escaped for a QEMU option value.
fn opt_with_path(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(escape_opt(path.as_os_str()));
    s
}

/// No default devices, no config files, no display, and exit instead of
/// rebooting: a panicking guest (panic=-1) then ends QEMU at once.
pub fn base_args() -> Vec<OsString> {
    os(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        "pc",
    ])
}

/// No ACPI PCI hotplug: QEMU's DSDT then describes no hotplug slots, and
/// the kernel's `acpi_init` took 80-84 ms instead of 116-120 (bookworm's
/// 6.1 under TCG, initcall_debug, 3 interleaved rounds, 2026-12-07).
/// btfvm plugs every device before the boot and none after.
pub fn lean_machine_args() -> Vec<OsString> {
    os(&[
        "-global",
        "PIIX4_PM.acpi-root-pci-hotplug=off",
        "-global",
        "PIIX4_PM.acpi-pci-hotplug-with-bridge-support=off",
    ])
}

/// KVM with the host CPU, or TCG with every feature it emulates.
pub fn accel_args(accel: Accel) -> Vec<OsString> {
    match accel {
        Accel::Kvm => os(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => os(&["-accel", "tcg", "-cpu", "max"]),
    }
}

pub fn memory_args(mib: u32, cpus: u32) -> Vec<OsString> {
    vec![
        "-m".into(),
        format!("{mib}M").into(),
        "-smp".into(),
        cpus.to_string().into(),
    ]
}

/// `-kernel` and `-initrd` take plain file names (no option syntax), so
/// they are passed as they are.
pub fn kernel_args(kernel: &Path, initrd: &Path, cmdline: &str) -> Vec<OsString> {
    vec![
        "-kernel".into(),
        kernel.as_os_str().to_owned(),
        "-initrd".into(),
        initrd.as_os_str().to_owned(),
        "-append".into(),
        cmdline.into(),
    ]
}

/// ttyS0: the kernel console, into a file the harness follows.
pub fn console_args(log: &Path) -> Vec<OsString> {
    vec![
        "-chardev".into(),
        opt_with_path("file,id=console,path=", log),
        "-serial".into(),
        "chardev:console".into(),
    ]
}

/// ttyS1: the agent's result channel, a Unix socket the harness listens on.
/// A second 8250 port and not virtio-serial: on 5.10 and 6.1 Debian builds
/// every virtio driver as a module, while the 8250 UART is built in.
pub fn channel_args(socket: &Path) -> Vec<OsString> {
    vec![
        "-chardev".into(),
        opt_with_path("socket,id=channel,path=", socket),
        "-serial".into(),
        "chardev:channel".into(),
    ]
}

/// Everything that decides one boot's QEMU command line.
#[derive(Debug, Clone)]
pub struct QemuParams {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline_extra: Vec<String>,
    pub memory_mib: u32,
    pub console_log: PathBuf,
    pub channel: PathBuf,
    /// qboot instead of SeaBIOS, where QEMU ships it.
    pub firmware: Option<PathBuf>,
    /// virtiofs shares: each virtiofsd's socket and the tag.
    pub shares: Vec<(PathBuf, String)>,
}

/// A guest port reachable from the host's loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNet {
    pub host_port: u16,
    pub guest_port: u16,
}

/// User-mode networking needs no root and no bridge; the forward listens
/// on 127.0.0.1 only. virtio-net because Debian's cloud kernels have no
/// e1000; `romfile=` because the NIC's option ROM (iPXE) only serves
/// network boot and costs SeaBIOS time.
pub fn user_net_args(n: UserNet) -> Vec<OsString> {
    vec![
        "-netdev".into(),
        format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:{}",
            n.host_port, n.guest_port
        )
        .into(),
        "-device".into(),
        "virtio-net-pci,netdev=net0,romfile=".into(),
    ]
}

/// A program and its arguments, built once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl QemuCommand {
    /// For people and the JSON report; QEMU itself gets the exact bytes.
    pub fn display_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// qboot loads the kernel from fw_cfg without SeaBIOS's device probing
/// and option ROMs: 0.3-0.4 s of a 4.4 s bookworm boot under TCG here
/// (6 interleaved runs, medians 4.05 s against 4.37 s).
pub fn firmware_args(firmware: Option<&Path>) -> Vec<OsString> {
    match firmware {
        Some(f) => vec!["-bios".into(), f.as_os_str().to_os_string()],
        None => Vec::new(),
    }
}

/// A guest with its kernel and console: what every line here starts with.
fn guest_args(p: &QemuParams) -> Vec<OsString> {
    let mut v = base_args();
    v.extend(lean_machine_args());
    v.extend(firmware_args(p.firmware.as_deref()));
    v.extend(accel_args(p.accel));
    v.extend(memory_args(p.memory_mib, 1));
    v.extend(kernel_args(
        &p.kernel,
        &p.initrd,
        &cmdline(&p.cmdline_extra),
    ));
    v.extend(console_args(&p.console_log));
    v
}

/// The whole line of a test boot, assembled from the parts above.
pub fn boot_command(p: &QemuParams) -> QemuCommand {
    let mut v = guest_args(p);
    v.extend(channel_args(&p.channel));
    v.extend(share_args(&p.shares, p.memory_mib));
    QemuCommand {
        program: p.qemu.clone(),
        args: v,
    }
}

/// vhost-user-fs needs the guest's RAM in shared memory that virtiofsd
/// can map: a memfd backend of the same size as `-m`, as the one NUMA
/// node. Then a device per share, on its daemon's socket.
pub fn share_args(shares: &[(PathBuf, String)], memory_mib: u32) -> Vec<OsString> {
    if shares.is_empty() {
        return Vec::new();
    }
    let mut v: Vec<OsString> = vec![
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={memory_mib}M,share=on").into(),
        "-numa".into(),
        "node,memdev=mem".into(),
    ];
    for (i, (socket, tag)) in shares.iter().enumerate() {
        v.push("-chardev".into());
        v.push(opt_with_path(&format!("socket,id=vfs{i},path="), socket));
        v.push("-device".into());
        v.push(format!("vhost-user-fs-pci,chardev=vfs{i},tag={tag}").into());
    }
    v
}

/// The line of a guest that serves (`vm::serve`): a test boot's, with a
/// NIC whose port `net` forwards, and no result channel (nobody listens
/// on one; the served guest reports nothing).
pub fn serve_command(p: &QemuParams, net: UserNet) -> QemuCommand {
    let mut v = guest_args(p);
    v.extend(user_net_args(net));
    QemuCommand {
        program: p.qemu.clone(),
        args: v,
    }
}

/// For the KVM probe: a boot sector that writes to the isa-debug-exit port,
/// which QEMU turns into exit status (0x31 << 1) | 1 = 99.
pub fn probe_args(image: &Path, accel: Accel) -> Vec<OsString> {
    let mut v = base_args();
    v.extend(accel_args(accel));
    v.extend([
        "-m".into(),
        "16M".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
        "-drive".into(),
        {
            let mut d = opt_with_path("file=", image);
            d.push(",format=raw,if=ide");
            d
        },
    ]);
    v
}

pub const PROBE_EXIT_STATUS: i32 = 99;

/// mov al, 0x31; out 0xf4, al; hlt; jmp back to hlt; then the boot signature.
pub fn probe_boot_sector() -> [u8; 512] {
    let mut s = [0u8; 512];
    s[..7].copy_from_slice(&[0xB0, 0x31, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn strs(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn channel_is_second_serial() {
        let c = channel_args(&PathBuf::from("/run/x.sock"));
        assert_eq!(
            strs(&c),
            [
                "-chardev",
                "socket,id=channel,path=/run/x.sock",
                "-serial",
                "chardev:channel"
            ]
        );
    }

    #[test]
    fn commas_in_paths_are_doubled() {
        let a = console_args(&PathBuf::from("/tmp/a,b/console.log"));
        assert_eq!(a[1], "file,id=console,path=/tmp/a,,b/console.log");
        assert_eq!(strs(&a[2..]), ["-serial", "chardev:console"]);
    }

    #[test]
    fn paths_that_are_not_utf8_reach_qemu_unchanged() {
        let p = PathBuf::from(OsStr::from_bytes(b"/tmp/\xff,x/vmlinuz"));
        let k = kernel_args(&p, Path::new("/i"), "c");
        assert_eq!(k[1].as_bytes(), b"/tmp/\xff,x/vmlinuz");
        let c = console_args(&p);
        assert_eq!(
            c[1].as_bytes(),
            b"file,id=console,path=/tmp/\xff,,x/vmlinuz"
        );
    }

    #[test]
    fn accel_picks_cpu_model() {
        assert_eq!(
            strs(&accel_args(Accel::Tcg)),
            ["-accel", "tcg", "-cpu", "max"]
        );
        assert_eq!(
            strs(&accel_args(Accel::Kvm)),
            ["-accel", "kvm", "-cpu", "host"]
        );
    }

    #[test]
    fn base_exits_instead_of_rebooting() {
        let b = base_args();
        assert!(b.iter().any(|a| a == "-no-reboot"));
        assert!(b.iter().any(|a| a == "-nodefaults"));
    }

    #[test]
    fn memory_and_kernel() {
        assert_eq!(strs(&memory_args(512, 1)), ["-m", "512M", "-smp", "1"]);
        let k = kernel_args(&PathBuf::from("/k"), &PathBuf::from("/i"), "console=ttyS0");
        assert_eq!(
            strs(&k),
            ["-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0"]
        );
    }

    #[test]
    fn the_boot_command_is_the_parts_in_order() {
        let p = QemuParams {
            firmware: None,
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            kernel: "/k".into(),
            initrd: "/i".into(),
            cmdline_extra: vec![],
            memory_mib: 256,
            console_log: "/w/console.log".into(),
            channel: "/w/channel.sock".into(),
            shares: vec![],
        };
        let c = boot_command(&p);
        assert_eq!(c.program, Path::new("/usr/bin/qemu-system-x86_64"));
        let mut want = base_args();
        want.extend(lean_machine_args());
        want.extend(accel_args(Accel::Tcg));
        want.extend(memory_args(256, 1));
        want.extend(kernel_args(Path::new("/k"), Path::new("/i"), &cmdline(&[])));
        want.extend(console_args(Path::new("/w/console.log")));
        want.extend(channel_args(Path::new("/w/channel.sock")));
        assert_eq!(c.args, want);
        assert_eq!(c.display_args().len(), c.args.len());
        let with = boot_command(&QemuParams {
            firmware: Some("/usr/share/qemu/qboot.rom".into()),
            ..p.clone()
        });
        assert_eq!(
            strs(&with.args[..13]),
            [
                &strs(&base_args())[..],
                &strs(&lean_machine_args())[..],
                &["-bios", "/usr/share/qemu/qboot.rom"]
            ]
            .concat()
        );
        assert!(firmware_args(None).is_empty());
        let net = UserNet {
            host_port: 40022,
            guest_port: 22,
        };
        let served = serve_command(&p, net);
        assert_eq!(served.args[served.args.len() - 4..], user_net_args(net)[..]);
        assert_eq!(served.args[..served.args.len() - 4], want[..want.len() - 4]);
    }

    #[test]
    fn shares_bring_shared_memory_of_the_guests_size_and_a_device_each() {
        assert!(share_args(&[], 512).is_empty());
        let a = share_args(
            &[
                ("/w/a,b.sock".into(), "src".into()),
                ("/w/c.sock".into(), "oot".into()),
            ],
            384,
        );
        assert_eq!(
            strs(&a),
            [
                "-object",
                "memory-backend-memfd,id=mem,size=384M,share=on",
                "-numa",
                "node,memdev=mem",
                "-chardev",
                "socket,id=vfs0,path=/w/a,,b.sock",
                "-device",
                "vhost-user-fs-pci,chardev=vfs0,tag=src",
                "-chardev",
                "socket,id=vfs1,path=/w/c.sock",
                "-device",
                "vhost-user-fs-pci,chardev=vfs1,tag=oot"
            ]
        );
    }

    #[test]
    fn the_forward_listens_on_loopback_only_and_skips_the_option_rom() {
        let args = user_net_args(UserNet {
            host_port: 40022,
            guest_port: 22,
        });
        let a = strs(&args);
        assert_eq!(
            a,
            [
                "-netdev",
                "user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22",
                "-device",
                "virtio-net-pci,netdev=net0,romfile="
            ]
        );
    }

    #[test]
    fn probe_sector_is_bootable() {
        let s = probe_boot_sector();
        assert_eq!(&s[510..], &[0x55, 0xAA]);
        let a = probe_args(&PathBuf::from("/p,q.img"), Accel::Kvm);
        assert!(a
            .iter()
            .any(|x| x == "isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(a.iter().any(|x| x == "file=/p,,q.img,format=raw,if=ide"));
    }
}
