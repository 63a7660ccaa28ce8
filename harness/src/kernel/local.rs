//! A kernel on disk: `--kernel PATH` with `--modules` and `--config`, or laid
//! out the Debian way (`/boot/vmlinuz-<kver>`, `/boot/config-<kver>`,
//! `/lib/modules/<kver>`).

use std::path::{Path, PathBuf};

use btfvm_proto::KernelVersion;

use super::bzimage::{self, BzImageError};
use super::{ConfigError, ConfigFile, KernelImage};
use crate::inputs::source::LocalKernel;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{}: no such file", path.display())]
    NoVmlinuz { path: PathBuf },
    #[error("{}: is {kind}, not a kernel image", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{}: not a usable x86 kernel: {source}", path.display())]
    NotAKernel {
        path: PathBuf,
        #[source]
        source: BzImageError,
    },
    #[error("no kernel config for {}: looked for {}; pass --config FILE", vmlinuz.display(), looked.display())]
    NoConfig { vmlinuz: PathBuf, looked: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{} is the config of Linux {config}, but the kernel is {release}; pass the matching --config", path.display())]
    ConfigMismatch {
        path: PathBuf,
        config: KernelVersion,
        release: String,
    },
    #[error("modules directory {} does not exist; pass --modules DIR (a lib/modules/<kver> tree)", path.display())]
    NoModules { path: PathBuf },
    #[error("no modules tree for {release}: looked for {}; pass --modules DIR (a lib/modules/<kver> tree)", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoModulesFound {
        release: String,
        looked: Vec<PathBuf>,
    },
    #[error("{} is for kernel {found}, but {} is {release}", path.display(), vmlinuz.display())]
    ModulesMismatch {
        path: PathBuf,
        found: String,
        vmlinuz: PathBuf,
        release: String,
    },
}

pub fn resolve(k: &LocalKernel) -> Result<KernelImage, LocalError> {
    let vmlinuz = &k.vmlinuz;
    match std::fs::metadata(vmlinuz) {
        Err(_) => {
            return Err(LocalError::NoVmlinuz {
                path: vmlinuz.clone(),
            })
        }
        Ok(m) if !m.is_file() => {
            return Err(LocalError::NotAFile {
                path: vmlinuz.clone(),
                kind: crate::support::fsread::kind_of(&m.file_type()),
            })
        }
        Ok(_) => {}
    }
    let release = bzimage::release_of(vmlinuz).map_err(|source| LocalError::NotAKernel {
        path: vmlinuz.clone(),
        source,
    })?;
    let dir = vmlinuz.parent().unwrap_or(Path::new("."));
    let config_path = match &k.config {
        Some(c) => c.clone(),
        None => {
            let guess = dir.join(format!("config-{release}"));
            if !guess.is_file() {
                return Err(LocalError::NoConfig {
                    vmlinuz: vmlinuz.clone(),
                    looked: guess,
                });
            }
            guess
        }
    };
    let config = ConfigFile::read(&config_path)?;
    check_config_matches(&config, &release)?;
    let modules_dir = match &k.modules {
        Some(m) if m.is_dir() => m.clone(),
        Some(m) => return Err(LocalError::NoModules { path: m.clone() }),
        None => default_modules(dir, &release)?,
    };
    // A modules tree of another kernel loads nothing and wastes a boot.
    if let Some(name) = modules_dir.file_name().and_then(|n| n.to_str()) {
        if name.chars().next().is_some_and(|c| c.is_ascii_digit()) && name != release {
            return Err(LocalError::ModulesMismatch {
                found: name.to_string(),
                path: modules_dir.clone(),
                vmlinuz: vmlinuz.clone(),
                release,
            });
        }
    }
    Ok(KernelImage {
        vmlinuz: vmlinuz.clone(),
        cache_entry: None,
        config,
        modules_dir,
        origin: format!("{} ({release})", vmlinuz.display()),
        release,
    })
}

/// Debian's layout, wherever its root is: `<root>/boot/vmlinuz-<kver>` has
/// `<root>/lib/modules/<kver>` (so /boot/vmlinuz-<kver> has
/// /lib/modules/<kver>), and a tree installed next to the image
/// (`INSTALL_MOD_PATH=` its folder) is found too.
fn default_modules(dir: &Path, release: &str) -> Result<PathBuf, LocalError> {
    let sub = Path::new("lib/modules").join(release);
    let mut looked = vec![dir.join(&sub)];
    if let Some(root) = dir.parent() {
        looked.push(root.join(&sub));
        looked.push(root.join("usr").join(&sub));
    }
    looked.dedup();
    match looked.iter().find(|p| p.is_dir()) {
        Some(p) => Ok(p.clone()),
        None => Err(LocalError::NoModulesFound {
            release: release.to_string(),
            looked,
        }),
    }
}

/// Every expectation comes from the config, so a config of another kernel
/// would silently decide what runs. Releases carry the major.minor even
/// where the distribution hides the patch level (Debian's "6.1.0-28").
fn check_config_matches(config: &ConfigFile, release: &str) -> Result<(), LocalError> {
    let v = config.version;
    if let Some(rel) = KernelVersion::parse(release) {
        if (rel.0, rel.1) != (v.0, v.1) {
            return Err(LocalError::ConfigMismatch {
                path: config.path.clone(),
                config: v,
                release: release.to_string(),
            });
        }
    }
    Ok(())
}
