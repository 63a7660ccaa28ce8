//! The tracing steps: `attach` (an fentry or fexit program for a module's
//! function, found by name in the module's split BTF and named by the
//! module's BTF object), `trigger`, `expect_runs` and `detach`.

use std::time::{Duration, Instant};

use btfvm_btf::{Btf, Kind};
use btfvm_proto::step::{errno_name, Expect};
use btfvm_proto::tracing::{AttachArgs, RunsArgs, Trigger, Via};

use crate::agent::{Agent, Scenario, R};
use crate::btfobj;
use crate::kernel::{AttachStage, Kernel, TracingTarget};
use crate::sys::errno_text;

/// An attached program of a scenario.
pub struct Attached<K: Kernel> {
    pub prog: K::Prog,
    /// "fentry btfvm_test_func (btfvm_test's BTF object 7, type 94983)".
    pub label: String,
}

/// After a detach the kernel drops its module reference only once the
/// program is freed, after an RCU grace period: an unload right then can
/// still see EAGAIN. Measured well under this.
pub const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Where a function name was found: the module's own types or vmlinux's
/// under them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoundIn {
    Module,
    Vmlinux,
}

/// The FUNC named `name`, from the side the program names: through the
/// module's object, its own types first, then the base's, as libbpf looks
/// names up in split BTF; through vmlinux's, vmlinux's first. A name only
/// the module has still resolves to the module's type, so naming vmlinux
/// with it gets the kernel's own refusal. Why the order matters: pahole
/// 1.32 gives a module function with the prototype of a vmlinux function
/// of the same name a FUNC of its own, where 1.24 and 1.30 do not (the
/// nightly matrix on 7.2, 2026-12-07); the module's id under vmlinux's
/// object is then invalid.
fn find_func(module: &Btf, vmlinux: &Btf, name: &str, via: Via) -> Option<(u32, FoundIn)> {
    let own = || {
        module
            .find_by_name(Some(vmlinux), Kind::Func, name)
            .map(|t| (t.id, FoundIn::Module))
    };
    let base = || {
        vmlinux
            .find_by_name(None, Kind::Func, name)
            .map(|t| (t.id, FoundIn::Vmlinux))
    };
    match via {
        Via::Module => own().or_else(base),
        Via::Vmlinux => base().or_else(own),
    }
}

