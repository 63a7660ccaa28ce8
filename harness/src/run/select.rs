//! The kernels of a run, from `--kernel` words and the specs in kernels/:
//! each word parsed once, each kernel on disk resolved once (and checked
//! before anything boots), each kernel with a name of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::inputs::kernelspec::KernelSpec;
use crate::inputs::source::{KernelSource, LocalKernel};
use crate::kernel::local::{self, LocalError};
use crate::kernel::KernelImage;

/// A kernel of the run. A kernel on disk is resolved here, so its files
/// are checked up front and the boot uses exactly what was checked.
#[derive(Debug, Clone)]
pub struct SelectedKernel {
    pub spec: KernelSpec,
    pub resolved: Option<KernelImage>,
}

/// What the command line says about kernels.
#[derive(Debug, Clone, Default)]
pub struct KernelRequest {
    pub words: Vec<String>,
    pub all: bool,
    /// `--modules` and `--config`: they belong to a kernel given by path.
    pub modules: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// Where `build:` words take their fragments from.
    pub fragments_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no kernel spec has `default: true`; pass --kernel")]
    NoDefault,
    #[error("{} and {} both say `default: true`; only one kernel spec can be the default", first.display(), second.display())]
    TwoDefaults { first: PathBuf, second: PathBuf },
    #[error("--kernel {word}: not a kernel spec ({specs}), not debian:<suite>[:<package>] or build:<tree>, and no file by that name")]
    Unknown { word: String, specs: String },
    #[error("--kernel {word}: {why}")]
    Word { word: String, why: String },
    #[error("--kernel {word}: {source}")]
    Local {
        word: String,
        #[source]
        source: LocalError,
    },
    #[error("kernel {word} given twice")]
    Twice { word: String },
    #[error(
        "{option} belongs to a kernel given by path (--kernel PATH {option} ...); {word} is {what}"
    )]
    OptionWithoutPath {
        option: &'static str,
        word: String,
        what: String,
    },
    #[error("{option} with {count} kernels given by path: it cannot say which one it is for; give one --kernel PATH per run, or write a kernel spec with `source:`, `modules:` and `config:`")]
    OptionAmbiguous { option: &'static str, count: usize },
    #[error("kernel spec {}: {source}", file.display())]
    SpecKernel {
        file: PathBuf,
        #[source]
        source: LocalError,
    },
}

pub fn select(
    req: &KernelRequest,
    specs: &[KernelSpec],
) -> Result<Vec<SelectedKernel>, SelectError> {
    let chosen: Vec<Choice> = if req.all {
        specs.iter().map(|s| Choice::Spec(s.clone())).collect()
    } else if req.words.is_empty() {
        vec![Choice::Spec(default_spec(specs)?)]
    } else {
        req.words
            .iter()
            .map(|w| parse_word(w, req, specs))
            .collect::<Result<_, _>>()?
    };
    check_path_options(req, &chosen)?;
    let mut out: Vec<SelectedKernel> = Vec::new();
    for c in chosen {
        let k = match c {
            Choice::Spec(spec) => from_spec(spec, req)?,
            Choice::Path { word, local } => from_path(&word, local, req, specs)?,
            Choice::Source { word, source } => from_source(&word, source, specs),
        };
        add(&mut out, k)?;
    }
    disambiguate(&mut out);
    // Trials are keyed by name: two kernels under one name would share
    // results, and a failure could hide behind a pass.
    for (i, k) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.spec.name == k.spec.name) {
            return Err(SelectError::Twice {
                word: k.spec.name.clone(),
            });
        }
    }
    Ok(out)
}

enum Choice {
    Spec(KernelSpec),
    Path { word: String, local: LocalKernel },
    Source { word: String, source: KernelSource },
}

fn default_spec(specs: &[KernelSpec]) -> Result<KernelSpec, SelectError> {
    let defaults: Vec<&KernelSpec> = specs.iter().filter(|s| s.default).collect();
    match defaults.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(SelectError::NoDefault),
        [a, b, ..] => Err(SelectError::TwoDefaults {
            first: a.file.clone().unwrap_or_default(),
            second: b.file.clone().unwrap_or_default(),
        }),
    }
}

fn parse_word(
    word: &str,
    req: &KernelRequest,
    specs: &[KernelSpec],
) -> Result<Choice, SelectError> {
    if let Some(s) = specs.iter().find(|s| s.name == word) {
        return Ok(Choice::Spec(s.clone()));
    }
    let source = KernelSource::parse(word, &req.fragments_dir, Path::new("")).map_err(|why| {
        SelectError::Word {
            word: word.to_string(),
            why,
        }
    })?;
    match source {
        KernelSource::Local(local) => {
            if !local.vmlinuz.exists() {
                let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(SelectError::Unknown {
                    word: word.to_string(),
                    specs: names.join(", "),
                });
            }
            Ok(Choice::Path {
                word: word.to_string(),
                local,
            })
        }
        source => Ok(Choice::Source {
            word: word.to_string(),
            source,
        }),
    }
}

