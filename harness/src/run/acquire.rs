//! A kernel source to a kernel ready to boot: fetched from Debian, found
//! on disk, or built from source. The one place that knows all three.

use crate::inputs::source::KernelSource;
use crate::kbuild::{self, BuildError, BuildEvent, BuildOptions};
use crate::kernel::debian::{self, FetchError, FetchEvent};
use crate::kernel::local::{self, LocalError};
use crate::kernel::KernelImage;
use crate::support::cache::Cache;
use crate::support::ErrorClass;

#[derive(Debug, Clone)]
pub enum AcquireEvent {
    Fetch(FetchEvent),
    Build(BuildEvent),
}

#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Build(Box<BuildError>),
}

impl AcquireError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AcquireError::Fetch(e) => e.class(),
            AcquireError::Local(_) => ErrorClass::Input,
            AcquireError::Build(e) => e.class(),
        }
    }
}

/// Fetches, finds or builds the kernel `source` names (or takes it from
/// the cache).
pub fn acquire(
    source: &KernelSource,
    cache: &Cache,
    mirror: Option<&str>,
    on_event: &mut dyn FnMut(AcquireEvent),
) -> Result<KernelImage, AcquireError> {
    match source {
        KernelSource::Debian(d) => Ok(debian::fetch(d, cache, mirror, &mut |e| {
            on_event(AcquireEvent::Fetch(e))
        })?),
        KernelSource::Local(l) => Ok(local::resolve(l)?),
        KernelSource::Build(spec) => {
            let opts = BuildOptions {
                mirror: mirror.map(String::from),
                ..Default::default()
            };
            kbuild::build(spec, cache, &opts, &mut |e| {
                on_event(AcquireEvent::Build(e))
            })
            .map(|b| b.image)
            .map_err(|e| AcquireError::Build(Box::new(e)))
        }
    }
}
