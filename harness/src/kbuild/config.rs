//! Config fragments: reading them, laying them over the base config, and
//! checking that the final .config still has every option they asked for.
//! `make olddefconfig` drops an option whose dependencies are unmet and
//! exits 0 (DEBUG_INFO_BTF_MODULES vanishes when pahole is missing or older
//! than 1.19), so the check is what turns that into a build failure.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::inputs::build_spec::{BuildSpec, BASE_FRAGMENT};
use crate::support::fsread::{self, ReadError};

/// A fragment is a few dozen Kconfig lines; a whole .config is under 300 KiB.
pub const FRAGMENT_CAP: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FragmentError {
    /// The path is in `source`'s message.
    #[error(
        "cannot read config fragment {source} (fragments are kernels/fragments/<name>.config)"
    )]
    Read {
        #[source]
        source: ReadError,
    },
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Fragment {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    /// `CONFIG_X` -> value; "n" stands for `# CONFIG_X is not set`.
    pub options: Vec<(String, String)>,
    /// `NAME=value` for make, from `# btfvm-make: NAME=value` lines: what a
    /// variant needs that Kconfig cannot say (AFLAGS_KERNEL=-g0).
    pub make_vars: Vec<String>,
}

/// The comment that carries a make variable in a fragment; Kconfig
/// ignores it like any comment.
pub const MAKE_DIRECTIVE: &str = "# btfvm-make:";

/// Variables btfvm sets itself; a fragment must not change them.
const RESERVED_VARS: [&str; 8] = [
    "PAHOLE",
    "CC",
    "HOSTCC",
    "O",
    "M",
    "INSTALL_MOD_PATH",
    "DEPMOD",
    "ARCH",
];

/// What the fragments ask for, merged: option -> (value, fragment name).
pub type Wanted = BTreeMap<String, (String, String)>;

/// Base first, then the spec's fragments in order.
pub fn load_fragments(spec: &BuildSpec) -> Result<Vec<Fragment>, FragmentError> {
    std::iter::once(BASE_FRAGMENT)
        .chain(spec.fragments.iter().map(String::as_str))
        .map(|name| {
            let path = if name.contains('/') {
                PathBuf::from(name)
            } else {
                spec.fragments_dir.join(format!("{name}.config"))
            };
            let text = fsread::read_text(&path, FRAGMENT_CAP, "a config fragment")
                .map_err(|source| FragmentError::Read { source })?;
            let options = parse_fragment(&path, &text)?;
            let make_vars = parse_make_vars(&path, &text)?;
            Ok(Fragment {
                name: name.to_string(),
                path,
                text,
                options,
                make_vars,
            })
        })
        .collect()
}

/// Fragment lines are `CONFIG_X=value`, `# CONFIG_X is not set`, comments
/// or blank; anything else is a mistake worth stopping for, since Kconfig
/// would ignore it silently.
pub fn parse_fragment(path: &Path, text: &str) -> Result<Vec<(String, String)>, FragmentError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |message: String| FragmentError::Syntax {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            if let Some(name) = rest.trim().strip_suffix(" is not set") {
                if !is_option(name) {
                    return Err(err(format!("{name:?} is not a CONFIG_ option")));
                }
                out.push((name.to_string(), "n".into()));
            }
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| err(format!("expected CONFIG_X=value, got {line:?}")))?;
        if !is_option(name) {
            return Err(err(format!("{name:?} is not a CONFIG_ option")));
        }
        if value.is_empty() {
            return Err(err(format!("{name} has no value")));
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// The `# btfvm-make: NAME=value` lines of a fragment.
pub fn parse_make_vars(path: &Path, text: &str) -> Result<Vec<String>, FragmentError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix(MAKE_DIRECTIVE) else {
            continue;
        };
        let assignment = rest.trim();
        let name = assignment.split_once('=').map(|(n, _)| n).unwrap_or("");
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        let message = if !valid {
            Some(format!(
                "{MAKE_DIRECTIVE} expects NAME=value, got {assignment:?}"
            ))
        } else if RESERVED_VARS.contains(&name) {
            Some(format!(
                "{name} is set by btfvm itself; a fragment cannot change it"
            ))
        } else {
            None
        };
        if let Some(message) = message {
            return Err(FragmentError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            });
        }
        out.push(assignment.to_string());
    }
    Ok(out)
}

