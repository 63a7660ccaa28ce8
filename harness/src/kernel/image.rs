//! A kernel ready to boot: the files the VM runner needs, wherever they came from.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// An x86 bzImage (checked by `kernel::bzimage`).
    pub vmlinuz: PathBuf,
    /// The kernel's .config.
    pub config: PathBuf,
    /// The `lib/modules/<release>` folder (or `usr/lib/modules/<release>`);
    /// modules stay as shipped (`.ko` or `.ko.xz`) and there is no modules.dep.
    pub modules_dir: PathBuf,
    /// The kernel release (`uname -r`), e.g. "6.1.0-28-cloud-amd64".
    pub release: String,
    /// Where it came from, for people: e.g.
    /// "debian:bookworm linux-image-6.1.0-28-cloud-amd64 6.1.119-1".
    pub origin: String,
}
