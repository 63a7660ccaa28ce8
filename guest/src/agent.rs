//! The agent core: state of the boot and of one scenario, step dispatch,
//! module load and unload, and the cleanup that ends each scenario.

use std::collections::{BTreeSet, HashMap};

use btfvm_btf::Btf;
use btfvm_proto::message::LoadOp;
use btfvm_proto::step::{errno_name, Expect, LoadArgs, UnloadArgs};
use btfvm_proto::{
    KernelConfig, KernelFacts, LoadRecord, ModuleEntry, Observations, Plan, Step, Variant,
};

use crate::btfobj;
use crate::kernel::Kernel;
use crate::sys::errno_text;

/// State that lives for the whole boot.
pub struct Agent<'p, K: Kernel> {
    pub plan: &'p Plan,
    pub config: KernelConfig,
    pub kernel: K,
    /// Kernel log lines read this boot; scenarios keep marks into it.
    kmsg: Vec<String>,
    /// Every BTF object ID seen this boot: "new in this boot" means not here.
    seen_ids: BTreeSet<u32>,
    /// /sys/kernel/btf/vmlinux read once per boot: kernfs hands out a page
    /// per read(2), so its 5 MB take about 70 ms under TCG (bookworm).
    vmlinux_sysfs: Option<Vec<u8>>,
    /// vmlinux BTF parsed once per boot: ~4 MB, slow to parse under TCG.
    vmlinux: Option<Btf>,
    /// The result channel's fd, for self-tests that abuse it.
    pub channel: Option<i32>,
}

/// State of one scenario; what it loaded is unloaded when it ends.
pub struct Scenario<K: Kernel> {
    pub loaded: Vec<String>,
    /// The plan entry each module was loaded from (its variant's file).
    pub loaded_from: HashMap<String, ModuleEntry>,
    pub ids_before_load: HashMap<String, BTreeSet<u32>>,
    pub module_ids: HashMap<String, u32>,
    pub held: HashMap<String, K::Fd>,
    /// Attached tracing programs by their step's name.
    pub attached: HashMap<String, crate::tracing::Attached<K>>,
    /// When the last program was detached: unloads retry EAGAIN a while.
    pub detached_at: Option<std::time::Instant>,
    pub obs: Observations,
    pub kmsg_mark: usize,
}

impl<K: Kernel> Scenario<K> {
    pub fn new(kmsg_mark: usize) -> Self {
        Scenario {
            loaded: Vec::new(),
            loaded_from: HashMap::new(),
            ids_before_load: HashMap::new(),
            module_ids: HashMap::new(),
            held: HashMap::new(),
            attached: HashMap::new(),
            detached_at: None,
            obs: Observations::default(),
            kmsg_mark,
        }
    }
}

pub(crate) type R = Result<(), String>;

pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn expect_result(what: &str, got: Result<(), i32>, want: &Expect) -> R {
    match (got, want) {
        (Ok(()), Expect::Ok) => Ok(()),
        (Err(e), Expect::Errno(name)) if errno_name(e) == *name => Ok(()),
        (Ok(()), Expect::Errno(name)) => Err(format!("{what} succeeded, expected {name}")),
        (Err(e), Expect::Ok) => Err(format!("{what} failed with {}", errno_text(e))),
        (Err(e), Expect::Errno(name)) => Err(format!(
            "{what} failed with {}, expected {name}",
            errno_text(e)
        )),
    }
}

fn load_record(
    op: LoadOp,
    module: &str,
    variant: Option<Variant>,
    r: Result<(), i32>,
) -> LoadRecord {
    LoadRecord {
        op,
        module: module.to_string(),
        variant,
        errno: r.err().unwrap_or(0),
    }
}

impl<'p, K: Kernel> Agent<'p, K> {
    pub fn new(plan: &'p Plan, config: KernelConfig, kernel: K) -> Self {
        Agent {
            plan,
            config,
            kernel,
            kmsg: Vec::new(),
            seen_ids: BTreeSet::new(),
            vmlinux_sysfs: None,
            vmlinux: None,
            channel: None,
        }
    }

    /// Lists BTF objects and remembers their IDs for the boot.
    pub(crate) fn objects(&mut self) -> Result<Vec<btfvm_proto::BtfObject>, String> {
        let objs = btfobj::list(&mut self.kernel)?;
        self.seen_ids.extend(objs.iter().map(|o| o.id));
        Ok(objs)
    }

