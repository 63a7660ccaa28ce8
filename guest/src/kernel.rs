//! What the agent needs from the kernel, as one interface: the real one
//! ([`crate::linux::Linux`]: raw syscalls, sysfs, /dev/kmsg) and, in unit
//! tests, a fake that behaves like the kernels measured.
//!
//! Buffers are passed as slices, never as UAPI pointers: only the real
//! implementation turns them into `union bpf_attr` and `struct bpf_btf_info`.

use std::io;

pub use crate::bpfprog::{AttachStage, AttachedBy};
pub use crate::sys::Errno;
use btfvm_proto::tracing::AttachKind;

/// Which `struct bpf_btf_info` a GET_INFO call passes; its size is the
/// call's `info_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoLayout {
    /// The 16 bytes every kernel knows: btf, btf_size, id.
    Legacy,
    /// 32 bytes: name, name_len and kernel_btf were added in 5.11 (commit
    /// 5329722057d4). A kernel that does not know them answers E2BIG when
    /// any of them is non-zero (bpf_check_uarg_tail_zero).
    Named,
}

impl InfoLayout {
    pub fn info_len(self) -> u32 {
        match self {
            InfoLayout::Legacy => 16,
            InfoLayout::Named => 32,
        }
    }
}

/// The (name, name_len) pair of a GET_INFO call.
#[derive(Debug)]
pub enum NameBuf<'a> {
    /// NULL and 0: no name asked for.
    None,
    /// This buffer and its length. An empty slice still has a non-NULL
    /// pointer, so it is "a pointer with name_len 0".
    Buf(&'a mut [u8]),
    /// A NULL pointer with this name_len.
    Null(u32),
}

/// One BPF_OBJ_GET_INFO_BY_FD call on a BTF fd.
#[derive(Debug)]
pub struct InfoQuery<'a> {
    pub layout: InfoLayout,
    /// Where the object's BTF bytes go (btf, btf_size); None for NULL and 0.
    pub btf: Option<&'a mut [u8]>,
    pub name: NameBuf<'a>,
}

impl<'a> InfoQuery<'a> {
    /// The 5.11 layout with a name buffer and no BTF buffer.
    pub fn named(name: NameBuf<'a>) -> Self {
        InfoQuery {
            layout: InfoLayout::Named,
            btf: None,
            name,
        }
    }
}

/// The plain fields of `struct bpf_btf_info` after a GET_INFO call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BtfInfo {
    pub btf_size: u32,
    pub id: u32,
    pub name_len: u32,
    pub kernel_btf: u32,
}

/// A failed GET_INFO. `info` is the struct as it is after the call: the
/// kernel copies it out on ENOSPC (name buffer too small) but not on
/// EINVAL or E2BIG, where it still holds what the caller passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoError {
    pub errno: Errno,
    pub info: BtfInfo,
}

/// Size and permission bits of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mode: u32,
}

/// An fentry or fexit program to load and attach: for type `btf_id` of
/// BTF object `obj` (None: vmlinux, `attach_btf_obj_fd` 0).
pub struct TracingTarget<'a, F> {
    pub kind: AttachKind,
    pub obj: Option<&'a F>,
    pub btf_id: u32,
}

/// A failed load or attach, with the verifier's log of a failed load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachFailure {
    pub stage: AttachStage,
    pub errno: Errno,
    pub log: String,
}

pub trait Kernel {
    /// An open BTF object; closed when dropped.
    type Fd;
    /// A loaded and attached tracing program; detached and closed when
    /// dropped.
    type Prog;

    /// BPF_BTF_GET_NEXT_ID: the next BTF object ID after `start`, None at
    /// the end.
    fn btf_next_id(&mut self, start: u32) -> Result<Option<u32>, Errno>;
    /// BPF_BTF_GET_FD_BY_ID.
    fn btf_fd_by_id(&mut self, id: u32) -> Result<Self::Fd, Errno>;
    /// BPF_OBJ_GET_INFO_BY_FD on a BTF fd.
    fn btf_info(&mut self, fd: &Self::Fd, query: InfoQuery<'_>) -> Result<BtfInfo, InfoError>;
    /// BPF_BTF_LOAD of a user blob; the verifier log goes to `log` (none if
    /// it is empty).
    fn btf_load(&mut self, blob: &[u8], log: &mut [u8]) -> Result<Self::Fd, Errno>;

    /// finit_module(2) of a file with insmod-style parameters.
    fn finit_module(&mut self, file: &str, params: &str) -> Result<(), Errno>;
    /// delete_module(2) with O_NONBLOCK.
    fn delete_module(&mut self, name: &str) -> Result<(), Errno>;
    /// Whether /sys/module/<name> exists.
    fn module_loaded(&mut self, name: &str) -> bool;

    /// Names of the files in /sys/kernel/btf.
    fn sysfs_btf_names(&mut self) -> io::Result<Vec<String>>;
    fn sysfs_btf_stat(&mut self, name: &str) -> io::Result<FileStat>;
    fn sysfs_btf_read(&mut self, name: &str) -> io::Result<Vec<u8>>;
    fn sysfs_btf_exists(&mut self, name: &str) -> bool;

    /// Loads a minimal tracing program for `target` and attaches it, with
    /// run counting on.
    fn attach_tracing(
        &mut self,
        target: TracingTarget<'_, Self::Fd>,
    ) -> Result<(Self::Prog, AttachedBy), AttachFailure>;
    /// The program's run_cnt.
    fn prog_run_count(&mut self, prog: &Self::Prog) -> Result<u64, Errno>;
    /// Writes a file under /sys or /proc (a trigger).
    fn write_file(&mut self, path: &str, value: &[u8]) -> io::Result<()>;
    /// Reads a file under /sys or /proc (a trigger); its length.
    fn read_file(&mut self, path: &str) -> io::Result<usize>;
    /// Runs a program (argv[0] is its path) to its end.
    fn run_program(&mut self, argv: &[String]) -> io::Result<crate::bpftool::ProgramOutput>;

    /// Whether the kernel log can be read at all.
    fn kmsg_available(&self) -> bool;
    /// Kernel log lines printed since the last call (the first line of each
    /// record).
    fn kmsg_read(&mut self) -> Vec<String>;
}
