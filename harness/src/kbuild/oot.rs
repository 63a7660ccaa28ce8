//! The test module built out of tree against a Debian kernel's own headers
//! packages (linux-headers-<release>, its -common, linux-kbuild-<version>),
//! as a user builds a DKMS module: `make -C <headers> M=<dir> modules`.
//! With `distilled`, pahole adds the distilled base (`.BTF.base`, Linux
//! 6.11+, pahole 1.28+) that the kernel relocates onto its own vmlinux BTF
//! at load. The result is cached by everything that makes it.

use std::fs;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};
use sha2::{Digest, Sha256};

use super::make::{tool_version, BuildLog, Make};
use super::{pahole, testmod, BuildEvent};
use crate::debian::{DebianError, Pinned, Suite};
use crate::inputs::build_spec::PaholeChoice;
use crate::support::cache::{Cache, CacheError};
use crate::support::{hex, ErrorClass};

/// Why a Debian kernel's module cannot be built here: the scenario is
/// ignored with this, or fails with it.
#[derive(Debug, thiserror::Error)]
pub enum OotError {
    /// Nothing to build against here (not a fault).
    #[error("{0}")]
    Absent(String),
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Pahole(#[from] pahole::PaholeError),
    #[error("building the test module out of tree: {message} (log: {})", log.display())]
    Build { message: String, log: PathBuf },
}

impl OotError {
    pub fn class(&self) -> ErrorClass {
        match self {
            OotError::Absent(_) => ErrorClass::Kernel,
            OotError::Debian(e) => e.class(),
            OotError::Cache(e) => e.class(),
            OotError::Pahole(e) => e.class(),
            OotError::Build { .. } => ErrorClass::Kernel,
        }
    }
}

/// The built module.
#[derive(Debug, Clone)]
pub struct OotModule {
    pub ko: PathBuf,
    pub btf_bytes: Option<u64>,
    /// Size of `.BTF.base` and the number of types in it.
    pub btf_base: Option<(u64, u32)>,
    /// "pahole v1.30 (debian:trixie ...)".
    pub pahole: String,
}

/// What the kernel was built with, from the headers' .config.
fn gcc_major(text: &str) -> Option<u32> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_GCC_VERSION="))?;
    line.trim().parse::<u32>().ok().map(|v| v / 10000)
}

fn host_gcc_major() -> Option<u32> {
    let v = tool_version("gcc")?;
    // "gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
    let last = v.split_whitespace().last()?;
    last.split('.').next()?.parse().ok()
}

