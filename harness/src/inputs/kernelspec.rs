//! Kernel specs: `kernels/*.yaml` name the kernels a suite runs on and what
//! each is expected to be. The expectation is checked against the kernel
//! (the `kernel-config` scenario); no other expectation comes from a spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{de, Deserialize, Deserializer};
use serde_saphyr::Spanned;

use super::build_spec::{BuildSpec, BuildSpecFile};
use super::source::{KernelSource, LocalKernel};
use super::yaml::{self, NameRule, YamlError};

/// What can be checked alone is checked while reading, with its line and
/// column; what needs two fields or the spec's folder is checked in
/// `load`, with the location of the field at fault.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    about: String,
    /// `debian:<suite>[:<package>]`, a path, or `build:...`; or give `build`.
    #[serde(default, deserialize_with = "source_word")]
    source: Option<String>,
    /// With a path `source:`: its `lib/modules/<release>` tree and its
    /// .config (relative to this file), where they are not in the Debian
    /// layout next to it.
    #[serde(default)]
    modules: Option<Spanned<PathBuf>>,
    #[serde(default)]
    config: Option<Spanned<PathBuf>>,
    /// A kernel built from source (see `inputs::build_spec`).
    #[serde(default)]
    build: Option<Spanned<BuildSpecFile>>,
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
    /// A kernel whose boots are known to fail now and then: boot again.
    #[serde(default)]
    flaky_boot: Option<FlakyBoot>,
}

/// Boots of this kernel fail now and then for a reason of its own (a
/// crash in early boot under TCG, measured): scenarios its failed boot
/// fails are booted again up to `retries` times, and one that then passes
/// is reported as flaky, never as passed. The reason is mandatory.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FlakyBoot {
    #[serde(deserialize_with = "flaky_retries")]
    pub retries: u32,
    #[serde(deserialize_with = "flaky_reason")]
    pub reason: String,
}

fn flaky_retries<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if !(1..=5).contains(&n) {
        return Err(de::Error::custom(format!(
            "flaky_boot: retries {n}: give 1 to 5 (more would hide a kernel that mostly fails)"
        )));
    }
    Ok(n)
}

fn flaky_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(de::Error::custom(
            "flaky_boot: `reason` is empty; say what fails and how often it was measured",
        ));
    }
    Ok(text)
}

/// Checked here for its location; `load` parses it again in the spec's
/// folder, which only changes where relative paths point.
fn source_word<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let word = Option::<String>::deserialize(d)?;
    if let Some(w) = &word {
        KernelSource::parse(w, Path::new(""), Path::new(""))
            .map_err(|e| de::Error::custom(format!("source: {e}")))?;
    }
    Ok(word)
}

/// A splat that does not fail the boot: its first line contains `matches`.
/// The reason is mandatory so the list stays reviewable; an empty
/// `matches` would allow every splat.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowSplat {
    #[serde(deserialize_with = "splat_matches")]
    pub matches: String,
    #[serde(deserialize_with = "splat_reason")]
    pub reason: String,
}

fn splat_matches<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    non_blank(d, "matches")
}

fn splat_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    non_blank(d, "reason")
}

fn non_blank<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(de::Error::custom(format!(
            "allow_splats: `{field}` is empty; both `matches` (text of the splat's first line) and `reason` must be non-empty"
        )));
    }
    Ok(text)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    #[serde(default, deserialize_with = "btfvm_proto::condition::config_map")]
    pub config: BTreeMap<String, String>,
}

/// A kernel's name is the first half of its trials' names; `.` is allowed
/// for versions (`built-6.1-btf-on`).
pub const NAME_RULE: NameRule = NameRule {
    punctuation: ".-_",
    becomes: "the kernel's name, the first half of its trials' names",
};

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
    pub flaky_boot: Option<FlakyBoot>,
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
            flaky_boot: None,
        }
    }
}

pub fn load(path: &Path) -> Result<KernelSpec, YamlError> {
    let name = yaml::name_of(path, &NAME_RULE)?;
    let text = yaml::text(path)?;
    let f: SpecFile = yaml::parse(path, &text)?;
    let source = source_of(&f, path, &text)?;
    Ok(KernelSpec {
        name,
        file: Some(path.to_path_buf()),
        about: f.about,
        source,
        default: f.default,
        expect: f.expect,
        boot_timeout: f.boot_timeout,
        allow_splats: f.allow_splats,
        flaky_boot: f.flaky_boot,
    })
}

/// The spec's kernel, its relative paths taken from the spec's folder.
fn source_of(f: &SpecFile, path: &Path, text: &str) -> Result<KernelSource, YamlError> {
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let here = path.parent().unwrap_or(Path::new("."));
    let fragments = here.join("fragments");
    let mut source = match (&f.source, &f.build) {
        (Some(s), None) => KernelSource::parse(s, &fragments, here)
            .map_err(|e| invalid(format!("source: {e}")))?,
        (None, Some(b)) => BuildSpec::from_file(&b.value, &fragments, here)
            .map(KernelSource::Build)
            .map_err(|e| yaml::located(path, text, b.referenced, format!("build: {e}")))?,
        (Some(_), Some(b)) => {
            return Err(yaml::located(
                path,
                text,
                b.referenced,
                "give exactly one of `source` (debian:<suite>, a path) and `build` (a kernel built from source), not both".into(),
            ))
        }
        (None, None) => {
            return Err(invalid(
                "give exactly one of `source` (debian:<suite>, a path) and `build` (a kernel built from source)".into(),
            ))
        }
    };
    match &mut source {
        KernelSource::Local(LocalKernel {
            modules, config, ..
        }) => {
            *modules = f.modules.as_ref().map(|m| here.join(&m.value));
            *config = f.config.as_ref().map(|c| here.join(&c.value));
        }
        _ => {
            if let Some(at) = f.modules.as_ref().or(f.config.as_ref()) {
                return Err(yaml::located(
                    path,
                    text,
                    at.referenced,
                    "`modules` and `config` belong to a `source:` that is a path to a vmlinuz"
                        .into(),
                ));
            }
        }
    }
    Ok(source)
}

/// The folder's kernel specs. Names are checked for clashes before any
/// file is read, and at most one spec may be the default, whatever the
/// command line asks for: a second default is a mistake in the folder.
pub fn load_dir(dir: &Path) -> Result<Vec<KernelSpec>, YamlError> {
    let files = yaml::files_in(dir)?;
    let names = files
        .iter()
        .map(|p| yaml::name_of(p, &NAME_RULE))
        .collect::<Result<Vec<_>, _>>()?;
    yaml::check_unique(
        names
            .iter()
            .map(String::as_str)
            .zip(files.iter().map(PathBuf::as_path)),
        "kernel",
    )?;
    let specs = files
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut defaults = specs
        .iter()
        .filter(|s| s.default)
        .filter_map(|s| s.file.as_ref());
    if let (Some(first), Some(second)) = (defaults.next(), defaults.next()) {
        return Err(YamlError::Clash {
            first: first.clone(),
            second: second.clone(),
            message: "both say `default: true`; only one kernel spec can be the default".into(),
        });
    }
    Ok(specs)
}

#[cfg(test)]
#[path = "kernelspec_tests.rs"]
mod tests;
