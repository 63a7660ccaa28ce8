//! A build's cache entry: `build` returns the cached result (or the
//! cached failure) for a build's inputs, or runs the pipeline under the
//! build lock and installs what it made.

use std::fs;
use std::path::Path;

use super::inputs::{gather, Inputs};
use super::meta::{self, BuildFailure, BuildMeta, Stage};
use super::{pipeline, BuildError, BuildEvent, BuildOptions, BuildSpec, Built};
use crate::kernel::{CacheEntry, ConfigFile, KernelImage};
use crate::support::cache::{Cache, CacheError};
use crate::support::manifest::Damage;

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
        if let Some(b) = cached(&entry, &inputs, events) {
            return Ok(b);
        }
        if let Some(f) = load_failure(&failure_dir) {
            return Err(BuildError::Failed(Box::new(f)));
        }
    }
    // One kernel build at a time per cache: two on a 2-core machine only
    // slow each other down, and a second run then finds the first's result.
    let lock_path = cache.root().join("build/lock");
    let _lock = cache.lock(&lock_path, &mut || {
        events(BuildEvent::Step {
            what: format!(
                "waiting for another run's build to finish (it holds {})",
                lock_path.display()
            ),
        })
    })?;
    if reuse {
        if let Some(b) = cached(&entry, &inputs, events) {
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
    // A build stopped halfway neither succeeded nor failed.
    if !matches!(result, Err(BuildError::Interrupted(_))) {
        events(BuildEvent::Finished {
            seconds: started.elapsed().as_secs_f64(),
            ok: result.is_ok(),
        });
    }
    match result {
        Ok(()) => match load(&entry, &inputs) {
            Loaded::Built(b) => Ok(Built {
                cached: false,
                ..*b
            }),
            Loaded::Absent => Err(BuildError::Failed(Box::new(pipeline::failure(
                &inputs,
                Stage::Install,
                format!("{} was installed without valid metadata", entry.display()),
            )))),
            Loaded::Damaged(d) => Err(BuildError::Failed(Box::new(pipeline::failure(
                &inputs,
                Stage::Install,
                format!("the build just installed is not what was built: {d}"),
            )))),
        },
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

/// What a cache entry holds for these inputs.
enum Loaded {
    Absent,
    /// A build whose files differ from its manifest: built again.
    Damaged(Damage),
    Built(Box<Built>),
}

/// The cached build, with an event either way; a damaged one is reported
/// and then built again.
fn cached(entry: &Path, inputs: &Inputs, events: &mut dyn FnMut(BuildEvent)) -> Option<Built> {
    match load(entry, inputs) {
        Loaded::Built(b) => {
            events(BuildEvent::Cached {
                entry: entry.to_path_buf(),
            });
            Some(*b)
        }
        Loaded::Damaged(d) => {
            events(BuildEvent::Step {
                what: format!("the cached build is damaged ({d}): building it again"),
            });
            None
        }
        Loaded::Absent => None,
    }
}

/// A cached build, if `entry` holds a complete one as it was installed.
fn load(entry: &Path, inputs: &Inputs) -> Loaded {
    let Some(meta) = meta::read_json::<BuildMeta>(&entry.join("meta.json")) else {
        return Loaded::Absent;
    };
    if meta.schema != meta::SCHEMA || meta.key != inputs.key {
        return Loaded::Absent;
    }
    let vmlinuz = entry.join("bzImage");
    let config_path = entry.join("config");
    let cache_entry = match CacheEntry::open(entry, &[&vmlinuz, &config_path]) {
        Ok(e) => e,
        Err(d) => return Loaded::Damaged(d),
    };
    let modules_dir = entry.join("modules/lib/modules").join(&meta.release);
    let config = match ConfigFile::read(&config_path) {
        Ok(c) => c,
        Err(e) => {
            return Loaded::Damaged(Damage {
                path: config_path,
                what: e.to_string(),
            })
        }
    };
    let image = KernelImage {
        vmlinuz,
        config,
        modules_dir,
        release: meta.release.clone(),
        origin: origin(&meta),
        cache_entry: Some(cache_entry),
    };
    Loaded::Built(Box::new(Built {
        image,
        meta,
        entry: entry.to_path_buf(),
        cached: true,
    }))
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