/// The headers of `release` from `suite`, extracted once into the cache
/// with the top Makefile's absolute include pointed into the extraction.
fn headers(
    suite: &Suite,
    cache: &Cache,
    release: &str,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<PathBuf, OotError> {
    let name = format!("linux-headers-{release}");
    let entry_of = |version: &str| -> Result<PathBuf, OotError> {
        Ok(cache
            .subdir("build/headers")?
            .join(format!("{release}_{}", version.replace(':', "%3a"))))
    };
    let dir_of = |entry: &Path| entry.join("root/usr/src").join(&name);
    // Fast path: three apt-cache calls cost 1.8 s here (measured: 3.7 of a
    // 7.9 s bookworm run went to them, for the two out-of-tree variants),
    // for an answer that holds as long as the lists do.
    let memo_key = format!("headers-{release}");
    if let Some(version) = suite.memo(&memo_key) {
        let dir = dir_of(&entry_of(version.trim())?);
        if dir.join("Makefile").is_file() {
            return Ok(dir);
        }
    }
    let top = match suite.show_one(&name) {
        Ok(p) => p,
        Err(DebianError::NotFound { .. }) => {
            return Err(OotError::Absent(format!(
                "Debian {} has no {name}",
                suite.name
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let mut chosen = vec![Pinned::from(&top)];
    for alts in &top.depends {
        if let Some(n) = alts
            .first()
            .filter(|n| n.starts_with("linux-headers-") || n.starts_with("linux-kbuild-"))
        {
            chosen.push(Pinned::from(&suite.show_one(n)?));
        }
    }
    let entry = entry_of(&top.version)?;
    let dir = dir_of(&entry);
    if dir.join("Makefile").is_file() {
        suite.set_memo(&memo_key, &top.version)?;
        return Ok(dir);
    }
    cache.install_dir(&entry, |tmp| -> Result<(), OotError> {
        let root = tmp.join("root");
        suite.fetch_into(&chosen, tmp, &root, &mut |p, _| {
            events(BuildEvent::Step {
                what: format!(
                    "downloading {} {} (debian:{})",
                    p.name, p.version, suite.name
                ),
            })
        })?;
        // `include /usr/src/linux-headers-X-common/Makefile`: the host has no
        // such folder; the extraction has.
        let mk = root.join("usr/src").join(&name).join("Makefile");
        let text = fs::read_to_string(&mk).map_err(|e| CacheError::io("cannot read", &mk, e))?;
        let fixed = text.replace(
            "include /usr/src/",
            &format!("include {}/", entry.join("root/usr/src").display()),
        );
        fs::write(&mk, fixed).map_err(|e| CacheError::io("cannot write", &mk, e))?;
        Ok(())
    })?;
    suite.set_memo(&memo_key, &top.version)?;
    Ok(dir)
}

/// Size of `.BTF`, and of `.BTF.base` with its number of types.
type Sections = (Option<u64>, Option<(u64, u32)>);

fn sections(ko: &Path) -> Result<Sections, String> {
    let bytes = fs::read(ko).map_err(|e| format!("{}: {e}", ko.display()))?;
    let f = object::File::parse(&*bytes).map_err(|e| format!("{}: not ELF: {e}", ko.display()))?;
    let btf = f.section_by_name(".BTF").map(|s| s.size());
    let base = match f.section_by_name(".BTF.base") {
        None => None,
        Some(s) => {
            let data = s.data().map_err(|e| e.to_string())?;
            let parsed = btfvm_btf::Btf::parse(data).map_err(|e| format!(".BTF.base: {e}"))?;
            Some((s.size(), parsed.types().len() as u32))
        }
    };
    Ok((btf, base))
}

/// Whether these headers can build a module with BTF on this host.
fn usable(hdr: &Path, release: &str) -> Result<(), OotError> {
    // Makefile.modfinal makes module BTF only over $(objtree)/vmlinux.
    if !hdr.join("vmlinux").is_file() {
        return Err(OotError::Absent(format!(
            "Debian's linux-headers-{release} ships no vmlinux, so kbuild skips BTF for out-of-tree modules"
        )));
    }
    let config = fs::read_to_string(hdr.join(".config"))
        .map_err(|e| CacheError::io("cannot read", &hdr.join(".config"), e))?;
    let (theirs, ours) = (gcc_major(&config), host_gcc_major());
    if theirs != ours {
        return Err(OotError::Absent(format!(
            "{release} was built with gcc {}, this host has gcc {}: its headers' flags need their own compiler \
             (measured on trixie's 6.12: gcc 12 stops on -fmin-function-alignment=16)",
            theirs.map_or("?".into(), |v| v.to_string()),
            ours.map_or("?".into(), |v| v.to_string())
        )));
    }
    Ok(())
}

/// make -C <headers> M=<dir> modules, into the cache entry `out`.
fn compile(
    cache: &Cache,
    hdr: &Path,
    p: &pahole::Pahole,
    distilled: bool,
    key: &str,
    out: &Path,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<(), OotError> {
    // Not build/work: a kernel build clears that folder when it starts.
    let work = cache.subdir("build/oot-work")?.join(key);
    let _ = fs::remove_dir_all(&work);
    let log_path = work.with_extension("log");
    let mut log = BuildLog::create(&log_path).map_err(|e| OotError::Build {
        message: e.to_string(),
        log: log_path.clone(),
    })?;
    let mut vars = vec![format!("PAHOLE={}", p.program.display()), "CC=gcc".into()];
    if distilled {
        // Makefile.btf adds it only when the kernel's own pahole was
        // 1.28+ (CONFIG_PAHOLE_VERSION); bookworm-backports' 6.12 has 124.
        vars.push("MODULE_PAHOLE_FLAGS=--btf_features=distilled_base".into());
    }
    let make = Make {
        tree: hdr.to_path_buf(),
        out: hdr.to_path_buf(),
        jobs: 2,
        vars,
        env: Vec::new(),
    };
    testmod::build(&make, &work, true, &mut log, events).map_err(|e| OotError::Build {
        message: e.to_string(),
        log: log_path.clone(),
    })?;
    cache.install_dir(out, |tmp| -> Result<(), OotError> {
        fs::copy(
            work.join(format!("{}.ko", testmod::MODULE)),
            tmp.join(format!("{}.ko", testmod::MODULE)),
        )
        .map_err(|e| CacheError::io("cannot copy", &work, e))?;
        Ok(())
    })?;
    let _ = fs::remove_dir_all(&work);
    let _ = fs::remove_file(&log_path);
    Ok(())
}

/// Builds (or takes from the cache) the test module against the headers of
/// the Debian kernel `release` of `suite_name`.
pub fn build(
    suite_name: &str,
    release: &str,
    distilled: bool,
    cache: &Cache,
    mirror: Option<&str>,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<OotModule, OotError> {
    let suite = Suite::open(cache, suite_name, mirror)?;
    let _lock = suite.ready(&mut || {})?;
    let hdr = headers(&suite, cache, release, events)?;
    usable(&hdr, release)?;
    // The suite's own pahole made the kernel's BTF; a -backports kernel is
    // built with its base suite's. The distilled base needs pahole 1.28+:
    // trixie's 1.30.
    let base_suite = suite_name.strip_suffix("-backports").unwrap_or(suite_name);
    let choice = PaholeChoice::Debian(if distilled {
        "trixie".into()
    } else {
        base_suite.into()
    });
    let p = pahole::resolve(&choice, cache, mirror, events)?;
    let mut h = Sha256::new();
    for part in [
        release,
        &hdr.display().to_string(),
        &p.identity,
        &testmod::sources_hash(),
        if distilled { "distilled" } else { "plain" },
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let key = hex(&h.finalize()[..8]);
    let out = cache.subdir("build/oot")?.join(format!("{release}_{key}"));
    let ko = out.join(format!("{}.ko", testmod::MODULE));
    if !ko.is_file() {
        compile(cache, &hdr, &p, distilled, &key, &out, events)?;
    }
    let (btf_bytes, btf_base) = sections(&ko).map_err(|message| OotError::Build {
        message,
        log: ko.clone(),
    })?;
    if distilled && btf_base.is_none() {
        return Err(OotError::Build {
            message: format!(
                "{} has no .BTF.base although pahole was asked for distilled_base",
                ko.display()
            ),
            log: ko.clone(),
        });
    }
    Ok(OotModule {
        ko,
        btf_bytes,
        btf_base,
        pahole: p.description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_compiler_from_its_config() {
        assert_eq!(
            gcc_major("CONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=140200\n"),
            Some(14)
        );
        assert_eq!(gcc_major("CONFIG_GCC_VERSION=120200\n"), Some(12));
        assert_eq!(gcc_major("CONFIG_CLANG_VERSION=0\n"), None);
    }
}
