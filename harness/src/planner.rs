//! Turns a kernel and the selected scenarios into one boot: which scenarios
//! run or are ignored (and why), the plan, and the initramfs.

use std::collections::BTreeMap;

use btfvm_proto::{
    KernelConfig, KernelFacts, ModuleEntry, Plan, PlannedScenario, Step, PROTOCOL_VERSION,
};

use crate::initramfs::{Archive, Entry};
use crate::kernel::KernelImage;
use crate::kernelspec::KernelSpec;
use crate::modules::{self, ModuleIndex};
use crate::scenario::Scenario;

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
    config_text: &str,
    scenarios: &[&Scenario],
    agent: &[u8],
) -> Prepared {
    let config = KernelConfig::parse(config_text);
    let facts = KernelFacts::from_config(&config);
    let mut archive = Archive::new();
    archive.add(Entry::file("init", 0o755, agent.to_vec()));
    archive.add(Entry::file(
        CONFIG_PATH,
        0o644,
        config_text.as_bytes().to_vec(),
    ));
    for d in ["dev", "proc", "sys", "tmp", "modules"] {
        archive.add(Entry::dir(d));
    }
    let mut ignored = BTreeMap::new();
    let mut broken = BTreeMap::new();
    let mut planned = Vec::new();
    let mut module_entries: BTreeMap<String, ModuleEntry> = BTreeMap::new();
    let mut index: Option<Result<ModuleIndex, String>> = None;

    for sc in scenarios {
        let checks_spec = sc.steps.iter().any(|s| matches!(s, Step::ExpectSpecConfig));
        if checks_spec && spec.expect.config.is_empty() {
            // Comparing against nothing would pass without checking anything.
            ignored.insert(
                sc.name.clone(),
                format!(
                    "kernel {} has no expectations to check (no `expect.config` in a spec)",
                    spec.name
                ),
            );
            continue;
        }
        if let Err(reason) = sc.requires.eval(&facts) {
            ignored.insert(sc.name.clone(), format!("feature absent: {reason}"));
            continue;
        }
        let needed = sc.modules();
        let idx = index.get_or_insert_with(|| {
            ModuleIndex::scan(&image.modules_dir).map_err(|e| e.to_string())
        });
        let mut ok = true;
        for (name, variant) in &needed {
            let key = Plan::module_key(name, *variant);
            if module_entries.contains_key(&key) {
                continue;
            }
            let res = match idx {
                Ok(idx) => add_module(idx, name, *variant, &mut archive, &mut module_entries),
                Err(e) => Err(e.clone()),
            };
            if let Err(e) = res {
                broken.insert(sc.name.clone(), format!("preparing module {key}: {e}"));
                ok = false;
                break;
            }
        }
        if ok {
            planned.push(PlannedScenario {
                name: sc.name.clone(),
                steps: sc.steps.clone(),
            });
        }
    }
    let plan = Plan {
        protocol: PROTOCOL_VERSION,
        kernel: spec.name.clone(),
        config_path: CONFIG_PATH.into(),
        spec_config: spec.expect.config.clone(),
        modules: module_entries,
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
