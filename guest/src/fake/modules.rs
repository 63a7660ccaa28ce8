//! Module load and unload in the fake, with the kernel's order of checks:
//! already loaded, unresolved symbols, then the .BTF at MODULE_STATE_COMING.

use btfvm_btf::Btf;
use btfvm_proto::message::LoadOp;

use super::{FakeKernel, Life, Loaded};
use crate::kernel::Errno;

/// A module file the fake can load.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    pub name: String,
    /// Modules whose symbols it uses: loading fails unless they are loaded.
    pub needs: Vec<String>,
    /// Its .BTF section, if it has one.
    pub btf: Option<Vec<u8>>,
    /// What its init function prints.
    pub init_log: Vec<String>,
    /// Its functions' symbols (what a program's address is looked up in).
    pub functions: Vec<String>,
}

impl ModuleFile {
    pub fn new(name: &str, btf: Option<Vec<u8>>) -> Self {
        ModuleFile {
            name: name.into(),
            needs: Vec::new(),
            btf,
            init_log: Vec::new(),
            functions: Vec::new(),
        }
    }

    pub fn functions(mut self, names: &[&str]) -> Self {
        self.functions = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn needs(mut self, modules: &[&str]) -> Self {
        self.needs = modules.iter().map(|m| m.to_string()).collect();
        self
    }

    pub fn logs(mut self, line: &str) -> Self {
        self.init_log.push(line.into());
        self
    }
}

/// One finit_module or delete_module call, as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: LoadOp,
    pub module: String,
    pub result: Result<(), Errno>,
}

impl FakeKernel {
    /// What btf_parse_module would say about a module's .BTF.
    fn validate(&self, bytes: &[u8]) -> Result<(), String> {
        if bytes.get(..2) != Some(&btfvm_btf::BTF_MAGIC.to_le_bytes()[..]) {
            return Err("Invalid magic".into());
        }
        Btf::parse_split(bytes, &self.vmlinux)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The BTF part of a load, at MODULE_STATE_COMING.
    fn module_btf_coming(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), Errno> {
        if let Err(why) = self.validate(&bytes) {
            self.log(format!("BPF: {why}"));
            self.log(format!("failed to validate module [{name}] BTF: -22"));
            return if self.allow_btf_mismatch {
                Ok(())
            } else {
                Err(libc::EINVAL)
            };
        }
        let kernel_btf = !self.faults.module_not_kernel_btf;
        self.add_object(name, kernel_btf, bytes.clone(), Some(name));
        self.sysfs.insert(name.into(), bytes);
        if let Some((m, stray)) = self.faults.stray_on_load.clone() {
            if m == name {
                self.add_object(&stray, true, btfvm_btf::minimal_blob(), Some(name));
            }
        }
        Ok(())
    }

    pub(super) fn load(&mut self, file: &ModuleFile) -> Result<(), Errno> {
        if self.loaded.iter().any(|m| m.name == file.name) {
            return Err(libc::EEXIST);
        }
        if let Some(dep) = file
            .needs
            .iter()
            .find(|d| !self.loaded.iter().any(|m| &m.name == *d))
        {
            self.log(format!("{}: Unknown symbol {dep}_sym (err -2)", file.name));
            return Err(libc::ENOENT);
        }
        if let (true, Some(bytes)) = (self.module_btf, file.btf.clone()) {
            self.module_btf_coming(&file.name, bytes)?;
        }
        self.loaded.push(Loaded {
            name: file.name.clone(),
            needs: file.needs.clone(),
        });
        for line in &file.init_log {
            self.kmsg.push(line.clone());
        }
        Ok(())
    }

    pub(super) fn unload(&mut self, name: &str) -> Result<(), Errno> {
        let Some(at) = self.loaded.iter().position(|m| m.name == name) else {
            return Err(libc::ENOENT);
        };
        // delete_module: "Other modules depend on us: get rid of them
        // first" is EWOULDBLOCK, O_NONBLOCK or not (a module merely in use
        // gives EWOULDBLOCK too with O_NONBLOCK).
        if self
            .loaded
            .iter()
            .any(|m| m.needs.iter().any(|n| n == name))
        {
            return Err(libc::EWOULDBLOCK);
        }
        if self.faults.stuck.contains(name) {
            return Err(libc::EBUSY);
        }
        // A tracing program holds its target's module (try_module_get in
        // the trampoline): in use, so EWOULDBLOCK with O_NONBLOCK.
        if self.module_held(name) && !self.faults.unload_while_held {
            return Err(libc::EWOULDBLOCK);
        }
        self.loaded.remove(at);
        if !self.faults.object_survives_unload {
            for o in &mut self.objects {
                if o.owner.as_deref() == Some(name) {
                    o.life = Life::Kernel { alive: false };
                }
            }
        }
        if !self.faults.sysfs_survives_unload {
            self.sysfs.remove(name);
        }
        Ok(())
    }
}
