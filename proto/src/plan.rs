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
    /// Host folders shared over virtiofs, mounted before the scenarios.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareMount>,
}

/// A virtiofs share and what the kernel needs to mount it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareMount {
    pub tag: String,
    /// Where it is mounted (`/share/<tag>`).
    pub at: String,
    /// Module files to load first, leaves first (virtio's PCI transport,
    /// fuse, virtiofs), where the kernel has them as modules.
    pub modules: Vec<String>,
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
    /// The same plan with every file it names under `root`: how a way in
    /// that unpacks the initramfs into a folder of a running system (an
    /// SSH target, a virtme-ng guest) points the agent at its files.
    pub fn rooted(&self, root: &str) -> Plan {
        let root = root.trim_end_matches('/');
        let under = |p: &str| format!("{root}/{}", p.trim_start_matches('/'));
        let mut plan = self.clone();
        plan.config_path = under(&plan.config_path);
        for m in plan.modules.values_mut() {
            m.file = under(&m.file);
        }
        if let Some(b) = plan.bpftool.as_mut() {
            b.loader = under(&b.loader);
            b.binary = under(&b.binary);
            b.library_path = b
                .library_path
                .split(':')
                .map(under)
                .collect::<Vec<_>>()
                .join(":");
        }
        plan
    }

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

/// What the agent does as PID 1 of a guest that serves a way in (an SSH
/// server for btfvm's own SSH tests) instead of running a plan: written by
/// the host as `/serve.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServePlan {
    /// Module files to load first, leaves first (the network driver).
    pub modules: Vec<String>,
    /// The interface to bring up, with its IPv4 address and prefix length
    /// (QEMU's user-mode network gives the guest 10.0.2.15/24).
    pub interface: String,
    pub address: [u8; 4],
    pub prefix: u8,
    /// Commands run, in order, before the server starts (busybox
    /// installing its applets).
    #[serde(default)]
    pub setup: Vec<Vec<String>>,
    /// The server, started once the network is up; the guest powers off
    /// when it exits.
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooted_moves_every_path_and_nothing_else() {
        let plan = Plan {
            protocol: 1,
            kernel: "k".into(),
            config_path: "/config".into(),
            spec_config: BTreeMap::new(),
            modules: BTreeMap::from([(
                "dummy".into(),
                ModuleEntry {
                    name: "dummy".into(),
                    file: "/modules/dummy.ko".into(),
                    deps: vec![],
                    btf_bytes: None,
                    btf_base_types: None,
                },
            )]),
            scenarios: vec![],
            attempt: 0,
            shares: vec![],
            bpftool: Some(GuestProgram {
                loader: "/bpftool/lib64/ld.so".into(),
                library_path: "/bpftool/usr/lib:/bpftool/lib".into(),
                binary: "/bpftool/usr/sbin/bpftool".into(),
                origin: "bpftool 7".into(),
            }),
        };
        let r = plan.rooted("/tmp/btfvm.x/");
        assert_eq!(r.config_path, "/tmp/btfvm.x/config");
        assert_eq!(r.modules["dummy"].file, "/tmp/btfvm.x/modules/dummy.ko");
        let b = r.bpftool.as_ref().unwrap();
        assert_eq!(b.loader, "/tmp/btfvm.x/bpftool/lib64/ld.so");
        assert_eq!(
            b.library_path,
            "/tmp/btfvm.x/bpftool/usr/lib:/tmp/btfvm.x/bpftool/lib"
        );
        assert_eq!(b.binary, "/tmp/btfvm.x/bpftool/usr/sbin/bpftool");
        assert_eq!(r.modules["dummy"].name, "dummy");
        assert_eq!(r.kernel, "k");
    }
}
