//! Raw system calls the agent is about: module loading and bpf(2). Written by
//! hand on purpose: the exact errno is what the scenarios check, and wrappers
//! (busybox insmod, libbpf) retry or translate errors.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub type Errno = i32;

fn last_errno() -> Errno {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// finit_module(2) with `params` as insmod takes them. The host hands us decompressed ELF,
/// so no MODULE_INIT_COMPRESSED_FILE is needed (that flag is 5.17+ anyway).
pub fn finit_module(path: &str, params: &str) -> Result<(), Errno> {
    let file = std::fs::File::open(path).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let params = CString::new(params).map_err(|_| libc::EINVAL)?;
    // SAFETY: fd is open for the duration of the call, params is a valid C string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// delete_module(2) with O_NONBLOCK: fail with EWOULDBLOCK instead of waiting
/// for users of the module to go away, so a leak cannot hang the agent.
pub fn delete_module(name: &str) -> Result<(), Errno> {
    let name = CString::new(name).map_err(|_| libc::EINVAL)?;
    // SAFETY: name is a valid C string.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
const BPF_BTF_LOAD: i32 = 18;
const BPF_BTF_GET_FD_BY_ID: i32 = 19;
const BPF_BTF_GET_NEXT_ID: i32 = 23;

/// `union bpf_attr`, zeroed; the kernel requires every byte past the fields
/// of a command to be zero, so the fields are written at their UAPI offsets.
#[repr(C, align(8))]
pub(crate) struct Attr([u8; 128]);

impl Attr {
    pub(crate) fn new() -> Self {
        Attr([0; 128])
    }
    pub(crate) fn u32(mut self, off: usize, v: u32) -> Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    pub(crate) fn u8(mut self, off: usize, v: u8) -> Self {
        self.0[off] = v;
        self
    }
    pub(crate) fn u64(mut self, off: usize, v: u64) -> Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    pub(crate) fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes([
            self.0[off],
            self.0[off + 1],
            self.0[off + 2],
            self.0[off + 3],
        ])
    }
}

pub(crate) fn bpf(cmd: i32, attr: &mut Attr) -> Result<i64, Errno> {
    // SAFETY: attr is a live, writable, fully initialised buffer of the size passed.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len() as u32) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// A new fd from the kernel, moved above 0-2. PID 1 may start without
/// stdin, stdout and stderr, and then the first fd it opens is 0; a BTF fd
/// 0 passed as `attach_btf_obj_fd` means "vmlinux" (the field shares a
/// union with `attach_prog_fd`, where 0 is "none"), so no fd of ours may
/// ever be 0.
pub(crate) fn owned_fd(r: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this new fd to us.
    let fd = unsafe { OwnedFd::from_raw_fd(r as RawFd) };
    if fd.as_raw_fd() > 2 {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC on an fd we own; the duplicate is ours.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return fd;
    }
    // SAFETY: fcntl just returned this new fd; `fd` closes on drop.
    unsafe { OwnedFd::from_raw_fd(dup) }
}

/// BPF_BTF_GET_NEXT_ID: the next BTF object ID after `start`, None at the end.
pub fn btf_next_id(start: u32) -> Result<Option<u32>, Errno> {
    let mut a = Attr::new().u32(0, start);
    match bpf(BPF_BTF_GET_NEXT_ID, &mut a) {
        Ok(_) => Ok(Some(a.get_u32(4))),
        Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn btf_fd_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let mut a = Attr::new().u32(0, id);
    bpf(BPF_BTF_GET_FD_BY_ID, &mut a).map(owned_fd)
}

/// BPF_BTF_LOAD of a user blob; the kernel's verifier log goes to `log`.
pub fn btf_load(blob: &[u8], log: &mut [u8]) -> Result<OwnedFd, Errno> {
    // The kernel rejects a log pointer without a level and size (EINVAL),
    // and an empty slice still has a non-null pointer.
    let log_ptr = if log.is_empty() {
        0
    } else {
        log.as_mut_ptr() as u64
    };
    let mut a = Attr::new()
        .u64(0, blob.as_ptr() as u64)
        .u64(8, log_ptr)
        .u32(16, blob.len() as u32)
        .u32(20, log.len() as u32)
        .u32(24, if log.is_empty() { 0 } else { 1 });
    bpf(BPF_BTF_LOAD, &mut a).map(owned_fd)
}

/// `struct bpf_btf_info` as of 5.11 (name, name_len, kernel_btf added by
/// commit 5329722057d4); older kernels know only the first 16 bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct BtfInfo {
    pub btf: u64,
    pub btf_size: u32,
    pub id: u32,
    pub name: u64,
    pub name_len: u32,
    pub kernel_btf: u32,
}

/// BPF_OBJ_GET_INFO_BY_FD on a BTF fd. The caller sets the buffer pointers
/// and lengths in `info`; the kernel fills the rest. On ENOSPC (name buffer
/// too small) the kernel still copies `info` out, so it is returned with the
/// error, as the UAPI intends.
pub fn btf_info(fd: &OwnedFd, info: &mut BtfInfo, info_len: u32) -> Result<(), (Errno, u32)> {
    let mut a = Attr::new()
        .u32(0, fd.as_raw_fd() as u32)
        .u32(4, info_len)
        .u64(8, info as *mut BtfInfo as u64);
    let r = bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a);
    let written = a.get_u32(4);
    r.map(|_| ()).map_err(|e| (e, written))
}

pub fn mount(src: &str, target: &str, fstype: &str) -> Result<(), Errno> {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f) = (
        CString::new(src).map_err(|_| libc::EINVAL)?,
        CString::new(target).map_err(|_| libc::EINVAL)?,
        CString::new(fstype).map_err(|_| libc::EINVAL)?,
    );
    // SAFETY: valid C strings, no data argument.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if r == 0 || last_errno() == libc::EBUSY {
        Ok(())
    } else {
        Err(last_errno())
    }
}

