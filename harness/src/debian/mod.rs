//! Debian's archive, reached through apt with a private configuration in
//! the cache. A [`Suite`] is one suite of one mirror: its apt folder
//! (`debian/apt/<suite>-<mirror id>`), its lock, when its lists count as
//! fresh, memos that let a cached result skip apt entirely, and the
//! download-extract-remove of packages. Kernels, linux-source and pahole
//! all go through it, so they share lists and lock and agree on every rule.

pub mod apt;
pub mod deb;
pub mod deb822;
pub mod mirror;
pub mod program;

use std::fs;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::support::cache::{write_atomic, Cache, CacheError, CacheLock};
use crate::support::{hex, ErrorClass};
use apt::{AptDir, AptError, PackageInfo};
use deb::DebError;
use mirror::MirrorError;

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub const MAX_AGE_VAR: &str = "BTFVM_APT_MAX_AGE_HOURS";

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{MAX_AGE_VAR}={value:?} is not a whole number of hours")]
    InvalidMaxAge { value: String },
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error("package {package} not found in Debian {suite} (amd64, main)")]
    NotFound { package: String, suite: String },
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl DebianError {
    pub fn class(&self) -> ErrorClass {
        match self {
            DebianError::InvalidName { .. }
            | DebianError::InvalidMaxAge { .. }
            | DebianError::NotFound { .. } => ErrorClass::Input,
            DebianError::Mirror(MirrorError::Invalid { .. }) => ErrorClass::Input,
            DebianError::Mirror(MirrorError::NotFound { .. }) => ErrorClass::Environment,
            DebianError::Apt(e) => e.class(),
            DebianError::Cache(e) => e.class(),
            DebianError::Deb(e) => e.class(),
        }
    }
}

/// A package pinned to the version that was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub name: String,
    pub version: String,
}

impl From<&PackageInfo> for Pinned {
    fn from(p: &PackageInfo) -> Pinned {
        Pinned {
            name: p.name.clone(),
            version: p.version.clone(),
        }
    }
}

/// Where `Suite::fetch_into` is with one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageStep {
    Downloading,
    Extracting,
}

pub struct Suite {
    pub name: String,
    apt: AptDir,
    cache: Cache,
    max_age: Duration,
}

impl Suite {
    /// Lays out the suite's apt folder; no network. Fails on a bad suite
    /// name, a bad `BTFVM_APT_MAX_AGE_HOURS`, or no mirror.
    pub fn open(cache: &Cache, suite: &str, mirror: Option<&str>) -> Result<Suite, DebianError> {
        check_name("suite", suite)?;
        let max_age = max_age_from_env()?;
        let m = mirror::find(mirror)?;
        // Lists of different mirrors may legitimately differ: one apt
        // state per suite and mirror.
        let mut h = Sha256::new();
        h.update(m.uri.as_bytes());
        h.update(b"\0");
        if let Some(k) = &m.signed_by {
            h.update(k.as_os_str().as_encoded_bytes());
        }
        let id = hex(&h.finalize()[..6]);
        let dir = cache.subdir(&format!("debian/apt/{suite}-{id}"))?;
        Ok(Suite {
            name: suite.to_string(),
            apt: AptDir::open(dir, suite, &m)?,
            cache: cache.clone(),
            max_age,
        })
    }

    pub fn fresh(&self) -> bool {
        self.apt.lists_age().is_some_and(|a| a < self.max_age)
    }

    fn memo_path(&self, key: &str) -> std::path::PathBuf {
        self.apt.dir().join("resolved").join(key)
    }

    /// What `key` resolved to with the current lists, if they are fresh:
    /// lets a cached result skip apt and the lock entirely.
    pub fn memo(&self, key: &str) -> Option<String> {
        if !self.fresh() {
            return None;
        }
        let id = self.apt.lists_id()?;
        let text = fs::read_to_string(self.memo_path(key)).ok()?;
        let (first, rest) = text.split_once('\n')?;
        (first == id).then(|| rest.to_string())
    }

