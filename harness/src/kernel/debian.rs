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
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::{write_atomic, Cache, CacheError};
use crate::kernel::apt::{AptDir, AptError, PackageInfo};
use crate::kernel::bzimage::BzImageError;
use crate::kernel::deb::{self, DebError};
use crate::kernel::image::KernelImage;
use crate::kernel::mirror::{self, MirrorError};

pub const DEFAULT_METAPACKAGE: &str = "linux-image-cloud-amd64";
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const MAX_AGE_VAR: &str = "BTFVM_APT_MAX_AGE_HOURS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianRequest {
    /// e.g. "bookworm", "trixie", "sid".
    pub suite: String,
    /// A versioned image package (`linux-image-6.1.0-28-cloud-amd64`) or a
    /// metapackage depending on one; default `linux-image-cloud-amd64`.
    pub package: Option<String>,
    /// Archive URI; default: the host's apt sources.
    pub mirror: Option<String>,
}

/// Progress, in order: `UpdatingIndex` (only when the lists are missing or
/// stale), `Resolved` (the versioned image package), then either `Cached`
/// or a `Downloading`/`Extracting` pair per package. When nothing needs
/// apt at all, `Cached` is the only event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    UpdatingIndex { suite: String },
    Resolved { package: String, version: String },
    Downloading { package: String },
    Extracting { package: String },
    Cached { package: String, version: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("invalid {what} {value:?}: {why}")]
    InvalidRequest {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error("package {package} not found in Debian {suite} (amd64, main)")]
    PackageNotFound { package: String, suite: String },
    #[error("{package} {version} in Debian {suite} depends on no linux-image-<version> package")]
    NoVersionedImage {
        package: String,
        version: String,
        suite: String,
    },
    #[error(transparent)]
    Deb(#[from] DebError),
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
    #[error("{MAX_AGE_VAR}={value:?} is not a whole number of hours")]
    InvalidMaxAge { value: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A package pinned to the version that was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pinned {
    name: String,
    version: String,
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

    /// Memo format: lists id, then one "name version" line per package.
    fn to_memo(&self, lists_id: &str) -> String {
        let mut s = format!("{lists_id}\n");
        for p in &self.packages {
            s.push_str(&format!("{} {}\n", p.name, p.version));
        }
        s
    }

    fn from_memo(text: &str, lists_id: &str) -> Option<Resolution> {
        let mut lines = text.lines();
        if lines.next()? != lists_id {
            return None;
        }
        let packages: Vec<Pinned> = lines
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
    req: &DebianRequest,
    cache: &Cache,
    on_event: &mut dyn FnMut(FetchEvent),
) -> Result<KernelImage, DebianError> {
    check_name("suite", &req.suite)?;
    let requested = req.package.as_deref().unwrap_or(DEFAULT_METAPACKAGE);
    check_name("package", requested)?;
    let max_age = max_age_from_env()?;
    let mirror = mirror::find(req.mirror.as_deref())?;

    // One apt state per suite and mirror: lists of different mirrors may
    // legitimately differ.
    let mut hasher = Sha256::new();
    hasher.update(mirror.uri.as_bytes());
    hasher.update(b"\0");
    if let Some(k) = &mirror.signed_by {
        hasher.update(k.as_os_str().as_encoded_bytes());
    }
    let mirror_id: String = hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let apt_dir = cache.subdir(&format!("debian/apt/{}-{mirror_id}", req.suite))?;
    let kernels = cache.subdir("debian/kernels")?;
    let apt = AptDir::open(apt_dir, &req.suite, &mirror)?;
    let memo_path = apt.dir().join("resolved").join(requested);
    let fresh = |apt: &AptDir| apt.lists_age().is_some_and(|age| age < max_age);
    let memo = |apt: &AptDir| {
        let id = apt.lists_id()?;
        Resolution::from_memo(&fs::read_to_string(&memo_path).ok()?, &id)
    };

    // Fast path, without apt and without the lock: everything is there.
    if fresh(&apt) {
        if let Some(res) = memo(&apt) {
            let dir = kernels.join(res.cache_key());
            if dir.is_dir() {
                on_event(cached_event(&res));
                return finish(&dir, &res, &req.suite);
            }
        }
    }

    // Concurrent runs for the same suite would otherwise fight over the
    // lists; the second one then finds the first one's result.
    let _lock = cache.lock(&apt.dir().join("lock"))?;
    if !fresh(&apt) {
        on_event(FetchEvent::UpdatingIndex {
            suite: req.suite.clone(),
        });
        apt.update()?;
    }
    let res = match memo(&apt) {
        Some(res) => res,
        None => {
            let res = resolve(&apt, &req.suite, requested)?;
            if let Some(id) = apt.lists_id() {
                write_atomic(&memo_path, res.to_memo(&id).as_bytes())?;
            }
            res
        }
    };
    on_event(FetchEvent::Resolved {
        package: res.image().name.clone(),
        version: res.image().version.clone(),
    });
    let dir = kernels.join(res.cache_key());
    if dir.is_dir() {
        on_event(cached_event(&res));
    } else {
        cache.install_dir(&dir, |tmp| -> Result<(), DebianError> {
            let debs = tmp.join("debs");
            let root = tmp.join("root");
            fs::create_dir_all(&debs).map_err(|e| CacheError::io("cannot create", &debs, e))?;
            for p in &res.packages {
                on_event(FetchEvent::Downloading {
                    package: p.name.clone(),
                });
                let file = apt.download(&p.name, &p.version, &debs)?;
                on_event(FetchEvent::Extracting {
                    package: p.name.clone(),
                });
                deb::extract(&file, &root)?;
                // Half the space at peak: the .deb is not needed any more.
                let _ = fs::remove_file(&file);
            }
            let _ = fs::remove_dir(&debs);
            // Checked before the entry is installed, so a package set that
            // is not a bootable kernel is never cached.
            locate(&root, &res)?;
            Ok(())
        })?;
    }
    finish(&dir, &res, &req.suite)
}

fn cached_event(res: &Resolution) -> FetchEvent {
    FetchEvent::Cached {
        package: res.image().name.clone(),
        version: res.image().version.clone(),
    }
}

fn finish(dir: &Path, res: &Resolution, suite: &str) -> Result<KernelImage, DebianError> {
    let mut image = locate(&dir.join("root"), res)?;
    image.origin = format!(
        "debian:{suite} {} {}",
        res.image().name,
        res.image().version
    );
    Ok(image)
}

/// Suites and package names end up in paths and on apt's command line.
fn check_name(what: &'static str, value: &str) -> Result<(), DebianError> {
    let why = if value.is_empty() {
        Some("empty")
    } else if value.starts_with(['.', '-']) {
        Some("must not start with '.' or '-'")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
    {
        Some("only letters, digits and + - . _ are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(DebianError::InvalidRequest {
            what,
            value: value.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

fn max_age_from_env() -> Result<Duration, DebianError> {
    match std::env::var(MAX_AGE_VAR) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(|h| Duration::from_secs(h.saturating_mul(3600)))
            .map_err(|_| DebianError::InvalidMaxAge { value: v }),
        _ => Ok(DEFAULT_MAX_AGE),
    }
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

fn show_one(apt: &AptDir, name: &str, suite: &str) -> Result<PackageInfo, DebianError> {
    apt.show(&[name])?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| DebianError::PackageNotFound {
            package: name.to_string(),
            suite: suite.to_string(),
        })
}

fn resolve(apt: &AptDir, suite: &str, requested: &str) -> Result<Resolution, DebianError> {
    let image_name = if is_versioned_image(requested) {
        requested.to_string()
    } else {
        let meta = show_one(apt, requested, suite)?;
        meta.depends
            .iter()
            .flatten()
            .find(|n| is_versioned_image(n))
            .cloned()
            .ok_or(DebianError::NoVersionedImage {
                package: meta.name,
                version: meta.version,
                suite: suite.to_string(),
            })?
    };
    let image = show_one(apt, &image_name, suite)?;
    let release = release_of(&image_name);
    let mut seen: HashSet<String> = HashSet::from([image.name.clone()]);
    let mut chosen = vec![Pinned {
        name: image.name.clone(),
        version: image.version.clone(),
    }];
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
            apt.show(&wanted)?
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
                chosen.push(Pinned {
                    name: info.name.clone(),
                    version: info.version.clone(),
                });
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
