//! Choosing KVM or TCG. `/dev/kvm` existing proves nothing: on some hosts
//! QEMU aborts at once with "failed to set MSR 0x10a" (`-cpu host`) or hangs
//! (`-cpu kvm64`). So KVM is used only after a real guest ran under it: a
//! one-sector boot that exits QEMU through isa-debug-exit, ~50 ms either way.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::args::{probe_args, probe_boot_sector, Accel, PROBE_EXIT_STATUS};
use crate::support::child::{die_with_parent, wait_timeout, KillOnDrop, Waited};
use crate::support::interrupt;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM when a probe guest runs under it, else TCG.
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(format!("{s:?}: expected auto, kvm or tcg")),
        }
    }
}

/// The accelerator and why it was chosen, for the run's header line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccelDecision {
    pub accel: Accel,
    pub reason: String,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn decide(qemu: &Path, choice: AccelChoice, scratch: &Path) -> AccelDecision {
    match choice {
        AccelChoice::Tcg => AccelDecision {
            accel: Accel::Tcg,
            reason: "requested".into(),
        },
        AccelChoice::Kvm => AccelDecision {
            accel: Accel::Kvm,
            reason: "requested (no probe)".into(),
        },
        AccelChoice::Auto => match probe_kvm(qemu, scratch) {
            Ok(d) => AccelDecision {
                accel: Accel::Kvm,
                reason: format!("probe guest ran under KVM in {} ms", d.as_millis()),
            },
            Err(why) => AccelDecision {
                accel: Accel::Tcg,
                reason: format!("KVM unusable: {why}"),
            },
        },
    }
}

fn probe_kvm(qemu: &Path, scratch: &Path) -> Result<Duration, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    // A file of its own: runs may probe at the same time.
    let file = tempfile::Builder::new()
        .prefix("kvm-probe-")
        .suffix(".img")
        .tempfile_in(scratch)
        .map_err(|e| format!("creating a probe image in {}: {e}", scratch.display()))?;
    let image = file.path().to_path_buf();
    std::fs::write(&image, probe_boot_sector())
        .map_err(|e| format!("writing {}: {e}", image.display()))?;
    let start = Instant::now();
    let mut cmd = Command::new(qemu);
    cmd.args(probe_args(&image, Accel::Kvm))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = KillOnDrop(
        cmd.spawn()
            .map_err(|e| format!("starting {}: {e}", qemu.display()))?,
    );
    // A hanging probe must not hold Ctrl-C up for 5 s.
    let status = wait_timeout(&mut child.0, PROBE_TIMEOUT, &interrupt::requested);
    drop(file);
    match status {
        Waited::Exited(s) if s.code() == Some(PROBE_EXIT_STATUS) => Ok(start.elapsed()),
        Waited::Exited(s) => {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let first = err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            Err(format!("probe QEMU exited with {s}: {first}"))
        }
        // Dropping `child` kills the probe QEMU.
        Waited::TimedOut => Err(format!(
            "probe guest hung for {} s under KVM",
            PROBE_TIMEOUT.as_secs()
        )),
        Waited::Stopped(_) => Err("interrupted before the probe guest ended".into()),
    }
}
