//! BTF objects as the bpf(2) interface shows them, and /sys/kernel/btf.

use btfvm_proto::{BtfObject, SysfsEntry};

use crate::kernel::{BtfInfo, Errno, InfoLayout, InfoQuery, Kernel, NameBuf};
use crate::sys::errno_text;

pub const SYSFS_BTF: &str = "/sys/kernel/btf";

/// Longest name the kernel gives a BTF object is a module name (56 bytes).
const NAME_BUF: usize = 64;

/// GET_INFO with the 5.11 fields and a name buffer, as the errno. A
/// pre-5.11 kernel answers E2BIG here because the trailing fields it does
/// not know are non-zero; callers tell "absent" from "broken" by it.
pub fn info_errno<K: Kernel>(k: &mut K, fd: &K::Fd) -> Result<(BtfInfo, String), Errno> {
    let mut name = [0u8; NAME_BUF];
    let info = k
        .btf_info(fd, InfoQuery::named(NameBuf::Buf(&mut name)))
        .map_err(|e| e.errno)?;
    let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_BUF);
    Ok((info, String::from_utf8_lossy(&name[..len]).into_owned()))
}

/// [`info_errno`] with the failure said in words.
pub fn info<K: Kernel>(k: &mut K, fd: &K::Fd) -> Result<(BtfInfo, String), String> {
    info_errno(k, fd).map_err(info_failure)
}

pub fn info_failure(e: Errno) -> String {
    if e == libc::E2BIG {
        "BPF_OBJ_GET_INFO_BY_FD gave E2BIG for the 32-byte bpf_btf_info: this kernel only knows the pre-5.11 layout".to_string()
    } else {
        format!("BPF_OBJ_GET_INFO_BY_FD failed: {}", errno_text(e))
    }
}

/// The object's BTF bytes, fetched through GET_INFO.
pub fn bytes<K: Kernel>(k: &mut K, fd: &K::Fd, size: u32) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; size as usize];
    let query = InfoQuery {
        layout: InfoLayout::Named,
        btf: Some(&mut buf),
        name: NameBuf::None,
    };
    let info = k.btf_info(fd, query).map_err(|e| {
        format!(
            "fetching {size} BTF bytes through GET_INFO failed: {}",
            errno_text(e.errno)
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
fn legacy_info<K: Kernel>(k: &mut K, fd: &K::Fd) -> Result<BtfObject, String> {
    let query = InfoQuery {
        layout: InfoLayout::Legacy,
        btf: None,
        name: NameBuf::None,
    };
    let info = k.btf_info(fd, query).map_err(|e| {
        format!(
            "16-byte BPF_OBJ_GET_INFO_BY_FD failed: {}",
            errno_text(e.errno)
        )
    })?;
    Ok(BtfObject {
        id: info.id,
        name: String::new(),
        kernel_btf: false,
        btf_size: info.btf_size,
    })
}

/// Every BTF object, by BPF_BTF_GET_NEXT_ID. An object that goes away between
/// NEXT_ID and GET_FD_BY_ID (ENOENT) is skipped: that race is legitimate.
pub fn list<K: Kernel>(k: &mut K) -> Result<Vec<BtfObject>, String> {
    let mut out = Vec::new();
    let mut id = 0;
    loop {
        id = match k.btf_next_id(id) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "BPF_BTF_GET_NEXT_ID after {id} failed: {}",
                    errno_text(e)
                ))
            }
        };
        let fd = match k.btf_fd_by_id(id) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => continue,
            Err(e) => {
                return Err(format!(
                    "BPF_BTF_GET_FD_BY_ID({id}) failed: {}",
                    errno_text(e)
                ))
            }
        };
        let obj = match info_errno(k, &fd) {
            Ok((i, name)) => BtfObject {
                id: i.id,
                name,
                kernel_btf: i.kernel_btf != 0,
                btf_size: i.btf_size,
            },
            // Before 5.11 only id and size exist; the object still counts,
            // so "no new object" stays checkable there. Callers that need
            // names fail on the empty name, not here.
            Err(libc::E2BIG) => legacy_info(k, &fd).map_err(|e| format!("BTF object {id}: {e}"))?,
            Err(e) => return Err(format!("BTF object {id}: {}", info_failure(e))),
        };
        out.push(obj);
    }
    Ok(out)
}

pub fn sysfs_listing<K: Kernel>(k: &mut K) -> Result<Vec<SysfsEntry>, String> {
    let names = k
        .sysfs_btf_names()
        .map_err(|e| format!("reading {SYSFS_BTF}: {e}"))?;
    let mut out = Vec::new();
    for name in names {
        let stat = k
            .sysfs_btf_stat(&name)
            .map_err(|e| format!("stat {:?}: {e}", std::path::Path::new(&sysfs_path(&name))))?;
        out.push(SysfsEntry {
            name,
            size: stat.size,
            mode: stat.mode,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn sysfs_path(name: &str) -> String {
    format!("{SYSFS_BTF}/{name}")
}

/// Reads /sys/kernel/btf/<name>, the error naming the file.
pub fn sysfs_read<K: Kernel>(k: &mut K, name: &str) -> Result<Vec<u8>, String> {
    k.sysfs_btf_read(name)
        .map_err(|e| format!("reading {}: {e}", sysfs_path(name)))
}
