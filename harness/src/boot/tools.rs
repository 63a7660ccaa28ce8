//! Programs of the kernel's Debian suite that the guest runs (bpftool):
//! the binary, its suite's loader and the shared libraries beside it go
//! into the initramfs under /bpftool, only for boots with a scenario that
//! runs it (about 6 MB for bookworm's).

use std::fs;
use std::path::Path;

use btfvm_proto::GuestProgram;

use super::initramfs::{Archive, Entry};
use crate::debian::program::{Program, LIB_DIRS};

/// The kernel's suite's bpftool, or why there is none.
#[derive(Debug, Clone)]
pub enum Bpftool {
    Available(Program),
    /// Nothing to run for this kernel (not a Debian kernel; a suite
    /// without bpftool): the scenarios that need it are ignored.
    Absent(String),
    /// It should be there and could not be had (the mirror, the cache):
    /// the scenarios that need it fail.
    Failed(String),
}

const GUEST_ROOT: &str = "/bpftool";

/// Reads a file into the archive at `to`, following links (the newc
/// writer has no symlinks; a soname link becomes a copy).
fn add_file(archive: &mut Archive, from: &Path, to: &str, mode: u32) -> Result<(), String> {
    let data = fs::read(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    archive.add(Entry::file(to, mode, data));
    Ok(())
}

/// Puts the program into `archive`; what the plan tells the agent.
pub fn place(p: &Program, archive: &mut Archive) -> Result<GuestProgram, String> {
    let root = p.root();
    let guest = |rel: &Path| format!("{GUEST_ROOT}/{}", rel.display());
    add_file(archive, &root.join(&p.binary), &guest(&p.binary), 0o755)?;
    add_file(archive, &root.join(&p.loader), &guest(&p.loader), 0o755)?;
    // The shared objects of the library folders, not their subfolders
    // (gconv modules and the like are not linked against).
    for d in LIB_DIRS {
        let Ok(rd) = fs::read_dir(root.join(d)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if !name.contains(".so") || !path.is_file() {
                continue;
            }
            let rel = Path::new(d).join(&name);
            if rel == p.loader {
                continue;
            }
            add_file(archive, &path, &guest(&rel), 0o755)?;
        }
    }
    Ok(GuestProgram {
        loader: guest(&p.loader),
        library_path: Program::library_path(Path::new(GUEST_ROOT)),
        binary: guest(&p.binary),
        origin: p.packages.lines().next().unwrap_or_default().to_string(),
    })
}

/// The test module built by the host for a variant (`out-of-tree`,
/// `distilled-base`), or why not.
#[derive(Debug, Clone)]
pub enum Built {
    Ready {
        path: std::path::PathBuf,
        btf_bytes: Option<u64>,
        btf_base_types: Option<u32>,
    },
    /// Cannot be built for this kernel here: the scenarios are ignored.
    Absent(String),
    /// Should have been built and was not: the scenarios fail.
    Failed(String),
}

/// Built modules by variant.
pub type BuiltModules = std::collections::BTreeMap<btfvm_proto::Variant, Built>;
