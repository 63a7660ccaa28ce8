//! The end every way in shares once its boot is over: the spec's allowed
//! splats marked, the boot kept for `btfvm replay`, its end put in words,
//! the `Booted` event, and the report's record of it.

use std::path::Path;

use super::events::{EventSink, RunEvent};
use super::kept::{self, BootMeta};
use super::record::BootRecord;
use super::select::SelectedKernel;
use super::settings::RunSettings;
use super::verdict::{apply_allowlist, describe_end};
use crate::boot::plan::Prepared;
use crate::kernel::KernelImage;
use crate::vm::{Accel, BootOutcome, Timeouts, Way};

/// One boot to make: the kernel, its plan, the run's settings and where
/// its events go. Every way in takes this.
pub struct OneBoot<'a> {
    pub k: &'a SelectedKernel,
    pub image: &'a KernelImage,
    pub prepared: &'a Prepared,
    pub planned: &'a [String],
    pub s: &'a RunSettings,
    pub events: &'a EventSink,
}

/// What the way in knows about its boot besides the outcome.
pub struct Ran<'a> {
    pub way: Way,
    /// Where it ran, for a way in that is not a local boot.
    pub target: Option<String>,
    /// The accelerator of the boot; None where btfvm booted nothing.
    pub accel: Option<Accel>,
    /// The command line that booted, exactly (QEMU's, or vng's).
    pub command: Vec<String>,
    pub initramfs_bytes: u64,
    pub timeouts: Timeouts,
    /// The boot's folder: its console log and transcript are kept from it.
    pub workdir: &'a Path,
}

pub fn finish(
    b: &OneBoot<'_>,
    ran: Ran<'_>,
    mut outcome: BootOutcome,
) -> (BootRecord, BootOutcome) {
    let (k, s, events) = (b.k, b.s, b.events);
    let name = k.spec.name.clone();
    apply_allowlist(&mut outcome.splats, &k.spec.allow_splats);
    // A boot.json needs an accelerator; a target's runs say KVM's limits.
    let mut meta = BootMeta::new(
        &name,
        ran.accel.unwrap_or(Accel::Kvm),
        b.planned.to_vec(),
        ran.timeouts,
    );
    meta.way = ran.way;
    meta.allow_splats.clone_from(&k.spec.allow_splats);
    meta.qemu_stderr.clone_from(&outcome.qemu_stderr);
    meta.qemu_args.clone_from(&ran.command);
    let kept = match kept::keep(&s.logs_dir, ran.workdir, &meta) {
        Ok(dir) => Some(dir),
        Err(e) => {
            events(&RunEvent::Warning {
                kernel: Some(name.clone()),
                message: format!(
                    "cannot keep the boot's console log and transcript in {}: {e}",
                    s.logs_dir.display()
                ),
            });
            None
        }
    };
    // Messages point at the kept copy: the temporary directory goes next.
    if let Some(dir) = &kept {
        outcome.console_log = dir.join(kept::CONSOLE_FILE);
    }
    let end_text = describe_end(&outcome);
    events(&RunEvent::Booted {
        kernel: name,
        way: ran.way,
        wall: outcome.elapsed,
        end: outcome.end.clone(),
        summary: end_text.clone(),
    });
    let record = BootRecord {
        way: ran.way,
        target: ran.target,
        accel: ran.accel,
        wall_ms: outcome.elapsed.as_millis() as u64,
        agent_hello_uptime_ms: outcome.uptime_ms(false),
        agent_done_uptime_ms: outcome.uptime_ms(true),
        phases: outcome.phases(),
        end: outcome.end.clone(),
        end_text,
        initramfs_bytes: ran.initramfs_bytes,
        kept,
        console_log: outcome.console_log.clone(),
        splats: outcome.splats.clone(),
        qemu_args: ran.command,
    };
    (record, outcome)
}
