//! The checks of the step vocabulary (`expect_*`, `hold_btf_fd`), each
//! against the kernel: its BTF objects, /sys/kernel/btf, the kernel log and
//! the config.

use std::collections::BTreeSet;

use btfvm_btf::Btf;
use btfvm_proto::{BtfObject, KernelFacts};

use crate::agent::{ensure, Agent, Scenario, R};
use crate::btfobj::{self, sysfs_path};
use crate::kernel::{InfoError, InfoQuery, Kernel, NameBuf};
use crate::sys::errno_text;

impl<K: Kernel> Agent<'_, K> {
    fn btf_fd(&mut self, id: u32) -> Result<K::Fd, String> {
        self.kernel
            .btf_fd_by_id(id)
            .map_err(|e| format!("BTF_GET_FD_BY_ID({id}): {}", errno_text(e)))
    }

    pub(crate) fn expect_vmlinux_btf(&mut self, sc: &mut Scenario<K>) -> R {
        let id = self.vmlinux_id()?;
        let fd = self.btf_fd(id)?;
        let (info, name) = btfobj::info(&mut self.kernel, &fd)?;
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
        let through_obj = btfobj::bytes(&mut self.kernel, &fd, info.btf_size)?;
        let sysfs = self.vmlinux_sysfs()?;
        ensure(info.btf_size as usize == sysfs.len(), || {
            format!(
                "vmlinux BTF object {id}: btf_size {} != {} bytes in {path}",
                info.btf_size,
                sysfs.len()
            )
        })?;
        // memcmp first: a byte loop over 5 MB is tens of ms under TCG.
        if through_obj != sysfs {
            let off = through_obj.iter().zip(sysfs).position(|(a, b)| a != b);
            return Err(format!(
                "vmlinux BTF object {id} and {path} differ first at byte {}",
                off.unwrap_or(sysfs.len())
            ));
        }
        sc.obs
            .notes
            .push(format!("vmlinux: BTF object {id}, {} bytes", info.btf_size));
        Ok(())
    }

    pub(crate) fn module_object(&mut self, module: &str) -> Result<BtfObject, String> {
        let objs = self.objects()?;
        let mine: Vec<_> = objs.into_iter().filter(|o| o.name == module).collect();
        match <[_; 1]>::try_from(mine) {
            Ok([one]) => Ok(one),
            Err(v) if v.is_empty() => Err(format!("no BTF object named {module:?}")),
            Err(v) => Err(format!("{} BTF objects named {module:?}: {v:?}", v.len())),
        }
    }

    pub(crate) fn expect_module_btf(&mut self, sc: &mut Scenario<K>, module: &str) -> R {
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
        let obj = self.module_object(module).map_err(|e| {
            // The file itself can tell why no object appeared.
            match sc.loaded_from.get(module) {
                Some(entry) if entry.btf_bytes.is_none() => format!(
                    "{e}; the module file loaded ({}) has no .BTF section",
                    entry.file
                ),
                _ => e,
            }
        })?;
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
        self.expect_module_sysfs(module, &obj)?;
        sc.obs.notes.push(format!(
            "{module}: BTF object {}, {} bytes, vmlinux is {vmlinux_id}",
            obj.id, obj.btf_size
        ));
        Ok(())
    }

    /// /sys/kernel/btf/<module> is 0444 and holds the object's bytes.
    fn expect_module_sysfs(&mut self, module: &str, obj: &BtfObject) -> R {
        let path = sysfs_path(module);
        let stat = self
            .kernel
            .sysfs_btf_stat(module)
            .map_err(|e| format!("{path}: {e}"))?;
        ensure(stat.mode == 0o444, || {
            format!("{path} has mode {:04o}, expected 0444", stat.mode)
        })?;
        let sysfs = btfobj::sysfs_read(&mut self.kernel, module)?;
        ensure(sysfs.len() == obj.btf_size as usize, || {
            format!(
                "{path} has {} bytes, BTF object {} has btf_size {}",
                sysfs.len(),
                obj.id,
                obj.btf_size
            )
        })?;
        let fd = self.btf_fd(obj.id)?;
        let bytes = btfobj::bytes(&mut self.kernel, &fd, obj.btf_size)?;
        ensure(bytes == sysfs, || {
            format!("{path} and BTF object {} hold different bytes", obj.id)
        })
    }

    pub(crate) fn expect_split_btf(&mut self, sc: &mut Scenario<K>, module: &str) -> R {
        let path = sysfs_path(module);
        let data = btfobj::sysfs_read(&mut self.kernel, module)?;
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

    pub(crate) fn expect_distilled_base(&mut self, sc: &mut Scenario<K>, module: &str) -> R {
        let entry = sc.loaded_from.get(module).cloned().ok_or_else(|| {
            format!(
                "{module} was not loaded by this scenario: add `load: {module}` before this step"
            )
        })?;
        let base_types = entry.btf_base_types.ok_or_else(|| {
            format!(
                "{module} was loaded from {}, which has no .BTF.base: nothing for the kernel to relocate",
                entry.file
            )
        })?;
        let vmlinux_types = self.vmlinux_btf()?.types().len();
        self.expect_split_btf(sc, module)?;
        sc.obs.notes.push(format!(
            "{module}: the file's .BTF is split over a distilled base of {base_types} types; the kernel's copy over vmlinux's {vmlinux_types}"
        ));
        Ok(())
    }

    pub(crate) fn expect_btf_struct(
        &mut self,
        sc: &mut Scenario<K>,
        a: &btfvm_proto::step::StructArgs,
    ) -> R {
        let path = sysfs_path(&a.module);
        let data = btfobj::sysfs_read(&mut self.kernel, &a.module)?;
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

    pub(crate) fn expect_chain_btf(&mut self, sc: &mut Scenario<K>, module: &str) -> R {
        let plan = self.plan;
        let entry = plan
            .modules
            .get(module)
            .ok_or_else(|| format!("module {module} is not in the initramfs"))?;
        let mut chain: Vec<String> = entry
            .deps
            .iter()
            .filter_map(|d| plan.modules.get(d).map(|e| e.name.clone()))
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
            let id = sc.module_ids.get(m).copied().unwrap_or_default();
            ensure(ids.insert(id), || {
                format!("{m} shares BTF ID {id} with another module of the chain")
            })?;
        }
        sc.obs
            .notes
            .push(format!("chain {}: IDs {ids:?}", chain.join(" <- ")));
        Ok(())
    }

    pub(crate) fn expect_no_module_btf(&mut self, sc: &mut Scenario<K>, module: &str) -> R {
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
        ensure(!self.kernel.sysfs_btf_exists(module), || {
            format!("{path} exists; expected none")
        })
    }

    pub(crate) fn hold_btf_fd(&mut self, sc: &mut Scenario<K>, module: &str) -> R {
        let obj = self.module_object(module)?;
        let fd = self.btf_fd(obj.id)?;
        sc.module_ids.insert(module.to_string(), obj.id);
        sc.held.insert(module.to_string(), fd);
        Ok(())
    }

    pub(crate) fn expect_btf_gone(&mut self, sc: &mut Scenario<K>, module: &str) -> R {
        let id = *sc
            .module_ids
            .get(module)
            .ok_or_else(|| format!("no BTF ID known for {module}: use expect_module_btf or hold_btf_fd before unloading"))?;
        let path = sysfs_path(module);
        ensure(!self.kernel.sysfs_btf_exists(module), || {
            format!("{path} still exists after unload")
        })?;
        match self.kernel.btf_fd_by_id(id) {
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
            let (info, name) = btfobj::info(&mut self.kernel, fd)
                .map_err(|e| format!("held fd on {module}'s BTF after unload: {e}"))?;
            sc.obs.notes.push(format!(
                "held fd after unload of {module}: id {} name {name:?} btf_size {}",
                info.id, info.btf_size
            ));
        }
        Ok(())
    }

    pub(crate) fn expect_user_btf(&mut self, sc: &mut Scenario<K>) -> R {
        let before = btfobj::sysfs_listing(&mut self.kernel)?;
        let blob = btfvm_btf::minimal_blob();
        let mut log = vec![0u8; 4096];
        let fd = self.kernel.btf_load(&blob, &mut log).map_err(|e| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            format!(
                "BPF_BTF_LOAD of a {}-byte blob: {}; log: {}",
                blob.len(),
                errno_text(e),
                String::from_utf8_lossy(&log[..end])
            )
        })?;
        let (info, name) = btfobj::info(&mut self.kernel, &fd)?;
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
        let after = btfobj::sysfs_listing(&mut self.kernel)?;
        ensure(before == after, || {
            format!("/sys/kernel/btf changed after BPF_BTF_LOAD: {before:?} -> {after:?}")
        })?;
        sc.obs.notes.push(format!(
            "user BTF: object {}, {} bytes",
            info.id, info.btf_size
        ));
        Ok(())
    }

    pub(crate) fn expect_name_buffer(&mut self) -> R {
        let id = self.vmlinux_id()?;
        let fd = self.btf_fd(id)?;
        let mut small = [0xffu8; 3];
        let name_len = match self
            .kernel
            .btf_info(&fd, InfoQuery::named(NameBuf::Buf(&mut small)))
        {
            Err(InfoError {
                errno: libc::ENOSPC,
                info,
            }) => info.name_len,
            Ok(_) => {
                return Err(
                    "3-byte name buffer for \"vmlinux\": GET_INFO succeeded, expected ENOSPC"
                        .into(),
                )
            }
            Err(e) => {
                return Err(format!(
                    "3-byte name buffer: {}, expected ENOSPC",
                    errno_text(e.errno)
                ))
            }
        };
        ensure(&small == b"vm\0", || {
            format!("3-byte name buffer holds {small:?}, expected \"vm\\0\"")
        })?;
        ensure(name_len == 7, || {
            format!("3-byte name buffer: name_len {name_len} , expected the full 7")
        })?;
        let mut buf = [0u8; 8];
        for (name, what) in [
            (
                NameBuf::Buf(&mut buf[..0]),
                "a name pointer with name_len 0",
            ),
            (NameBuf::Null(8), "name_len 8 with a NULL pointer"),
        ] {
            match self.kernel.btf_info(&fd, InfoQuery::named(name)) {
                Err(InfoError {
                    errno: libc::EINVAL,
                    ..
                }) => {}
                Ok(_) => return Err(format!("{what}: GET_INFO succeeded, expected EINVAL")),
                Err(e) => return Err(format!("{what}: {}, expected EINVAL", errno_text(e.errno))),
            }
        }
        Ok(())
    }

    pub(crate) fn expect_kmsg(&mut self, sc: &mut Scenario<K>, text: &str) -> R {
        ensure(self.kernel.kmsg_available(), || {
            "/dev/kmsg could not be opened".into()
        })?;
        let lines = self.kmsg_since(sc.kmsg_mark);
        ensure(lines.iter().any(|l| l.contains(text)), || {
            let tail: Vec<_> = lines.iter().rev().take(8).rev().cloned().collect();
            format!("no kernel log line contains {text:?}; last lines of this scenario: {tail:?}")
        })
    }

    pub(crate) fn expect_spec_config(&mut self) -> R {
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

    pub(crate) fn expect_pre_feature(&mut self) -> R {
        let blob = btfvm_btf::minimal_blob();
        let fd = self
            .kernel
            .btf_load(&blob, &mut [])
            .map_err(|e| format!("BPF_BTF_LOAD: {}", errno_text(e)))?;
        match btfobj::info_errno(&mut self.kernel, &fd) {
            Err(libc::E2BIG) => {}
            Err(e) => return Err(btfobj::info_failure(e)),
            Ok((i, name)) => {
                return Err(format!(
                    "the kernel answers the 5.11 bpf_btf_info (id {}, name {name:?}, kernel_btf {}): the feature is there",
                    i.id, i.kernel_btf
                ))
            }
        }
        let listing = btfobj::sysfs_listing(&mut self.kernel).unwrap_or_default();
        let modules: Vec<_> = listing.iter().filter(|e| e.name != "vmlinux").collect();
        ensure(modules.is_empty(), || {
            format!("/sys/kernel/btf lists modules on a pre-feature kernel: {modules:?}")
        })
    }
}
