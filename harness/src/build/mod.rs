//! Kernels built from source (`btfvm kernel build`, `--kernel build:...`):
//! a tree (Debian's linux-source or a path), config fragments over a small
//! base, and a chosen pahole, built out of tree through ccache. The result
//! (bzImage, config, modules tree with the test module, log, metadata) is
//! cached under a key of everything that changes it, so an unchanged build
//! costs nothing; a build that failed for a reason in its inputs is
//! remembered the same way. The O= folder (~455 MB) is not kept.

pub mod cmd;
pub mod config;
pub mod debsuite;
pub mod findings;
pub mod make;
pub mod matrix;
pub mod meta;
pub mod pahole;
mod pipeline;
pub mod progress;
pub mod source;
pub mod spec;
pub mod testmod;

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use meta::{BuildFailure, BuildMeta, Stage};
pub use spec::{BuildSpec, PaholeChoice, TreeSource};

use crate::cache::{Cache, CacheError};
use crate::kernel::KernelImage;

/// Bump when the way a kernel is built changes, to retire cached results.
const RECIPE: &str = "btfvm-build-1";

/// Progress of a build, in order; `progress::Printer` shows it.
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
}

/// A built kernel, fresh or from the cache.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: KernelImage,
    pub meta: BuildMeta,
    pub entry: PathBuf,
    pub cached: bool,
}

