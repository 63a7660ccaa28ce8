//! Turns a kernel and the selected scenarios into one boot: which scenarios
//! run or are ignored (and why), the plan, and the initramfs.

use std::collections::BTreeMap;

use btfvm_proto::{GuestProgram, KernelFacts, Plan, PlannedScenario, Step, PROTOCOL_VERSION};

use super::initramfs::{Archive, Entry};
use super::plan_modules::Modules;
pub use super::plan_modules::Unprepared;
use super::share;
use super::tools::{self, Bpftool, Built, BuiltModules};
use crate::inputs::kernelspec::KernelSpec;
use crate::inputs::scenario::Scenario;
use crate::inputs::share::Share;
use crate::kernel::KernelImage;
use crate::support::manifest::Damage;

pub const CONFIG_PATH: &str = "/config";

/// The result of planning one kernel's boot.
pub struct Prepared {
    pub plan: Plan,
    pub archive: Archive,
    /// Scenarios that will not run, with the reason (feature absent).
    pub ignored: BTreeMap<String, String>,
    /// Scenarios that cannot run because the host could not prepare them:
    /// a failure, not an absence (e.g. CONFIG_DUMMY=m but no dummy.ko).
    pub broken: BTreeMap<String, Unprepared>,
    /// A file of the kernel's cache entry that is not what was installed:
    /// the plan cannot be trusted; fetch the kernel again.
    pub damaged: Option<Damage>,
}

pub fn prepare(
    spec: &KernelSpec,
    image: &KernelImage,
    scenarios: &[&Scenario],
    agent: &[u8],
    attempt: u32,
    with: &Carried<'_>,
) -> Prepared {
    let (bpftool, built) = (with.bpftool, with.built);
    let facts = KernelFacts::from_config(&image.config.parsed);
    let mut archive = skeleton(image, agent);
    let mut ignored = BTreeMap::new();
    let mut broken = BTreeMap::new();
    let mut planned = Vec::new();
    let mut modules = Modules::new(image, built);
    let mut guest_bpftool = None;
    let mounts = share::mounts(image, with.shares, &mut archive);
    for sc in scenarios {
        if let Some(reason) = not_for(spec, sc, &facts) {
            ignored.insert(sc.name.clone(), reason);
            continue;
        }
        match tools_for(sc, bpftool, &mut guest_bpftool, built, &mut archive) {
            Ok(()) => {}
            Err(NotPlanned::Ignored(reason)) => {
                ignored.insert(sc.name.clone(), reason);
                continue;
            }
            Err(NotPlanned::Broken(why)) => {
                broken.insert(sc.name.clone(), why);
                continue;
            }
        }
        if let Err(n) = shared_for(sc, &mounts, image, with.shares, &mut modules, &mut archive) {
            match n {
                NotPlanned::Ignored(reason) => {
                    ignored.insert(sc.name.clone(), reason);
                }
                NotPlanned::Broken(why) => {
                    broken.insert(sc.name.clone(), why);
                }
            }
            continue;
        }
        match modules.add_for(sc, &mut archive) {
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
        modules: modules.entries.clone(),
        scenarios: planned,
        attempt,
        bpftool: guest_bpftool,
        shares: mounts.unwrap_or_default(),
    };
    let plan_json = serde_json::to_vec_pretty(&plan).unwrap_or_default();
    archive.add(Entry::file("plan.json", 0o644, plan_json));
    Prepared {
        plan,
        archive,
        ignored,
        broken,
        damaged: modules.damaged,
    }
}

/// The agent as /init, the kernel's config, and the folders it mounts on.
fn skeleton(image: &KernelImage, agent: &[u8]) -> Archive {
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
    archive
}

/// What a kernel's boots carry besides its own files: bpftool, the test
/// module built by the host, and the host's shares.
pub struct Carried<'a> {
    pub bpftool: &'a Bpftool,
    pub built: &'a BuiltModules,
    pub shares: &'a [Share],
}

/// The modules a scenario loads from shares: ignored where the kernel
/// cannot mount one, broken where the share lacks what it names.
fn shared_for(
    sc: &Scenario,
    mounts: &Result<Vec<btfvm_proto::ShareMount>, String>,
    image: &KernelImage,
    shares: &[Share],
    modules: &mut Modules<'_>,
    archive: &mut Archive,
) -> Result<(), NotPlanned> {
    let mut wanted = Vec::new();
    for s in &sc.steps {
        s.shared_modules(&mut wanted);
    }
    if wanted.is_empty() {
        return Ok(());
    }
    match mounts {
        Ok(m) if m.is_empty() => {
            return Err(NotPlanned::Ignored(
                "it loads a module from a share, and no --share was given".into(),
            ))
        }
        Ok(_) => {}
        Err(why) if share::unsupported(image).is_some() => {
            return Err(NotPlanned::Ignored(format!("feature absent: {why}")))
        }
        Err(why) => return Err(NotPlanned::Broken(Unprepared::Module(why.clone()))),
    }
    for (name, path) in wanted {
        modules
            .add_shared(&name, &path, shares, archive)
            .map_err(NotPlanned::Broken)?;
    }
    Ok(())
}

/// Why a scenario is left out of the plan.
enum NotPlanned {
    Ignored(String),
    Broken(Unprepared),
}

/// What a scenario needs besides modules: bpftool (placed in the archive
/// once, for the first scenario that runs it) and the modules built out
/// of tree.
fn tools_for(
    sc: &Scenario,
    bpftool: &Bpftool,
    placed: &mut Option<GuestProgram>,
    built: &BuiltModules,
    archive: &mut Archive,
) -> Result<(), NotPlanned> {
    if sc.steps.iter().any(Step::uses_bpftool) && placed.is_none() {
        match bpftool {
            Bpftool::Available(p) => match tools::place(p, archive) {
                Ok(g) => *placed = Some(g),
                Err(e) => {
                    return Err(NotPlanned::Broken(Unprepared::Tool(format!(
                        "bpftool: {e}"
                    ))))
                }
            },
            Bpftool::Absent(why) => {
                return Err(NotPlanned::Ignored(format!("no bpftool here: {why}")))
            }
            Bpftool::Failed(e) => {
                return Err(NotPlanned::Broken(Unprepared::Tool(format!(
                    "bpftool: {e}"
                ))))
            }
        }
    }
    match built_for(sc, built) {
        Some(Err(reason)) => Err(NotPlanned::Ignored(reason)),
        Some(Ok(why)) => Err(NotPlanned::Broken(why)),
        None => Ok(()),
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

/// What keeps a scenario that loads a built variant from running: Err
/// (ignored, with the reason) or Ok (broken); None when it can run.
fn built_for(sc: &Scenario, built: &BuiltModules) -> Option<Result<Unprepared, String>> {
    for (name, v) in sc.modules().into_iter().filter(|(_, v)| v.is_built()) {
        if name != crate::kbuild::testmod::MODULE {
            return Some(Ok(Unprepared::Module(format!(
                "variant {v} of {name}: only {} has sources btfvm can build",
                crate::kbuild::testmod::MODULE
            ))));
        }
        match built.get(&v) {
            Some(Built::Ready { .. }) => {}
            Some(Built::Absent(why)) => return Some(Err(format!("no {v} build here: {why}"))),
            Some(Built::Failed(why)) => return Some(Ok(Unprepared::Tool(format!("{v}: {why}")))),
            None => {
                return Some(Ok(Unprepared::Tool(format!(
                    "{v} of {name} was not built (a host bug)"
                ))))
            }
        }
    }
    None
}
