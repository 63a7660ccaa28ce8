//! Turns a kernel and the selected scenarios into one boot: which scenarios
//! run or are ignored (and why), the plan, and the initramfs.

use std::collections::BTreeMap;

use btfvm_proto::{
    GuestProgram, KernelFacts, ModuleEntry, Plan, PlannedScenario, Step, PROTOCOL_VERSION,
};

use super::initramfs::{Archive, Entry};
use super::modules::{self, ElfProblem, ModuleError, ModuleFile, ModuleIndex};
use super::tools::{self, Bpftool, Built, BuiltModules};
use crate::inputs::kernelspec::KernelSpec;
use crate::inputs::scenario::Scenario;
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

/// Why a scenario the kernel supports could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unprepared {
    /// The modules tree lacks what the scenario loads, or it is unusable.
    Module(String),
    /// A module of another kernel (its vermagic names another release):
    /// bad input, as a modules tree of another kernel is.
    Foreign(String),
    /// A program the scenario runs in the guest could not be had.
    Tool(String),
}

impl Unprepared {
    pub fn message(&self) -> &str {
        match self {
            Unprepared::Module(m) | Unprepared::Foreign(m) | Unprepared::Tool(m) => m,
        }
    }
}

/// What went wrong with one module.
enum Problem {
    Damaged(Damage),
    Foreign(String),
    Other(String),
}

pub fn prepare(
    spec: &KernelSpec,
    image: &KernelImage,
    scenarios: &[&Scenario],
    agent: &[u8],
    attempt: u32,
    bpftool: &Bpftool,
    built: &BuiltModules,
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
        image,
        index: None,
        entries: BTreeMap::new(),
        damaged: None,
        built,
    };
    let mut guest_bpftool = None;
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
        modules: modules.entries,
        scenarios: planned,
        attempt,
        bpftool: guest_bpftool,
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

/// The modules of the plan, and the kernel's module index, scanned once
/// and only if some scenario loads a module.
struct Modules<'a> {
    image: &'a KernelImage,
    index: Option<Result<ModuleIndex, String>>,
    entries: BTreeMap<String, ModuleEntry>,
    damaged: Option<Damage>,
    built: &'a BuiltModules,
}