    pub(crate) fn vmlinux_id(&mut self) -> Result<u32, String> {
        let objs = self.objects()?;
        let v: Vec<_> = objs
            .iter()
            .filter(|o| o.kernel_btf && o.name == "vmlinux")
            .collect();
        match v.as_slice() {
            [one] => Ok(one.id),
            [] => Err("no kernel BTF object named \"vmlinux\"".into()),
            many => Err(format!(
                "{} kernel BTF objects named \"vmlinux\": {many:?}",
                many.len()
            )),
        }
    }

    /// The bytes of /sys/kernel/btf/vmlinux.
    pub(crate) fn vmlinux_sysfs(&mut self) -> Result<&[u8], String> {
        let data = match self.vmlinux_sysfs.take() {
            Some(data) => data,
            None => btfobj::sysfs_read(&mut self.kernel, "vmlinux")?,
        };
        Ok(self.vmlinux_sysfs.insert(data))
    }

    pub(crate) fn vmlinux_btf(&mut self) -> Result<&Btf, String> {
        let btf = match self.vmlinux.take() {
            Some(btf) => btf,
            None => Btf::parse(self.vmlinux_sysfs()?)
                .map_err(|e| format!("{} is not valid BTF: {e}", btfobj::sysfs_path("vmlinux")))?,
        };
        Ok(self.vmlinux.insert(btf))
    }

    /// Where the scenario's kernel log starts.
    pub fn kmsg_mark(&mut self) -> usize {
        self.kmsg.extend(self.kernel.kmsg_read());
        self.kmsg.len()
    }

    /// Kernel log lines since `mark`, read up to now.
    pub(crate) fn kmsg_since(&mut self, mark: usize) -> &[String] {
        let end = self.kmsg_mark();
        &self.kmsg[mark.min(end)..]
    }

    pub fn run_step(&mut self, sc: &mut Scenario<K>, step: &Step) -> R {
        match step {
            Step::Load(a) => self.load(sc, a),
            Step::Unload(a) => self.unload(sc, a),
            Step::ExpectVmlinuxBtf => self.expect_vmlinux_btf(sc),
            Step::ExpectModuleBtf(m) => self.expect_module_btf(sc, &m.0),
            Step::ExpectSplitBtf(m) => self.expect_split_btf(sc, &m.0),
            Step::ExpectBtfStruct(a) => self.expect_btf_struct(sc, a),
            Step::ExpectChainBtf(m) => self.expect_chain_btf(sc, &m.0),
            Step::ExpectNoModuleBtf(m) => self.expect_no_module_btf(sc, &m.0),
            Step::HoldBtfFd(m) => self.hold_btf_fd(sc, &m.0),
            Step::ExpectBtfGone(m) => self.expect_btf_gone(sc, &m.0),
            Step::ExpectUserBtf => self.expect_user_btf(sc),
            Step::ExpectNameBuffer => self.expect_name_buffer(),
            Step::ExpectKmsg(text) => self.expect_kmsg(sc, text),
            Step::ExpectSpecConfig => self.expect_spec_config(),
            Step::ExpectPreFeatureBtfInfo => self.expect_pre_feature(),
            Step::Selftest(what) => crate::selftest::run(*what, self.channel, self.plan.attempt),
            Step::Attach(a) => self.attach(sc, a),
            Step::Detach(name) => self.detach(sc, name),
            Step::Trigger(t) => self.trigger(sc, t),
            Step::ExpectRuns(r) => self.expect_runs(sc, r),
            Step::ExpectBpftoolBtfShow => self.expect_bpftool_btf_show(sc),
            Step::ExpectDistilledBase(m) => self.expect_distilled_base(sc, &m.0),
            Step::When(w) => {
                let facts = KernelFacts::from_config(&self.config);
                let branch = if w.condition().eval(&facts).is_ok() {
                    &w.then
                } else {
                    &w.otherwise
                };
                for (i, s) in branch.iter().enumerate() {
                    self.run_step(sc, s)
                        .map_err(|e| format!("when-branch step {}: {e}", i + 1))?;
                }
                Ok(())
            }
        }
    }

