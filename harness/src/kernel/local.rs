//! A kernel on disk: `--kernel PATH` with `--modules` and `--config`, or laid
//! out the Debian way (`/boot/vmlinuz-<kver>`, `/boot/config-<kver>`,
//! `/lib/modules/<kver>`).

use std::path::{Path, PathBuf};

use btfvm_proto::KernelVersion;

use super::bzimage;
use super::image::KernelImage;
use super::KernelError;

pub fn resolve(
    vmlinuz: &Path,
    modules: Option<&Path>,
    config: Option<&Path>,
) -> Result<KernelImage, KernelError> {
    if !vmlinuz.is_file() {
        return Err(KernelError::Local(format!(
            "{}: no such file",
            vmlinuz.display()
        )));
    }
    let release = bzimage::release_of(vmlinuz).map_err(|e| {
        KernelError::Local(format!(
            "{}: not a usable x86 kernel: {e}",
            vmlinuz.display()
        ))
    })?;
    let dir = vmlinuz.parent().unwrap_or(Path::new("."));
    let config = match config {
        Some(c) => c.to_path_buf(),
        None => {
            let guess = dir.join(format!("config-{release}"));
            if !guess.is_file() {
                return Err(KernelError::Local(format!(
                    "no kernel config for {}: looked for {}; pass --config FILE",
                    vmlinuz.display(),
                    guess.display()
                )));
            }
            guess
        }
    };
    check_config_matches(&config, &release)?;
    let modules_dir = match modules {
        Some(m) => m.to_path_buf(),
        None => PathBuf::from(format!("/lib/modules/{release}")),
    };
    if !modules_dir.is_dir() {
        return Err(KernelError::Local(format!(
            "modules directory {} does not exist; pass --modules DIR (a lib/modules/<kver> tree)",
            modules_dir.display()
        )));
    }
    // A modules tree of another kernel loads nothing and wastes a boot.
    if let Some(name) = modules_dir.file_name().and_then(|n| n.to_str()) {
        if name.chars().next().is_some_and(|c| c.is_ascii_digit()) && name != release {
            return Err(KernelError::Local(format!(
                "{} is for kernel {name}, but {} is {release}",
                modules_dir.display(),
                vmlinuz.display()
            )));
        }
    }
    Ok(KernelImage {
        vmlinuz: vmlinuz.to_path_buf(),
        config,
        modules_dir,
        origin: format!("{} ({release})", vmlinuz.display()),
        release,
    })
}

/// Every expectation comes from the config, so a config of another kernel
/// would silently decide what runs. Releases carry the major.minor even
/// where the distribution hides the patch level (Debian's "6.1.0-28").
fn check_config_matches(config: &Path, release: &str) -> Result<(), KernelError> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| KernelError::Local(format!("reading {}: {e}", config.display())))?;
    let cfg = btfvm_proto::KernelConfig::parse(&text);
    let Some(cfg_version) = cfg.version().and_then(KernelVersion::parse) else {
        return Err(KernelError::Local(format!(
            "{} has no \"# Linux/<arch> <version> Kernel Configuration\" header: is it a kernel .config?",
            config.display()
        )));
    };
    if let Some(rel) = KernelVersion::parse(release) {
        if (rel.0, rel.1) != (cfg_version.0, cfg_version.1) {
            return Err(KernelError::Local(format!(
                "{} is the config of Linux {cfg_version}, but the kernel is {release}; pass the matching --config",
                config.display()
            )));
        }
    }
    Ok(())
}
