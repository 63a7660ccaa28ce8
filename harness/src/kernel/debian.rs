//! Fetches a Debian cloud kernel (image, config, modules) for any suite
//! through apt with a private configuration, and keeps it extracted in the
//! cache so that later runs need no apt call at all.
//!
//! Resolution is generic because the packaging changed over time: up to
//! trixie `linux-image-<kver>` holds everything in /boot and /lib/modules;
//! from 7.x it is an empty package depending on `linux-binary-<kver>`,
//! `linux-modules-<kver>` and `linux-base-<kver>` under /usr/lib/modules.
//! So we take the versioned image package plus those of its dependencies
//! (transitively) whose name contains the kver, unpack them into one root,
//! and look for the files in whichever layout they use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::bzimage::BzImageError;
use super::{CacheEntry, ConfigError, ConfigFile, KernelImage};
use crate::debian::{DebianError, PackageStep, Pinned, Suite};
use crate::inputs::source::DebianKernel;
use crate::support::cache::Cache;
use crate::support::manifest::{Damage, Manifest};

pub const DEFAULT_METAPACKAGE: &str = "linux-image-cloud-amd64";

/// Progress, in order: `UpdatingIndex` (only when the lists are missing or
/// stale), `Resolved` (the versioned image package), then either `Cached`
/// or a `Downloading`/`Extracting` pair per package. When nothing needs
/// apt at all, `Cached` is the only event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    UpdatingIndex {
        suite: String,
    },
    Resolved {
        package: String,
        version: String,
    },
    Downloading {
        package: String,
    },
    Extracting {
        package: String,
    },
    Cached {
        package: String,
        version: String,
    },
    /// The cached kernel differs from what was installed: it is fetched
    /// again.
    Damaged {
        damage: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error("{package} {version} in Debian {suite} depends on no linux-image-<version> package")]
    NoVersionedImage {
        package: String,
        version: String,
        suite: String,
    },
    #[error(
        "no {what} for {release} in {packages}; the unpacked tree has:\n  {}",
        found.join("\n  ")
    )]
    MissingFile {
        what: &'static str,
        release: String,
        packages: String,
        found: Vec<String>,
    },
    #[error("{} is not a usable kernel: {source}", path.display())]
    BzImage {
        path: PathBuf,
        #[source]
        source: BzImageError,
    },
    #[error("{} says it is release {found}, but the packages are for {expected}", path.display())]
    ReleaseMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the cached kernel is damaged: {0}; it was fetched again and is still damaged (is the disk failing?)")]
    Damaged(Damage),
    #[error("cannot remove the damaged cache entry {}: {source}", path.display())]
    Discard {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    pub fn class(&self) -> crate::support::ErrorClass {
        match self {
            FetchError::Debian(e) => e.class(),
            FetchError::Damaged(_) | FetchError::Discard { .. } => {
                crate::support::ErrorClass::Environment
            }
            _ => crate::support::ErrorClass::Kernel,
        }
    }
}

impl From<crate::support::cache::CacheError> for FetchError {
    fn from(e: crate::support::cache::CacheError) -> FetchError {
        FetchError::Debian(e.into())
    }
}

/// What a request resolved to; `packages[0]` is the versioned image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolution {
    packages: Vec<Pinned>,
}

impl Resolution {
    fn image(&self) -> &Pinned {
        &self.packages[0]
    }

    fn release(&self) -> String {
        release_of(&self.image().name)
    }

    fn cache_key(&self) -> String {
        let img = self.image();
        format!("{}_{}", img.name, img.version.replace(':', "%3a"))
    }

    /// Memo value: one "name version" line per package (the suite's
    /// memo adds the lists' generation).
    fn to_memo(&self) -> String {
        let mut s = String::new();
        for p in &self.packages {
            s.push_str(&format!("{} {}\n", p.name, p.version));
        }
        s
    }

    fn from_memo(text: &str) -> Option<Resolution> {
        let packages: Vec<Pinned> = text
            .lines()
            .map(|l| {
                let (name, version) = l.split_once(' ')?;
                Some(Pinned {
                    name: name.to_string(),
                    version: version.to_string(),
                })
            })
            .collect::<Option<_>>()?;
        (!packages.is_empty()).then_some(Resolution { packages })
    }
}

/// Fetches (or finds in `cache`) the kernel `req` names. See the module doc.
pub fn fetch(
    req: &DebianKernel,
    cache: &Cache,
    mirror: Option<&str>,
    on_event: &mut dyn FnMut(FetchEvent),
) -> Result<KernelImage, FetchError> {
    let requested = req.package.as_deref().unwrap_or(DEFAULT_METAPACKAGE);
    crate::debian::check_name("package", requested)?;
    let suite = Suite::open(cache, &req.suite, mirror)?;
    let kernels = cache.subdir("debian/kernels")?;
    let memo_key = format!("kernel-{requested}");
    let memo = |suite: &Suite| Resolution::from_memo(&suite.memo(&memo_key)?);

    // Fast path, without apt and without the lock: everything is there.
    if let Some(res) = memo(&suite) {
        let dir = kernels.join(res.cache_key());
        if dir.is_dir() {
            match finish(&dir, &res, &req.suite) {
                Err(FetchError::Damaged(d)) => discard(&dir, &d, on_event)?,
                done => {
                    on_event(cached_event(&res));
                    return done;
                }
            }
        }
    }
    let _lock = suite.ready(&mut || {
        on_event(FetchEvent::UpdatingIndex {
            suite: req.suite.clone(),
        })
    })?;
    let res = match memo(&suite) {
        Some(res) => res,
        None => {
            let res = resolve(&suite, requested)?;
            suite.set_memo(&memo_key, &res.to_memo())?;
            res
        }
    };
    on_event(FetchEvent::Resolved {
        package: res.image().name.clone(),
        version: res.image().version.clone(),
    });
    let dir = kernels.join(res.cache_key());
    if dir.is_dir() {
        match finish(&dir, &res, &req.suite) {
            Err(FetchError::Damaged(d)) => discard(&dir, &d, on_event)?,
            done => {
                on_event(cached_event(&res));
                return done;
            }
        }
    }
    install(&suite, &res, cache, &dir, on_event)?;
    finish(&dir, &res, &req.suite)
}

