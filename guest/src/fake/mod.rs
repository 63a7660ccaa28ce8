//! A kernel in memory, for host-side tests of the agent. It answers as the
//! kernels measured do (6.1 unless told otherwise), and [`Faults`] make it
//! answer wrongly on purpose, one way at a time, so that each check is seen
//! to fail.
//!
//! Measured on real kernels and modelled here: BTF object IDs rise and are
//! never reused within a boot; vmlinux is object 1; a module with BTF gets
//! one object named after it (kernel_btf 1) and a 0444 file in
//! /sys/kernel/btf with the same bytes; on unload both go at once, while an
//! fd held across it still answers GET_INFO with id 0 and the old name; user
//! BTF has kernel_btf 0, no name and no file, and lives as long as an fd.

mod info;
mod modules;
mod tracing;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;

use btfvm_btf::Btf;
use btfvm_proto::message::LoadOp;

use crate::kernel::{
    AttachFailure, AttachedBy, BtfInfo, Errno, FileStat, InfoError, InfoQuery, Kernel,
    TracingTarget,
};

pub use modules::{Call, ModuleFile};
pub use tracing::FakeProg;

/// Ways to misbehave, all off by default.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Loading the module (first) also creates a kernel BTF object named
    /// (second), which goes with the module.
    pub stray_on_load: Option<(String, String)>,
    /// Module BTF objects answer kernel_btf 0.
    pub module_not_kernel_btf: bool,
    /// New objects take the lowest free ID, as a plain idr_alloc would;
    /// btf_alloc_id uses idr_alloc_cyclic.
    pub reuse_ids: bool,
    /// Every file in /sys/kernel/btf has this mode instead of 0444.
    pub sysfs_mode: Option<u32>,
    /// Files in /sys/kernel/btf read back with their last byte flipped.
    pub sysfs_bytes_differ: bool,
    /// A module's /sys/kernel/btf file stays after the unload.
    pub sysfs_survives_unload: bool,
    /// A module's BTF object stays listed and openable after the unload.
    pub object_survives_unload: bool,
    /// User BTF answers kernel_btf 1.
    pub user_btf_kernel: bool,
    /// User BTF gets this name.
    pub user_btf_name: Option<String>,
    /// User BTF gets a file in /sys/kernel/btf.
    pub user_btf_sysfs: bool,
    /// A name buffer too small for the name succeeds instead of ENOSPC.
    pub short_name_ok: bool,
    /// A name buffer too small is filled to the end, without the NUL.
    pub short_name_no_nul: bool,
    /// A name buffer too small gets the copied length as name_len, not the
    /// full one.
    pub short_name_len_copied: bool,
    /// A name pointer with name_len 0 is accepted.
    pub name_ptr_without_len_ok: bool,
    /// A NULL name with name_len > 0 is accepted.
    pub null_name_with_len_ok: bool,
    /// These modules refuse delete_module with EBUSY, as a module with an
    /// init but no exit function does.
    pub stuck: BTreeSet<String>,
    /// A program's target address is the first match of its name in all of
    /// kallsyms, vmlinux first (6.1), not the named module's own symbol.
    pub attach_by_name_anywhere: bool,
    /// Programs never count their runs.
    pub runs_not_counted: bool,
    /// A module unloads while a program on one of its functions is alive.
    pub unload_while_held: bool,
    /// bpftool reports every size one byte larger.
    pub bpftool_sizes_off: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Kernel BTF: lives until its module goes (vmlinux: the whole boot).
    Kernel { alive: bool },
    /// User BTF: lives while an fd refers to it.
    Fds,
}

#[derive(Debug)]
struct Obj {
    id: u32,
    name: String,
    kernel_btf: bool,
    bytes: Vec<u8>,
    owner: Option<String>,
    life: Life,
    /// One reference per open fd, plus the fake's own.
    refs: Rc<()>,
}

impl Obj {
    fn live(&self) -> bool {
        match self.life {
            Life::Kernel { alive } => alive,
            Life::Fds => Rc::strong_count(&self.refs) > 1,
        }
    }
}

/// An open BTF object of the fake.
#[derive(Debug)]
pub struct FakeFd {
    obj: usize,
    _ref: Rc<()>,
}

struct Loaded {
    name: String,
    needs: Vec<String>,
}

pub struct FakeKernel {
    pub faults: Faults,
    /// Every module call, in order.
    pub calls: Vec<Call>,
    /// The /sys/kernel/btf files read, in order.
    pub sysfs_reads: Vec<String>,
    /// 5.10: GET_INFO knows only the 16-byte bpf_btf_info, and vmlinux BTF
    /// is no object (the ID listing of kernel BTF came with 5.11).
    pre_5_11: bool,
    /// CONFIG_DEBUG_INFO_BTF_MODULES.
    module_btf: bool,
    /// CONFIG_MODULE_ALLOW_BTF_MISMATCH: a module whose BTF fails
    /// validation loads without it instead of failing with EINVAL.
    allow_btf_mismatch: bool,
    kmsg_open: bool,
    vmlinux: Btf,
    files: BTreeMap<String, ModuleFile>,
    loaded: Vec<Loaded>,
    objects: Vec<Obj>,
    last_id: u32,
    sysfs: BTreeMap<String, Vec<u8>>,
    kmsg: Vec<String>,
    kmsg_read: usize,
    /// vmlinux's functions (its BTF's FUNC names).
    vmlinux_functions: BTreeSet<String>,
    triggers: BTreeMap<String, Vec<(String, String)>>,
    progs: Vec<tracing::ProgState>,
}

