//! What a guest needs to mount the host's shares: the virtio PCI
//! transport, fuse and virtiofs where the kernel has them as modules
//! (Debian's 6.1 does; 6.12 builds them in), and a mount point per tag.

use btfvm_proto::ShareMount;

use super::initramfs::{Archive, Entry};
use super::modules;
use crate::inputs::share::Share;
use crate::kernel::KernelImage;

/// Why a kernel cannot mount a share, if it cannot.
pub fn unsupported(image: &KernelImage) -> Option<String> {
    let cfg = &image.config.parsed;
    for opt in ["CONFIG_VIRTIO_FS", "CONFIG_VIRTIO_PCI", "CONFIG_FUSE_FS"] {
        if !matches!(cfg.get(opt), "y" | "m") {
            return Some(format!(
                "kernel {} has no {opt}, so it cannot mount a --share (virtiofs)",
                image.release
            ));
        }
    }
    None
}

/// The mounts, with the module files they need placed in the archive.
pub fn mounts(
    image: &KernelImage,
    shares: &[Share],
    archive: &mut Archive,
) -> Result<Vec<ShareMount>, String> {
    if shares.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(why) = unsupported(image) {
        return Err(why);
    }
    let files = modules::needed_for(
        image,
        &[
            ("CONFIG_VIRTIO_PCI", "virtio_pci"),
            ("CONFIG_VIRTIO_FS", "virtiofs"),
        ],
    )
    .map_err(|e| format!("the virtiofs modules of {}: {e}", image.release))?;
    let mut placed = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let elf = modules::read_module(f).map_err(|e| e.to_string())?;
        let at = format!("/share-modules/{i}.ko");
        archive.add(Entry::file(&at, 0o644, elf));
        placed.push(at);
    }
    Ok(shares
        .iter()
        .enumerate()
        .map(|(i, s)| ShareMount {
            tag: s.tag.clone(),
            at: s.guest_dir(),
            // Loaded once, before the first mount.
            modules: if i == 0 { placed.clone() } else { Vec::new() },
        })
        .collect())
}
