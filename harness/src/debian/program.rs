//! A program of a Debian suite with the libraries it links against,
//! extracted into the cache and run through its own suite's loader, never
//! installed: trixie's and sid's binaries need a newer glibc than the
//! host's (pahole on the host for builds, bpftool inside a guest). One
//! entry per package set, named by it, so a library update is a new entry.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::apt::PackageInfo;
use super::{DebianError, PackageStep, Pinned, Suite};
use crate::support::cache::{Cache, CacheError};
use crate::support::hex;

/// Library folders of a Debian root, merged-/usr or not.
pub const LIB_DIRS: [&str; 2] = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"];

/// What to extract: the package (the first of `packages` that the suite
/// has) and the binary in it.
pub struct Wanted<'a> {
    /// Candidates for the program's package, in order (trixie split
    /// pahole out of dwarves).
    pub packages: &'a [&'a str],
    /// The binary, relative to the root (`usr/bin/pahole`).
    pub binary: &'a str,
    /// Cache folder: `<cache>/<dir>/<suite>_<version>_<hash>`.
    pub dir: &'a str,
    /// The suite's memo of which entry it is (a file name).
    pub memo: &'a str,
}

/// Progress of an extraction.
#[derive(Debug, Clone)]
pub enum ProgramEvent {
    /// The suite's apt lists are being refreshed.
    Updating,
    /// A package is being downloaded.
    Downloading(Pinned),
}

/// An extracted program.
#[derive(Debug, Clone)]
pub struct Program {
    /// The entry; the packages' files are under `root/`.
    pub entry: PathBuf,
    /// The binary and the loader, relative to `root/`.
    pub binary: PathBuf,
    pub loader: PathBuf,
    /// "name version" per package, the program's first.
    pub packages: String,
}

impl Program {
    pub fn root(&self) -> PathBuf {
        self.entry.join("root")
    }

    /// The version of the program's own package.
    pub fn version(&self) -> &str {
        self.packages
            .lines()
            .next()
            .and_then(|l| l.split_once(' '))
            .map(|(_, v)| v)
            .unwrap_or("")
    }