fn is_option(name: &str) -> bool {
    name.strip_prefix("CONFIG_").is_some_and(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

pub fn merge(fragments: &[Fragment]) -> Wanted {
    let mut w = Wanted::new();
    for f in fragments {
        for (k, v) in &f.options {
            w.insert(k.clone(), (v.clone(), f.name.clone()));
        }
    }
    w
}

/// The .config with every wanted option's line replaced by the wanted one,
/// so olddefconfig sees each option once (no "override" warnings).
pub fn apply(dot_config: &str, wanted: &Wanted) -> String {
    let mut out = String::new();
    for line in dot_config.lines() {
        let name = line_option(line);
        if name.is_some_and(|n| wanted.contains_key(n)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n# btfvm: base and fragments\n");
    for (k, (v, _)) in wanted {
        if v == "n" {
            out.push_str(&format!("# {k} is not set\n"));
        } else {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

fn line_option(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("# ") {
        return rest.strip_suffix(" is not set");
    }
    line.split_once('=').map(|(k, _)| k)
}

/// A .config as option -> value; "n" for `is not set`, absent if absent.
pub fn parse_dot_config(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("# ")
            .and_then(|r| r.strip_suffix(" is not set"))
        {
            m.insert(name.to_string(), "n".into());
        } else if let Some((k, v)) = line.split_once('=') {
            if k.starts_with("CONFIG_") {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

/// An option a fragment asked for that the final .config does not have,
/// or has but cannot build (DEBUG_INFO_BTF without a pahole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub option: String,
    pub wanted: String,
    /// "n" when unset or absent.
    pub got: String,
    pub fragment: String,
    /// A few words, for the matrix table: "pahole missing".
    pub short: String,
    pub cause: String,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.got == self.wanted {
            "is kept, but cannot be built".to_string()
        } else if self.got == "n" {
            "is not set in the final .config".to_string()
        } else {
            format!("is {} in the final .config", self.got)
        };
        write!(
            f,
            "{}={} (asked for by fragment {}) {state}: {}",
            self.option, self.wanted, self.fragment, self.cause
        )
    }
}

/// What pahole Kconfig saw, for the causes.
#[derive(Debug, Clone)]
pub struct PaholeSeen {
    /// e.g. "pahole v1.20 (debian:bullseye)" or "no pahole (pahole=none)".
    pub description: String,
    /// Whether a pahole is there to run at all.
    pub present: bool,
}

/// Every wanted option whose final value differs, with its likely cause.
pub fn check(
    tree: &Path,
    final_config: &BTreeMap<String, String>,
    wanted: &Wanted,
    pahole: &PaholeSeen,
) -> Vec<Dropped> {
    let got = |k: &str| final_config.get(k).cloned().unwrap_or_else(|| "n".into());
    let mut out: Vec<Dropped> = wanted
        .iter()
        .filter(|(k, (v, _))| &got(k) != v)
        .map(|(k, (v, frag))| {
            let (short, cause) = explain(tree, final_config, k, pahole);
            Dropped {
                option: k.clone(),
                wanted: v.clone(),
                got: got(k),
                fragment: frag.clone(),
                short,
                cause,
            }
        })
        .collect();
    // Kconfig keeps DEBUG_INFO_BTF without pahole (the dependency is on
    // the DWARF version only), and the link then fails after the whole
    // compile: catch it now.
    if got("CONFIG_DEBUG_INFO_BTF") == "y" && !pahole.present {
        out.push(Dropped {
            option: "CONFIG_DEBUG_INFO_BTF".into(),
            wanted: "y".into(),
            got: "y".into(),
            fragment: wanted
                .get("CONFIG_DEBUG_INFO_BTF")
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| "(default)".into()),
            short: "no pahole to make vmlinux's BTF at link time".into(),
            cause: format!(
                "kept by Kconfig, but vmlinux's BTF is made by pahole at link time and there is {}; \
                 install dwarves or pass --pahole debian:<suite>",
                pahole.description
            ),
        });
    }
    out
}

/// The likely cause of a dropped option, short and in full: pahole for
/// the BTF options, else the option's Kconfig dependencies with their
/// final values.
pub fn explain(
    tree: &Path,
    final_config: &BTreeMap<String, String>,
    option: &str,
    pahole: &PaholeSeen,
) -> (String, String) {
    let pv = final_config
        .get("CONFIG_PAHOLE_VERSION")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let pahole_line = format!(
        "{} (Kconfig saw CONFIG_PAHOLE_VERSION={pv})",
        pahole.description
    );
    let deps = kconfig_depends(tree, option);
    let deps_text = match &deps {
        Some(d) if !d.is_empty() => format!("; Kconfig: {}", describe_deps(d, final_config)),
        _ => String::new(),
    };
    let dwarf5 = final_config
        .get("CONFIG_DEBUG_INFO_DWARF5")
        .map(String::as_str)
        == Some("y");
    match option {
        "CONFIG_DEBUG_INFO_BTF_MODULES" if pv < 119 => {
            let short = if pahole.present {
                "pahole too old for split BTF (needs >= 1.19)"
            } else {
                "pahole missing (split BTF needs >= 1.19)"
            };
            (
                short.into(),
                format!(
                    "{short}: Kconfig offers it only with pahole >= 1.19 (PAHOLE_HAS_SPLIT_BTF); {pahole_line}{deps_text}"
                ),
            )
        }
        "CONFIG_DEBUG_INFO_BTF" if dwarf5 && pv < 121 => {
            let short = "with DWARF 5 it needs pahole >= 1.21";
            (short.into(), format!("{short}; {pahole_line}{deps_text}"))
        }
        _ => match deps {
            None => (
                "not in this tree's Kconfig".into(),
                format!(
                    "this tree's Kconfig has no {option} (a fragment written for another kernel version?)"
                ),
            ),
            Some(_) => (
                "a dependency is not met".into(),
                format!("a dependency is not met{deps_text}"),
            ),
        },
    }
}

/// The `depends on` lines of `config NAME` in the tree's Kconfig files;
/// None when no Kconfig defines it. Only read after a failure: a walk of
/// every Kconfig file costs tens of milliseconds.
pub fn kconfig_depends(tree: &Path, option: &str) -> Option<Vec<String>> {
    let name = option.strip_prefix("CONFIG_").unwrap_or(option);
    let mut found = false;
    let mut deps = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            let fname = e.file_name();
            let fname = fname.to_string_lossy();
            if ft.is_dir() && !fname.starts_with('.') && fname != "Documentation" {
                stack.push(p);
            } else if ft.is_file() && fname.starts_with("Kconfig") {
                let Ok(text) = fs::read_to_string(&p) else {
                    continue;
                };
                found |= block_depends(&text, name, &mut deps);
            }
        }
    }
    found.then_some(deps)
}

/// Collects the `depends on` of every `config NAME` block in one file.
fn block_depends(text: &str, name: &str, deps: &mut Vec<String>) -> bool {
    let mut found = false;
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        let first = t.split_whitespace().next().unwrap_or("");
        if matches!(
            first,
            "config"
                | "menuconfig"
                | "choice"
                | "endchoice"
                | "menu"
                | "endmenu"
                | "if"
                | "endif"
                | "source"
                | "comment"
        ) {
            inside = matches!(first, "config" | "menuconfig")
                && t.split_whitespace().nth(1) == Some(name);
            found |= inside;
            continue;
        }
        if inside {
            if let Some(d) = t.strip_prefix("depends on") {
                deps.push(d.trim().to_string());
            }
        }
    }
    found
}

/// `A && B` -> `A && B [A=y B=n]`, values from the final .config.
fn describe_deps(deps: &[String], final_config: &BTreeMap<String, String>) -> String {
    let mut syms: Vec<&str> = Vec::new();
    for d in deps {
        for tok in d.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let is_sym = !tok.is_empty()
                && tok.chars().any(|c| c.is_ascii_uppercase())
                && tok
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_sym && !syms.contains(&tok) {
                syms.push(tok);
            }
        }
    }
    let values: Vec<String> = syms
        .iter()
        .map(|s| {
            let v = final_config
                .get(&format!("CONFIG_{s}"))
                .map(String::as_str)
                .unwrap_or("n");
            format!("{s}={v}")
        })
        .collect();
    format!("depends on {} [{}]", deps.join(" && "), values.join(" "))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