pub fn power_off() -> ! {
    // SAFETY: plain syscalls; as PID 1 we own the machine.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Only reached when not allowed to power off: exiting PID 1 panics the
    // kernel, which panic=-1 and -no-reboot turn into a QEMU exit as well.
    std::process::exit(1)
}

/// Serial ports start in cooked mode: without raw mode the tty layer would
/// turn every \n of a binary frame into \r\n.
pub fn make_raw(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: termios is plain data; fd is a tty we opened.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Err(last_errno());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
            return Err(last_errno());
        }
    }
    Ok(())
}

/// Waits until the UART has sent everything: the last frame must be on the
/// wire before the agent powers the machine off.
pub fn drain(fd: RawFd) {
    // SAFETY: fd is a tty we opened.
    unsafe {
        libc::tcdrain(fd);
    }
}

pub fn errno_text(e: Errno) -> String {
    format!(
        "{} ({})",
        btfvm_proto::step::errno_name(e),
        io::Error::from_raw_os_error(e)
    )
}

/// Sets an IPv4 address and netmask on `name` and brings it up, as
/// `ip addr add` and `ip link set up` would (no ip binary in the guest).
pub fn interface_up(name: &str, addr: [u8; 4], prefix: u8) -> Result<(), Errno> {
    // SAFETY: a datagram socket used only for the interface ioctls below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(last_errno());
    }
    // SAFETY: sock is a socket we own from here on.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    let ioctl = |req: libc::c_ulong, set: &dyn Fn(&mut libc::ifreq)| -> Result<(), Errno> {
        // SAFETY: ifreq is plain data; the name fits (checked below).
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        set(&mut ifr);
        // SAFETY: sock is open, ifr lives across the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), req, &mut ifr) } < 0 {
            return Err(last_errno());
        }
        Ok(())
    };
    if name.len() >= libc::IFNAMSIZ {
        return Err(libc::EINVAL);
    }
    let sockaddr = |a: [u8; 4]| {
        // SAFETY: sockaddr_in is plain data and fits in sockaddr.
        let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(a),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: both are plain data; sockaddr_in is no larger.
        unsafe {
            std::ptr::copy_nonoverlapping(
                &sin as *const libc::sockaddr_in as *const u8,
                &mut sa as *mut libc::sockaddr as *mut u8,
                std::mem::size_of::<libc::sockaddr_in>(),
            )
        };
        sa
    };
    ioctl(libc::SIOCSIFADDR, &|r| {
        r.ifr_ifru.ifru_addr = sockaddr(addr)
    })?;
    ioctl(libc::SIOCSIFNETMASK, &|r| {
        r.ifr_ifru.ifru_netmask = sockaddr(mask.to_be_bytes())
    })?;
    ioctl(libc::SIOCSIFFLAGS, &|r| {
        r.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short
    })
}
