//! Programs of the kernel's Debian suite that the guest runs (bpftool):
//! the binary, its suite's loader and the shared libraries beside it go
//! into the initramfs under /bpftool, only for boots with a scenario that
//! runs it.

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

/// The DT_NEEDED entries of an ELF file.
pub fn needed(path: &Path) -> Result<Vec<String>, String> {
    use object::read::elf::{Dyn, FileHeader, SectionHeader};
    let data = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let elf = object::elf::FileHeader64::<object::Endianness>::parse(&*data)
        .map_err(|e| format!("{}: not a 64-bit ELF: {e}", path.display()))?;
    let endian = elf.endian().map_err(|e| e.to_string())?;
    let sections = elf.sections(endian, &*data).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let Some((dynamic, link)) = s.dynamic(endian, &*data).map_err(|e| e.to_string())? else {
            continue;
        };
        let strings = sections
            .strings(endian, &*data, link)
            .map_err(|e| format!("{}: section {i}: {e}", path.display()))?;
        for d in dynamic {
            if d.tag32(endian) == Some(object::elf::DT_NEEDED) {
                let name = d.string(endian, strings).map_err(|e| e.to_string())?;
                out.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(out)
}

/// Puts the program into `archive`; what the plan tells the agent.
pub fn place(p: &Program, archive: &mut Archive) -> Result<GuestProgram, String> {
    place_at(&p.root(), &p.binary, &p.loader, GUEST_ROOT, archive)?;
    let guest = |rel: &Path| format!("{GUEST_ROOT}/{}", rel.display());
    Ok(GuestProgram {
        loader: guest(&p.loader),
        library_path: Program::library_path(Path::new(GUEST_ROOT)),
        binary: guest(&p.binary),
        origin: p.packages.lines().next().unwrap_or_default().to_string(),
    })
}

/// Copies `binary` and `loader` of the system at `root` (a Debian
/// package set's, or the host's own `/`) under `guest_root` in the
/// archive, with the libraries the binary links against and theirs
/// (DT_NEEDED, followed), found in the root's library folders: only what
/// the loader will open.
pub fn place_at(
    root: &Path,
    binary: &Path,
    loader: &Path,
    guest_root: &str,
    archive: &mut Archive,
) -> Result<(), String> {
    let guest = |rel: &Path| format!("{guest_root}/{}", rel.display());
    add_file(archive, &root.join(binary), &guest(binary), 0o755)?;
    add_file(archive, &root.join(loader), &guest(loader), 0o755)?;
    let mut todo = needed(&root.join(binary))?;
    let mut done: Vec<String> = Vec::new();
    while let Some(lib) = todo.pop() {
        if done.contains(&lib) {
            continue;
        }
        let Some(rel) = LIB_DIRS
            .iter()
            .map(|d| Path::new(d).join(&lib))
            .find(|r| root.join(r).is_file())
        else {
            return Err(format!(
                "{} needs {lib}, which {} does not have",
                binary.display(),
                root.display()
            ));
        };
        if rel != loader {
            add_file(archive, &root.join(&rel), &guest(&rel), 0o755)?;
        }
        todo.extend(needed(&root.join(&rel))?);
        done.push(lib);
    }
    Ok(())
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
