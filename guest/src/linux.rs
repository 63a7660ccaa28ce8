//! The running kernel behind [`Kernel`]: bpf(2) and the module syscalls
//! from [`crate::sys`], sysfs files, /dev/kmsg.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;

use crate::btfobj::sysfs_path;
use btfvm_proto::tracing::AttachKind;

use crate::bpfprog;
use crate::kernel::{
    AttachFailure, AttachStage, AttachedBy, BtfInfo, Errno, FileStat, InfoError, InfoQuery, Kernel,
    NameBuf, TracingTarget,
};
use crate::kmsg::Kmsg;
use crate::sys;

pub struct Linux {
    kmsg: Kmsg,
    /// Run counting, switched on at the first attach and kept on for the
    /// boot (BPF_ENABLE_STATS counts while its fd is open).
    stats: Option<Option<OwnedFd>>,
}

/// An attached program: its fd and the link's.
pub struct LinuxProg {
    prog: OwnedFd,
    _link: OwnedFd,
}

impl Linux {
    /// Opens /dev/kmsg at once: records the kernel prints from here on are
    /// the ones scenarios see.
    pub fn new() -> Linux {
        Linux {
            kmsg: Kmsg::open(),
            stats: None,
        }
    }
}

impl Kernel for Linux {
    type Fd = OwnedFd;
    type Prog = LinuxProg;

    fn attach_tracing(
        &mut self,
        target: TracingTarget<'_, OwnedFd>,
    ) -> Result<(LinuxProg, AttachedBy), AttachFailure> {
        if self.stats.is_none() {
            let on = bpfprog::enable_stats().map_err(|errno| AttachFailure {
                stage: AttachStage::Load,
                errno,
                log: "BPF_ENABLE_STATS and the bpf_stats_enabled sysctl both failed".into(),
            })?;
            self.stats = Some(on);
        }
        let attach_type = match target.kind {
            AttachKind::Fentry => bpfprog::BPF_TRACE_FENTRY,
            AttachKind::Fexit => bpfprog::BPF_TRACE_FEXIT,
        };
        let mut log = vec![0u8; 64 << 10];
        let prog =
            bpfprog::load(attach_type, target.obj, target.btf_id, &mut log).map_err(|errno| {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                AttachFailure {
                    stage: AttachStage::Load,
                    errno,
                    log: String::from_utf8_lossy(&log[..end]).trim().to_string(),
                }
            })?;
        let (link, by) = bpfprog::attach(&prog, attach_type).map_err(|errno| AttachFailure {
            stage: AttachStage::Attach,
            errno,
            log: String::new(),
        })?;
        Ok((LinuxProg { prog, _link: link }, by))
    }

    fn prog_run_count(&mut self, prog: &LinuxProg) -> Result<u64, Errno> {
        bpfprog::run_count(&prog.prog)
    }

    fn write_file(&mut self, path: &str, value: &[u8]) -> io::Result<()> {
        std::fs::write(path, value)
    }

    fn read_file(&mut self, path: &str) -> io::Result<usize> {
        std::fs::read(path).map(|b| b.len())
    }

    fn run_program(&mut self, argv: &[String]) -> io::Result<crate::bpftool::ProgramOutput> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let out = std::process::Command::new(prog).args(args).output()?;
        Ok(crate::bpftool::ProgramOutput {
            status: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

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
