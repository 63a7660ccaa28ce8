//! The step vocabulary, carried out against the running kernel.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;

use btfvm_btf::Btf;
use btfvm_proto::step::{errno_name, Expect, LoadArgs, UnloadArgs};
use btfvm_proto::{KernelConfig, KernelFacts, LoadRecord, Observations, Plan, Step};

use crate::btfobj::{self, sysfs_path};
use crate::kmsg::Kmsg;
use crate::sys::{self, errno_text, BtfInfo};

/// State that lives for the whole boot.
pub struct Agent<'p> {
    pub plan: &'p Plan,
    pub config: KernelConfig,
    pub kmsg: Kmsg,
    /// Every BTF object ID seen this boot: "new in this boot" means not here.
    seen_ids: BTreeSet<u32>,
    /// vmlinux BTF parsed once per boot: ~4 MB, slow to parse under TCG.
    vmlinux: Option<Btf>,
    /// The result channel's fd, for self-tests that abuse it.
    pub channel: Option<i32>,
}

/// State of one scenario; what it loaded is unloaded when it ends.
#[derive(Default)]
pub struct Scenario {
    pub loaded: Vec<String>,
    pub ids_before_load: HashMap<String, BTreeSet<u32>>,
    pub module_ids: HashMap<String, u32>,
    pub held: HashMap<String, OwnedFd>,
    pub obs: Observations,
    pub kmsg_mark: usize,
}

