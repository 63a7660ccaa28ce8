//! Choosing KVM or TCG. `/dev/kvm` existing proves nothing: on some hosts
//! QEMU aborts at once with "failed to set MSR 0x10a" (`-cpu host`) or hangs
//! (`-cpu kvm64`). So KVM is used only after a real guest ran under it: a
//! one-sector boot that exits QEMU through isa-debug-exit, ~50 ms either way.
//!
//! Even that proves too little. On the nested-KVM machines this project
//! runs on (2026-12-06) the probe passes, real mode and a long-mode switch
//! included, yet a Debian kernel stops after "Probing EDD" in 6 boots of 7.
//! So a boot under a KVM that auto chose and that never reached its agent
//! is booted again under TCG (`run::settings::RunAccel`), and when TCG then
//! reaches the agent the host is remembered here (`KvmRecord`), so later
//! runs go to TCG at once instead of losing a hello timeout each.

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

/// `record`: where a KVM that failed real boots on this host is remembered
/// (see `KvmRecord`); None to always probe.
pub fn decide(
    qemu: &Path,
    choice: AccelChoice,
    scratch: &Path,
    record: Option<&Path>,
) -> AccelDecision {
    if choice == AccelChoice::Auto {
        if let Some(why) = record.and_then(|r| KvmRecord::read(r, qemu)) {
            return AccelDecision {
                accel: Accel::Tcg,
                reason: why,
            };
        }
    }
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

/// A host on which a kernel did not boot under KVM but did under TCG. It
/// holds for the same QEMU binary on the same host kernel: an upgrade of
/// either probes again. Deleting the file probes again too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KvmRecord {
    pub qemu: String,
    pub qemu_size: u64,
    pub qemu_mtime: i64,
    pub host_release: String,
    /// What happened, in words, with the date.
    pub what: String,
}

impl KvmRecord {
    /// The record for this QEMU on this host now.
    pub fn current(qemu: &Path, what: String) -> std::io::Result<KvmRecord> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(qemu)?;
        Ok(KvmRecord {
            qemu: qemu.display().to_string(),
            qemu_size: m.len(),
            qemu_mtime: m.mtime(),
            host_release: host_release(),
            what,
        })
    }

    /// Why auto must choose TCG, when the record at `path` is this host's.
    /// A missing, unreadable or foreign record says nothing.
    pub fn read(path: &Path, qemu: &Path) -> Option<String> {
        let text = crate::support::fsread::read_text(path, 64 * 1024, "KVM record").ok()?;
        let rec: KvmRecord = serde_json::from_str(&text).ok()?;
        let now = KvmRecord::current(qemu, String::new()).ok()?;
        rec.same_host(&now).then(|| {
            format!(
                "KVM skipped: {} (remembered in {}; delete it to try KVM again)",
                rec.what,
                path.display()
            )
        })
    }

    fn same_host(&self, other: &KvmRecord) -> bool {
        (
            &self.qemu,
            self.qemu_size,
            self.qemu_mtime,
            &self.host_release,
        ) == (
            &other.qemu,
            other.qemu_size,
            other.qemu_mtime,
            &other.host_release,
        )
    }

    /// Written through a temporary file and a rename, so a reader never
    /// sees half a record.
    pub fn write(&self, path: &Path) -> Result<(), crate::support::cache::CacheError> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        crate::support::cache::write_atomic(path, text.as_bytes())
    }
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_for_its_qemu_and_host_only() {
        let dir = tempfile::tempdir().unwrap();
        let qemu = dir.path().join("qemu");
        std::fs::write(&qemu, b"qemu v1").unwrap();
        let rec_path = dir.path().join("kvm-failed.json");
        assert_eq!(KvmRecord::read(&rec_path, &qemu), None, "no record yet");
        let rec = KvmRecord::current(&qemu, "bookworm did not boot under KVM".into()).unwrap();
        rec.write(&rec_path).unwrap();
        let why = KvmRecord::read(&rec_path, &qemu).unwrap();
        assert!(why.contains("bookworm did not boot under KVM"), "{why}");
        assert!(why.contains("delete it"), "{why}");
        // Auto goes to TCG without probing; an explicit choice is obeyed.
        let d = decide(&qemu, AccelChoice::Auto, dir.path(), Some(&rec_path));
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.starts_with("KVM skipped"), "{}", d.reason);
        let d = decide(&qemu, AccelChoice::Kvm, dir.path(), Some(&rec_path));
        assert_eq!(d.accel, Accel::Kvm);
        // Another QEMU binary (an upgrade) probes again.
        std::fs::write(&qemu, b"qemu v2, longer").unwrap();
        assert_eq!(KvmRecord::read(&rec_path, &qemu), None);
        // So does another host kernel.
        let other = KvmRecord {
            host_release: "0.0.0-other".into(),
            ..KvmRecord::current(&qemu, "x".into()).unwrap()
        };
        other.write(&rec_path).unwrap();
        assert_eq!(KvmRecord::read(&rec_path, &qemu), None);
        // Garbage is no record.
        std::fs::write(&rec_path, b"{not json").unwrap();
        assert_eq!(KvmRecord::read(&rec_path, &qemu), None);
    }
}