impl FakeKernel {
    /// A 6.1 kernel with this vmlinux BTF.
    pub fn new(vmlinux: &[u8]) -> Self {
        let parsed = Btf::parse(vmlinux).expect("the test's vmlinux BTF is valid");
        let vmlinux_functions = parsed
            .types()
            .iter()
            .filter(|t| t.kind == btfvm_btf::Kind::Func)
            .filter_map(|t| parsed.name_of(None, t.name_off).map(String::from))
            .collect();
        let mut k = FakeKernel {
            faults: Faults::default(),
            calls: Vec::new(),
            sysfs_reads: Vec::new(),
            pre_5_11: false,
            module_btf: true,
            allow_btf_mismatch: false,
            kmsg_open: true,
            vmlinux: parsed,
            files: BTreeMap::new(),
            loaded: Vec::new(),
            objects: Vec::new(),
            last_id: 0,
            sysfs: BTreeMap::new(),
            kmsg: Vec::new(),
            kmsg_read: 0,
            vmlinux_functions,
            triggers: BTreeMap::new(),
            progs: Vec::new(),
        };
        k.sysfs.insert("vmlinux".into(), vmlinux.to_vec());
        k.add_object("vmlinux", true, vmlinux.to_vec(), None);
        k
    }

    /// A 5.10 kernel: no module BTF, no vmlinux object, 16-byte GET_INFO.
    pub fn v5_10(vmlinux: &[u8]) -> Self {
        let mut k = Self::new(vmlinux);
        k.objects.clear();
        k.last_id = 0;
        k.pre_5_11 = true;
        k.module_btf = false;
        k
    }

    /// Sets CONFIG_DEBUG_INFO_BTF_MODULES.
    pub fn module_btf(mut self, on: bool) -> Self {
        self.module_btf = on;
        self
    }

    pub fn allow_btf_mismatch(mut self) -> Self {
        self.allow_btf_mismatch = true;
        self
    }

    pub fn without_kmsg(mut self) -> Self {
        self.kmsg_open = false;
        self
    }

    pub fn add_file(&mut self, path: &str, file: ModuleFile) {
        self.files.insert(path.into(), file);
    }

    /// Loads a module before the agent runs, as modprobe at boot would.
    pub fn preload(&mut self, path: &str) {
        let r = self.finit_module(path, "");
        assert_eq!(r, Ok(()), "preloading {path}");
        self.calls.clear();
    }

    /// Loaded modules, oldest first.
    pub fn loaded(&self) -> Vec<&str> {
        self.loaded.iter().map(|m| m.name.as_str()).collect()
    }

    pub fn open_fds(&self) -> usize {
        self.objects
            .iter()
            .map(|o| Rc::strong_count(&o.refs) - 1)
            .sum()
    }

    /// IDs of the objects BPF_BTF_GET_NEXT_ID would list.
    pub fn live_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .objects
            .iter()
            .filter(|o| o.live())
            .map(|o| o.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn log(&mut self, line: String) {
        self.kmsg.push(line);
    }

    fn new_id(&mut self) -> u32 {
        if self.faults.reuse_ids {
            let used: BTreeSet<u32> = self.live_ids().into_iter().collect();
            return (1..).find(|id| !used.contains(id)).unwrap_or(u32::MAX);
        }
        self.last_id += 1;
        self.last_id
    }

    fn add_object(&mut self, name: &str, kernel_btf: bool, bytes: Vec<u8>, owner: Option<&str>) {
        let id = self.new_id();
        self.objects.push(Obj {
            id,
            name: name.into(),
            kernel_btf,
            bytes,
            owner: owner.map(String::from),
            life: Life::Kernel { alive: true },
            refs: Rc::new(()),
        });
    }
}

impl Kernel for FakeKernel {
    type Fd = FakeFd;
    type Prog = FakeProg;

    fn attach_tracing(
        &mut self,
        target: TracingTarget<'_, FakeFd>,
    ) -> Result<(FakeProg, AttachedBy), AttachFailure> {
        self.attach(target)
    }

    fn prog_run_count(&mut self, prog: &FakeProg) -> Result<u64, Errno> {
        Ok(self.run_count(prog))
    }

    fn write_file(&mut self, path: &str, _value: &[u8]) -> io::Result<()> {
        self.fire(path).map_err(io::Error::from_raw_os_error)
    }

    fn run_program(&mut self, argv: &[String]) -> io::Result<crate::bpftool::ProgramOutput> {
        Ok(self.bpftool(argv))
    }

    fn read_file(&mut self, path: &str) -> io::Result<usize> {
        self.fire(path)
            .map(|()| 0)
            .map_err(io::Error::from_raw_os_error)
    }

