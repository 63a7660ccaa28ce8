//! Finding modules by name in a `lib/modules/<kver>` tree and ordering a
//! module's dependencies for loading.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::{depends, modinfo, read_module, Compression, ModuleError};

/// Module name -> file, built from file names alone.
#[derive(Clone, Debug)]
pub struct ModuleIndex {
    modules_dir: PathBuf,
    modules: HashMap<String, PathBuf>,
}

/// A module to load, with the dependencies its `.modinfo` declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleFile {
    pub name: String,
    pub path: PathBuf,
    pub depends: Vec<String>,
}

impl ModuleFile {
    /// The decompressed ELF, signature still attached.
    pub fn read(&self) -> Result<Vec<u8>, ModuleError> {
        read_module(&self.path)
    }
}

/// The kernel treats '-' and '_' in module names alike and reports '_'.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name a file name stands for, if it is a module at all.
pub(crate) fn module_name(file_name: &str) -> Option<(String, Compression)> {
    Compression::SUFFIXES.iter().find_map(|&(suffix, format)| {
        let stem = file_name.strip_suffix(suffix)?;
        (!stem.is_empty()).then(|| (normalize_name(stem), format))
    })
}

impl ModuleIndex {
    /// Walks `modules_dir` by file name only, so thousands of modules cost
    /// one `readdir` per directory. Symlinked directories (`build`,
    /// `source`) point into kernel headers and are not followed. Like
    /// depmod, a module under `updates/` wins over one of the same name
    /// elsewhere.
    pub fn scan(modules_dir: &Path) -> Result<ModuleIndex, ModuleError> {
        let mut found: HashMap<String, (bool, PathBuf)> = HashMap::new();
        let updates = modules_dir.join("updates");
        let mut pending = vec![modules_dir.to_owned()];
        while let Some(dir) = pending.pop() {
            let io_err = |source| ModuleError::Io {
                path: dir.clone(),
                source,
            };
            for entry in fs::read_dir(&dir).map_err(io_err)? {
                let entry = entry.map_err(io_err)?;
                let kind = entry.file_type().map_err(io_err)?;
                let path = entry.path();
                if kind.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Some((name, _)) = entry.file_name().to_str().and_then(module_name) else {
                    continue;
                };
                let rank = (!path.starts_with(&updates), path);
                // Ties (the same name twice outside updates/) go to the
                // smallest path so the result doesn't depend on readdir order.
                let better = found.get(&name).is_none_or(|current| rank < *current);
                if better {
                    found.insert(name, rank);
                }
            }
        }
        Ok(ModuleIndex {
            modules_dir: modules_dir.to_owned(),
            modules: found.into_iter().map(|(n, (_, p))| (n, p)).collect(),
        })
    }

    pub fn modules_dir(&self) -> &Path {
        &self.modules_dir
    }

    /// The file of module `name`, spelled with '-' or '_'.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.modules
            .get(&normalize_name(name))
            .map(PathBuf::as_path)
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// All module names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.modules.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Reads one module's `.modinfo` for its dependencies.
    pub fn module(&self, name: &str) -> Result<ModuleFile, ModuleError> {
        self.module_needed_by(&normalize_name(name), None)
    }

    fn module_needed_by(
        &self,
        name: &str,
        needed_by: Option<&str>,
    ) -> Result<ModuleFile, ModuleError> {
        let path = self.path(name).ok_or_else(|| match needed_by {
            Some(by) => ModuleError::MissingDependency {
                dependency: name.to_owned(),
                needed_by: by.to_owned(),
                modules_dir: self.modules_dir.clone(),
            },
            None => ModuleError::NotFound {
                name: name.to_owned(),
                modules_dir: self.modules_dir.clone(),
            },
        })?;
        let elf = read_module(path)?;
        let info = modinfo(&elf).map_err(|e| e.named(path.display()))?;
        Ok(ModuleFile {
            name: name.to_owned(),
            path: path.to_owned(),
            depends: depends(&info),
        })
    }

    /// The module and everything it depends on, each once, every module
    /// after all of its dependencies (the order to insmod them in).
    pub fn with_dependencies(&self, name: &str) -> Result<Vec<ModuleFile>, ModuleError> {
        let mut walk = Walk {
            index: self,
            done: HashSet::new(),
            stack: Vec::new(),
            order: Vec::new(),
        };
        walk.visit(&normalize_name(name), None)?;
        Ok(walk.order)
    }
}

/// Depth-first topological sort; `stack` holds the modules being visited,
/// so meeting one of them again is a cycle.
struct Walk<'a> {
    index: &'a ModuleIndex,
    done: HashSet<String>,
    stack: Vec<String>,
    order: Vec<ModuleFile>,
}

impl Walk<'_> {
    fn visit(&mut self, name: &str, needed_by: Option<&str>) -> Result<(), ModuleError> {
        if self.done.contains(name) {
            return Ok(());
        }
        if let Some(start) = self.stack.iter().position(|n| n == name) {
            let mut cycle = self.stack[start..].to_vec();
            cycle.push(name.to_owned());
            return Err(ModuleError::Cycle { cycle });
        }
        let module = self.index.module_needed_by(name, needed_by)?;
        self.stack.push(name.to_owned());
        for dep in &module.depends {
            self.visit(dep, Some(name))?;
        }
        self.stack.pop();
        self.done.insert(name.to_owned());
        self.order.push(module);
        Ok(())
    }
}