    /// The loader's `--library-path` for a root placed at `root`.
    pub fn library_path(root: &Path) -> String {
        LIB_DIRS
            .iter()
            .map(|d| root.join(d).display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("Debian {suite}: {package} has no {missing} after extraction")]
    Incomplete {
        suite: String,
        package: String,
        missing: String,
    },
}

impl ProgramError {
    pub fn class(&self) -> crate::support::ErrorClass {
        match self {
            ProgramError::Debian(e) => e.class(),
            ProgramError::Cache(e) => e.class(),
            // The suite's packages are not what they say.
            ProgramError::Incomplete { .. } => crate::support::ErrorClass::Kernel,
        }
    }
}

/// The program's package and the libraries it needs: libc (with the
/// loader) and what it links against, followed through their own
/// dependencies (zlib's package is the one whose name does not start with
/// lib).
fn packages_of(
    suites: &[&Suite],
    candidates: &[&str],
) -> Result<Vec<(usize, PackageInfo)>, DebianError> {
    let suite = suites[0];
    let mut root_pkg = None;
    let mut last = None;
    for c in candidates {
        match suite.show_one(c) {
            Ok(p) => {
                root_pkg = Some(p);
                break;
            }
            Err(e @ DebianError::NotFound { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    let root_pkg = match (root_pkg, last) {
        (Some(p), _) => p,
        (None, Some(e)) => return Err(e),
        (None, None) => {
            return Err(DebianError::NotFound {
                package: "(no package named)".into(),
                suite: suite.name.clone(),
            })
        }
    };
    // A dependency comes from the first suite that has it (a backports
    // package's libraries are its base suite's).
    let find = |n: &str| {
        suites
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.show_one(n).ok().map(|info| (i, info)))
    };
    let mut seen: BTreeSet<String> = BTreeSet::from([root_pkg.name.clone()]);
    let mut chosen = vec![(0, root_pkg)];
    let mut i = 0;
    while i < chosen.len() {
        let wanted: Vec<String> = chosen[i]
            .1
            .depends
            .iter()
            .filter_map(|alts| alts.first())
            .filter(|n| (n.starts_with("lib") || *n == "zlib1g") && !seen.contains(*n))
            .cloned()
            .collect();
        for n in wanted {
            seen.insert(n.clone());
            if let Some(found) = find(&n) {
                chosen.push(found);
            }
        }
        i += 1;
    }
    Ok(chosen)
}

fn found(entry: &Path, binary: &str, packages: &str) -> Option<Program> {
    let root = entry.join("root");
    root.join(binary).is_file().then_some(())?;
    let loader = find_loader(&root)?;
    Some(Program {
        entry: entry.to_path_buf(),
        binary: PathBuf::from(binary),
        loader,
        packages: packages.to_string(),
    })
}

fn find_loader(root: &Path) -> Option<PathBuf> {
    ["lib64", LIB_DIRS[0], LIB_DIRS[1]]
        .iter()
        .map(|d| Path::new(d).join("ld-linux-x86-64.so.2"))
        .find_map(|rel| resolve_in_root(root, &rel))
}

/// The program of `wanted` from `suites[0]`, extracted once; its
/// libraries come from the first of `suites` that has each.
pub fn extract(
    suites: &[&Suite],
    cache: &Cache,
    wanted: &Wanted<'_>,
    events: &mut dyn FnMut(ProgramEvent),
) -> Result<Program, ProgramError> {
    let suite = suites[0];
    let base = cache.subdir(wanted.dir)?;
    // Memo: entry name, then the package list; no apt when it is there.
    if let Some(memo) = suite.memo(wanted.memo) {
        if let Some((name, packages)) = memo.split_once('\n') {
            if let Some(p) = found(&base.join(name), wanted.binary, packages) {
                return Ok(p);
            }
        }
    }
    let mut locks = Vec::new();
    for s in suites {
        locks.push(s.ready(&mut || events(ProgramEvent::Updating))?);
    }
    let chosen = packages_of(suites, wanted.packages)?;
    let packages: String = chosen
        .iter()
        .map(|(_, p)| format!("{} {}\n", p.name, p.version))
        .collect();
    let name = format!(
        "{}_{}_{}",
        suite.name,
        chosen[0].1.version.replace(':', "%3a"),
        &hex(&Sha256::digest(packages.as_bytes()))[..8]
    );
    let entry = base.join(&name);
    let incomplete = |missing: &str| ProgramError::Incomplete {
        suite: suite.name.clone(),
        package: chosen[0].1.name.clone(),
        missing: missing.into(),
    };
    if found(&entry, wanted.binary, &packages).is_none() {
        cache.install_dir(&entry, |tmp| -> Result<(), ProgramError> {
            for (i, s) in suites.iter().enumerate() {
                let pinned: Vec<Pinned> = chosen
                    .iter()
                    .filter(|(from, _)| *from == i)
                    .map(|(_, p)| Pinned::from(p))
                    .collect();
                s.fetch_into(&pinned, tmp, &tmp.join("root"), &mut |p, step| {
                    if step == PackageStep::Downloading {
                        events(ProgramEvent::Downloading(p.clone()))
                    }
                })?;
            }
            if !tmp.join("root").join(wanted.binary).is_file() {
                return Err(incomplete(wanted.binary));
            }
            if find_loader(&tmp.join("root")).is_none() {
                return Err(incomplete("ld-linux-x86-64.so.2"));
            }
            Ok(())
        })?;
    }
    suite.set_memo(wanted.memo, &format!("{name}\n{packages}"))?;
    found(&entry, wanted.binary, &packages).ok_or_else(|| incomplete(wanted.binary))
}

/// Follows symlinks of `rel` as if `root` were `/` (the loader's links are
/// absolute: /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-2.31.so).
/// Returns the path relative to `root` of the file it ends at.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut cur = rel.to_path_buf();
    for _ in 0..16 {
        let mut acc = PathBuf::new();
        let comps: Vec<Component> = cur.components().collect();
        let mut redirected = None;
        for (i, c) in comps.iter().enumerate() {
            match c {
                Component::Normal(n) => acc.push(n),
                Component::ParentDir => {
                    acc.pop();
                }
                _ => continue,
            }
            let full = root.join(&acc);
            let meta = fs::symlink_metadata(&full).ok()?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&full).ok()?;
                let mut next = if target.is_absolute() {
                    target.strip_prefix("/").ok()?.to_path_buf()
                } else {
                    acc.parent().unwrap_or(Path::new("")).join(target)
                };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                redirected = Some(next);
                break;
            }
        }
        match redirected {
            Some(n) => cur = n,
            None => return root.join(&acc).is_file().then_some(acc),
        }
    }
    None
}
