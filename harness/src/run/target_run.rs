//! A kernel's suite on an SSH target (`--target`): the target's own
//! release and config stand in for the local kernel's, so requirements
//! are the running kernel's; the boot is `target::ssh_run` instead of
//! QEMU; the result is kept and judged like a QEMU boot.

use std::path::Path;

use super::booted::{finish, OneBoot, Ran};
use super::events::RunEvent;
use super::kept;
use super::outcome::FailureKind;
use super::record::BootRecord;
use crate::kernel::{ConfigFile, KernelImage};
use crate::support::{interrupt, tmpdirs};
use crate::target::ssh_run::{self, SshBoot, TargetError};
use crate::target::vng::{self, VngBoot, VngError};
use crate::target::SshParams;
use crate::vm::{BootOutcome, Way};

/// Reads the target's kernel; the local kernel must be the same release
/// (its modules are what is pushed), and the target's config replaces
/// the local one.
pub fn adopt_target(
    image: &mut KernelImage,
    t: &SshParams,
) -> Result<ssh_run::TargetFacts, (FailureKind, String)> {
    let facts = ssh_run::inspect(t).map_err(|e| (FailureKind::Environment, e.to_string()))?;
    if facts.release != image.release {
        return Err((
            FailureKind::Input,
            format!(
                "{} runs {}, but this kernel is {} ({}): give --kernel the kernel the target runs (its modules are what btfvm pushes)",
                t.url, facts.release, image.release, image.origin
            ),
        ));
    }
    let from = Path::new(facts.config_from);
    image.config = ConfigFile::from_text(from, facts.config_text.clone())
        .map_err(|e| (FailureKind::Environment, format!("{}: {e}", t.url)))?;
    image.origin = format!("{} on {}", image.origin, t.url);
    Ok(facts)
}

/// Runs the plan on the target and keeps the run like a boot.
pub fn run_on_target(
    b: &OneBoot<'_>,
    t: &SshParams,
    root: crate::target::remote::Root,
) -> Result<(BootRecord, BootOutcome), TargetError> {
    let (k, prepared, planned, s, events) = (b.k, b.prepared, b.planned, b.s, b.events);
    let accel = s.accel.current().accel;
    let work = tmpdirs::create().map_err(|source| TargetError::Io {
        what: "creating a temporary directory in",
        path: std::env::temp_dir(),
        source,
    })?;
    let timeouts = s.timeouts.resolve(accel, k.spec.boot_timeout);
    let name = k.spec.name.clone();
    events(&RunEvent::Booting {
        kernel: name.clone(),
        way: Way::Ssh,
        target: Some(t.url.to_string()),
        scenarios: planned.len(),
        initramfs_bytes: 0,
        image: None,
    });
    let boot = SshBoot {
        params: t,
        root,
        archive: &prepared.archive,
        plan: &prepared.plan,
        timeouts,
        console_log: work.path().join(kept::CONSOLE_FILE),
        transcript: work.path().join(kept::TRANSCRIPT_FILE),
    };
    let ran = ssh_run::run(&boot, &interrupt::requested, &mut |event| {
        events(&RunEvent::Vm {
            kernel: name.clone(),
            event: event.clone(),
        })
    })?;
    if let Err(why) = &ran.cleanup {
        events(&RunEvent::Warning {
            kernel: Some(name.clone()),
            message: why.clone(),
        });
    }
    let done = Ran {
        way: Way::Ssh,
        target: Some(t.url.to_string()),
        accel: None,
        command: Vec::new(),
        initramfs_bytes: 0,
        timeouts,
        workdir: work.path(),
    };
    Ok(finish(b, done, ran.outcome))
}

/// Boots the plan under virtme-ng and keeps the boot like btfvm's own.
pub fn run_under_vng(b: &OneBoot<'_>, vng: &Path) -> Result<(BootRecord, BootOutcome), VngError> {
    let (k, image, prepared, s, events) = (b.k, b.image, b.prepared, b.s, b.events);
    let accel = s.accel.current().accel;
    let io = |what| {
        move |source| VngError::Io {
            what,
            path: std::env::temp_dir(),
            source,
        }
    };
    let work = tmpdirs::create().map_err(io("creating a temporary directory in"))?;
    let timeouts = s.timeouts.resolve(accel, k.spec.boot_timeout);
    let name = k.spec.name.clone();
    events(&RunEvent::Booting {
        kernel: name.clone(),
        way: Way::Vng,
        target: Some(format!("vng ({})", vng.display())),
        scenarios: b.planned.len(),
        initramfs_bytes: 0,
        image: None,
    });
    // Where there is none, vng looks for its own.
    let busybox = crate::boot::sshd::static_busybox().ok();
    let vboot = VngBoot {
        vng,
        kernel: &image.vmlinuz,
        archive: &prepared.archive,
        plan: &prepared.plan,
        timeouts,
        memory_mib: s.memory_mib,
        kvm: accel == crate::vm::Accel::Kvm,
        busybox: busybox.as_deref(),
        cmdline_extra: &s.cmdline_extra,
        workdir: work.path(),
    };
    let (outcome, command) = vng::run(&vboot, &interrupt::requested, &mut |event| {
        events(&RunEvent::Vm {
            kernel: name.clone(),
            event: event.clone(),
        })
    })?;
    let ran = Ran {
        way: Way::Vng,
        target: None,
        accel: Some(accel),
        command,
        initramfs_bytes: 0,
        timeouts,
        workdir: work.path(),
    };
    Ok(finish(b, ran, outcome))
}