/// Everything that changes a build's output, hashed.
struct Inputs {
    spec: BuildSpec,
    tree: source::Tree,
    pahole: pahole::Pahole,
    fragments: Vec<config::Fragment>,
    compiler: String,
    linker: String,
    key: String,
    /// Cache folder name: readable prefix plus the key.
    name: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Packages that provide what a kernel build runs, for the error message.
const TOOLS: [(&str, &str); 7] = [
    ("make", "make"),
    ("gcc", "gcc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("xz", "xz-utils"),
    ("perl", "perl"),
];

fn check_tools() -> Result<(), BuildError> {
    let on_path = |p: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
    };
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(p, _)| !on_path(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    // objtool (x86-64) links against libelf.
    if !Path::new("/usr/include/libelf.h").exists() && !Path::new("/usr/include/gelf.h").exists() {
        missing.push("libelf-dev");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(BuildError::MissingTool {
        what: missing.join(", "),
        hint: format!(
            "sudo apt-get install --no-install-recommends {} (see .ci/run for the full list)",
            missing.join(" ")
        ),
    })
}

fn gather(
    spec: &BuildSpec,
    cache: &Cache,
    opts: &BuildOptions,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Inputs, BuildError> {
    check_tools()?;
    let fragments = config::load_fragments(spec)?;
    let tree = source::prepare(&spec.tree, cache, opts.mirror.as_deref(), events)?;
    let pahole = pahole::resolve(&spec.pahole, cache, opts.mirror.as_deref(), events)?;
    let compiler = make::tool_version("gcc").unwrap_or_else(|| "gcc (unknown)".into());
    let linker = make::tool_version("ld").unwrap_or_else(|| "ld (unknown)".into());
    let mut h = Sha256::new();
    for part in [
        RECIPE,
        &tree.identity,
        &pahole.identity,
        &compiler,
        &linker,
        &testmod::sources_hash(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for f in &fragments {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    let key = hex(&h.finalize());
    let pv = pahole
        .version
        .clone()
        .unwrap_or_else(|| "none".into())
        .replace('/', "_");
    let name = format!(
        "{}_{}_pahole-{pv}_{}",
        tree.label,
        spec.fragments
            .iter()
            .map(|f| f
                .rsplit('/')
                .next()
                .unwrap_or(f)
                .trim_end_matches(".config"))
            .collect::<Vec<_>>()
            .join("+"),
        &key[..12]
    );
    Ok(Inputs {
        spec: spec.clone(),
        tree,
        pahole,
        fragments,
        compiler,
        linker,
        key,
        name,
    })
}

/// Builds `spec`, or returns the cached result (or cached failure) for
/// its inputs. See the module doc.
pub fn build(
    spec: &BuildSpec,
    cache: &Cache,
    opts: &BuildOptions,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Built, BuildError> {
    let inputs = gather(spec, cache, opts, events)?;
    let kernels = cache.subdir("build/kernels")?;
    let failed = cache.subdir("build/failed")?;
    let entry = kernels.join(&inputs.name);
    let failure_dir = failed.join(&inputs.name);
    let reuse = inputs.tree.cacheable && !opts.rebuild;
    if reuse {
        if let Some(b) = load(&entry, &inputs) {
            events(BuildEvent::Cached { entry });
            return Ok(b);
        }
        if let Some(f) = load_failure(&failure_dir) {
            return Err(BuildError::Failed(Box::new(f)));
        }
    }
    // One kernel build at a time per cache: two on a 2-core machine only
    // slow each other down, and a second run then finds the first's result.
    let _lock = cache.lock(&cache.root().join("build/lock"))?;
    if reuse {
        if let Some(b) = load(&entry, &inputs) {
            events(BuildEvent::Cached { entry });
            return Ok(b);
        }
    }
    for old in [&entry, &failure_dir] {
        if old.exists() {
            fs::remove_dir_all(old).map_err(|e| CacheError::io("cannot remove", old, e))?;
        }
    }
    let work_root = cache.subdir("build/work")?;
    let started = std::time::Instant::now();
    let result = pipeline::run(&inputs, cache, &work_root, &entry, opts, events);
    events(BuildEvent::Finished {
        seconds: started.elapsed().as_secs_f64(),
        ok: result.is_ok(),
    });
    match result {
        Ok(()) => load(&entry, &inputs)
            .map(|b| Built { cached: false, ..b })
            .ok_or_else(|| {
                BuildError::Failed(Box::new(pipeline::failure(
                    &inputs,
                    Stage::Install,
                    format!("{} was installed without valid metadata", entry.display()),
                )))
            }),
        Err(BuildError::Failed(mut f)) => {
            if !f.transient {
                remember_failure(cache, &failure_dir, &mut f)?;
            }
            Err(BuildError::Failed(f))
        }
        Err(e) => Err(e),
    }
}

/// Keeps the failure and its log under the key (the work folder goes).
fn remember_failure(cache: &Cache, dir: &Path, f: &mut BuildFailure) -> Result<(), BuildError> {
    let old_log = f.log.clone();
    cache.install_dir(dir, |tmp| -> Result<(), CacheError> {
        if let Some(log) = &old_log {
            let to = tmp.join("build.log");
            if fs::rename(log, &to).is_ok() {
                f.log = Some(dir.join("build.log"));
            }
        }
        meta::write_json(&tmp.join("failure.json"), &*f)
    })?;
    Ok(())
}

fn load_failure(dir: &Path) -> Option<BuildFailure> {
    let mut f: BuildFailure = meta::read_json(&dir.join("failure.json"))?;
    f.cached = true;
    Some(f)
}

/// A cached build, if `entry` holds a complete one.
fn load(entry: &Path, inputs: &Inputs) -> Option<Built> {
    let meta: BuildMeta = meta::read_json(&entry.join("meta.json"))?;
    if meta.schema != meta::SCHEMA || meta.key != inputs.key {
        return None;
    }
    let image = KernelImage {
        vmlinuz: entry.join("bzImage"),
        config: entry.join("config"),
        modules_dir: entry.join("modules/lib/modules").join(&meta.release),
        release: meta.release.clone(),
        origin: origin(&meta),
    };
    let complete = image.vmlinuz.is_file() && image.config.is_file() && image.modules_dir.is_dir();
    complete.then(|| Built {
        image,
        meta,
        entry: entry.to_path_buf(),
        cached: true,
    })
}

/// What the report shows as the kernel's origin: the spec and what it
/// resolved to, including the pahole that actually ran.
pub fn origin(m: &BuildMeta) -> String {
    format!(
        "{} = {}, {} (Kconfig saw {}), {}, key {}",
        m.spec,
        m.tree,
        m.pahole.description,
        m.pahole
            .kconfig_version
            .as_deref()
            .map(|v| format!("PAHOLE_VERSION={v}"))
            .unwrap_or_else(|| "no PAHOLE_VERSION".into()),
        m.compiler,
        &m.key[..12.min(m.key.len())]
    )
}
