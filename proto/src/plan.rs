//! The plan: what the host asks one boot of the guest to do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::step::{Step, Variant};

/// Written by the host as `/plan.json` in the initramfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub protocol: u16,
    /// Kernel spec name, for messages.
    pub kernel: String,
    /// Path of the kernel's .config inside the guest.
    pub config_path: String,
    /// What the kernel spec says the config must hold (for
    /// `expect_spec_config`).
    pub spec_config: BTreeMap<String, String>,
    /// Module files by "name" or "name.variant" key.
    pub modules: BTreeMap<String, ModuleEntry>,
    pub scenarios: Vec<PlannedScenario>,
    /// 0 for a kernel's first boot, then 1, 2... for the boots `--retries`
    /// adds: what lets btfvm's own tests provoke a failure that a retry
    /// cures (selftest `fail_first_attempt`).
    #[serde(default)]
    pub attempt: u32,
    /// The kernel's suite's bpftool in the initramfs, when a scenario
    /// runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpftool: Option<GuestProgram>,
}

/// A program the host put into the initramfs with its own loader and
/// libraries (a Debian suite's, which may need a newer glibc than any in
/// the guest): run as `loader --library-path L binary ARGS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestProgram {
    pub loader: String,
    pub library_path: String,
    pub binary: String,
    /// "bpftool 7.1.0+6.1.176-1 (debian:bookworm)", for messages.
    pub origin: String,
}

impl Plan {
    pub fn module_key(name: &str, variant: Variant) -> String {
        match variant {
            Variant::Plain => name.to_string(),
            v => format!("{name}.{v}"),
        }
    }
}

/// A module file in the initramfs and the modules to load before it,
/// leaves first (each a plain key of `Plan::modules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleEntry {
    pub name: String,
    pub file: String,
    pub deps: Vec<String>,
    /// Size of the module file's own `.BTF` section; None when it has
    /// none, so a missing BTF object can be explained by the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btf_bytes: Option<u64>,
    /// The number of types in the file's `.BTF.base` (the distilled base
    /// its `.BTF` is split over), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btf_base_types: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedScenario {
    pub name: String,
    pub steps: Vec<Step>,
}
