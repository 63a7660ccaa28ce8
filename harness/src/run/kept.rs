//! A boot kept after it ends: its console log for people, its transcript
//! and `boot.json` for `btfvm replay`, in a folder of its own under the
//! logs folder. The folder's name cannot be predicted and it is created
//! exclusively (0700), its files too (0644), so nobody can make btfvm
//! write through a planted link; pruning removes only folders btfvm made.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::inputs::kernelspec::AllowSplat;
use crate::vm::{Accel, Timeouts};

pub const META_FILE: &str = "boot.json";
pub const CONSOLE_FILE: &str = "console.log";
pub const TRANSCRIPT_FILE: &str = "transcript.bin";
/// Kept boots per kernel; older ones go.
const KEEP: usize = 20;
const SCHEMA: u32 = 1;

/// What a replay needs besides the transcript: what was planned and the
/// limits the boot ran with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootMeta {
    pub schema: u32,
    pub kernel: String,
    pub accel: Accel,
    #[serde(default)]
    pub way: crate::vm::Way,
    pub planned: Vec<String>,
    pub timeouts: Timeouts,
    #[serde(default)]
    pub allow_splats: Vec<AllowSplat>,
    #[serde(default)]
    pub qemu_stderr: String,
    #[serde(default)]
    pub qemu_args: Vec<String>,
}

impl BootMeta {
    pub fn new(kernel: &str, accel: Accel, planned: Vec<String>, timeouts: Timeouts) -> BootMeta {
        BootMeta {
            schema: SCHEMA,
            kernel: kernel.to_string(),
            accel,
            way: crate::vm::Way::Qemu,
            planned,
            timeouts,
            allow_splats: Vec::new(),
            qemu_stderr: String::new(),
            qemu_args: Vec::new(),
        }
    }
}

fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(path)
}

fn copy_into(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    let mut dst = create_new(to)?;
    io::copy(&mut src, &mut dst)?;
    Ok(())
}

/// Keeps a boot's files (from its work folder) with its metadata; returns
/// the new folder.
pub fn keep(logs_dir: &Path, workdir: &Path, meta: &BootMeta) -> io::Result<PathBuf> {
    fs::create_dir_all(logs_dir)?;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}.", meta.kernel))
        .rand_bytes(10)
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(logs_dir)?
        .keep();
    for name in [CONSOLE_FILE, TRANSCRIPT_FILE] {
        let from = workdir.join(name);
        if from.exists() {
            copy_into(&from, &dir.join(name))?;
        }
    }
    let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    create_new(&dir.join(META_FILE))?.write_all(&json)?;
    prune(logs_dir, &meta.kernel);
    Ok(dir)
}

/// A kept boot's metadata, if `dir` holds one.
pub fn read_meta(dir: &Path) -> io::Result<BootMeta> {
    let text = crate::support::fsread::read_capped(&dir.join(META_FILE), 16 << 20, "a boot.json")
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", dir.join(META_FILE).display()),
        )
    })
}

/// Removes the oldest kept boots of `kernel` beyond `KEEP`: only folders
/// whose boot.json says they are this kernel's.
fn prune(logs_dir: &Path, kernel: &str) {
    let Ok(rd) = fs::read_dir(logs_dir) else {
        return;
    };
    let mut mine: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{kernel}."))
        })
        .filter(|e| read_meta(&e.path()).is_ok_and(|m| m.kernel == kernel))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    mine.sort();
    let excess = mine.len().saturating_sub(KEEP);
    for (_, p) in &mine[..excess] {
        let _ = fs::remove_dir_all(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(kernel: &str) -> BootMeta {
        BootMeta::new(
            kernel,
            Accel::Tcg,
            vec!["a".into()],
            Timeouts {
                hello: Duration::from_secs(1),
                scenario: Duration::from_secs(2),
                wall: Duration::from_secs(3),
            },
        )
    }

    #[test]
    fn kept_boots_are_private_round_trip_and_are_pruned_per_kernel() {
        let logs = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        fs::write(work.path().join(CONSOLE_FILE), b"console\n").unwrap();
        fs::write(work.path().join(TRANSCRIPT_FILE), b"BTFVTR01").unwrap();
        let dir = keep(logs.path(), work.path(), &meta("k")).unwrap();
        assert_eq!(fs::read(dir.join(CONSOLE_FILE)).unwrap(), b"console\n");
        assert_eq!(read_meta(&dir).unwrap(), meta("k"));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Someone else's folder that looks like ours is never removed.
        let foreign = logs.path().join("k.foreign");
        fs::create_dir(&foreign).unwrap();
        for _ in 0..KEEP + 3 {
            keep(logs.path(), work.path(), &meta("k")).unwrap();
        }
        keep(logs.path(), work.path(), &meta("k.other")).unwrap();
        let count = |k: &str| {
            fs::read_dir(logs.path())
                .unwrap()
                .flatten()
                .filter(|e| read_meta(&e.path()).is_ok_and(|m| m.kernel == k))
                .count()
        };
        assert_eq!(count("k"), KEEP);
        assert_eq!(count("k.other"), 1);
        assert!(foreign.is_dir());
    }
}
