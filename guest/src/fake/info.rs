//! BPF_OBJ_GET_INFO_BY_FD on a BTF fd in the fake, after the kernel's
//! bpf_obj_get_info_by_fd and btf_get_info_by_fd.

use super::{FakeFd, FakeKernel, Obj};
use crate::kernel::{BtfInfo, Errno, InfoError, InfoLayout, InfoQuery, NameBuf};

impl FakeKernel {
    pub(super) fn get_info(&self, fd: &FakeFd, query: InfoQuery<'_>) -> Result<BtfInfo, InfoError> {
        let InfoQuery { layout, btf, name } = query;
        let named = layout == InfoLayout::Named;
        // The struct as the caller passed it.
        let passed = BtfInfo {
            btf_size: btf.as_ref().map_or(0, |b| b.len() as u32),
            id: 0,
            name_len: match (&name, named) {
                (NameBuf::Buf(b), true) => b.len() as u32,
                (NameBuf::Null(len), true) => *len,
                _ => 0,
            },
            kernel_btf: 0,
        };
        let trailing = passed.name_len != 0 || matches!(name, NameBuf::Buf(_));
        // bpf_check_uarg_tail_zero: bytes past what the kernel knows must
        // be zero.
        if named && self.pre_5_11 && trailing {
            return Err(InfoError {
                errno: libc::E2BIG,
                info: passed,
            });
        }
        let obj = &self.objects[fd.obj];
        if let Some(buf) = btf {
            let n = buf.len().min(obj.bytes.len());
            buf[..n].copy_from_slice(&obj.bytes[..n]);
        }
        let mut out = self.info_fields(obj);
        // Only the first min(info_len, sizeof) bytes are read and written.
        if !named || self.pre_5_11 {
            out.name_len = passed.name_len;
            return Ok(out);
        }
        out.kernel_btf = u32::from(obj.kernel_btf);
        match self.answer_name(obj, name, &mut out) {
            Ok(()) => Ok(out),
            Err(libc::ENOSPC) => Err(InfoError {
                errno: libc::ENOSPC,
                info: out,
            }),
            Err(errno) => Err(InfoError {
                errno,
                info: passed,
            }),
        }
    }

    fn info_fields(&self, obj: &Obj) -> BtfInfo {
        BtfInfo {
            btf_size: obj.bytes.len() as u32,
            // Measured: an fd held across the unload answers id 0.
            id: if obj.live() { obj.id } else { 0 },
            name_len: 0,
            kernel_btf: 0,
        }
    }

    /// The name part of btf_get_info_by_fd, on the answer being built.
    fn answer_name(&self, obj: &Obj, name: NameBuf<'_>, out: &mut BtfInfo) -> Result<(), Errno> {
        let bad = match &name {
            NameBuf::Buf(b) => b.is_empty() && !self.faults.name_ptr_without_len_ok,
            NameBuf::Null(len) => *len > 0 && !self.faults.null_name_with_len_ok,
            NameBuf::None => false,
        };
        // `if (!uname ^ !uname_len) return -EINVAL;`, before any copy-out.
        if bad {
            return Err(libc::EINVAL);
        }
        let full = obj.name.as_bytes();
        out.name_len = full.len() as u32;
        let NameBuf::Buf(buf) = name else {
            return Ok(());
        };
        if buf.is_empty() {
            return Ok(());
        }
        if buf.len() > full.len() {
            buf[..full.len()].copy_from_slice(full);
            buf[full.len()] = 0;
            return Ok(());
        }
        let keep = buf.len() - 1;
        if self.faults.short_name_no_nul {
            buf.copy_from_slice(&full[..buf.len()]);
        } else {
            buf[..keep].copy_from_slice(&full[..keep]);
            buf[keep] = 0;
        }
        if self.faults.short_name_len_copied {
            out.name_len = keep as u32;
        }
        if self.faults.short_name_ok {
            Ok(())
        } else {
            Err(libc::ENOSPC)
        }
    }
}
