//! BTF objects as the bpf(2) interface shows them, and /sys/kernel/btf.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;

use btfvm_proto::{BtfObject, SysfsEntry};

use crate::sys::{self, errno_text, BtfInfo};

pub const SYSFS_BTF: &str = "/sys/kernel/btf";

/// Longest name the kernel gives a BTF object is a module name (56 bytes).
const NAME_BUF: usize = 64;

/// GET_INFO with the 5.11 fields and a name buffer. A pre-5.11 kernel
/// answers E2BIG here because the trailing fields it does not know are
/// non-zero; that is reported as such, so callers can tell "absent" from
/// "broken".
pub fn info(fd: &OwnedFd) -> Result<(BtfInfo, String), String> {
    let mut name = [0u8; NAME_BUF];
    let mut info = BtfInfo {
        name: name.as_mut_ptr() as u64,
        name_len: NAME_BUF as u32,
        ..Default::default()
    };
    sys::btf_info(fd, &mut info, std::mem::size_of::<BtfInfo>() as u32).map_err(|(e, _)| {
        if e == libc::E2BIG {
            "BPF_OBJ_GET_INFO_BY_FD gave E2BIG for the 32-byte bpf_btf_info: this kernel only knows the pre-5.11 layout".to_string()
        } else {
            format!("BPF_OBJ_GET_INFO_BY_FD failed: {}", errno_text(e))
        }
    })?;
    let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_BUF);
    Ok((info, String::from_utf8_lossy(&name[..len]).into_owned()))
}

/// The object's BTF bytes, fetched through GET_INFO.
pub fn bytes(fd: &OwnedFd, size: u32) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; size as usize];
    let mut info = BtfInfo {
        btf: buf.as_mut_ptr() as u64,
        btf_size: size,
        ..Default::default()
    };
    sys::btf_info(fd, &mut info, std::mem::size_of::<BtfInfo>() as u32).map_err(|(e, _)| {
        format!(
            "fetching {size} BTF bytes through GET_INFO failed: {}",
            errno_text(e)
        )
    })?;
    if info.btf_size != size {
        return Err(format!(
            "BTF object changed size while read: {size} then {}",
            info.btf_size
        ));
    }
    Ok(buf)
}

/// GET_INFO with the pre-5.11 16-byte `bpf_btf_info`.
fn legacy_info(fd: &OwnedFd) -> Result<BtfObject, String> {
    let mut info = BtfInfo::default();
    sys::btf_info(fd, &mut info, 16)
        .map_err(|(e, _)| format!("16-byte BPF_OBJ_GET_INFO_BY_FD failed: {}", errno_text(e)))?;
    Ok(BtfObject {
        id: info.id,
        name: String::new(),
        kernel_btf: false,
        btf_size: info.btf_size,
    })
}

/// Every BTF object, by BPF_BTF_GET_NEXT_ID. An object that goes away between
/// NEXT_ID and GET_FD_BY_ID (ENOENT) is skipped: that race is legitimate.
pub fn list() -> Result<Vec<BtfObject>, String> {
    let mut out = Vec::new();
    let mut id = 0;
    loop {
        id = match sys::btf_next_id(id) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "BPF_BTF_GET_NEXT_ID after {id} failed: {}",
                    errno_text(e)
                ))
            }
        };
        let fd = match sys::btf_fd_by_id(id) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => continue,
            Err(e) => {
                return Err(format!(
                    "BPF_BTF_GET_FD_BY_ID({id}) failed: {}",
                    errno_text(e)
                ))
            }
        };
        let obj = match info(&fd) {
            Ok((i, name)) => BtfObject {
                id: i.id,
                name,
                kernel_btf: i.kernel_btf != 0,
                btf_size: i.btf_size,
            },
            // Before 5.11 only id and size exist; the object still counts,
            // so "no new object" stays checkable there. Callers that need
            // names fail on the empty name, not here.
            Err(e) if e.contains("E2BIG") => {
                legacy_info(&fd).map_err(|e| format!("BTF object {id}: {e}"))?
            }
            Err(e) => return Err(format!("BTF object {id}: {e}")),
        };
        out.push(obj);
    }
    Ok(out)
}

pub fn sysfs_listing() -> Result<Vec<SysfsEntry>, String> {
    let dir = std::fs::read_dir(SYSFS_BTF).map_err(|e| format!("reading {SYSFS_BTF}: {e}"))?;
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| format!("reading {SYSFS_BTF}: {e}"))?;
        let meta = entry
            .metadata()
            .map_err(|e| format!("stat {:?}: {e}", entry.path()))?;
        out.push(SysfsEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn sysfs_path(name: &str) -> String {
    format!("{SYSFS_BTF}/{name}")
}
