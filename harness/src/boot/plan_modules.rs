//! The modules a plan loads: found in the kernel's tree (scanned once),
//! checked against the cache entry and the kernel's release, turned into
//! the asked variant, and placed in the archive with their dependencies;
//! or, for a module on a share, read where the host shares it from.

use std::collections::BTreeMap;

use btfvm_proto::{ModuleEntry, Plan};

use super::initramfs::{Archive, Entry};
use super::modules::{self, ElfProblem, ModuleError, ModuleFile, ModuleIndex};
use super::tools::{Built, BuiltModules};
use crate::inputs::scenario::Scenario;
use crate::kernel::KernelImage;
use crate::support::manifest::Damage;

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

/// A module's .modinfo, key by key.
type ModInfo = Vec<(String, String)>;

/// What went wrong with one module.
pub(super) enum Problem {
    Damaged(Damage),
    Foreign(String),
    Other(String),
}

/// The modules of the plan, and the kernel's module index, scanned once
/// and only if some scenario loads a module.
pub(super) struct Modules<'a> {
    image: &'a KernelImage,
    index: Option<Result<ModuleIndex, String>>,
    pub(super) entries: BTreeMap<String, ModuleEntry>,
    pub(super) damaged: Option<Damage>,
    built: &'a BuiltModules,
}

impl<'a> Modules<'a> {
    pub(super) fn new(image: &'a KernelImage, built: &'a BuiltModules) -> Modules<'a> {
        Modules {
            image,
            index: None,
            entries: BTreeMap::new(),
            damaged: None,
            built,
        }
    }

    pub(super) fn add_for(
        &mut self,
        sc: &Scenario,
        archive: &mut Archive,
    ) -> Result<(), Unprepared> {
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

impl Modules<'_> {
    /// A module loaded from a share: read where the host shares it from
    /// (so its dependencies, release and BTF are known now), loaded by the
    /// guest from the share; its dependencies come from the kernel's tree.
    pub(super) fn add_shared(
        &mut self,
        name: &str,
        guest_path: &str,
        shares: &[crate::inputs::share::Share],
        archive: &mut Archive,
    ) -> Result<(), Unprepared> {
        let key = format!("{name}@{guest_path}");
        if self.entries.contains_key(&key) {
            return Ok(());
        }
        let why = |m: String| Unprepared::Module(format!("module {name} from {guest_path}: {m}"));
        let Some((share, host)) = crate::inputs::share::resolve(shares, guest_path) else {
            return Err(why(format!(
                "no --share is mounted there (shares are mounted at /share/<tag>; give --share DIR:{})",
                guest_path.trim_start_matches("/share/").split('/').next().unwrap_or("TAG")
            )));
        };
        let (raw, info) = self.read_shared(name, &host, &share.tag, &why)?;
        let btf_bytes = modules::btf_section(&raw)
            .map_err(|e| why(e.to_string()))?
            .map(|r| (r.end - r.start) as u64);
        let mut deps: Vec<String> = Vec::new();
        for d in modules::depends(&info) {
            let idx = self.index().map_err(&why)?;
            self.add_module(&idx, &d, btfvm_proto::Variant::Plain, archive)
                .map_err(|p| match p {
                    Problem::Foreign(m) => Unprepared::Foreign(m),
                    Problem::Damaged(d) => why(d.to_string()),
                    Problem::Other(m) => why(m),
                })?;
            for f in idx.with_dependencies(&d).map_err(|e| why(e.to_string()))? {
                let k = Plan::module_key(&f.name, btfvm_proto::Variant::Plain);
                if !deps.contains(&k) {
                    deps.push(k);
                }
            }
        }
        self.entries.insert(
            key,
            ModuleEntry {
                name: name.to_string(),
                file: guest_path.to_string(),
                deps,
                btf_bytes,
                btf_base_types: None,
            },
        );
        Ok(())
    }

    /// The module file on the share: plain ELF, this kernel's, the module
    /// the scenario names; with its modinfo.
    fn read_shared(
        &self,
        name: &str,
        host: &std::path::Path,
        tag: &str,
        why: &dyn Fn(String) -> Unprepared,
    ) -> Result<(Vec<u8>, ModInfo), Unprepared> {
        let shown = host.display();
        // A regular file, capped: a FIFO or a device on the share must not
        // hang the planning.
        let raw = modules::read_module_file(host).map_err(|e| why(e.to_string()))?;
        match modules::Compression::detect(&raw) {
            Some(modules::Compression::None) => {}
            Some(c) => {
                return Err(why(format!(
                    "{shown} is {c}-compressed; the guest loads the file as it is, so share it decompressed"
                )))
            }
            None => return Err(why(format!("{shown} is not a kernel module (no ELF header)"))),
        }
        let file = ModuleFile {
            name: name.to_string(),
            path: host.to_path_buf(),
            depends: Vec::new(),
        };
        self.check_vermagic(&file, &raw).map_err(|p| match p {
            Problem::Foreign(m) => Unprepared::Foreign(m),
            Problem::Damaged(d) => why(d.to_string()),
            Problem::Other(m) => why(m),
        })?;
        let info = modules::modinfo(&raw).map_err(|e| why(e.to_string()))?;
        let own = info
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.as_str());
        if let Some(own) =
            own.filter(|n| modules::normalize_name(n) != modules::normalize_name(name))
        {
            return Err(why(format!(
                "{shown} is module {own}, not {name} (share {tag})"
            )));
        }
        Ok((raw, info))
    }

    /// The kernel's module index, scanned once.
    fn index(&mut self) -> Result<ModuleIndex, String> {
        let dir = &self.image.modules_dir;
        self.index
            .get_or_insert_with(|| ModuleIndex::scan(dir).map_err(|e| e.to_string()))
            .clone()
    }
}
