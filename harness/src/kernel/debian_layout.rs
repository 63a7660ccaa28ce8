//! Where the kernel's files are in a tree unpacked from Debian packages,
//! whichever layout the packages use (see the parent module doc).

use std::fs;
use std::path::{Path, PathBuf};

use super::{FetchError, Resolution};
use crate::kernel::bzimage;

/// The kernel's files in an unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Located {
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
    pub modules_dir: PathBuf,
    pub release: String,
}

/// Finds the kernel's files in an unpacked root, in any known layout, and
/// checks the image.
pub(super) fn locate(root: &Path, res: &Resolution) -> Result<Located, FetchError> {
    let missing = |what| FetchError::MissingFile {
        what,
        release: res.release(),
        packages: res
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        found: listing(root),
    };
    let module_roots = [root.join("lib/modules"), root.join("usr/lib/modules")];
    let release = release_in(&module_roots, res).ok_or_else(|| missing("modules directory"))?;
    // When both hold something, the one with the modules wins.
    let modules_dir = module_roots
        .iter()
        .map(|m| m.join(&release))
        .filter(|d| d.is_dir())
        .max_by_key(|d| d.join("kernel").is_dir())
        .filter(|d| d.join("kernel").is_dir())
        .ok_or_else(|| missing("modules directory"))?;

    let in_module_dirs = |name: &str| -> Vec<PathBuf> {
        module_roots
            .iter()
            .map(|m| m.join(&release).join(name))
            .collect()
    };
    let vmlinuz_candidates: Vec<PathBuf> = [root.join(format!("boot/vmlinuz-{release}"))]
        .into_iter()
        .chain(in_module_dirs("vmlinuz"))
        .chain([root.join(format!("boot/vmlinuz-{release}.unsigned"))])
        .chain(in_module_dirs("vmlinuz.unsigned"))
        .filter(|p| p.is_file())
        .collect();
    let vmlinuz = vmlinuz_candidates
        .first()
        .cloned()
        .ok_or_else(|| missing("vmlinuz"))?;
    let config = [root.join(format!("boot/config-{release}"))]
        .into_iter()
        .chain(in_module_dirs("config"))
        .find(|p| p.is_file())
        .ok_or_else(|| missing("config"))?;

    let info = bzimage::read_file(&vmlinuz).map_err(|source| FetchError::BzImage {
        path: vmlinuz.clone(),
        source,
    })?;
    if info.release != release {
        return Err(FetchError::ReleaseMismatch {
            path: vmlinuz,
            found: info.release,
            expected: release,
        });
    }
    Ok(Located {
        vmlinuz,
        config,
        modules_dir,
        release,
    })
}

/// The release the tree holds modules for: the one the package names say,
/// or, for names that do not spell it exactly (a hand-picked package), the
/// only one there is.
fn release_in(module_roots: &[PathBuf], res: &Resolution) -> Option<String> {
    let release = res.release();
    if module_roots.iter().any(|m| m.join(&release).is_dir()) {
        return Some(release);
    }
    let mut names: Vec<String> = module_roots
        .iter()
        .filter_map(|m| fs::read_dir(m).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    match names.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// The top of an unpacked tree, for error messages: paths up to four
/// levels deep, without the thousands of modules.
fn listing(root: &Path) -> Vec<String> {
    const LIMIT: usize = 60;
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries.into_iter().rev() {
            let is_dir = p.is_dir() && !p.is_symlink();
            let skip = p.file_name().is_some_and(|n| n == "kernel" || n == "doc");
            if is_dir && depth < 3 && !skip {
                stack.push((p.clone(), depth + 1));
            }
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            out.push(if is_dir { format!("{rel}/") } else { rel });
        }
    }
    out.sort();
    if out.is_empty() {
        out.push("(nothing)".into());
    }
    if out.len() > LIMIT {
        let more = out.len() - LIMIT;
        out.truncate(LIMIT);
        out.push(format!("... and {more} more"));
    }
    out
}
