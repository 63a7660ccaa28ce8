//! The running kernel behind [`Kernel`]: bpf(2) and the module syscalls
//! from [`crate::sys`], sysfs files, /dev/kmsg.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;

use crate::btfobj::sysfs_path;
use crate::kernel::{BtfInfo, Errno, FileStat, InfoError, InfoQuery, Kernel, NameBuf};
use crate::kmsg::Kmsg;
use crate::sys;

pub struct Linux {
    kmsg: Kmsg,
}

impl Linux {
    /// Opens /dev/kmsg at once: records the kernel prints from here on are
    /// the ones scenarios see.
    pub fn new() -> Linux {
        Linux { kmsg: Kmsg::open() }
    }
}

impl Kernel for Linux {
    type Fd = OwnedFd;

    fn btf_next_id(&mut self, start: u32) -> Result<Option<u32>, Errno> {
        sys::btf_next_id(start)
    }

    fn btf_fd_by_id(&mut self, id: u32) -> Result<OwnedFd, Errno> {
        sys::btf_fd_by_id(id)
    }

    fn btf_info(&mut self, fd: &OwnedFd, query: InfoQuery<'_>) -> Result<BtfInfo, InfoError> {
        let mut raw = sys::BtfInfo::default();
        // The pointers stay valid for the call: `query` borrows the buffers
        // until this function returns.
        if let Some(buf) = query.btf {
            raw.btf = buf.as_mut_ptr() as u64;
            raw.btf_size = buf.len() as u32;
        }
        match query.name {
            NameBuf::None => {}
            NameBuf::Buf(buf) => {
                raw.name = buf.as_mut_ptr() as u64;
                raw.name_len = buf.len() as u32;
            }
            NameBuf::Null(len) => raw.name_len = len,
        }
        let r = sys::btf_info(fd, &mut raw, query.layout.info_len());
        let info = BtfInfo {
            btf_size: raw.btf_size,
            id: raw.id,
            name_len: raw.name_len,
            kernel_btf: raw.kernel_btf,
        };
        r.map(|()| info)
            .map_err(|(errno, _)| InfoError { errno, info })
    }

    fn btf_load(&mut self, blob: &[u8], log: &mut [u8]) -> Result<OwnedFd, Errno> {
        sys::btf_load(blob, log)
    }

    fn finit_module(&mut self, file: &str, params: &str) -> Result<(), Errno> {
        sys::finit_module(file, params)
    }

    fn delete_module(&mut self, name: &str) -> Result<(), Errno> {
        sys::delete_module(name)
    }

    fn module_loaded(&mut self, name: &str) -> bool {
        std::path::Path::new(&format!("/sys/module/{name}")).exists()
    }

    fn sysfs_btf_names(&mut self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(crate::btfobj::SYSFS_BTF)? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn sysfs_btf_stat(&mut self, name: &str) -> io::Result<FileStat> {
        let meta = std::fs::metadata(sysfs_path(name))?;
        Ok(FileStat {
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
        })
    }

    fn sysfs_btf_read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(sysfs_path(name))
    }

    fn sysfs_btf_exists(&mut self, name: &str) -> bool {
        std::path::Path::new(&sysfs_path(name)).exists()
    }

    fn kmsg_available(&self) -> bool {
        self.kmsg.available()
    }

    fn kmsg_read(&mut self) -> Vec<String> {
        self.kmsg.drain()
    }
}
