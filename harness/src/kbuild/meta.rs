//! What a build records about itself (`meta.json` in its cache entry) and
//! about a failure (`failure.json`), so that a cached result can be shown
//! and reported exactly as a fresh one.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::findings::Finding;
use crate::support::cache::{write_atomic, CacheError};

pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildMeta {
    pub schema: u32,
    pub key: String,
    /// The canonical `build:` string.
    pub spec: String,
    pub tree: String,
    pub tree_dir: PathBuf,
    pub fragments: Vec<FragmentMeta>,
    pub pahole: PaholeMeta,
    pub compiler: String,
    pub linker: String,
    /// ccache's version line, or None when the build ran without it.
    pub ccache: Option<String>,
    pub release: String,
    /// The final value of CONFIG_DEBUG_INFO_BTF_MODULES ("y" or "n").
    pub btf_modules: String,
    /// Options the fragments asked for; all were in the final .config.
    pub options_checked: usize,
    pub test_module_btf_bytes: Option<u64>,
    pub built_at_unix: u64,
    pub seconds: Seconds,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FragmentMeta {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaholeMeta {
    /// host, none, debian:<suite> or a path.
    pub choice: String,
    pub program: PathBuf,
    /// What `pahole --version` printed; None without pahole.
    pub version: Option<String>,
    pub description: String,
    /// CONFIG_PAHOLE_VERSION of the final .config: what Kconfig saw.
    pub kconfig_version: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Seconds {
    pub configure: f64,
    pub make: f64,
    pub test_module: f64,
    pub install: f64,
    pub total: f64,
}

/// Where a failed build stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The final .config lacks an option a fragment asked for.
    Config,
    /// make bzImage modules failed.
    Make,
    /// The test module failed to build or has the wrong BTF.
    TestModule,
    /// modules_install or copying the results failed.
    Install,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Config => "config",
            Stage::Make => "make",
            Stage::TestModule => "test module",
            Stage::Install => "install",
        })
    }
}

/// A build that ran and failed for a reason in its inputs: the same inputs
/// fail again, so it is remembered under the same key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildFailure {
    pub schema: u32,
    pub key: String,
    pub spec: String,
    pub stage: Stage,
    pub message: String,
    /// Options a fragment asked for that the final .config lacks (or
    /// keeps but cannot build), with a short cause each.
    #[serde(default)]
    pub dropped: Vec<DroppedOption>,
    pub finding: Option<Finding>,
    /// The first compiler error in the whole log: with make -j the last
    /// lines often show only the jobs that finished after it.
    #[serde(default)]
    pub first_error: Option<String>,
    pub pahole: Option<String>,
    pub log: Option<PathBuf>,
    pub failed_at_unix: u64,
    /// Set when this came from the cache rather than from this run.
    #[serde(skip)]
    pub cached: bool,
    /// A failure of the machine, not of the inputs: not remembered.
    #[serde(skip)]
    pub transient: bool,
}

impl BuildFailure {
    /// The one line that says why: the known cause, else the compiler's
    /// or make's first error line, else the message's first line.
    pub fn headline(&self) -> String {
        if let Some(f) = &self.finding {
            return f.cause.clone();
        }
        if let Some(e) = &self.first_error {
            return e.clone();
        }
        let lines = || self.message.lines().map(str::trim);
        lines()
            .find(|l| l.contains(" error: ") || l.contains(": error:"))
            .or_else(|| lines().find(|l| l.contains("Error ") || l.contains("error:")))
            .or_else(|| lines().next())
            .unwrap_or_default()
            .to_string()
    }
}

impl std::fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kernel build failed at the {} stage: {}",
            self.stage, self.message
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "\nfirst error: {e}")?;
        }
        if let Some(fi) = &self.finding {
            write!(f, "\ncause: {} (log: {:?})", fi.cause, fi.evidence)?;
            if !fi.workarounds.is_empty() {
                write!(f, "; fragments to try: {}", fi.workarounds.join(", "))?;
            }
        }
        if let Some(l) = &self.log {
            write!(f, "\nfull build log: {}", l.display())?;
        }
        if self.cached {
            write!(
                f,
                "\n(remembered from an earlier build with the same inputs; --rebuild to try again)"
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DroppedOption {
    pub option: String,
    pub wanted: String,
    pub got: String,
    pub short: String,
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CacheError> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_default();
    text.push(b'\n');
    write_atomic(path, &text)
}

/// None when missing or unreadable: an entry without valid metadata is
/// treated as absent and rebuilt.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headline_is_the_compilers_error() {
        let f = BuildFailure {
            schema: SCHEMA,
            key: "k".into(),
            spec: "s".into(),
            stage: Stage::Make,
            // As a failed make leaves it (measured on the bisect test's
            // unbuildable commit).
            message: "`make -C t O=o bzImage modules` failed (exit status: 2); last lines:\n    \
                      CC      kernel/bpf/btf.o\n    \
                      kernel/bpf/btf.c:7104:43: error: expected expression before '}' token\n    \
                      make[3]: *** [scripts/Makefile.build:250: kernel/bpf/btf.o] Error 1"
                .into(),
            dropped: Vec::new(),
            finding: None,
            first_error: None,
            pahole: None,
            log: None,
            failed_at_unix: 0,
            cached: false,
            transient: false,
        };
        assert_eq!(
            f.headline(),
            "kernel/bpf/btf.c:7104:43: error: expected expression before '}' token"
        );
        // The log's first error wins over the last lines.
        let f = BuildFailure {
            first_error: Some("a.c:1:1: error: x".into()),
            ..f
        };
        assert_eq!(f.headline(), "a.c:1:1: error: x");
    }
}
