//! Getting a kernel to boot: from Debian's archive through apt, or from
//! disk. Both give a [`KernelImage`]: the files QEMU and the plan need, and
//! the kernel's .config read and parsed once, since every expectation comes
//! from it. (Kernels built from source come from `crate::kbuild`, which
//! gives the same value.)

pub mod bzimage;
pub mod debian;
pub mod local;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use btfvm_proto::{KernelConfig, KernelVersion};

use crate::support::manifest::{Damage, Manifest};

/// A kernel ready to boot, wherever it came from.
#[derive(Debug, Clone)]
pub struct KernelImage {
    /// An x86 bzImage (checked by `kernel::bzimage`).
    pub vmlinuz: PathBuf,
    /// The `lib/modules/<release>` folder (or `usr/lib/modules/<release>`);
    /// modules stay as shipped (`.ko` or `.ko.xz`) and there is no modules.dep.
    pub modules_dir: PathBuf,
    /// The kernel release (`uname -r`), e.g. "6.1.0-28-cloud-amd64".
    pub release: String,
    /// Where it came from, for people: e.g.
    /// "debian:bookworm linux-image-6.1.0-28-cloud-amd64 6.1.119-1".
    pub origin: String,
    pub config: ConfigFile,
    /// The cache entry it lives in (None for a kernel on disk): what it
    /// held when installed, to tell a damaged cache from a kernel bug.
    pub cache_entry: Option<CacheEntry>,
}

/// A kernel's folder in the cache and its manifest.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub dir: PathBuf,
    pub manifest: Arc<Manifest>,
}

impl CacheEntry {
    /// The entry as installed, if its manifest is there and every file has
    /// its size (and the files named in `hash` their content).
    pub fn open(dir: &Path, hash: &[&Path]) -> Result<CacheEntry, Damage> {
        let manifest = Manifest::read(dir).ok_or_else(|| Damage {
            path: dir.join(crate::support::manifest::FILE),
            what: "missing or unreadable (installed by an older btfvm, or cut short)".into(),
        })?;
        let rels: Vec<String> = hash
            .iter()
            .filter_map(|p| p.strip_prefix(dir).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let rels: Vec<&str> = rels.iter().map(String::as_str).collect();
        manifest.check_quick(dir, &rels)?;
        Ok(CacheEntry {
            dir: dir.to_path_buf(),
            manifest: Arc::new(manifest),
        })
    }

    /// These files have the content they were installed with.
    pub fn check_files(&self, files: &[&Path]) -> Result<(), Damage> {
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| Damage {
                path: f.to_path_buf(),
                what: format!("cannot be read: {e}"),
            })?;
            self.check_bytes(f, &bytes)?;
        }
        Ok(())
    }

    /// Every file hashed (after a failed boot, or on request).
    pub fn check_full(&self) -> Result<(), Damage> {
        self.manifest.check_full(&self.dir)
    }

    /// `bytes` just read from `path` are what was installed.
    pub fn check_bytes(&self, path: &Path, bytes: &[u8]) -> Result<(), Damage> {
        self.manifest.check_bytes(&self.dir, path, bytes)
    }

    /// Takes a damaged entry out of the cache: renamed out of the way
    /// first (one rename, so no run ever sees half of it), then removed.
    pub fn discard(dir: &Path) -> std::io::Result<()> {
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        let doomed = tempfile::Builder::new()
            .prefix(".btfvm-tmp-damaged-")
            .tempdir_in(parent)?;
        let to = doomed.path().join("entry");
        std::fs::rename(dir, &to)?;
        drop(doomed);
        Ok(())
    }
}

/// A kernel's .config: the text the guest gets, and what it says.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
    pub parsed: KernelConfig,
    /// The upstream version from Kconfig's header ("6.1.176").
    pub version: KernelVersion,
}

/// Largest .config accepted: real ones are 100-300 KB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read kernel config: {0}")]
    Read(#[from] crate::support::fsread::ReadError),
    #[error("kernel config {} is {what}: it says nothing about the kernel, so nothing could be checked against it", path.display())]
    Unusable { path: PathBuf, what: String },
    #[error("{} has no \"# Linux/<arch> <version> Kernel Configuration\" header: is it a kernel .config?", path.display())]
    NoVersion { path: PathBuf },
}

impl ConfigFile {
    /// Reads and parses a .config once. An empty one, or one without the
    /// version header, is refused: every expectation (and every "feature
    /// absent") comes from it, so an unreadable config would quietly turn
    /// every scenario into "ignored".
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = crate::support::fsread::read_text(path, MAX_CONFIG_BYTES, "a kernel .config")?;
        Self::from_text(path, text)
    }

    pub fn from_text(path: &Path, text: String) -> Result<ConfigFile, ConfigError> {
        let parsed = KernelConfig::parse(&text);
        if parsed.is_empty() {
            return Err(ConfigError::Unusable {
                path: path.to_path_buf(),
                what: if text.trim().is_empty() {
                    "empty".into()
                } else {
                    "without a single CONFIG_ option".into()
                },
            });
        }
        let version = parsed
            .version()
            .and_then(KernelVersion::parse)
            .ok_or_else(|| ConfigError::NoVersion {
                path: path.to_path_buf(),
            })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
            parsed,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_that_say_nothing_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config");
        for (text, want) in [
            ("", "is empty"),
            ("# just a comment\n", "without a single CONFIG_ option"),
            ("CONFIG_X=y\n", "has no \"# Linux/<arch> <version>"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = ConfigFile::read(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        std::fs::write(&p, "# Linux/x86 6.1.176 Kernel Configuration\nCONFIG_X=y\n").unwrap();
        let c = ConfigFile::read(&p).unwrap();
        let e = ConfigFile::read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a character device"), "{e}");
        assert_eq!(c.version, KernelVersion(6, 1, 176));
        assert_eq!(c.parsed.get("CONFIG_X"), "y");
        assert!(ConfigFile::read(d.path()).is_err());
    }
}
