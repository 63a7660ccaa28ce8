//! Kernels built from source (`btfvm kernel build`, `--kernel build:...`):
//! a tree (Debian's linux-source or a path), config fragments over a small
//! base, and a chosen pahole, built out of tree through ccache. The result
//! (bzImage, config, modules tree with the test module, log, metadata) is
//! cached under a key of everything that changes it, so an unchanged build
//! costs nothing; a build that failed for a reason in its inputs is
//! remembered the same way. The O= folder (~455 MB) is not kept.

pub mod config;
mod entry;
pub mod findings;
mod inputs;
pub mod make;
pub mod meta;
pub mod oot;
pub mod pahole;
mod pipeline;
pub mod probe;
pub mod source;
pub mod testmod;

use std::path::PathBuf;

pub use entry::{build, origin};
pub use meta::{BuildFailure, BuildMeta, Stage};

pub use crate::inputs::build_spec::{BuildSpec, PaholeChoice, TreeSource};
use crate::kernel::KernelImage;
use crate::support::cache::CacheError;
use crate::support::ErrorClass;

/// Progress of a build, in order; the binary shows it.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// A step begins ("downloading linux-source-6.1 6.1.176-1 (132 MiB)").
    Step { what: String },
    /// How far the current step is (bytes of a download or an unpacking).
    Progress { done: u64, total: u64 },
    /// One line of make's output.
    Make { line: String },
    /// The result came from the cache: nothing was built.
    Cached { entry: PathBuf },
    /// A build finished (successfully or not) after this long.
    Finished { seconds: f64, ok: bool },
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub mirror: Option<String>,
    /// Build even if the cache has a result (or a failure) for the key.
    pub rebuild: bool,
    /// make -j; default: the number of CPUs.
    pub jobs: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Pahole(#[from] pahole::PaholeError),
    #[error(transparent)]
    Fragment(#[from] config::FragmentError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("building kernels needs {what}, which is missing: {hint}")]
    MissingTool { what: String, hint: String },
    #[error("{0}")]
    Failed(Box<BuildFailure>),
    /// `make olddefconfig` on a candidate .config (a config bisect).
    #[error("{0}")]
    Kconfig(make::MakeError),
    /// Stopped on a stop request: says nothing about the inputs, so
    /// nothing is remembered.
    #[error(transparent)]
    Interrupted(#[from] crate::support::stop::Interrupted),
}

impl BuildError {
    /// A build that failed for a reason in its inputs is the kernel's
    /// (a bisect skips it); a missing tool or a full disk is the machine's.
    pub fn class(&self) -> ErrorClass {
        match self {
            BuildError::Failed(f) if f.transient => ErrorClass::Environment,
            BuildError::Failed(_) => ErrorClass::Kernel,
            BuildError::Source(e) => e.class(),
            BuildError::Pahole(e) => e.class(),
            BuildError::Fragment(_) => ErrorClass::Input,
            BuildError::Cache(e) => e.class(),
            BuildError::Interrupted(i) => i.class(),
            BuildError::MissingTool { .. } => ErrorClass::Environment,
            BuildError::Kconfig(make::MakeError::Failed {
                signalled: false, ..
            }) => ErrorClass::Kernel,
            BuildError::Kconfig(make::MakeError::Interrupted(i)) => i.class(),
            BuildError::Kconfig(_) => ErrorClass::Environment,
        }
    }
}

/// A built kernel, fresh or from the cache.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: KernelImage,
    pub meta: BuildMeta,
    pub entry: PathBuf,
    pub cached: bool,
}