    fn btf_next_id(&mut self, start: u32) -> Result<Option<u32>, Errno> {
        Ok(self.live_ids().into_iter().find(|&id| id > start))
    }

    fn btf_fd_by_id(&mut self, id: u32) -> Result<FakeFd, Errno> {
        let obj = self
            .objects
            .iter()
            .position(|o| o.id == id && o.live())
            .ok_or(libc::ENOENT)?;
        Ok(FakeFd {
            obj,
            _ref: Rc::clone(&self.objects[obj].refs),
        })
    }

    fn btf_info(&mut self, fd: &FakeFd, query: InfoQuery<'_>) -> Result<BtfInfo, InfoError> {
        self.get_info(fd, query)
    }

    fn btf_load(&mut self, blob: &[u8], log: &mut [u8]) -> Result<FakeFd, Errno> {
        if let Err(e) = Btf::parse(blob) {
            let text = e.to_string();
            let n = text.len().min(log.len().saturating_sub(1));
            if !log.is_empty() {
                log[..n].copy_from_slice(&text.as_bytes()[..n]);
                log[n] = 0;
            }
            return Err(libc::EINVAL);
        }
        let id = self.new_id();
        let name = self.faults.user_btf_name.clone().unwrap_or_default();
        if self.faults.user_btf_sysfs {
            self.sysfs.insert(format!("btf_{id}"), blob.to_vec());
        }
        let refs = Rc::new(());
        let fd = FakeFd {
            obj: self.objects.len(),
            _ref: Rc::clone(&refs),
        };
        self.objects.push(Obj {
            id,
            name,
            kernel_btf: self.faults.user_btf_kernel,
            bytes: blob.to_vec(),
            owner: None,
            life: Life::Fds,
            refs,
        });
        Ok(fd)
    }

    fn finit_module(&mut self, file: &str, _params: &str) -> Result<(), Errno> {
        let Some(m) = self.files.get(file).cloned() else {
            return Err(libc::ENOENT);
        };
        let result = self.load(&m);
        self.calls.push(Call {
            op: LoadOp::Load,
            module: m.name,
            result,
        });
        result
    }

    fn delete_module(&mut self, name: &str) -> Result<(), Errno> {
        let result = self.unload(name);
        self.calls.push(Call {
            op: LoadOp::Unload,
            module: name.into(),
            result,
        });
        result
    }

    fn module_loaded(&mut self, name: &str) -> bool {
        self.loaded.iter().any(|m| m.name == name)
    }

    fn sysfs_btf_names(&mut self) -> io::Result<Vec<String>> {
        Ok(self.sysfs.keys().cloned().collect())
    }

    fn sysfs_btf_stat(&mut self, name: &str) -> io::Result<FileStat> {
        let data = self.sysfs.get(name).ok_or_else(enoent)?;
        Ok(FileStat {
            size: data.len() as u64,
            mode: self.faults.sysfs_mode.unwrap_or(0o444),
        })
    }

    fn sysfs_btf_read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        self.sysfs_reads.push(name.to_string());
        let mut data = self.sysfs.get(name).ok_or_else(enoent)?.clone();
        if self.faults.sysfs_bytes_differ {
            if let Some(last) = data.last_mut() {
                *last ^= 0xff;
            }
        }
        Ok(data)
    }

    fn sysfs_btf_exists(&mut self, name: &str) -> bool {
        self.sysfs.contains_key(name)
    }

    fn kmsg_available(&self) -> bool {
        self.kmsg_open
    }

    fn kmsg_read(&mut self) -> Vec<String> {
        if !self.kmsg_open {
            return Vec::new();
        }
        let new = self.kmsg[self.kmsg_read..].to_vec();
        self.kmsg_read = self.kmsg.len();
        new
    }
}

impl FakeKernel {
    /// bpftool's `btf show` and `-j btf show` of the live objects, in
    /// bpftool 7.1's formats.
    fn bpftool(&self, argv: &[String]) -> crate::bpftool::ProgramOutput {
        let off = u64::from(self.faults.bpftool_sizes_off);
        let objs: Vec<&Obj> = self.objects.iter().filter(|o| o.live()).collect();
        let json = argv.iter().any(|a| a == "-j");
        let stdout = if json {
            let items: Vec<String> = objs
                .iter()
                .map(|o| {
                    let name = if o.name.is_empty() {
                        String::new()
                    } else {
                        format!(r#","name":"{}""#, o.name)
                    };
                    format!(
                        r#"{{"id":{},"size":{},"prog_ids":[],"map_ids":[],"kernel":{}{name}}}"#,
                        o.id,
                        o.bytes.len() as u64 + off,
                        o.kernel_btf
                    )
                })
                .collect();
            format!("[{}]", items.join(","))
        } else {
            objs.iter()
                .map(|o| {
                    let name = if o.kernel_btf {
                        format!("[{}]", o.name)
                    } else {
                        "<anon>".into()
                    };
                    format!(
                        "{}: name {name}  size {}B\n",
                        o.id,
                        o.bytes.len() as u64 + off
                    )
                })
                .collect()
        };
        crate::bpftool::ProgramOutput {
            status: Some(0),
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        }
    }
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}
