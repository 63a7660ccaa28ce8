//! What a run keeps of each kernel and each trial, for the report.

use std::path::PathBuf;

use btfvm_proto::Observations;
use serde::Serialize;

use super::outcome::{FailureKind, TrialOutcome};
use crate::inputs::kernelspec::KernelSpec;
use crate::vm::{Accel, BootEnd, Splat};

#[derive(Debug, Clone, Serialize)]
pub struct KernelRecord {
    pub name: String,
    pub source: String,
    /// Package and version, or the path, of what actually booted.
    pub origin: Option<String>,
    pub release: Option<String>,
    /// Upstream version from the kernel's config.
    pub version: Option<String>,
    /// Why the kernel never booted.
    pub error: Option<KernelError>,
    pub boot: Option<BootRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelError {
    pub kind: FailureKind,
    pub message: String,
}

impl KernelRecord {
    pub fn new(spec: &KernelSpec) -> KernelRecord {
        KernelRecord {
            name: spec.name.clone(),
            source: spec.source.to_string(),
            origin: None,
            release: None,
            version: None,
            error: None,
            boot: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BootRecord {
    pub accel: Accel,
    pub wall_ms: u64,
    /// Guest uptime when the agent said hello and when it finished.
    pub agent_hello_uptime_ms: Option<u64>,
    pub agent_done_uptime_ms: Option<u64>,
    pub end: BootEnd,
    /// "powered off", "boot timed out after 180 s; QEMU killed"...
    pub end_text: String,
    pub initramfs_bytes: u64,
    /// The kept boot (console log, transcript, boot.json): `btfvm replay`
    /// judges it again.
    pub kept: Option<PathBuf>,
    pub console_log: PathBuf,
    /// Kernel splats seen on the console; `allowed` holds the spec's reason
    /// for the ones that did not fail anything.
    pub splats: Vec<Splat>,
    /// Exactly the arguments QEMU ran with (lossy only where not UTF-8).
    pub qemu_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialRecord {
    pub name: String,
    pub kernel: String,
    pub scenario: String,
    #[serde(flatten)]
    pub outcome: TrialOutcome,
    /// Time in the guest.
    pub duration_ms: u64,
    pub observations: Option<Observations>,
}
