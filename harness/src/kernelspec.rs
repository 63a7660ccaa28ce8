//! Kernel specs: `kernels/*.yaml` name the kernels a suite runs on and what
//! each is expected to be. The expectation is checked against the kernel
//! (the `kernel-config` scenario); no other expectation comes from a spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::yaml::{self, YamlError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    about: String,
    /// `debian:<suite>[:<package>]`, a path, or `build:...`; or give `build`.
    #[serde(default)]
    source: Option<String>,
    /// A kernel built from source (see `build::spec`).
    #[serde(default)]
    build: Option<crate::build::spec::BuildSpecFile>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    expect: Expectation,
    /// Seconds for the whole boot; the default depends on the accelerator.
    #[serde(default)]
    boot_timeout: Option<u64>,
    /// Known-harmless kernel splats of this kernel.
    #[serde(default)]
    allow_splats: Vec<AllowSplat>,
}

/// A splat that does not fail the boot: its first line contains `matches`.
/// The reason is mandatory so the list stays reviewable.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowSplat {
    pub matches: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// `debian:<suite>[:<package>]`
    Debian {
        suite: String,
        package: Option<String>,
    },
    /// A vmlinuz on disk, with its modules tree and config.
    Local {
        vmlinuz: PathBuf,
        modules: Option<PathBuf>,
        config: Option<PathBuf>,
    },
    /// Built from source by `btfvm kernel build`.
    Build(crate::build::BuildSpec),
}

impl std::fmt::Display for KernelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelSource::Debian {
                suite,
                package: Some(p),
            } => write!(f, "debian:{suite}:{p}"),
            KernelSource::Debian { suite, .. } => write!(f, "debian:{suite}"),
            KernelSource::Local { vmlinuz, .. } => write!(f, "{}", vmlinuz.display()),
            KernelSource::Build(b) => write!(f, "{b}"),
        }
    }
}

impl KernelSource {
    /// Like `parse_in`, with the repo's kernels/ for `build:` fragments.
    pub fn parse(s: &str) -> Result<KernelSource, String> {
        Self::parse_in(s, &crate::cli::repo_dir("kernels"))
    }

    /// `build:` sources take their fragments from `<kernels_dir>/fragments`.
    pub fn parse_in(s: &str, kernels_dir: &Path) -> Result<KernelSource, String> {
        if let Some(rest) = s.strip_prefix("build:") {
            return crate::build::BuildSpec::parse(rest, &kernels_dir.join("fragments"))
                .map(KernelSource::Build);
        }
        if let Some(rest) = s.strip_prefix("debian:") {
            let mut parts = rest.splitn(2, ':');
            let suite = parts.next().unwrap_or_default();
            if suite.is_empty() || !suite.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                return Err(format!(
                    "{s:?}: expected debian:<suite>[:<package>], e.g. debian:bookworm or debian:sid:linux-image-6.12.9-cloud-amd64"
                ));
            }
            let package = parts.next().filter(|p| !p.is_empty()).map(String::from);
            return Ok(KernelSource::Debian {
                suite: suite.to_string(),
                package,
            });
        }
        if s.contains(':') && !s.contains('/') {
            return Err(format!("{s:?}: unknown kernel source; use debian:<suite>, build:<tree>[,fragments=..][,pahole=..], a spec name from kernels/, or a path to a vmlinuz"));
        }
        Ok(KernelSource::Local {
            vmlinuz: PathBuf::from(s),
            modules: None,
            config: None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct KernelSpec {
    /// Trial prefix: `<name>::<scenario>`.
    pub name: String,
    pub file: Option<PathBuf>,
    pub about: String,
    pub source: KernelSource,
    pub default: bool,
    pub expect: Expectation,
    pub boot_timeout: Option<u64>,
    pub allow_splats: Vec<AllowSplat>,
}

impl KernelSpec {
    /// A kernel given on the command line with no spec file: no expectations.
    pub fn adhoc(name: String, source: KernelSource) -> KernelSpec {
        KernelSpec {
            about: format!("{name} (from the command line)"),
            name,
            file: None,
            source,
            default: false,
            expect: Expectation::default(),
            boot_timeout: None,
            allow_splats: Vec::new(),
        }
    }
}

pub fn load(path: &Path) -> Result<KernelSpec, YamlError> {
    let f: SpecFile = yaml::read(path)?;
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let kernels_dir = path.parent().unwrap_or(Path::new("."));
    let source = match (&f.source, &f.build) {
        (Some(s), None) => KernelSource::parse_in(s, kernels_dir)
            .map_err(|e| invalid(format!("source: {e}")))?,
        (None, Some(b)) => {
            crate::build::BuildSpec::from_file(b, &kernels_dir.join("fragments"))
                .map(KernelSource::Build)
                .map_err(|e| invalid(format!("build: {e}")))?
        }
        _ => {
            return Err(invalid(
                "give exactly one of `source` (debian:<suite>, a path) and `build` (a kernel built from source)".into(),
            ))
        }
    };
    let cond = btfvm_proto::Condition {
        config: f.expect.config.clone(),
        kernel: None,
    };
    cond.validate()
        .map_err(|e| invalid(format!("expect.config: {e}")))?;
    let blank = |a: &&AllowSplat| a.matches.trim().is_empty() || a.reason.trim().is_empty();
    if let Some(a) = f.allow_splats.iter().find(blank) {
        return Err(invalid(format!(
            "allow_splats: {a:?}: both `matches` (text of the splat's first line) and `reason` must be non-empty"
        )));
    }
    Ok(KernelSpec {
        name: path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string(),
        file: Some(path.to_path_buf()),
        about: f.about,
        source,
        default: f.default,
        expect: f.expect,
        boot_timeout: f.boot_timeout,
        allow_splats: f.allow_splats,
    })
}

pub fn load_dir(dir: &Path) -> Result<Vec<KernelSpec>, YamlError> {
    yaml::files_in(dir)?.iter().map(|p| load(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            KernelSource::parse("debian:sid").unwrap(),
            KernelSource::Debian {
                suite: "sid".into(),
                package: None
            }
        );
        assert_eq!(
            KernelSource::parse("debian:trixie:linux-image-x").unwrap(),
            KernelSource::Debian {
                suite: "trixie".into(),
                package: Some("linux-image-x".into())
            }
        );
        assert!(KernelSource::parse("debian:").is_err());
        assert!(KernelSource::parse("fedora:40").is_err());
        assert!(matches!(
            KernelSource::parse("/boot/vmlinuz-6.1").unwrap(),
            KernelSource::Local { .. }
        ));
    }

    #[test]
    fn repo_specs_load_with_one_default() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels");
        let specs = load_dir(&dir).unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        for n in ["bookworm", "trixie", "sid", "bullseye"] {
            assert!(names.contains(&n), "{names:?}");
        }
        assert_eq!(specs.iter().filter(|s| s.default).count(), 1);
    }

    #[test]
    fn unknown_key_is_located() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.yaml");
        std::fs::write(&p, "about: x\nsource: debian:sid\nexpekt: {}\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("k.yaml:3:1: unknown field `expekt`"), "{e}");
    }
}
