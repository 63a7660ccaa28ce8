//! Where a kernel comes from, as a value: parsed once from a `--kernel`
//! word or a spec's `source:`, and passed on unchanged to the layer that
//! fetches, finds or builds it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::build_spec::{is_suite, BuildSpec};

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// `debian:<suite>[:<package>]`
    Debian(DebianKernel),
    /// A vmlinuz on disk, with its modules tree and config.
    Local(LocalKernel),
    /// Built from source by `btfvm kernel build`.
    Build(BuildSpec),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianKernel {
    /// e.g. "bookworm", "trixie", "sid".
    pub suite: String,
    /// A versioned image package or a metapackage depending on one;
    /// default `linux-image-cloud-amd64`.
    pub package: Option<String>,
}

/// A kernel on disk. `modules` and `config` default to the Debian layout
/// (`/lib/modules/<release>`, `config-<release>` next to the vmlinuz).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalKernel {
    pub vmlinuz: PathBuf,
    pub modules: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

impl fmt::Display for DebianKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.package {
            Some(p) => write!(f, "debian:{}:{p}", self.suite),
            None => write!(f, "debian:{}", self.suite),
        }
    }
}

impl fmt::Display for KernelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSource::Debian(d) => d.fmt(f),
            KernelSource::Local(l) => write!(f, "{}", l.vmlinuz.display()),
            KernelSource::Build(b) => b.fmt(f),
        }
    }
}

impl KernelSource {
    /// `debian:...`, `build:...` (fragments from `fragments_dir`) or a
    /// path. A relative path, also a `build:` tree, pahole or fragment, is
    /// taken relative to `base` (the spec file's folder, or "" for the
    /// working directory of a command-line word).
    pub fn parse(s: &str, fragments_dir: &Path, base: &Path) -> Result<KernelSource, String> {
        if let Some(rest) = s.strip_prefix("build:") {
            return BuildSpec::parse(rest, fragments_dir)?
                .relative_to(base)
                .map(KernelSource::Build);
        }
        if let Some(rest) = s.strip_prefix("debian:") {
            let mut parts = rest.splitn(2, ':');
            let suite = parts.next().unwrap_or_default();
            if !is_suite(suite) {
                return Err(format!(
                    "{s:?}: expected debian:<suite>[:<package>], e.g. debian:bookworm or debian:sid:linux-image-6.12.9-cloud-amd64"
                ));
            }
            let package = parts.next().filter(|p| !p.is_empty()).map(String::from);
            return Ok(KernelSource::Debian(DebianKernel {
                suite: suite.to_string(),
                package,
            }));
        }
        if s.is_empty() {
            return Err("empty kernel source".into());
        }
        if s.contains(':') && !s.contains('/') {
            return Err(format!("{s:?}: unknown kernel source; use debian:<suite>, build:<tree>[,fragments=..][,pahole=..], a spec name from kernels/, or a path to a vmlinuz"));
        }
        Ok(KernelSource::Local(LocalKernel {
            vmlinuz: base.join(s),
            modules: None,
            config: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<KernelSource, String> {
        KernelSource::parse(s, Path::new("/k/fragments"), Path::new("/cwd"))
    }

    #[test]
    fn sources() {
        assert_eq!(
            parse("debian:sid").unwrap(),
            KernelSource::Debian(DebianKernel {
                suite: "sid".into(),
                package: None
            })
        );
        assert_eq!(
            parse("debian:trixie:linux-image-x").unwrap(),
            KernelSource::Debian(DebianKernel {
                suite: "trixie".into(),
                package: Some("linux-image-x".into())
            })
        );
        assert!(parse("debian:").is_err());
        assert!(parse("fedora:40").is_err());
        assert!(parse("").is_err());
        match parse("/boot/vmlinuz-6.1").unwrap() {
            KernelSource::Local(l) => assert_eq!(l.vmlinuz, Path::new("/boot/vmlinuz-6.1")),
            other => panic!("{other:?}"),
        }
        // Relative paths are relative to where the word was written.
        match parse("out/vmlinuz").unwrap() {
            KernelSource::Local(l) => assert_eq!(l.vmlinuz, Path::new("/cwd/out/vmlinuz")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("build:debian:bookworm").unwrap(),
            KernelSource::Build(_)
        ));
    }
}
