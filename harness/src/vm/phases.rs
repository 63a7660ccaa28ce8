//! Where a boot's time goes, phase by phase, from what every boot already
//! has: the host's time of the agent's hello, the guest uptimes the agent
//! reports, and the kernel's own printk stamps on the console. The hello
//! ties the two clocks together (host time of hello minus its uptime is the
//! host time at which the kernel's clock started), so no phase needs a
//! guest change or a kernel option. The phases add up to the boot's wall
//! time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Kernel log lines that end a phase, with the kernel's stamp (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelMarks {
    /// "Freeing initrd memory": the initramfs is unpacked (6.1 unpacks it
    /// asynchronously, so this is a milestone inside kernel init).
    pub initramfs_unpacked_ms: Option<u64>,
    /// "Run /init as init process".
    pub init_ms: Option<u64>,
    /// "reboot: Power down".
    pub power_down_ms: Option<u64>,
}

impl KernelMarks {
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> KernelMarks {
        let mut m = KernelMarks::default();
        for line in lines {
            let mark = |needle: &str| stamp_before(line, needle);
            m.initramfs_unpacked_ms = m
                .initramfs_unpacked_ms
                .or_else(|| mark("Freeing initrd memory"));
            m.init_ms = m.init_ms.or_else(|| mark("Run /init as init process"));
            m.power_down_ms = m.power_down_ms.or_else(|| mark("reboot: Power down"));
        }
        m
    }
}

/// The printk stamp (`[    2.114212] `) of the line that holds `needle`
/// right after it, in ms. Anything glued before the stamp (firmware
/// banners) is skipped.
fn stamp_before(line: &str, needle: &str) -> Option<u64> {
    let at = line.find(needle)?;
    let head = line[..at].trim_end();
    let inner = head.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let secs: f64 = inner[open + 1..].trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64)
}

/// A boot's wall time cut into phases (ms). A phase whose end was not
/// seen (no hello, a kernel that prints nothing) is None.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootPhases {
    /// QEMU's start, the firmware, the kernel's setup code and its
    /// decompression: until the kernel's clock starts.
    pub to_kernel_ms: Option<u64>,
    /// Kernel clock 0 to "Run /init as init process".
    pub kernel_init_ms: Option<u64>,
    /// When, on the kernel's clock, the initramfs was unpacked (inside
    /// kernel init).
    pub initramfs_unpacked_at_ms: Option<u64>,
    /// /init started to the agent's hello.
    pub agent_start_ms: Option<u64>,
    /// Hello to the agent's last message: the scenarios.
    pub scenarios_ms: Option<u64>,
    /// The agent done to "reboot: Power down".
    pub power_off_ms: Option<u64>,
    /// "reboot: Power down" to QEMU's exit, on the host's clock.
    pub qemu_exit_ms: Option<u64>,
}

/// What a boot knows, for `phases`.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    /// Host time of the hello since QEMU started.
    pub hello_at: Option<Duration>,
    /// The boot's wall time.
    pub elapsed: Duration,
    pub hello_uptime_ms: Option<u64>,
    pub done_uptime_ms: Option<u64>,
}

pub fn phases(c: Clocks, marks: KernelMarks) -> BootPhases {
    let ms = |d: Duration| d.as_millis().min(u128::from(u64::MAX)) as u64;
    let diff = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    // /proc/uptime has 10 ms steps: the kernel's clock starts within 10 ms
    // of this.
    let kernel_zero = c
        .hello_at
        .zip(c.hello_uptime_ms)
        .map(|(h, up)| ms(h).saturating_sub(up));
    BootPhases {
        to_kernel_ms: kernel_zero,
        kernel_init_ms: marks.init_ms,
        initramfs_unpacked_at_ms: marks.initramfs_unpacked_ms,
        agent_start_ms: diff(marks.init_ms, c.hello_uptime_ms),
        scenarios_ms: diff(c.hello_uptime_ms, c.done_uptime_ms),
        power_off_ms: diff(c.done_uptime_ms, marks.power_down_ms),
        qemu_exit_ms: kernel_zero
            .zip(marks.power_down_ms)
            .map(|(z, p)| ms(c.elapsed).saturating_sub(z + p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From a bookworm boot's console (6.1.176, TCG, qboot).
    const CONSOLE: &[&str] = &[
        "\x1b[2JProbing EDD (edd=off to disable)... ok",
        "[    0.000000] Linux version 6.1.0-50-cloud-amd64 (debian-kernel@lists.debian.org)",
        "[    1.471498] Freeing initrd memory: 2048K",
        "[    2.114212] Run /init as init process",
        "[    2.348086] reboot: Power down",
    ];

    #[test]
    fn marks_come_from_the_kernels_own_stamps() {
        let m = KernelMarks::from_lines(CONSOLE.iter().copied());
        assert_eq!(
            m,
            KernelMarks {
                initramfs_unpacked_ms: Some(1471),
                init_ms: Some(2114),
                power_down_ms: Some(2348),
            }
        );
        // Glued to a banner, or without a stamp at all.
        assert_eq!(
            stamp_before(
                "SeaBIOS (version 1.16)[    2.5] Run /init as init process",
                "Run /init"
            ),
            Some(2500)
        );
        assert_eq!(stamp_before("Run /init as init process", "Run /init"), None);
        assert_eq!(stamp_before("[ nan] Run /init", "Run /init"), None);
        assert_eq!(KernelMarks::from_lines([]), KernelMarks::default());
    }

    #[test]
    fn the_phases_add_up_to_the_wall_time() {
        let c = Clocks {
            hello_at: Some(Duration::from_millis(3_420)),
            elapsed: Duration::from_millis(3_700),
            hello_uptime_ms: Some(2_200),
            done_uptime_ms: Some(2_300),
        };
        let p = phases(c, KernelMarks::from_lines(CONSOLE.iter().copied()));
        let got = [
            p.to_kernel_ms,
            p.kernel_init_ms,
            p.agent_start_ms,
            p.scenarios_ms,
            p.power_off_ms,
            p.qemu_exit_ms,
        ];
        assert_eq!(got, [1_220, 2_114, 86, 100, 48, 132].map(Some));
        assert_eq!(got.iter().map(|x| x.unwrap()).sum::<u64>(), 3_700);
        assert_eq!(p.initramfs_unpacked_at_ms, Some(1_471));
        // Clocks 10 ms apart may disagree by a step: a phase is then 0,
        // never a wrapped-around number.
        let p = phases(
            Clocks {
                done_uptime_ms: Some(2_350),
                ..c
            },
            KernelMarks::from_lines(CONSOLE.iter().copied()),
        );
        assert_eq!(p.power_off_ms, Some(0));
    }

    #[test]
    fn a_boot_without_hello_has_only_the_kernels_phases() {
        let c = Clocks {
            hello_at: None,
            elapsed: Duration::from_secs(60),
            hello_uptime_ms: None,
            done_uptime_ms: None,
        };
        let p = phases(c, KernelMarks::from_lines(CONSOLE[..4].iter().copied()));
        assert_eq!(p.kernel_init_ms, Some(2_114));
        assert_eq!(
            (
                p.to_kernel_ms,
                p.agent_start_ms,
                p.scenarios_ms,
                p.qemu_exit_ms
            ),
            (None, None, None, None)
        );
    }
}
