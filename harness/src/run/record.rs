//! What a run keeps of each kernel and each trial, for the report.

use std::path::PathBuf;

use btfvm_proto::Observations;
use serde::{Deserialize, Serialize};

use super::outcome::{FailureKind, TrialOutcome};
use crate::inputs::kernelspec::KernelSpec;
use crate::vm::phases::BootPhases;
use crate::vm::{Accel, BootEnd, Splat, Way};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelRecord {
    pub name: String,
    pub source: String,
    /// Package and version, or the path, of what actually booted.
    pub origin: Option<String>,
    pub release: Option<String>,
    /// Upstream version from the kernel's config.
    pub version: Option<String>,
    /// CONFIG_PAHOLE_VERSION of the kernel's config: the pahole that made
    /// its BTF, as Kconfig saw it (Debian's configs carry it too).
    pub pahole_version: Option<String>,
    /// SHA-256 of the kernel's .config: which build this was.
    pub config_sha256: Option<String>,
    /// Why the kernel never booted.
    pub error: Option<KernelError>,
    pub boot: Option<BootRecord>,
    /// The boots `--retries` added for failed scenarios.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<BootRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelError {
    pub kind: FailureKind,
    pub message: String,
}

impl KernelRecord {
    pub fn new(spec: &KernelSpec) -> KernelRecord {
        KernelRecord {
            source: spec.source.to_string(),
            ..KernelRecord::named(&spec.name)
        }
    }

    /// A kernel known by name only (a report that lists trials of it).
    pub fn named(name: &str) -> KernelRecord {
        KernelRecord {
            name: name.to_string(),
            source: String::new(),
            pahole_version: None,
            config_sha256: None,
            origin: None,
            release: None,
            version: None,
            error: None,
            boot: None,
            retries: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootRecord {
    /// How the agent was run: btfvm's QEMU, an SSH target, virtme-ng.
    #[serde(default)]
    pub way: Way,
    /// The target, for a way in that is not a local boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// QEMU's accelerator; None where btfvm booted nothing (a target).
    #[serde(default)]
    pub accel: Option<Accel>,
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
    /// Where the wall time went (`vm::phases`).
    #[serde(default)]
    pub phases: BootPhases,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
