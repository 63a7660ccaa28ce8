//! Kernel specs: `kernels/*.yaml` name the kernels a suite runs on and what
//! each is expected to be. The expectation is checked against the kernel
//! (the `kernel-config` scenario); no other expectation comes from a spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::build_spec::{BuildSpec, BuildSpecFile};
use super::source::{KernelSource, LocalKernel};
use super::yaml::{self, YamlError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    about: String,
    /// `debian:<suite>[:<package>]`, a path, or `build:...`; or give `build`.
    #[serde(default)]
    source: Option<String>,
    /// With a path `source:`: its `lib/modules/<release>` tree and its
    /// .config (relative to this file), where they are not in the Debian
    /// layout next to it.
    #[serde(default)]
    modules: Option<PathBuf>,
    #[serde(default)]
    config: Option<PathBuf>,
    /// A kernel built from source (see `inputs::build_spec`).
    #[serde(default)]
    build: Option<BuildSpecFile>,
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
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
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
    let here = path.parent().unwrap_or(Path::new("."));
    let fragments = here.join("fragments");
    let mut source = match (&f.source, &f.build) {
        (Some(s), None) => KernelSource::parse(s, &fragments, here)
            .map_err(|e| invalid(format!("source: {e}")))?,
        (None, Some(b)) => BuildSpec::from_file(b, &fragments)
            .map(KernelSource::Build)
            .map_err(|e| invalid(format!("build: {e}")))?,
        _ => {
            return Err(invalid(
                "give exactly one of `source` (debian:<suite>, a path) and `build` (a kernel built from source)".into(),
            ))
        }
    };
    match &mut source {
        KernelSource::Local(LocalKernel {
            modules, config, ..
        }) => {
            *modules = f.modules.as_ref().map(|m| here.join(m));
            *config = f.config.as_ref().map(|c| here.join(c));
        }
        _ if f.modules.is_some() || f.config.is_some() => {
            return Err(invalid(
                "`modules` and `config` belong to a `source:` that is a path to a vmlinuz".into(),
            ))
        }
        _ => {}
    }
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

    #[test]
    fn a_path_spec_says_where_its_modules_and_config_are() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mine.yaml");
        std::fs::write(
            &p,
            "about: x\nsource: out/bzImage\nmodules: out/lib/modules/6.1.0\nconfig: /abs/config\n",
        )
        .unwrap();
        let spec = load(&p).unwrap();
        let KernelSource::Local(l) = &spec.source else {
            panic!("{:?}", spec.source)
        };
        assert_eq!(l.vmlinuz, d.path().join("out/bzImage"));
        assert_eq!(
            l.modules.as_deref(),
            Some(d.path().join("out/lib/modules/6.1.0").as_path())
        );
        assert_eq!(l.config.as_deref(), Some(Path::new("/abs/config")));

        std::fs::write(&p, "about: x\nsource: debian:sid\nmodules: x\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("belong to a `source:` that is a path"), "{e}");
    }

    #[test]
    fn kernel_specs_take_a_build_map() {
        use crate::inputs::build_spec::PaholeChoice;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.yaml");
        std::fs::write(
            &p,
            "about: x\nbuild:\n  tree: debian:bookworm\n  fragments: [btf-modules-off]\n  pahole: debian:sid\n",
        )
        .unwrap();
        let spec = load(&p).unwrap();
        let KernelSource::Build(b) = &spec.source else {
            panic!("{:?}", spec.source)
        };
        assert_eq!(b.fragments, ["btf-modules-off"]);
        assert_eq!(b.pahole, PaholeChoice::Debian("sid".into()));
        assert_eq!(b.fragments_dir, d.path().join("fragments"));
        // The same build on the command line is the same source.
        let word = "build:debian:bookworm,fragments=btf-modules-off,pahole=debian:sid";
        let cli = KernelSource::parse(word, &d.path().join("fragments"), Path::new("")).unwrap();
        assert_eq!(cli, spec.source);

        std::fs::write(
            &p,
            "about: x\nsource: debian:sid\nbuild: {tree: debian:sid}\n",
        )
        .unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("exactly one of `source`"), "{e}");
        std::fs::write(&p, "about: x\nbuild: {tree: debian:sid, pahole: pahole}\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("build: pahole"), "{e}");
    }
}
