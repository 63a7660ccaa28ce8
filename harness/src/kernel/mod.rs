//! Getting a kernel to boot: from Debian's archive through apt, or from
//! disk. Both give a [`KernelImage`]: the files QEMU and the plan need, and
//! the kernel's .config read and parsed once, since every expectation comes
//! from it. (Kernels built from source come from `crate::kbuild`, which
//! gives the same value.)

pub mod bzimage;
pub mod debian;
pub mod local;

use std::path::{Path, PathBuf};

use btfvm_proto::{KernelConfig, KernelVersion};

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
    #[error("cannot read kernel config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if !meta.is_file() {
            return Err(ConfigError::Unusable {
                path: path.to_path_buf(),
                what: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Unusable {
                path: path.to_path_buf(),
                what: format!(
                    "{} bytes, over the {MAX_CONFIG_BYTES}-byte limit for a .config",
                    meta.len()
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
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
        assert_eq!(c.version, KernelVersion(6, 1, 176));
        assert_eq!(c.parsed.get("CONFIG_X"), "y");
        assert!(ConfigFile::read(d.path()).is_err());
    }
}
