//! `btfvm fetch`: a kernel into the cache, and where its files are.

use std::path::Path;
use std::process::ExitCode;

use btfvm::inputs::source::KernelSource;
use btfvm::kernel::{CacheEntry, KernelImage};
use btfvm::run::acquire::{acquire, AcquireEvent};
use btfvm::run::events::RunEvent;
use btfvm::support::cache::Cache;
use btfvm::support::interrupt;

use crate::exit::{self, Classified, CmdResult};
use crate::render::Renderer;

pub fn fetch(word: &str, mirror: Option<&str>, kernels_dir: &Path, verify: bool) -> CmdResult {
    let source = KernelSource::parse(word, &kernels_dir.join("fragments"), Path::new(""))
        .map_err(|e| Classified::input(anyhow::anyhow!(e)))?;
    let cache = Cache::from_env().map_err(Classified::env)?;
    // From here every wait (apt, the suite's lock, unpacking) gives way
    // to a stop request.
    interrupt::install();
    let get = || get(&source, &cache, mirror, word);
    let mut image = get()?;
    if verify {
        let Some(entry) = &image.cache_entry else {
            return Err(Classified::input(anyhow::anyhow!(
                "{word} is not in the cache: nothing to verify"
            )));
        };
        if let Err(d) = entry.check_full() {
            crate::say!("btfvm: {word}: the cached kernel is damaged ({d}): getting it again");
            CacheEntry::discard(&entry.dir).map_err(Classified::env)?;
            image = get()?;
        }
        let entry = image.cache_entry.as_ref().ok_or_else(|| {
            Classified::env(anyhow::anyhow!(
                "{word}: fetched again without a cache entry"
            ))
        })?;
        entry.check_full().map_err(|d| {
            Classified::env(anyhow::anyhow!(
                "{word}: damaged again after fetching it anew: {d} (is the disk failing?)"
            ))
        })?;
        println!(
            "verified {} files of {}",
            entry.manifest.len(),
            entry.dir.display()
        );
    }
    if let Some(sig) = interrupt::requested() {
        crate::say!("btfvm: interrupted by {}", interrupt::signal_name(sig));
        return Ok(ExitCode::from(exit::for_signal(sig)));
    }
    println!("origin   {}", image.origin);
    println!("release  {}", image.release);
    println!("vmlinuz  {}", image.vmlinuz.display());
    println!("config   {}", image.config.path.display());
    println!("modules  {}", image.modules_dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn get(
    source: &KernelSource,
    cache: &Cache,
    mirror: Option<&str>,
    word: &str,
) -> Result<KernelImage, Classified> {
    let renderer = Renderer::default();
    let kernel = word.to_string();
    acquire(source, cache, mirror, &mut |e| {
        renderer.event(&match e {
            AcquireEvent::Fetch(event) => RunEvent::Fetch {
                kernel: kernel.clone(),
                event,
            },
            AcquireEvent::Build(event) => RunEvent::Build {
                kernel: kernel.clone(),
                event,
            },
        })
    })
    .map_err(|e| Classified::new(e.class(), e))
}