    pub fn set_memo(&self, key: &str, value: &str) -> Result<(), DebianError> {
        if let Some(id) = self.apt.lists_id() {
            write_atomic(&self.memo_path(key), format!("{id}\n{value}").as_bytes())?;
        }
        Ok(())
    }

    /// Takes the suite's lock and refreshes stale lists; `on_update` runs
    /// before a refresh. Concurrent runs for the same suite would
    /// otherwise fight over the lists; hold the guard while using apt.
    pub fn ready(&self, on_update: &mut dyn FnMut()) -> Result<CacheLock, DebianError> {
        let lock = self.cache.lock(&self.apt.dir().join("lock"), &mut || {})?;
        if !self.fresh() {
            on_update();
            self.apt.update()?;
        }
        Ok(lock)
    }

    /// The real packages among `names` (unknown and virtual ones left out).
    pub fn show(&self, names: &[&str]) -> Result<Vec<PackageInfo>, DebianError> {
        Ok(self.apt.show(names)?)
    }

    pub fn show_one(&self, name: &str) -> Result<PackageInfo, DebianError> {
        check_name("package", name)?;
        self.apt
            .show(&[name])?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| DebianError::NotFound {
                package: name.to_string(),
                suite: self.name.clone(),
            })
    }

    /// Downloads each package into `scratch/debs` and unpacks it into
    /// `root`, removing each .deb once unpacked (half the space at peak).
    pub fn fetch_into(
        &self,
        packages: &[Pinned],
        scratch: &Path,
        root: &Path,
        on_step: &mut dyn FnMut(&Pinned, PackageStep),
    ) -> Result<(), DebianError> {
        let debs = scratch.join("debs");
        fs::create_dir_all(&debs).map_err(|e| CacheError::io("cannot create", &debs, e))?;
        for p in packages {
            on_step(p, PackageStep::Downloading);
            let file = self.apt.download(&p.name, &p.version, &debs)?;
            on_step(p, PackageStep::Extracting);
            deb::extract(&file, root)?;
            let _ = fs::remove_file(&file);
        }
        let _ = fs::remove_dir_all(&debs);
        Ok(())
    }
}

/// Suites and package names end up in paths and on apt's command line.
pub fn check_name(what: &'static str, value: &str) -> Result<(), DebianError> {
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
        Some(why) => Err(DebianError::InvalidName {
            what,
            value: value.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

fn max_age_from_env() -> Result<Duration, DebianError> {
    parse_max_age(std::env::var(MAX_AGE_VAR).ok().as_deref())
}

fn parse_max_age(v: Option<&str>) -> Result<Duration, DebianError> {
    match v.map(str::trim) {
        Some(v) if !v.is_empty() => v
            .parse::<u64>()
            .map(|h| Duration::from_secs(h.saturating_mul(3600)))
            .map_err(|_| DebianError::InvalidMaxAge {
                value: v.to_string(),
            }),
        _ => Ok(DEFAULT_MAX_AGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("suite", "bookworm-backports").is_ok());
        assert!(check_name("package", "linux-image-7.2.13+deb14-cloud-amd64").is_ok());
        for bad in ["", "../x", "a/b", "-o", "x y"] {
            assert!(check_name("suite", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn max_age_is_hours_or_an_error() {
        assert_eq!(parse_max_age(None).unwrap(), DEFAULT_MAX_AGE);
        assert_eq!(parse_max_age(Some(" ")).unwrap(), DEFAULT_MAX_AGE);
        assert_eq!(parse_max_age(Some("0")).unwrap(), Duration::ZERO);
        assert_eq!(parse_max_age(Some("2")).unwrap(), Duration::from_secs(7200));
        // One rule for every user of the archive: a typo is an error, not
        // a silent 24 h.
        let e = parse_max_age(Some("2h")).unwrap_err().to_string();
        assert!(e.contains("BTFVM_APT_MAX_AGE_HOURS=\"2h\""), "{e}");
    }
}