impl Modules<'_> {
    fn add_for(&mut self, sc: &Scenario, archive: &mut Archive) -> Result<(), Unprepared> {
        let needed = sc.modules();
        if needed.is_empty() {
            return Ok(());
        }
        let dir = &self.image.modules_dir;
        let idx = self
            .index
            .get_or_insert_with(|| ModuleIndex::scan(dir).map_err(|e| e.to_string()))
            .clone();
        for (name, variant) in &needed {
            let key = Plan::module_key(name, *variant);
            if self.entries.contains_key(&key) {
                continue;
            }
            if variant.is_built() {
                self.add_built(&key, name, *variant, archive)
                    .map_err(|m| Unprepared::Module(format!("preparing module {key}: {m}")))?;
                continue;
            }
            let r = match &idx {
                Ok(idx) => self.add_module(idx, name, *variant, archive),
                Err(e) => Err(Problem::Other(e.clone())),
            };
            let problem = match r {
                Ok(()) => continue,
                Err(p) => p,
            };
            let why = |m: String| format!("preparing module {key}: {m}");
            return Err(match problem {
                Problem::Damaged(d) => {
                    let text = why(format!("the cached kernel is damaged: {d}"));
                    self.damaged.get_or_insert(d);
                    Unprepared::Module(text)
                }
                Problem::Foreign(m) => Unprepared::Foreign(why(m)),
                Problem::Other(m) => {
                    // A module that cannot be read may be a damaged cache
                    // entry rather than a broken kernel: hash it all.
                    if let Some(e) = &self.image.cache_entry {
                        if let Err(d) = e.check_full() {
                            self.damaged.get_or_insert(d);
                        }
                    }
                    Unprepared::Module(why(m))
                }
            });
        }
        Ok(())
    }

    /// Adds a module the host built (checked by `built_for`: it is there).
    fn add_built(
        &mut self,
        key: &str,
        name: &str,
        v: btfvm_proto::Variant,
        archive: &mut Archive,
    ) -> Result<(), String> {
        let Some(Built::Ready {
            path,
            btf_bytes,
            btf_base_types,
        }) = self.built.get(&v)
        else {
            return Err("not built".into());
        };
        let raw = modules::read_module_file(path).map_err(|e| e.to_string())?;
        let elf = modules::decode_module(path, &raw).map_err(|e| e.to_string())?;
        let m = ModuleFile {
            name: name.to_string(),
            path: path.clone(),
            depends: Vec::new(),
        };
        self.check_vermagic(&m, &elf).map_err(|p| match p {
            Problem::Foreign(s) | Problem::Other(s) => s,
            Problem::Damaged(d) => d.to_string(),
        })?;
        let file = format!("/modules/{key}.ko");
        archive.add(Entry::file(&file, 0o644, elf));
        self.entries.insert(
            key.to_string(),
            ModuleEntry {
                name: name.to_string(),
                file,
                deps: Vec::new(),
                btf_bytes: *btf_bytes,
                btf_base_types: *btf_base_types,
            },
        );
        Ok(())
    }

    /// Adds a module (and, plain, each dependency) to the archive and the
    /// plan. Each entry lists its own dependencies, leaves first, so loading
    /// any of them alone loads exactly what the kernel needs for it.
    fn add_module(
        &mut self,
        idx: &ModuleIndex,
        name: &str,
        variant: btfvm_proto::Variant,
        archive: &mut Archive,
    ) -> Result<(), Problem> {
        let other = |e: ModuleError| Problem::Other(e.to_string());
        let chain = idx.with_dependencies(name).map_err(other)?;
        for m in &chain {
            let v = if m.name == name {
                variant
            } else {
                btfvm_proto::Variant::Plain
            };
            let key = Plan::module_key(&m.name, v);
            if self.entries.contains_key(&key) {
                continue;
            }
            let own = idx.with_dependencies(&m.name).map_err(other)?;
            let deps = own
                .iter()
                .filter(|d| d.name != m.name)
                .map(|d| Plan::module_key(&d.name, btfvm_proto::Variant::Plain))
                .collect();
            let (bytes, btf_bytes) = self.module_bytes(m, v)?;
            let file = format!("/modules/{key}.ko");
            archive.add(Entry::file(&file, 0o644, bytes));
            self.entries.insert(
                key,
                ModuleEntry {
                    name: m.name.clone(),
                    file,
                    deps,
                    btf_bytes,
                    btf_base_types: None,
                },
            );
        }
        Ok(())
    }

    /// The variant's bytes, from a module file checked against the cache
    /// entry's manifest and against the kernel's release; and the size of
    /// the file's own `.BTF` section, if it has one.
    fn module_bytes(
        &self,
        m: &ModuleFile,
        v: btfvm_proto::Variant,
    ) -> Result<(Vec<u8>, Option<u64>), Problem> {
        let other = |e: ModuleError| Problem::Other(e.to_string());
        let raw = modules::read_module_file(&m.path).map_err(other)?;
        if let Some(entry) = &self.image.cache_entry {
            entry.check_bytes(&m.path, &raw).map_err(Problem::Damaged)?;
        }
        let elf = modules::decode_module(&m.path, &raw).map_err(other)?;
        self.check_vermagic(m, &elf)?;
        // What the file the guest loads will hold: the variant, not the
        // module it was made from.
        let btf_bytes = match v {
            btfvm_proto::Variant::NoBtf => None,
            _ => modules::btf_section(&elf)
                .map_err(other)?
                .map(|r| (r.end - r.start) as u64),
        };
        let bytes = modules::make_variant(&elf, v, &m.name).map_err(|e| match e {
            ModuleError::Elf {
                problem: ElfProblem::NoBtf { .. },
                ..
            } => Problem::Other(format!("{e} ({})", self.why_no_btf())),
            e => Problem::Other(e.to_string()),
        })?;
        Ok((bytes, btf_bytes))
    }

    /// A module built for another kernel is refused by the kernel with
    /// ENOEXEC, which would read as a kernel bug: it is bad input.
    fn check_vermagic(&self, m: &ModuleFile, elf: &[u8]) -> Result<(), Problem> {
        let info = modules::modinfo(elf).map_err(|e| Problem::Other(e.to_string()))?;
        let vermagic = info.iter().find(|(k, _)| k == "vermagic").map(|(_, v)| v);
        let release = vermagic.and_then(|v| v.split_whitespace().next());
        match release {
            Some(r) if r != self.image.release => Err(Problem::Foreign(format!(
                "{} is a module of kernel {r} (vermagic {:?}), but the kernel is {}: its modules tree is another kernel's",
                m.path.display(),
                vermagic.map(String::as_str).unwrap_or_default(),
                self.image.release
            ))),
            _ => Ok(()),
        }
    }

    /// Why a module of this kernel can lack `.BTF`, from what its config
    /// says, rather than a guess.
    fn why_no_btf(&self) -> String {
        let cfg = &self.image.config;
        if cfg.parsed.get("CONFIG_DEBUG_INFO_BTF_MODULES") == "y" {
            "although this kernel has CONFIG_DEBUG_INFO_BTF_MODULES=y: the file was stripped, or built out of tree against a tree without vmlinux".into()
        } else if cfg.version < btfvm_proto::KernelVersion(5, 11, 0) {
            format!(
                "this kernel is {}, older than 5.11, which made module BTF",
                cfg.version
            )
        } else {
            "this kernel has no CONFIG_DEBUG_INFO_BTF_MODULES, so its modules carry no BTF".into()
        }
    }
}
