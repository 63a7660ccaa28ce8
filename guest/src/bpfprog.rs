//! Tracing programs by raw bpf(2), no libbpf, no clang: a two-instruction
//! program loaded as fentry or fexit for a function named by BTF object and
//! type ID, attached with BPF_LINK_CREATE or, where the kernel refuses
//! that, BPF_RAW_TRACEPOINT_OPEN; its run count read from bpf_prog_info.
//! Offsets and values are those of include/uapi/linux/bpf.h (measured with
//! offsetof against the 6.1 header).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::{bpf, owned_fd, Attr, Errno};

const BPF_PROG_LOAD: i32 = 5;
const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
const BPF_RAW_TRACEPOINT_OPEN: i32 = 17;
const BPF_LINK_CREATE: i32 = 28;
const BPF_ENABLE_STATS: i32 = 32;

const BPF_PROG_TYPE_TRACING: u32 = 26;
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;
const BPF_STATS_RUN_TIME: u32 = 0;

/// `r0 = 0; exit`: BPF_ALU64|BPF_MOV|BPF_K to r0, then BPF_JMP|BPF_EXIT.
/// An fentry or fexit program's return value is ignored.
const PROGRAM: [u64; 2] = [0xb7, 0x95];

/// `struct bpf_prog_info` is 232 bytes in 6.1; a larger zeroed buffer is
/// accepted by every kernel (the tail past its struct must be zero).
const PROG_INFO_LEN: usize = 256;
const RUN_CNT_OFFSET: usize = 200;

/// Why an attach failed, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachStage {
    Load,
    Attach,
}

/// BPF_PROG_LOAD of the program as `attach_type` (FENTRY or FEXIT) for
/// type `btf_id` of the BTF object `obj` (None: vmlinux, fd 0). The
/// verifier's log goes to `log`.
pub fn load(
    attach_type: u32,
    obj: Option<&OwnedFd>,
    btf_id: u32,
    log: &mut [u8],
) -> Result<OwnedFd, Errno> {
    let license = CString::new("GPL").map_err(|_| libc::EINVAL)?;
    let insns: Vec<u8> = PROGRAM.iter().flat_map(|i| i.to_le_bytes()).collect();
    let obj_fd = obj.map(|f| f.as_raw_fd() as u32).unwrap_or(0);
    let (log_ptr, log_len, log_level) = if log.is_empty() {
        (0, 0, 0)
    } else {
        (log.as_mut_ptr() as u64, log.len() as u32, 1)
    };
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"btfvm_trc");
    let mut a = Attr::new()
        .u32(0, BPF_PROG_TYPE_TRACING)
        .u32(4, PROGRAM.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, log_level)
        .u32(28, log_len)
        .u64(32, log_ptr)
        .u32(68, attach_type)
        .u32(108, btf_id)
        .u32(112, obj_fd);
    for (i, b) in name.iter().enumerate() {
        a = a.u8(48 + i, *b);
    }
    bpf(BPF_PROG_LOAD, &mut a).map(owned_fd)
}

/// Which call attached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedBy {
    LinkCreate,
    RawTracepoint,
}

impl AttachedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachedBy::LinkCreate => "BPF_LINK_CREATE",
            AttachedBy::RawTracepoint => "BPF_RAW_TRACEPOINT_OPEN",
        }
    }
}

/// Attaches a loaded tracing program: BPF_LINK_CREATE (tracing programs
/// from 5.11 on) or, where the kernel answers EINVAL for that,
/// BPF_RAW_TRACEPOINT_OPEN with no name (fentry since 5.5). The link fd
/// keeps it attached.
pub fn attach(prog: &OwnedFd, attach_type: u32) -> Result<(OwnedFd, AttachedBy), Errno> {
    let mut a = Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(8, attach_type);
    match bpf(BPF_LINK_CREATE, &mut a) {
        Ok(fd) => Ok((owned_fd(fd), AttachedBy::LinkCreate)),
        Err(libc::EINVAL) => {
            let mut a = Attr::new().u32(8, prog.as_raw_fd() as u32);
            bpf(BPF_RAW_TRACEPOINT_OPEN, &mut a).map(|fd| (owned_fd(fd), AttachedBy::RawTracepoint))
        }
        Err(e) => Err(e),
    }
}

/// BPF_ENABLE_STATS: run counts are kept while the returned fd is open
/// (5.8+); elsewhere the sysctl does the same for the whole boot.
pub fn enable_stats() -> Result<Option<OwnedFd>, Errno> {
    let mut a = Attr::new().u32(0, BPF_STATS_RUN_TIME);
    match bpf(BPF_ENABLE_STATS, &mut a) {
        Ok(fd) => Ok(Some(owned_fd(fd))),
        Err(e) => std::fs::write("/proc/sys/kernel/bpf_stats_enabled", b"1")
            .map(|_| None)
            .map_err(|_| e),
    }
}

/// The program's run_cnt.
pub fn run_count(prog: &OwnedFd) -> Result<u64, Errno> {
    let mut info = [0u8; PROG_INFO_LEN];
    let mut a = Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(4, PROG_INFO_LEN as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(&info[RUN_CNT_OFFSET..RUN_CNT_OFFSET + 8]);
    Ok(u64::from_ne_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_mov_r0_0_and_exit() {
        let bytes: Vec<u8> = PROGRAM.iter().flat_map(|i| i.to_le_bytes()).collect();
        // code 0xb7 (ALU64|MOV|K), regs 0, off 0, imm 0; then code 0x95.
        assert_eq!(
            bytes,
            [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
