//! One boot in btfvm's own QEMU: the initramfs written, the shares'
//! virtiofsd started, QEMU booted and watched (`vm::boot_with`).

use std::path::PathBuf;

use super::booted::{finish, OneBoot, Ran};
use super::events::RunEvent;
use super::record::BootRecord;
use crate::boot::pvh::{self, PvhError};
use crate::support::{interrupt, tmpdirs};
use crate::target::ssh_run::TargetError;
use crate::target::vng::VngError;
use crate::vm::{self, Accel, BootOutcome, BootSpec, QemuParams, VmError};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("creating a temporary directory: {0}")]
    Tmp(std::io::Error),
    #[error("writing the initramfs {}: {source}", path.display())]
    Initramfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Vng(#[from] VngError),
    #[error(transparent)]
    Pvh(#[from] PvhError),
}

pub fn boot_under(b: &OneBoot<'_>, accel: Accel) -> Result<(BootRecord, BootOutcome), BootError> {
    let (k, image, prepared, planned, s, events) =
        (b.k, b.image, b.prepared, b.planned, b.s, b.events);
    let work = tmpdirs::create().map_err(BootError::Tmp)?;
    let initrd = work.path().join("initramfs.cpio");
    let bytes = prepared.archive.to_bytes();
    std::fs::write(&initrd, &bytes).map_err(|source| BootError::Initramfs {
        path: initrd.clone(),
        source,
    })?;
    let boot_image = pvh::boot_image(
        &image.vmlinuz,
        &s.cache.subdir("pvh").map_err(PvhError::from)?,
    )?;
    let timeouts = s.timeouts.resolve(accel, k.spec.boot_timeout);
    // Started before QEMU, which connects to their sockets at once; they
    // go with this guard when the boot is over, however it ends.
    let mut shares = vm::virtiofsd::Daemons::start(
        s.virtiofsd.as_deref(),
        &prepared.plan.shares,
        &s.shares,
        work.path(),
    )?;
    let spec = BootSpec::in_dir(
        work.path(),
        |console_log, channel| QemuParams {
            qemu: s.qemu.clone(),
            accel,
            kernel: boot_image.path().to_path_buf(),
            initrd: initrd.clone(),
            cmdline_extra: s.cmdline_extra.clone(),
            memory_mib: s.memory_mib,
            console_log: console_log.to_path_buf(),
            channel: channel.to_path_buf(),
            firmware: s.firmware.clone(),
            shares: shares.sockets(),
        },
        timeouts,
    );
    let name = k.spec.name.clone();
    events(&RunEvent::Booting {
        kernel: name.clone(),
        way: vm::Way::Qemu,
        target: None,
        scenarios: planned.len(),
        initramfs_bytes: bytes.len() as u64,
        image: Some(boot_image.clone()),
    });
    let outcome = vm::boot_with(
        &spec,
        &interrupt::requested,
        &mut || shares.gone(),
        &mut |event| {
            events(&RunEvent::Vm {
                kernel: name.clone(),
                event: event.clone(),
            })
        },
    )?;
    let ran = Ran {
        way: vm::Way::Qemu,
        target: None,
        accel: Some(accel),
        command: spec.command.display_args(),
        initramfs_bytes: bytes.len() as u64,
        timeouts,
        workdir: work.path(),
    };
    Ok(finish(b, ran, outcome))
}
