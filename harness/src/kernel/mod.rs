//! Getting a kernel to boot: from Debian's archive through apt, from disk,
//! or built from source (`crate::build`).

pub mod apt;
pub mod bzimage;
pub mod deb;
pub mod debian;
pub mod image;
pub mod local;
pub mod mirror;

pub use image::KernelImage;

use crate::cache::Cache;
use crate::kernelspec::KernelSource;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Debian(#[from] debian::DebianError),
    #[error("{0}")]
    Local(String),
    #[error(transparent)]
    Build(Box<crate::build::BuildError>),
}

/// Fetches (or finds in the cache) the kernel a source names.
pub fn resolve(
    source: &KernelSource,
    cache: &Cache,
    mirror: Option<&str>,
    on_event: &mut dyn FnMut(debian::FetchEvent),
) -> Result<KernelImage, KernelError> {
    match source {
        KernelSource::Debian { suite, package } => {
            let req = debian::DebianRequest {
                suite: suite.clone(),
                package: package.clone(),
                mirror: mirror.map(String::from),
            };
            Ok(debian::fetch(&req, cache, on_event)?)
        }
        KernelSource::Local {
            vmlinuz,
            modules,
            config,
        } => local::resolve(vmlinuz, modules.as_deref(), config.as_deref()),
        // A build reports its own progress (a live tail of make), which
        // `FetchEvent` has no words for.
        KernelSource::Build(spec) => {
            let opts = crate::build::BuildOptions {
                mirror: mirror.map(String::from),
                ..Default::default()
            };
            let mut printer = crate::build::progress::Printer::new("build");
            crate::build::build(spec, cache, &opts, &mut |e| printer.event(e))
                .map(|b| b.image)
                .map_err(|e| KernelError::Build(Box::new(e)))
        }
    }
}