type R = Result<(), String>;

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R {
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

impl<'p> Agent<'p> {
    pub fn new(plan: &'p Plan, config: KernelConfig) -> Self {
        Agent {
            plan,
            config,
            kmsg: Kmsg::open(),
            seen_ids: BTreeSet::new(),
            vmlinux: None,
            channel: None,
        }
    }

    /// Lists BTF objects and remembers their IDs for the boot.
    fn objects(&mut self) -> Result<Vec<btfvm_proto::BtfObject>, String> {
        let objs = btfobj::list()?;
        self.seen_ids.extend(objs.iter().map(|o| o.id));
        Ok(objs)
    }

    fn vmlinux_id(&mut self) -> Result<u32, String> {
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

    fn vmlinux_btf(&mut self) -> Result<&Btf, String> {
        if self.vmlinux.is_none() {
            let path = sysfs_path("vmlinux");
            let data = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
            let btf = Btf::parse(&data).map_err(|e| format!("{path} is not valid BTF: {e}"))?;
            self.vmlinux = Some(btf);
        }
        Ok(self.vmlinux.as_ref().expect("set above"))
    }

    pub fn run_step(&mut self, sc: &mut Scenario, step: &Step) -> R {
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
            Step::Selftest(what) => crate::selftest::run(*what, self.channel),
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

    fn load(&mut self, sc: &mut Scenario, a: &LoadArgs) -> R {
        let key = Plan::module_key(&a.module, a.variant);
        let entry = self
            .plan
            .modules
            .get(&key)
            .ok_or_else(|| format!("module {key} is not in the initramfs (host plan bug)"))?;
        // IDs seen before anything of this load ran: a dependency's BTF must
        // be new too.
        self.objects()?;
        let before = self.seen_ids.clone();
        for dep in &entry.deps {
            let dep_entry = self
                .plan
                .modules
                .get(dep)
                .ok_or_else(|| format!("dependency {dep} of {key} is not in the initramfs"))?;
            if std::path::Path::new(&format!("/sys/module/{}", dep_entry.name)).exists() {
                continue;
            }
            let r = sys::finit_module(&dep_entry.file, "");
            sc.obs.loads.push(LoadRecord {
                op: "load".into(),
                module: dep_entry.name.clone(),
                variant: "plain".into(),
                errno: r.err().unwrap_or(0),
            });
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
        sc.ids_before_load.insert(a.module.clone(), before);
        let r = sys::finit_module(&entry.file, &a.params);
        sc.obs.loads.push(LoadRecord {
            op: "load".into(),
            module: a.module.clone(),
            variant: a.variant.to_string(),
            errno: r.err().unwrap_or(0),
        });
        if r.is_ok() {
            sc.loaded.push(a.module.clone());
        }
        expect_result(
            &format!("finit_module({} [{}])", a.module, a.variant),
            r,
            &a.expect,
        )
    }

    fn unload(&mut self, sc: &mut Scenario, a: &UnloadArgs) -> R {
        let r = sys::delete_module(&a.module);
        sc.obs.loads.push(LoadRecord {
            op: "unload".into(),
            module: a.module.clone(),
            variant: String::new(),
            errno: r.err().unwrap_or(0),
        });
        if r.is_ok() {
            sc.loaded.retain(|m| m != &a.module);
        }
        expect_result(&format!("delete_module({})", a.module), r, &a.expect)
    }

    fn expect_vmlinux_btf(&mut self, sc: &mut Scenario) -> R {
        let id = self.vmlinux_id()?;
        let fd = sys::btf_fd_by_id(id)
            .map_err(|e| format!("BTF_GET_FD_BY_ID({id}): {}", errno_text(e)))?;
        let (info, name) = btfobj::info(&fd)?;
        ensure(info.kernel_btf == 1, || {
            format!("vmlinux BTF object {id}: kernel_btf={}", info.kernel_btf)
        })?;
        ensure(info.name_len == 7, || {
            format!(
                "vmlinux BTF object {id}: name_len={} for {name:?}",
                info.name_len
            )
        })?;
        let path = sysfs_path("vmlinux");
        let sysfs = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
        ensure(info.btf_size as usize == sysfs.len(), || {
            format!(
                "vmlinux BTF object {id}: btf_size {} != {} bytes in {path}",
                info.btf_size,
                sysfs.len()
            )
        })?;
        let through_obj = btfobj::bytes(&fd, info.btf_size)?;
        if let Some(off) = through_obj.iter().zip(&sysfs).position(|(a, b)| a != b) {
            return Err(format!(
                "vmlinux BTF object {id} and {path} differ first at byte {off}"
            ));
        }
        sc.obs
            .notes
            .push(format!("vmlinux: BTF object {id}, {} bytes", info.btf_size));
        Ok(())
    }

    fn module_object(&mut self, module: &str) -> Result<btfvm_proto::BtfObject, String> {
        let objs = self.objects()?;
        let mine: Vec<_> = objs.into_iter().filter(|o| o.name == module).collect();
        match <[_; 1]>::try_from(mine) {
            Ok([one]) => Ok(one),
            Err(v) if v.is_empty() => Err(format!("no BTF object named {module:?}")),
            Err(v) => Err(format!("{} BTF objects named {module:?}: {v:?}", v.len())),
        }
    }

    fn expect_module_btf(&mut self, sc: &mut Scenario, module: &str) -> R {
        let vmlinux_id = self.vmlinux_id()?;
        // Without the IDs from before the load, "new in this boot" and
        // "exactly one new object" would check nothing.
        let before = sc.ids_before_load.get(module).cloned().ok_or_else(|| {
            format!(
                "{module} was not loaded by this scenario: add `load: {module}` before this step"
            )
        })?;
        let objs = self.objects()?;
        let loaded_here: BTreeSet<&str> = sc.loaded.iter().map(String::as_str).collect();
        if let Some(stray) = objs
            .iter()
            .find(|o| !before.contains(&o.id) && !loaded_here.contains(o.name.as_str()))
        {
            return Err(format!(
                "BTF object {} ({:?}) appeared with the load of {module} but belongs to no module this scenario loaded",
                stray.id, stray.name
            ));
        }
        let obj = self.module_object(module)?;
        ensure(obj.kernel_btf, || {
            format!("BTF object {} ({module}): kernel_btf=0", obj.id)
        })?;
        ensure(obj.id > vmlinux_id, || {
            format!(
                "BTF object {} ({module}) is not above vmlinux's ID {vmlinux_id}",
                obj.id
            )
        })?;
        ensure(!before.contains(&obj.id), || {
            format!(
                "BTF object {} ({module}) reuses an ID seen earlier in this boot",
                obj.id
            )
        })?;
        sc.module_ids.insert(module.to_string(), obj.id);
        let path = sysfs_path(module);
        let meta = std::fs::metadata(&path).map_err(|e| format!("{path}: {e}"))?;
        let mode = meta.permissions().mode() & 0o7777;
        ensure(mode == 0o444, || {
            format!("{path} has mode {mode:04o}, expected 0444")
        })?;
        let sysfs = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
        ensure(sysfs.len() == obj.btf_size as usize, || {
            format!(
                "{path} has {} bytes, BTF object {} has btf_size {}",
                sysfs.len(),
                obj.id,
                obj.btf_size
            )
        })?;
        let fd = sys::btf_fd_by_id(obj.id)
            .map_err(|e| format!("BTF_GET_FD_BY_ID({}): {}", obj.id, errno_text(e)))?;
        let bytes = btfobj::bytes(&fd, obj.btf_size)?;
        ensure(bytes == sysfs, || {
            format!("{path} and BTF object {} hold different bytes", obj.id)
        })?;
        sc.obs.notes.push(format!(
            "{module}: BTF object {}, {} bytes, vmlinux is {vmlinux_id}",
            obj.id, obj.btf_size
        ));
        Ok(())
    }

    fn expect_split_btf(&mut self, sc: &mut Scenario, module: &str) -> R {
        let path = sysfs_path(module);
        let data = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
        let base = self.vmlinux_btf()?;
        // Split BTF carries no first ID: numbering from vmlinux's last + 1
        // is what check_split assumes, and a module built against another
        // vmlinux shows up as references of the wrong kind or names in
        // the middle of vmlinux's strings.
        let rep = btfvm_btf::check_split(&data, base).map_err(|e| format!("{path}: {e}"))?;
        ensure(rep.refs_into_base >= 1, || {
            format!(
                "{path}: none of its {} type references lands in vmlinux: not split BTF",
                rep.refs
            )
        })?;
        sc.obs.notes.push(format!(
            "{module}: split BTF types {}..={}, {} refs ({} into vmlinux), {} names ({} from vmlinux)",
            rep.first_id, rep.last_id, rep.refs, rep.refs_into_base, rep.names, rep.names_into_base
        ));
        Ok(())
    }

    fn expect_btf_struct(&mut self, sc: &mut Scenario, a: &btfvm_proto::step::StructArgs) -> R {
        let path = sysfs_path(&a.module);
        let data = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
        let base = self.vmlinux_btf()?;
        let btf = Btf::parse_split(&data, base).map_err(|e| format!("{path}: {e}"))?;
        let st = btf
            .find_by_name(Some(base), btfvm_btf::Kind::Struct, &a.name)
            .ok_or_else(|| format!("{path}: no struct {} among the module's own types", a.name))?;
        let members: Vec<_> = btf
            .members(Some(base), st)
            .map(|it| it.collect())
            .unwrap_or_default();
        for (member, want) in &a.members {
            let m = members
                .iter()
                .find(|m| m.name == Some(member.as_str()))
                .ok_or_else(|| {
                    format!("struct {} (type {}) has no member {member}", a.name, st.id)
                })?;
            let target = base.type_by_id(m.type_id).ok_or_else(|| {
                format!(
                    "struct {}.{member} has type {}, which is not a vmlinux type (vmlinux ends at {}): the module carries its own copy",
                    a.name,
                    m.type_id,
                    base.last_type_id()
                )
            })?;
            let got = base.name_of(None, target.name_off).unwrap_or("<anonymous>");
            ensure(got == want, || {
                format!(
                    "struct {}.{member} points at vmlinux type {} {got:?} ({}), expected {want:?}",
                    a.name, m.type_id, target.kind
                )
            })?;
        }
        sc.obs.notes.push(format!(
            "{}: struct {} is type {} with {} members, {} checked against vmlinux",
            a.module,
            a.name,
            st.id,
            members.len(),
            a.members.len()
        ));
        Ok(())
    }

    fn expect_chain_btf(&mut self, sc: &mut Scenario, module: &str) -> R {
        let entry = self
            .plan
            .modules
            .get(module)
            .ok_or_else(|| format!("module {module} is not in the initramfs"))?;
        let mut chain: Vec<String> = entry
            .deps
            .iter()
            .filter_map(|d| self.plan.modules.get(d).map(|e| e.name.clone()))
            .collect();
        if chain.is_empty() {
            return Err(format!(
                "{module} has no dependencies on this kernel: no chain to check"
            ));
        }
        chain.push(module.to_string());
        let mut ids = BTreeSet::new();
        for m in &chain {
            self.expect_module_btf(sc, m)?;
            self.expect_split_btf(sc, m)?;
            let id = sc.module_ids[m];
            ensure(ids.insert(id), || {
                format!("{m} shares BTF ID {id} with another module of the chain")
            })?;
        }
        sc.obs
            .notes
            .push(format!("chain {}: IDs {ids:?}", chain.join(" <- ")));
        Ok(())
    }

    fn expect_no_module_btf(&mut self, sc: &mut Scenario, module: &str) -> R {
        let objs = self.objects()?;
        // Names can be missing (pre-5.11 answers carry none): then any
        // object new since the load is the module's.
        if let Some(before) = sc.ids_before_load.get(module) {
            if let Some(o) = objs
                .iter()
                .find(|o| !before.contains(&o.id) && o.name.is_empty())
            {
                return Err(format!(
                    "BTF object {} (no name: pre-5.11 answer) appeared with the load of {module}; expected none",
                    o.id
                ));
            }
        }
        if let Some(o) = objs.iter().find(|o| o.name == module) {
            return Err(format!(
                "BTF object {} is named {module:?}; expected none",
                o.id
            ));
        }
        let path = sysfs_path(module);
        ensure(!std::path::Path::new(&path).exists(), || {
            format!("{path} exists; expected none")
        })
    }

    fn hold_btf_fd(&mut self, sc: &mut Scenario, module: &str) -> R {
        let obj = self.module_object(module)?;
        let fd = sys::btf_fd_by_id(obj.id)
            .map_err(|e| format!("BTF_GET_FD_BY_ID({}): {}", obj.id, errno_text(e)))?;
        sc.module_ids.insert(module.to_string(), obj.id);
        sc.held.insert(module.to_string(), fd);
        Ok(())
    }

    fn expect_btf_gone(&mut self, sc: &mut Scenario, module: &str) -> R {
        let id = *sc
            .module_ids
            .get(module)
            .ok_or_else(|| format!("no BTF ID known for {module}: use expect_module_btf or hold_btf_fd before unloading"))?;
        let path = sysfs_path(module);
        ensure(!std::path::Path::new(&path).exists(), || {
            format!("{path} still exists after unload")
        })?;
        match sys::btf_fd_by_id(id) {
            Err(libc::ENOENT) => {}
            Ok(_) => {
                return Err(format!(
                    "BTF_GET_FD_BY_ID({id}) still opens {module}'s BTF after unload"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "BTF_GET_FD_BY_ID({id}) after unload: {}, expected ENOENT",
                    errno_text(e)
                ))
            }
        }
        let objs = self.objects()?;
        if let Some(o) = objs.iter().find(|o| o.name == module) {
            return Err(format!(
                "BTF object {} named {module:?} is still listed after unload",
                o.id
            ));
        }
        if let Some(fd) = sc.held.get(module) {
            let (info, name) = btfobj::info(fd)
                .map_err(|e| format!("held fd on {module}'s BTF after unload: {e}"))?;
            sc.obs.notes.push(format!(
                "held fd after unload of {module}: id {} name {name:?} btf_size {}",
                info.id, info.btf_size
            ));
        }
        Ok(())
    }

    fn expect_user_btf(&mut self, sc: &mut Scenario) -> R {
        let before = btfobj::sysfs_listing()?;
        let blob = btfvm_btf::minimal_blob();
        let mut log = vec![0u8; 4096];
        let fd = sys::btf_load(&blob, &mut log).map_err(|e| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            format!(
                "BPF_BTF_LOAD of a {}-byte blob: {}; log: {}",
                blob.len(),
                errno_text(e),
                String::from_utf8_lossy(&log[..end])
            )
        })?;
        let (info, name) = btfobj::info(&fd)?;
        ensure(info.kernel_btf == 0, || {
            format!("user BTF {}: kernel_btf={}", info.id, info.kernel_btf)
        })?;
        ensure(info.name_len == 0 && name.is_empty(), || {
            format!(
                "user BTF {}: name {name:?} (name_len {}), expected empty",
                info.id, info.name_len
            )
        })?;
        ensure(info.btf_size as usize == blob.len(), || {
            format!(
                "user BTF {}: btf_size {} != {}",
                info.id,
                info.btf_size,
                blob.len()
            )
        })?;
        let objs = self.objects()?;
        ensure(
            objs.iter().any(|o| o.id == info.id && !o.kernel_btf),
            || {
                format!(
                    "user BTF {} is not in the BTF_GET_NEXT_ID iteration",
                    info.id
                )
            },
        )?;
        let after = btfobj::sysfs_listing()?;
        ensure(before == after, || {
            format!("/sys/kernel/btf changed after BPF_BTF_LOAD: {before:?} -> {after:?}")
        })?;
        sc.obs.notes.push(format!(
            "user BTF: object {}, {} bytes",
            info.id, info.btf_size
        ));
        Ok(())
    }

    fn expect_name_buffer(&mut self) -> R {
        let id = self.vmlinux_id()?;
        let fd = sys::btf_fd_by_id(id)
            .map_err(|e| format!("BTF_GET_FD_BY_ID({id}): {}", errno_text(e)))?;
        let size = std::mem::size_of::<BtfInfo>() as u32;
        let mut small = [0xffu8; 3];
        let mut info = BtfInfo {
            name: small.as_mut_ptr() as u64,
            name_len: small.len() as u32,
            ..Default::default()
        };
        match sys::btf_info(&fd, &mut info, size) {
            Err((libc::ENOSPC, _)) => {}
            Ok(()) => {
                return Err(
                    "3-byte name buffer for \"vmlinux\": GET_INFO succeeded, expected ENOSPC"
                        .into(),
                )
            }
            Err((e, _)) => {
                return Err(format!(
                    "3-byte name buffer: {}, expected ENOSPC",
                    errno_text(e)
                ))
            }
        }
        ensure(&small == b"vm\0", || {
            format!("3-byte name buffer holds {small:?}, expected \"vm\\0\"")
        })?;
        ensure(info.name_len == 7, || {
            format!(
                "3-byte name buffer: name_len {} , expected the full 7",
                info.name_len
            )
        })?;
        let mut buf = [0u8; 8];
        for (ptr, len, what) in [
            (buf.as_mut_ptr() as u64, 0, "a name pointer with name_len 0"),
            (0, 8, "name_len 8 with a NULL pointer"),
        ] {
            let mut info = BtfInfo {
                name: ptr,
                name_len: len,
                ..Default::default()
            };
            match sys::btf_info(&fd, &mut info, size) {
                Err((libc::EINVAL, _)) => {}
                Ok(()) => return Err(format!("{what}: GET_INFO succeeded, expected EINVAL")),
                Err((e, _)) => return Err(format!("{what}: {}, expected EINVAL", errno_text(e))),
            }
        }
        Ok(())
    }

    fn expect_kmsg(&mut self, sc: &mut Scenario, text: &str) -> R {
        ensure(self.kmsg.available(), || {
            "/dev/kmsg could not be opened".into()
        })?;
        let lines = self.kmsg.since(sc.kmsg_mark);
        ensure(lines.iter().any(|l| l.contains(text)), || {
            let tail: Vec<_> = lines.iter().rev().take(8).rev().cloned().collect();
            format!("no kernel log line contains {text:?}; last lines of this scenario: {tail:?}")
        })
    }

    fn expect_spec_config(&mut self) -> R {
        let cond = btfvm_proto::Condition {
            config: self.plan.spec_config.clone(),
            kernel: None,
        };
        cond.eval(&KernelFacts::from_config(&self.config))
            .map_err(|e| {
                format!(
                    "kernel spec {} does not match the kernel: {e}",
                    self.plan.kernel
                )
            })
    }

    fn expect_pre_feature(&mut self) -> R {
        let blob = btfvm_btf::minimal_blob();
        let fd = sys::btf_load(&blob, &mut [])
            .map_err(|e| format!("BPF_BTF_LOAD: {}", errno_text(e)))?;
        match btfobj::info(&fd) {
            Err(e) if e.contains("E2BIG") => {}
            Err(e) => return Err(e),
            Ok((i, name)) => {
                return Err(format!(
                    "the kernel answers the 5.11 bpf_btf_info (id {}, name {name:?}, kernel_btf {}): the feature is there",
                    i.id, i.kernel_btf
                ))
            }
        }
        let listing = btfobj::sysfs_listing().unwrap_or_default();
        let modules: Vec<_> = listing.iter().filter(|e| e.name != "vmlinux").collect();
        ensure(modules.is_empty(), || {
            format!("/sys/kernel/btf lists modules on a pre-feature kernel: {modules:?}")
        })
    }

    /// Ends a scenario: closes held fds and unloads what it loaded, newest
    /// first, so the next scenario starts from the same kernel state.
    pub fn cleanup(&mut self, sc: &mut Scenario) -> Vec<String> {
        sc.held.clear();
        let mut problems = Vec::new();
        while let Some(m) = sc.loaded.pop() {
            if let Err(e) = sys::delete_module(&m) {
                problems.push(format!("cleanup: delete_module({m}): {}", errno_text(e)));
            }
        }
        problems
    }

    pub fn snapshot(&mut self, sc: &mut Scenario) {
        if let Ok(objs) = self.objects() {
            sc.obs.btf_objects = objs;
        }
        sc.obs.sysfs_btf = btfobj::sysfs_listing().unwrap_or_default();
        sc.obs.kmsg = self.kmsg.since(sc.kmsg_mark).to_vec();
    }
}