/// Downloads and unpacks the packages into a new cache entry, with the
/// manifest of what it holds.
fn install(
    suite: &Suite,
    res: &Resolution,
    cache: &Cache,
    dir: &Path,
    on_event: &mut dyn FnMut(FetchEvent),
) -> Result<(), FetchError> {
    cache.install_dir(dir, |tmp| -> Result<(), FetchError> {
        let root = tmp.join("root");
        suite.fetch_into(&res.packages, tmp, &root, &mut |p, step| {
            let package = p.name.clone();
            on_event(match step {
                PackageStep::Downloading => FetchEvent::Downloading { package },
                PackageStep::Extracting => FetchEvent::Extracting { package },
            })
        })?;
        // Checked before the entry is installed, so a package set that
        // is not a bootable kernel is never cached.
        let found = locate(&root, res)?;
        ConfigFile::read(&found.config)?;
        let manifest = Manifest::of(tmp).map_err(|e| {
            FetchError::from(crate::support::cache::CacheError::io("cannot read", tmp, e))
        })?;
        manifest.write(tmp)?;
        Ok(())
    })?;
    Ok(())
}

fn discard(dir: &Path, d: &Damage, on_event: &mut dyn FnMut(FetchEvent)) -> Result<(), FetchError> {
    on_event(FetchEvent::Damaged {
        damage: d.to_string(),
    });
    CacheEntry::discard(dir).map_err(|source| FetchError::Discard {
        path: dir.to_path_buf(),
        source,
    })
}

fn cached_event(res: &Resolution) -> FetchEvent {
    FetchEvent::Cached {
        package: res.image().name.clone(),
        version: res.image().version.clone(),
    }
}

/// The kernel in a cache entry, if the entry is as it was installed (every
/// file with its size; the image and the config with their content).
fn finish(dir: &Path, res: &Resolution, suite: &str) -> Result<KernelImage, FetchError> {
    // Sizes first: a cut-off image must read as damage, not as "not a
    // kernel" from the bzImage check in `locate`.
    let entry = CacheEntry::open(dir, &[]).map_err(FetchError::Damaged)?;
    let found = locate(&dir.join("root"), res)?;
    entry
        .check_files(&[&found.vmlinuz, &found.config])
        .map_err(FetchError::Damaged)?;
    Ok(KernelImage {
        cache_entry: Some(entry),
        config: ConfigFile::read(&found.config)?,
        vmlinuz: found.vmlinuz,
        modules_dir: found.modules_dir,
        origin: format!(
            "debian:{suite} {} {}",
            res.image().name,
            res.image().version
        ),
        release: found.release,
    })
}

/// `linux-image-6.1.0-28-cloud-amd64` but not `linux-image-cloud-amd64`.
fn is_versioned_image(name: &str) -> bool {
    name.strip_prefix("linux-image-")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        && !name.ends_with("-dbg")
}

/// The kernel release a versioned image package is for.
fn release_of(image: &str) -> String {
    let rest = image.strip_prefix("linux-image-").unwrap_or(image);
    rest.strip_suffix("-unsigned").unwrap_or(rest).to_string()
}

fn resolve(suite: &Suite, requested: &str) -> Result<Resolution, FetchError> {
    let image_name = if is_versioned_image(requested) {
        requested.to_string()
    } else {
        let meta = suite.show_one(requested)?;
        meta.depends
            .iter()
            .flatten()
            .find(|n| is_versioned_image(n))
            .cloned()
            .ok_or(FetchError::NoVersionedImage {
                package: meta.name,
                version: meta.version,
                suite: suite.name.clone(),
            })?
    };
    let image = suite.show_one(&image_name)?;
    let release = release_of(&image_name);
    let mut seen: HashSet<String> = HashSet::from([image.name.clone()]);
    let mut chosen = vec![Pinned::from(&image)];
    let mut frontier = vec![image];
    while !frontier.is_empty() {
        // Only this kernel's own packages: kmod, initramfs-tools and the
        // like are not part of a kernel to boot under QEMU.
        let clauses: Vec<Vec<&String>> = frontier
            .iter()
            .flat_map(|p| &p.depends)
            .filter(|clause| !clause.iter().any(|n| seen.contains(n)))
            .map(|clause| clause.iter().filter(|n| n.contains(&release)).collect())
            .filter(|c: &Vec<&String>| !c.is_empty())
            .collect();
        let mut wanted: Vec<&str> = clauses.iter().flatten().map(|s| s.as_str()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let infos = if wanted.is_empty() {
            Vec::new()
        } else {
            suite.show(&wanted)?
        };
        let mut next = Vec::new();
        for clause in clauses {
            // A virtual name has no info of its own: take the first
            // alternative that is a real package.
            let Some(info) = clause
                .iter()
                .find_map(|n| infos.iter().find(|i| &&i.name == n))
            else {
                continue;
            };
            if seen.insert(info.name.clone()) {
                chosen.push(Pinned::from(info));
                next.push(info.clone());
            }
        }
        frontier = next;
    }
    Ok(Resolution { packages: chosen })
}

#[path = "debian_layout.rs"]
mod layout;
use layout::locate;

#[cfg(test)]
#[path = "debian_tests.rs"]
mod tests;