    fn load(&mut self, sc: &mut Scenario<K>, a: &LoadArgs) -> R {
        let key = a.key();
        let plan = self.plan;
        let entry = plan
            .modules
            .get(&key)
            .ok_or_else(|| format!("module {key} is not in the initramfs (host plan bug)"))?;
        // IDs seen before anything of this load ran: a dependency's BTF must
        // be new too.
        self.objects()?;
        let before = self.seen_ids.clone();
        self.load_deps(sc, a, entry, &before)?;
        sc.ids_before_load.insert(a.module.clone(), before);
        sc.loaded_from.insert(a.module.clone(), entry.clone());
        let r = self.kernel.finit_module(&entry.file, &a.params);
        sc.obs
            .loads
            .push(load_record(LoadOp::Load, &a.module, Some(a.variant), r));
        if r.is_ok() {
            sc.loaded.push(a.module.clone());
        }
        expect_result(
            &format!("finit_module({} [{}])", a.module, a.variant),
            r,
            &a.expect,
        )
    }

    /// Loads the dependencies the plan lists for `entry`, leaves first, each
    /// unless it is loaded already.
    fn load_deps(
        &mut self,
        sc: &mut Scenario<K>,
        a: &LoadArgs,
        entry: &ModuleEntry,
        before: &BTreeSet<u32>,
    ) -> R {
        let plan = self.plan;
        for dep in &entry.deps {
            let dep_entry = plan.modules.get(dep).ok_or_else(|| {
                format!("dependency {dep} of {} is not in the initramfs", a.module)
            })?;
            if self.kernel.module_loaded(&dep_entry.name) {
                continue;
            }
            let r = self.kernel.finit_module(&dep_entry.file, "");
            sc.obs.loads.push(load_record(
                LoadOp::Load,
                &dep_entry.name,
                Some(Variant::Plain),
                r,
            ));
            match r {
                Ok(()) => {
                    sc.loaded.push(dep_entry.name.clone());
                    sc.ids_before_load
                        .insert(dep_entry.name.clone(), before.clone());
                }
                Err(libc::EEXIST) => {}
                Err(e) => {
                    return Err(format!(
                        "dependency {} of {} failed to load: {}",
                        dep_entry.name,
                        a.module,
                        errno_text(e)
                    ))
                }
            }
        }
        Ok(())
    }

    fn unload(&mut self, sc: &mut Scenario<K>, a: &UnloadArgs) -> R {
        // An unload that must succeed gets the time a detached program
        // takes to let go of the module; one that must fail does not.
        let r = match a.expect {
            Expect::Ok => crate::tracing::unload_after_detach(sc.detached_at, || {
                self.kernel.delete_module(&a.module)
            }),
            Expect::Errno(_) => self.kernel.delete_module(&a.module),
        };
        sc.obs
            .loads
            .push(load_record(LoadOp::Unload, &a.module, None, r));
        if r.is_ok() {
            sc.loaded.retain(|m| m != &a.module);
        }
        expect_result(&format!("delete_module({})", a.module), r, &a.expect)
    }

    /// Ends a scenario: closes held fds and unloads what it loaded, newest
    /// first, so the next scenario starts from the same kernel state.
    pub fn cleanup(&mut self, sc: &mut Scenario<K>) -> Vec<String> {
        sc.held.clear();
        if !sc.attached.is_empty() {
            sc.attached.clear();
            sc.detached_at = Some(std::time::Instant::now());
        }
        let mut problems = Vec::new();
        while let Some(m) = sc.loaded.pop() {
            let kernel = &mut self.kernel;
            let r =
                crate::tracing::unload_after_detach(sc.detached_at, || kernel.delete_module(&m));
            if let Err(e) = r {
                problems.push(format!("cleanup: delete_module({m}): {}", errno_text(e)));
            }
        }
        problems
    }

    pub fn snapshot(&mut self, sc: &mut Scenario<K>) {
        if let Ok(objs) = self.objects() {
            sc.obs.btf_objects = objs;
        }
        sc.obs.sysfs_btf = btfobj::sysfs_listing(&mut self.kernel).unwrap_or_default();
        sc.obs.kmsg = self.kmsg_since(sc.kmsg_mark).to_vec();
    }
}
