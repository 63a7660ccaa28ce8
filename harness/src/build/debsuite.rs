//! One Debian suite's private apt state, shared with the kernel fetcher
//! (the same folder, `debian/apt/<suite>-<mirror id>`, and its lock), plus
//! memos that let a cached build skip apt entirely.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::{write_atomic, Cache, CacheError, CacheLock};
use crate::kernel::apt::{AptDir, AptError, PackageInfo};
use crate::kernel::mirror::{self, MirrorError};

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("no package {package} in Debian {suite} (amd64, main)")]
    NotFound { package: String, suite: String },
}

pub struct Suite {
    pub name: String,
    pub apt: AptDir,
    cache: Cache,
}

impl Suite {
    /// Lays out the apt folder; no network.
    pub fn open(cache: &Cache, suite: &str, mirror: Option<&str>) -> Result<Suite, SuiteError> {
        let m = mirror::find(mirror)?;
        // Same id as kernel::debian, so both share lists and lock.
        let mut hasher = Sha256::new();
        hasher.update(m.uri.as_bytes());
        hasher.update(b"\0");
        if let Some(k) = &m.signed_by {
            hasher.update(k.as_os_str().as_encoded_bytes());
        }
        let id: String = hasher.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = cache.subdir(&format!("debian/apt/{suite}-{id}"))?;
        Ok(Suite {
            name: suite.to_string(),
            apt: AptDir::open(dir, suite, &m)?,
            cache: cache.clone(),
        })
    }

    fn fresh(&self) -> bool {
        let max_age = std::env::var("BTFVM_APT_MAX_AGE_HOURS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|h| Duration::from_secs(h.saturating_mul(3600)))
            .unwrap_or(DEFAULT_MAX_AGE);
        self.apt.lists_age().is_some_and(|a| a < max_age)
    }

    fn memo_path(&self, what: &str) -> PathBuf {
        self.apt
            .dir()
            .join("resolved")
            .join(format!("btfvm-{what}"))
    }

    /// A memo written for the current lists, if they are fresh: what a
    /// name resolved to last time, without running apt.
    pub fn memo(&self, what: &str) -> Option<String> {
        if !self.fresh() {
            return None;
        }
        let id = self.apt.lists_id()?;
        let text = fs::read_to_string(self.memo_path(what)).ok()?;
        let (first, rest) = text.split_once('\n')?;
        (first == id).then(|| rest.to_string())
    }

    pub fn set_memo(&self, what: &str, value: &str) -> Result<(), SuiteError> {
        if let Some(id) = self.apt.lists_id() {
            write_atomic(&self.memo_path(what), format!("{id}\n{value}").as_bytes())?;
        }
        Ok(())
    }

    /// Takes the suite's lock and refreshes stale lists; `on_update` runs
    /// before a refresh. Hold the guard while using apt.
    pub fn ready(&self, on_update: &mut dyn FnMut()) -> Result<CacheLock, SuiteError> {
        let lock = self.cache.lock(&self.apt.dir().join("lock"))?;
        if !self.fresh() {
            on_update();
            self.apt.update()?;
        }
        Ok(lock)
    }

    pub fn show_one(&self, name: &str) -> Result<PackageInfo, SuiteError> {
        self.apt
            .show(&[name])?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| SuiteError::NotFound {
                package: name.to_string(),
                suite: self.name.clone(),
            })
    }
}
