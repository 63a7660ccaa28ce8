//! The QEMU command line, one small pure function per part, so each part is
//! unit-tested and the whole line is easy to read in a log.

use std::path::Path;

/// How the guest's CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// QEMU's option parser splits on ',' and takes ",," for a literal comma, so
/// a path with a comma would otherwise silently become two options.
pub fn escape_opt(value: &str) -> String {
    value.replace(',', ",,")
}

fn path_str(p: &Path) -> String {
    escape_opt(&p.to_string_lossy())
}

/// No default devices, no config files, no display, and exit instead of
/// rebooting: a panicking guest (panic=-1) then ends QEMU at once.
pub fn base_args() -> Vec<String> {
    [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        "pc",
    ]
    .map(String::from)
    .to_vec()
}

/// KVM with the host CPU, or TCG with every feature it emulates.
pub fn accel_args(accel: Accel) -> Vec<String> {
    match accel {
        Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
        Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
    }
    .map(String::from)
    .to_vec()
}

pub fn memory_args(mib: u32, cpus: u32) -> Vec<String> {
    vec![
        "-m".into(),
        format!("{mib}M"),
        "-smp".into(),
        cpus.to_string(),
    ]
}

pub fn kernel_args(kernel: &Path, initrd: &Path, cmdline: &str) -> Vec<String> {
    vec![
        "-kernel".into(),
        kernel.to_string_lossy().into_owned(),
        "-initrd".into(),
        initrd.to_string_lossy().into_owned(),
        "-append".into(),
        cmdline.into(),
    ]
}

/// ttyS0: the kernel console, into a file the harness tails on failure.
pub fn console_args(log: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("file,id=console,path={}", path_str(log)),
        "-serial".into(),
        "chardev:console".into(),
    ]
}

/// ttyS1: the agent's result channel, a Unix socket the harness listens on.
/// A second 8250 port and not virtio-serial: on 5.10 and 6.1 Debian builds
/// every virtio driver as a module, while the 8250 UART is built in.
pub fn channel_args(socket: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("socket,id=channel,path={}", path_str(socket)),
        "-serial".into(),
        "chardev:channel".into(),
    ]
}

/// The kernel command line. `panic=-1` reboots at once on panic, which
/// `-no-reboot` turns into a QEMU exit. No `quiet`: the full boot log costs
/// nothing measurable under TCG (1.37 s either way for 6.1, 339 lines vs
/// 16) and it is what a developer reads when a boot goes wrong.
pub fn cmdline(extra: &[String]) -> String {
    let mut parts = vec!["console=ttyS0", "panic=-1"];
    parts.extend(extra.iter().map(String::as_str));
    parts.join(" ")
}

/// For the KVM probe: a boot sector that writes to the isa-debug-exit port,
/// which QEMU turns into exit status (0x31 << 1) | 1 = 99.
pub fn probe_args(image: &Path, accel: Accel) -> Vec<String> {
    let mut v = base_args();
    v.extend(accel_args(accel));
    v.extend([
        "-m".into(),
        "16M".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
        "-drive".into(),
        format!("file={},format=raw,if=ide", path_str(image)),
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
    use std::path::PathBuf;

    #[test]
    fn commas_in_paths_are_doubled() {
        let a = console_args(&PathBuf::from("/tmp/a,b/console.log"));
        assert_eq!(a[1], "file,id=console,path=/tmp/a,,b/console.log");
        assert_eq!(a[2..], ["-serial", "chardev:console"]);
    }

    #[test]
    fn accel_picks_cpu_model() {
        assert_eq!(accel_args(Accel::Tcg), ["-accel", "tcg", "-cpu", "max"]);
        assert_eq!(accel_args(Accel::Kvm), ["-accel", "kvm", "-cpu", "host"]);
    }

    #[test]
    fn base_exits_instead_of_rebooting() {
        let b = base_args();
        assert!(b.contains(&"-no-reboot".to_string()));
        assert!(b.contains(&"-nodefaults".to_string()));
    }

    #[test]
    fn cmdline_has_console_and_panic_policy() {
        let c = cmdline(&["loglevel=7".into()]);
        assert!(c.starts_with("console=ttyS0 panic=-1"));
        assert!(c.ends_with("loglevel=7"));
    }

    #[test]
    fn channel_is_second_serial() {
        let c = channel_args(&PathBuf::from("/run/x.sock"));
        assert_eq!(
            c,
            [
                "-chardev",
                "socket,id=channel,path=/run/x.sock",
                "-serial",
                "chardev:channel"
            ]
        );
    }

    #[test]
    fn memory_and_kernel() {
        assert_eq!(memory_args(512, 1), ["-m", "512M", "-smp", "1"]);
        let k = kernel_args(&PathBuf::from("/k"), &PathBuf::from("/i"), "console=ttyS0");
        assert_eq!(
            k,
            ["-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0"]
        );
    }

    #[test]
    fn probe_sector_is_bootable() {
        let s = probe_boot_sector();
        assert_eq!(&s[510..], &[0x55, 0xAA]);
        let a = probe_args(&PathBuf::from("/p.img"), Accel::Kvm);
        assert!(a.contains(&"isa-debug-exit,iobase=0xf4,iosize=0x04".to_string()));
    }
}
