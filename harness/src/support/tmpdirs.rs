//! Per-boot temporary directories (initramfs, console log, channel socket)
//! in `$TMPDIR`, and the sweep that removes those of runs that died without
//! cleaning up (SIGKILL, a second Ctrl-C, a power cut).

use std::io;
use std::path::Path;

const PREFIX: &str = "btfvm-";
const OWNER: &str = "owner.pid";

/// A fresh directory that records the pid of the run that owns it.
pub fn create() -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(PREFIX).tempdir()?;
    std::fs::write(dir.path().join(OWNER), std::process::id().to_string())?;
    Ok(dir)
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes `btfvm-*` directories in `dir` whose owner process is gone.
/// Directories without an owner file are left alone: they may be another
/// tool's, or a run's in the instant before it wrote the file.
pub fn sweep(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let owner = std::fs::read_to_string(e.path().join(OWNER)).ok();
        let Some(pid) = owner.and_then(|s| s.trim().parse::<i32>().ok()) else {
            continue;
        };
        if pid > 0 && !alive(pid) && std::fs::remove_dir_all(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_only_dirs_of_dead_owners() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id();
            c.wait().unwrap();
            pid
        };
        for (name, owner) in [
            ("btfvm-dead", Some(dead.to_string())),
            ("btfvm-live", Some(std::process::id().to_string())),
            ("btfvm-noowner", None),
            ("other-dead", Some(dead.to_string())),
        ] {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            if let Some(o) = owner {
                std::fs::write(d.join(OWNER), o).unwrap();
            }
        }
        assert_eq!(sweep(tmp.path()), 1);
        assert!(!tmp.path().join("btfvm-dead").exists());
        for kept in ["btfvm-live", "btfvm-noowner", "other-dead"] {
            assert!(tmp.path().join(kept).exists(), "{kept}");
        }
    }
}