/// `--modules`/`--config` name the files of exactly one kernel on disk;
/// anywhere else they would be ignored without a word.
fn check_path_options(req: &KernelRequest, chosen: &[Choice]) -> Result<(), SelectError> {
    let options = [
        ("--modules", req.modules.is_some()),
        ("--config", req.config.is_some()),
    ];
    let paths = chosen
        .iter()
        .filter(|c| matches!(c, Choice::Path { .. }))
        .count();
    for (option, given) in options {
        if !given {
            continue;
        }
        if paths > 1 {
            return Err(SelectError::OptionAmbiguous {
                option,
                count: paths,
            });
        }
        if let Some(other) = chosen.iter().find(|c| !matches!(c, Choice::Path { .. })) {
            let (word, what) = match other {
                Choice::Spec(s) => (
                    s.name.clone(),
                    match (&s.source, &s.file) {
                        (KernelSource::Local(_), Some(f)) => format!(
                            "a kernel spec: say where its modules and config are with `modules:` and `config:` in {}",
                            f.display()
                        ),
                        _ => format!("a kernel spec whose source is {}", s.source),
                    },
                ),
                Choice::Source { word, source } => (word.clone(), format!("{source}")),
                Choice::Path { .. } => unreachable!("filtered above"),
            };
            return Err(SelectError::OptionWithoutPath { option, word, what });
        }
    }
    Ok(())
}

fn from_spec(spec: KernelSpec, _req: &KernelRequest) -> Result<SelectedKernel, SelectError> {
    let resolved = match &spec.source {
        KernelSource::Local(l) => {
            Some(local::resolve(l).map_err(|source| SelectError::SpecKernel {
                file: spec.file.clone().unwrap_or_default(),
                source,
            })?)
        }
        _ => None,
    };
    Ok(SelectedKernel { spec, resolved })
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A kernel on disk. A spec whose `source:` is the same file supplies the
/// name and the expectations, whatever `--modules`/`--config` say: the
/// expectations are then checked against the config that really boots.
fn from_path(
    word: &str,
    mut local: LocalKernel,
    req: &KernelRequest,
    specs: &[KernelSpec],
) -> Result<SelectedKernel, SelectError> {
    let me = canonical(&local.vmlinuz);
    let spec = specs.iter().find(|s| match &s.source {
        KernelSource::Local(l) => canonical(&l.vmlinuz) == me,
        _ => false,
    });
    if let Some(KernelSource::Local(l)) = spec.map(|s| &s.source) {
        local.modules.clone_from(&l.modules);
        local.config.clone_from(&l.config);
    }
    if req.modules.is_some() {
        local.modules.clone_from(&req.modules);
    }
    if req.config.is_some() {
        local.config.clone_from(&req.config);
    }
    let image = local::resolve(&local).map_err(|source| SelectError::Local {
        word: word.to_string(),
        source,
    })?;
    let source = KernelSource::Local(local);
    let spec = match spec {
        Some(s) => KernelSpec {
            source,
            ..s.clone()
        },
        None => KernelSpec::adhoc(adhoc_name(&me, 1), source),
    };
    Ok(SelectedKernel {
        spec,
        resolved: Some(image),
    })
}

/// A spec with the same source supplies the expectations and the name a
/// user would look for (debian:bookworm -> bookworm).
fn from_source(word: &str, source: KernelSource, specs: &[KernelSpec]) -> SelectedKernel {
    let spec = match specs.iter().find(|s| s.source == source) {
        Some(s) => s.clone(),
        None => KernelSpec::adhoc(sanitize(word), source),
    };
    SelectedKernel {
        spec,
        resolved: None,
    }
}

fn add(out: &mut Vec<SelectedKernel>, k: SelectedKernel) -> Result<(), SelectError> {
    let same = |a: &SelectedKernel| match (&a.spec.source, &k.spec.source) {
        (KernelSource::Local(x), KernelSource::Local(y)) => {
            canonical(&x.vmlinuz) == canonical(&y.vmlinuz)
        }
        (x, y) => x == y,
    };
    if out.iter().any(same) {
        return Err(SelectError::Twice {
            word: k.spec.name.clone(),
        });
    }
    out.push(k);
    Ok(())
}

/// Trial names are `<kernel>::<scenario>`: keep the characters that read
/// well there.
fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "kernel".into()
    } else {
        out
    }
}

/// The last `parts` components of a kernel's path, as a name.
fn adhoc_name(path: &Path, parts: usize) -> String {
    let comps: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let from = comps.len().saturating_sub(parts);
    sanitize(&comps[from..].join("-"))
}

/// Two kernels on disk with the same file name (`/a/vmlinuz`, `/b/vmlinuz`)
/// get as many of their folders in their names as it takes to tell them
/// apart.
fn disambiguate(out: &mut [SelectedKernel]) {
    for parts in 2..16 {
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for k in out.iter() {
            *count.entry(k.spec.name.clone()).or_default() += 1;
        }
        let mut changed = false;
        for k in out.iter_mut() {
            let adhoc_path = match (&k.spec.file, &k.spec.source) {
                (None, KernelSource::Local(l)) => Some(canonical(&l.vmlinuz)),
                _ => None,
            };
            if let Some(p) = adhoc_path {
                if count[&k.spec.name] > 1 {
                    k.spec.name = adhoc_name(&p, parts);
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
