//! Turns a kernel and the selected scenarios into one boot: which scenarios
//! run or are ignored (and why), the plan, and the initramfs.

use std::collections::BTreeMap;

use btfvm_proto::{KernelFacts, ModuleEntry, Plan, PlannedScenario, Step, PROTOCOL_VERSION};

use super::initramfs::{Archive, Entry};
use super::modules::{self, ModuleIndex};
use crate::inputs::kernelspec::KernelSpec;
use crate::inputs::scenario::Scenario;
use crate::kernel::KernelImage;

pub const CONFIG_PATH: &str = "/config";

/// The result of planning one kernel's boot.
pub struct Prepared {
    pub plan: Plan,
    pub archive: Archive,
    /// Scenarios that will not run, with the reason (feature absent).
    pub ignored: BTreeMap<String, String>,
    /// Scenarios that cannot run because the host could not prepare them:
    /// a failure, not an absence (e.g. CONFIG_DUMMY=m but no dummy.ko).
    pub broken: BTreeMap<String, String>,
}

pub fn prepare(
    spec: &KernelSpec,
    image: &KernelImage,
    scenarios: &[&Scenario],
    agent: &[u8],
) -> Prepared {
    let facts = KernelFacts::from_config(&image.config.parsed);
    let mut archive = Archive::new();
    archive.add(Entry::file("init", 0o755, agent.to_vec()));
    archive.add(Entry::file(
        CONFIG_PATH,
        0o644,
        image.config.text.as_bytes().to_vec(),
    ));
    for d in ["dev", "proc", "sys", "tmp", "modules"] {
        archive.add(Entry::dir(d));
    }
    let mut ignored = BTreeMap::new();
    let mut broken = BTreeMap::new();
    let mut planned = Vec::new();
    let mut modules = Modules {
        index: None,
        entries: BTreeMap::new(),
    };
    for sc in scenarios {
        if let Some(reason) = not_for(spec, sc, &facts) {
            ignored.insert(sc.name.clone(), reason);
            continue;
        }
        match modules.add_for(sc, &image.modules_dir, &mut archive) {
            Ok(()) => planned.push(PlannedScenario {
                name: sc.name.clone(),
                steps: sc.steps.clone(),
            }),
            Err(why) => {
                broken.insert(sc.name.clone(), why);
            }
        }
    }
    let plan = Plan {
        protocol: PROTOCOL_VERSION,
        kernel: spec.name.clone(),
        config_path: CONFIG_PATH.into(),
        spec_config: spec.expect.config.clone(),
        modules: modules.entries,
        scenarios: planned,
    };
    let plan_json = serde_json::to_vec_pretty(&plan).unwrap_or_default();
    archive.add(Entry::file("plan.json", 0o644, plan_json));
    Prepared {
        plan,
        archive,
        ignored,
        broken,
    }
}

/// Why a scenario does not run on this kernel (ignored), if it does not.
fn not_for(spec: &KernelSpec, sc: &Scenario, facts: &KernelFacts<'_>) -> Option<String> {
    let checks_spec = sc.steps.iter().any(|s| matches!(s, Step::ExpectSpecConfig));
    if checks_spec && spec.expect.config.is_empty() {
        // Comparing against nothing would pass without checking anything.
        return Some(format!(
            "kernel {} has no expectations to check (no `expect.config` in a spec)",
            spec.name
        ));
    }
    sc.requires
        .eval(facts)
        .err()
        .map(|reason| format!("feature absent: {reason}"))
}

/// The modules of the plan, and the kernel's module index, scanned once
/// and only if some scenario loads a module.
struct Modules {
    index: Option<Result<ModuleIndex, String>>,
    entries: BTreeMap<String, ModuleEntry>,
}

impl Modules {
    fn add_for(
        &mut self,
        sc: &Scenario,
        modules_dir: &std::path::Path,
        archive: &mut Archive,
    ) -> Result<(), String> {
        let needed = sc.modules();
        if needed.is_empty() {
            return Ok(());
        }
        let idx = self
            .index
            .get_or_insert_with(|| ModuleIndex::scan(modules_dir).map_err(|e| e.to_string()));
        for (name, variant) in &needed {
            let key = Plan::module_key(name, *variant);
            if self.entries.contains_key(&key) {
                continue;
            }
            match idx {
                Ok(idx) => add_module(idx, name, *variant, archive, &mut self.entries),
                Err(e) => Err(e.clone()),
            }
            .map_err(|e| format!("preparing module {key}: {e}"))?;
        }
        Ok(())
    }
}

/// Adds a module (and, plain, each dependency) to the archive and the plan.
/// Each entry lists its own dependencies, leaves first, so loading any of
/// them alone loads exactly what the kernel needs for it.
fn add_module(
    idx: &ModuleIndex,
    name: &str,
    variant: btfvm_proto::Variant,
    archive: &mut Archive,
    entries: &mut BTreeMap<String, ModuleEntry>,
) -> Result<(), String> {
    let chain = idx.with_dependencies(name).map_err(|e| e.to_string())?;
    for m in &chain {
        let v = if m.name == name {
            variant
        } else {
            btfvm_proto::Variant::Plain
        };
        let key = Plan::module_key(&m.name, v);
        if entries.contains_key(&key) {
            continue;
        }
        let own = idx.with_dependencies(&m.name).map_err(|e| e.to_string())?;
        let deps = own
            .iter()
            .filter(|d| d.name != m.name)
            .map(|d| Plan::module_key(&d.name, btfvm_proto::Variant::Plain))
            .collect();
        let elf = modules::read_module(&m.path).map_err(|e| e.to_string())?;
        let bytes = modules::make_variant(&elf, v, &m.name).map_err(|e| e.to_string())?;
        let file = format!("/modules/{key}.ko");
        archive.add(Entry::file(&file, 0o644, bytes));
        entries.insert(
            key,
            ModuleEntry {
                name: m.name.clone(),
                file,
                deps,
            },
        );
    }
    Ok(())
}
