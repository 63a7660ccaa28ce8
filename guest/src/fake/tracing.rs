//! fentry and fexit in the fake, as bpf_check_attach_target does it from
//! 6.6 on (measured on 6.12 and 7.2): the type ID is read in the BTF object
//! named (a module's split BTF reaches vmlinux's types under it), and the
//! function's address is looked up by that type's name in that module's
//! own symbols. A program holds its module: delete_module gives EAGAIN
//! (EWOULDBLOCK) until it is closed. Triggers are paths that call
//! functions, each counted by every live program on it.

use std::cell::Cell;
use std::rc::Rc;

use btfvm_btf::{Btf, Kind};
use btfvm_proto::tracing::AttachKind;

use super::FakeKernel;
use crate::kernel::{AttachFailure, AttachStage, AttachedBy, Errno, TracingTarget};

/// An attached program of the fake; detached when dropped.
#[derive(Debug)]
pub struct FakeProg {
    runs: Rc<Cell<u64>>,
    _alive: Rc<()>,
}

#[derive(Debug)]
pub(super) struct ProgState {
    /// "vmlinux" or the module whose function it is on.
    owner: String,
    function: String,
    runs: Rc<Cell<u64>>,
    alive: Rc<()>,
}

impl ProgState {
    fn live(&self) -> bool {
        Rc::strong_count(&self.alive) > 1
    }
}

fn load_failure(errno: Errno, log: &str) -> AttachFailure {
    AttachFailure {
        stage: AttachStage::Load,
        errno,
        log: log.into(),
    }
}

impl FakeKernel {
    /// `path` calls `function` of `owner` (a module, or
    /// "vmlinux").
    pub fn add_trigger(&mut self, path: &str, owner: &str, function: &str) {
        self.triggers
            .entry(path.into())
            .or_default()
            .push((owner.into(), function.into()));
    }

    /// Whether a live program holds `module`.
    pub(super) fn module_held(&self, module: &str) -> bool {
        self.progs.iter().any(|p| p.live() && p.owner == module)
    }

    /// The function a type ID names in an object, and the object's owner.
    fn target_of(
        &self,
        obj: Option<usize>,
        btf_id: u32,
    ) -> Result<(String, String), AttachFailure> {
        let (owner, name) = match obj {
            None => {
                let t = self.vmlinux.type_by_id(btf_id);
                (
                    "vmlinux".to_string(),
                    t.filter(|t| t.kind == Kind::Func)
                        .and_then(|t| self.vmlinux.name_of(None, t.name_off))
                        .map(String::from),
                )
            }
            Some(i) => {
                let o = &self.objects[i];
                if !o.live() || !o.kernel_btf {
                    return Err(load_failure(
                        libc::EINVAL,
                        "attach_btf_obj_fd is not a kernel BTF object",
                    ));
                }
                let owner = o.owner.clone().unwrap_or_else(|| "vmlinux".into());
                let btf = if owner == "vmlinux" {
                    None
                } else {
                    Some(
                        Btf::parse_split(&o.bytes, &self.vmlinux)
                            .map_err(|_| load_failure(libc::EINVAL, "bad module BTF"))?,
                    )
                };
                let name = match &btf {
                    None => self
                        .vmlinux
                        .type_by_id(btf_id)
                        .filter(|t| t.kind == Kind::Func)
                        .and_then(|t| self.vmlinux.name_of(None, t.name_off))
                        .map(String::from),
                    Some(b) => b
                        .resolve_type(Some(&self.vmlinux), btf_id)
                        .filter(|t| t.kind == Kind::Func)
                        .and_then(|t| b.name_of(Some(&self.vmlinux), t.name_off))
                        .map(String::from),
                };
                (owner, name)
            }
        };
        let name = name.ok_or_else(|| {
            load_failure(libc::EINVAL, &format!("attach_btf_id {btf_id} is invalid"))
        })?;
        // 6.1 took the first match in all of kallsyms: vmlinux's first.
        let owner = if self.faults.attach_by_name_anywhere && self.has_function("vmlinux", &name) {
            "vmlinux".to_string()
        } else {
            owner
        };
        if !self.has_function(&owner, &name) {
            return Err(load_failure(
                libc::ENOENT,
                &format!("The address of function {name} cannot be found"),
            ));
        }
        Ok((owner, name))
    }

    fn has_function(&self, owner: &str, name: &str) -> bool {
        if owner == "vmlinux" {
            return self.vmlinux_functions.contains(name);
        }
        self.loaded.iter().any(|m| m.name == owner)
            && self
                .files
                .values()
                .any(|f| f.name == owner && f.functions.iter().any(|x| x == name))
    }

    pub(super) fn attach(
        &mut self,
        t: TracingTarget<'_, super::FakeFd>,
    ) -> Result<(FakeProg, AttachedBy), AttachFailure> {
        let _: AttachKind = t.kind;
        let (owner, function) = self.target_of(t.obj.map(|f| f.obj), t.btf_id)?;
        let runs = Rc::new(Cell::new(0));
        let alive = Rc::new(());
        self.progs.push(ProgState {
            owner,
            function,
            runs: Rc::clone(&runs),
            alive: Rc::clone(&alive),
        });
        Ok((
            FakeProg {
                runs,
                _alive: alive,
            },
            AttachedBy::LinkCreate,
        ))
    }

    pub(super) fn run_count(&self, p: &FakeProg) -> u64 {
        if self.faults.runs_not_counted {
            0
        } else {
            p.runs.get()
        }
    }

    /// Calls what `key` (a path) triggers; ENOENT for a path nothing answers.
    pub(super) fn fire(&mut self, key: &str) -> Result<(), Errno> {
        let calls = self.triggers.get(key).cloned().ok_or(libc::ENOENT)?;
        for (owner, function) in calls {
            if owner != "vmlinux" && !self.loaded.iter().any(|m| m.name == owner) {
                return Err(libc::ENOENT);
            }
            for p in self.progs.iter().filter(|p| p.live()) {
                if p.owner == owner && p.function == function {
                    p.runs.set(p.runs.get() + 1);
                }
            }
        }
        Ok(())
    }
}