impl<K: Kernel> Agent<'_, K> {
    /// The module's BTF object's fd and its BTF, parsed over vmlinux's.
    fn module_btf_parsed(&mut self, module: &str) -> Result<(u32, K::Fd, Btf), String> {
        let obj = self.module_object(module)?;
        let fd = self
            .kernel
            .btf_fd_by_id(obj.id)
            .map_err(|e| format!("BTF_GET_FD_BY_ID({}): {}", obj.id, errno_text(e)))?;
        let (info, _) = btfobj::info(&mut self.kernel, &fd)?;
        let bytes = btfobj::bytes(&mut self.kernel, &fd, info.btf_size)?;
        let vmlinux = self.vmlinux_btf()?;
        let btf = Btf::parse_split(&bytes, vmlinux).map_err(|e| {
            format!(
                "{module}'s BTF (object {}) is not split BTF over vmlinux: {e}",
                obj.id
            )
        })?;
        Ok((obj.id, fd, btf))
    }

    pub(crate) fn attach(&mut self, sc: &mut Scenario<K>, a: &AttachArgs) -> R {
        if sc.attached.contains_key(&a.name) {
            return Err(format!("{:?} is attached already in this scenario", a.name));
        }
        let (obj_id, fd, btf) = self.module_btf_parsed(&a.module)?;
        let (btf_id, found) = {
            let vmlinux = self.vmlinux_btf()?;
            find_func(&btf, vmlinux, &a.function, a.via).ok_or_else(|| {
                format!(
                    "no FUNC named {:?} in {}'s BTF (object {obj_id}) or in vmlinux's under it",
                    a.function, a.module
                )
            })?
        };
        let whose = match found {
            FoundIn::Module => format!("{}'s own type {btf_id}", a.module),
            FoundIn::Vmlinux => format!("type {btf_id}, vmlinux's, through {}'s BTF", a.module),
        };
        let (obj, named) = match a.via {
            Via::Module => (Some(&fd), format!("{}'s BTF object {obj_id}", a.module)),
            Via::Vmlinux => (None, "vmlinux's BTF (attach_btf_obj_fd 0)".to_string()),
        };
        let label = format!(
            "{} {} ({whose}, naming {named})",
            a.kind.as_str(),
            a.function
        );
        let target = TracingTarget {
            kind: a.kind,
            obj,
            btf_id,
        };
        let r = self.kernel.attach_tracing(target);
        match (r, &a.expect) {
            (Ok((prog, by)), Expect::Ok) => {
                sc.obs
                    .notes
                    .push(format!("attached {label} with {}", by.as_str()));
                sc.attached.insert(a.name.clone(), Attached { prog, label });
                Ok(())
            }
            (Ok(_), Expect::Errno(want)) => Err(format!("{label}: attached, expected {want}")),
            (Err(f), want) => {
                let stage = match f.stage {
                    AttachStage::Load => "BPF_PROG_LOAD",
                    AttachStage::Attach => "the attach",
                };
                let log = if f.log.is_empty() {
                    String::new()
                } else {
                    format!("; verifier log: {}", f.log.replace('\n', " | "))
                };
                match want {
                    Expect::Errno(w) if errno_name(f.errno) == *w => {
                        sc.obs.notes.push(format!(
                            "{label}: {stage} failed with {w}, as expected{log}"
                        ));
                        Ok(())
                    }
                    Expect::Errno(w) => Err(format!(
                        "{label}: {stage} failed with {}, expected {w}{log}",
                        errno_text(f.errno)
                    )),
                    Expect::Ok => Err(format!(
                        "{label}: {stage} failed with {}{log}",
                        errno_text(f.errno)
                    )),
                }
            }
        }
    }

    pub(crate) fn detach(&mut self, sc: &mut Scenario<K>, name: &str) -> R {
        let a = sc
            .attached
            .remove(name)
            .ok_or_else(|| format!("nothing attached as {name:?} (it failed or was detached)"))?;
        drop(a);
        sc.detached_at = Some(Instant::now());
        Ok(())
    }

    pub(crate) fn trigger(&mut self, _sc: &mut Scenario<K>, t: &Trigger) -> R {
        match t {
            Trigger::Write { path, value } => self
                .kernel
                .write_file(path, value.as_bytes())
                .map_err(|e| format!("writing {value:?} to {path}: {e}")),
            Trigger::Read(path) => self
                .kernel
                .read_file(path)
                .map(|_| ())
                .map_err(|e| format!("reading {path}: {e}")),
        }
    }

    pub(crate) fn expect_runs(&mut self, sc: &mut Scenario<K>, r: &RunsArgs) -> R {
        let a = sc.attached.get(&r.attach).ok_or_else(|| {
            format!(
                "nothing attached as {:?} (it failed or was detached)",
                r.attach
            )
        })?;
        let n = self
            .kernel
            .prog_run_count(&a.prog)
            .map_err(|e| format!("{}: reading run_cnt: {}", a.label, errno_text(e)))?;
        sc.obs.notes.push(format!("{}: ran {n} time(s)", a.label));
        if n == r.count {
            Ok(())
        } else {
            Err(format!("{} ran {n} time(s), expected {}", a.label, r.count))
        }
    }
}

/// Retries `unload` on EAGAIN while a detached program may still hold the
/// module (see [`RELEASE_WAIT`]); any other answer is final at once.
pub fn unload_after_detach<F: FnMut() -> Result<(), i32>>(
    detached_at: Option<Instant>,
    mut unload: F,
) -> Result<(), i32> {
    loop {
        let r = unload();
        match (r, detached_at) {
            (Err(libc::EAGAIN), Some(t)) if t.elapsed() < RELEASE_WAIT => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => return r,
        }
    }
}
