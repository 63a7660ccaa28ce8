//! What a kernel build is made of: a source tree, config fragments and a
//! pahole. Written `build:<tree>[,fragments=a+b][,pahole=<p>]` on the
//! command line and as a `build:` map in a kernel spec; both give the same
//! `BuildSpec`, so a command-line build that equals a spec's runs under the
//! spec's name and expectations.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{de, Deserialize, Deserializer};

/// Fragment applied when a build names none: module BTF on.
pub const DEFAULT_FRAGMENT: &str = "btf-modules-on";

/// Always applied first (`kernels/fragments/base.config`): what the guest
/// needs to boot and run the suite.
pub const BASE_FRAGMENT: &str = "base";

/// Where the kernel sources come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSource {
    /// `debian:<suite>[:<package>]`: `linux-source-<ver>` of that suite
    /// (the newest one `linux-source` depends on, or the package named).
    Debian {
        suite: String,
        package: Option<String>,
    },
    /// A kernel tree on disk (a git checkout for bisects).
    Path(PathBuf),
}

/// Which pahole generates the BTF.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PaholeChoice {
    /// `pahole` on PATH (or none, if the host has none).
    #[default]
    Host,
    /// Debian's pahole of a suite, extracted with its libraries into the
    /// cache and run with its own loader, never installed.
    Debian(String),
    /// A pahole binary (or wrapper) at this path.
    Path(PathBuf),
    /// No pahole at all, as on a host without dwarves.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    pub tree: TreeSource,
    /// Names in `fragments_dir` (`<name>.config`) or paths, applied in
    /// order over `base`; a later fragment overrides an earlier one.
    pub fragments: Vec<String>,
    pub pahole: PaholeChoice,
    /// `kernels/fragments` of the spec or of `--kernels-dir`.
    pub fragments_dir: PathBuf,
}

/// The YAML form in a kernel spec, checked as it is read so that each
/// mistake has its line and column. Paths are as written; `from_file`
/// places them in the spec's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpecFile {
    #[serde(deserialize_with = "tree_word")]
    pub tree: TreeSource,
    #[serde(default, deserialize_with = "fragment_words")]
    pub fragments: Vec<String>,
    #[serde(default, deserialize_with = "pahole_word")]
    pub pahole: PaholeChoice,
}

/// The messages keep the `build: ` of the command line's form.
fn in_build<E: de::Error>(e: String) -> E {
    E::custom(format!("build: {e}"))
}

fn tree_word<'de, D: Deserializer<'de>>(d: D) -> Result<TreeSource, D::Error> {
    TreeSource::parse(&String::deserialize(d)?).map_err(in_build)
}

fn pahole_word<'de, D: Deserializer<'de>>(d: D) -> Result<PaholeChoice, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(p) => PaholeChoice::parse(&p).map_err(in_build),
        None => Ok(PaholeChoice::Host),
    }
}

/// Each name checked as its own element, for the element's location.
fn fragment_words<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Word(String);
    impl<'de> Deserialize<'de> for Word {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let w = String::deserialize(d)?;
            check_fragment(&w).map_err(in_build)?;
            Ok(Word(w))
        }
    }
    Ok(Vec::<Word>::deserialize(d)?
        .into_iter()
        .map(|w| w.0)
        .collect())
}

impl TreeSource {
    pub fn parse(s: &str) -> Result<TreeSource, String> {
        if let Some(rest) = s.strip_prefix("debian:") {
            let mut parts = rest.splitn(2, ':');
            let suite = parts.next().unwrap_or_default();
            if !is_suite(suite) {
                return Err(format!(
                    "tree {s:?}: expected debian:<suite>[:<package>], e.g. debian:bookworm"
                ));
            }
            let package = parts.next().filter(|p| !p.is_empty()).map(String::from);
            return Ok(TreeSource::Debian {
                suite: suite.into(),
                package,
            });
        }
        if s.is_empty() {
            return Err("empty tree: give debian:<suite> or a path to a kernel tree".into());
        }
        Ok(TreeSource::Path(PathBuf::from(s)))
    }
}

impl PaholeChoice {
    pub fn parse(s: &str) -> Result<PaholeChoice, String> {
        match s {
            "host" => Ok(PaholeChoice::Host),
            "none" => Ok(PaholeChoice::None),
            _ => {
                if let Some(suite) = s.strip_prefix("debian:") {
                    if !is_suite(suite) {
                        return Err(format!("pahole {s:?}: expected debian:<suite>"));
                    }
                    return Ok(PaholeChoice::Debian(suite.into()));
                }
                if s.contains('/') {
                    return Ok(PaholeChoice::Path(PathBuf::from(s)));
                }
                Err(format!(
                    "pahole {s:?}: expected host, none, debian:<suite> or a path (with a /)"
                ))
            }
        }
    }

    /// Short label for tables and cache folder names.
    pub fn label(&self) -> String {
        match self {
            PaholeChoice::Host => "host".into(),
            PaholeChoice::Debian(s) => format!("debian-{s}"),
            PaholeChoice::Path(_) => "path".into(),
            PaholeChoice::None => "none".into(),
        }
    }
}

/// Debian suite names end up in paths and on apt's command line.
pub fn is_suite(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-')
}

/// Fragment names end up in paths and in the `build:` string.
fn check_fragment(f: &str) -> Result<(), String> {
    if f == BASE_FRAGMENT {
        return Err("fragment base is always applied first; do not list it".into());
    }
    let plain = !f.is_empty()
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain || f.contains('/') {
        Ok(())
    } else {
        Err(format!(
            "fragment {f:?}: a name in kernels/fragments (letters, digits, - _ .) or a path with a /"
        ))
    }
}

impl BuildSpec {
    /// `build:<tree>[,fragments=a+b][,pahole=<p>]`, the part after `build:`.
    pub fn parse(s: &str, fragments_dir: &Path) -> Result<BuildSpec, String> {
        let mut parts = s.split(',');
        let tree = TreeSource::parse(parts.next().unwrap_or_default())?;
        let mut fragments = None;
        let mut pahole = None;
        for part in parts {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                format!("build:{s}: {part:?} is not key=value (keys: fragments, pahole)")
            })?;
            match k {
                "fragments" if fragments.is_none() => {
                    fragments = Some(v.split('+').map(String::from).collect::<Vec<_>>())
                }
                "pahole" if pahole.is_none() => pahole = Some(PaholeChoice::parse(v)?),
                "fragments" | "pahole" => return Err(format!("build:{s}: {k} given twice")),
                _ => {
                    return Err(format!(
                        "build:{s}: unknown key {k:?} (keys: fragments, pahole)"
                    ))
                }
            }
        }
        BuildSpec::new(
            tree,
            fragments.unwrap_or_default(),
            pahole.unwrap_or_default(),
            fragments_dir,
        )
    }

    /// A spec's `build:` map; its relative paths are the spec's folder's
    /// (`base`), as `source:`, `modules:` and `config:` are.
    pub fn from_file(
        f: &BuildSpecFile,
        fragments_dir: &Path,
        base: &Path,
    ) -> Result<BuildSpec, String> {
        BuildSpec::new(
            f.tree.clone(),
            f.fragments.clone(),
            f.pahole.clone(),
            fragments_dir,
        )?
        .relative_to(base)
    }

    /// Relative paths (tree, pahole, fragments given as paths) taken from
    /// `base`. An empty base leaves them as they are: relative to the
    /// working directory, as on the command line.
    pub fn relative_to(mut self, base: &Path) -> Result<BuildSpec, String> {
        if let TreeSource::Path(p) = &mut self.tree {
            *p = base.join(&*p);
        }
        if let PaholeChoice::Path(p) = &mut self.pahole {
            *p = base.join(&*p);
        }
        for f in self.fragments.iter_mut().filter(|f| f.contains('/')) {
            let joined = base.join(&*f);
            // Fragments are strings (they are part of the `build:` text).
            *f = joined
                .to_str()
                .ok_or_else(|| format!("fragment {f:?}: {} is not UTF-8", joined.display()))?
                .to_string();
        }
        Ok(self)
    }

    fn new(
        tree: TreeSource,
        mut fragments: Vec<String>,
        pahole: PaholeChoice,
        fragments_dir: &Path,
    ) -> Result<BuildSpec, String> {
        if fragments.is_empty() {
            fragments.push(DEFAULT_FRAGMENT.into());
        }
        for f in &fragments {
            check_fragment(f)?;
        }
        Ok(BuildSpec {
            tree,
            fragments,
            pahole,
            fragments_dir: fragments_dir.to_path_buf(),
        })
    }

    /// The same build with another pahole (the matrix's rows).
    pub fn with_pahole(&self, pahole: PaholeChoice) -> BuildSpec {
        BuildSpec {
            pahole,
            ..self.clone()
        }
    }

    /// The same build with one more fragment (a workaround's variant).
    pub fn with_fragment(&self, fragment: &str) -> BuildSpec {
        let mut s = self.clone();
        if !s.fragments.iter().any(|f| f == fragment) {
            s.fragments.push(fragment.into());
        }
        s
    }
}

impl fmt::Display for TreeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeSource::Debian {
                suite,
                package: Some(p),
            } => write!(f, "debian:{suite}:{p}"),
            TreeSource::Debian {
                suite,
                package: None,
            } => write!(f, "debian:{suite}"),
            TreeSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl fmt::Display for PaholeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaholeChoice::Host => f.write_str("host"),
            PaholeChoice::None => f.write_str("none"),
            PaholeChoice::Debian(s) => write!(f, "debian:{s}"),
            PaholeChoice::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The canonical `build:` string; `BuildSpec::parse` reads it back.
impl fmt::Display for BuildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "build:{},fragments={},pahole={}",
            self.tree,
            self.fragments.join("+"),
            self.pahole
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/k/fragments")
    }

    #[test]
    fn parses_and_prints_canonically() {
        let s = BuildSpec::parse("debian:bookworm", &dir()).unwrap();
        assert_eq!(
            s.tree,
            TreeSource::Debian {
                suite: "bookworm".into(),
                package: None
            }
        );
        assert_eq!(s.fragments, ["btf-modules-on"]);
        assert_eq!(s.pahole, PaholeChoice::Host);
        let text = s.to_string();
        assert_eq!(
            text,
            "build:debian:bookworm,fragments=btf-modules-on,pahole=host"
        );
        let back = BuildSpec::parse(text.strip_prefix("build:").unwrap(), &dir()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn keys() {
        let s = BuildSpec::parse(
            "/src/linux,fragments=btf-modules-off+dwarf4,pahole=debian:bullseye",
            &dir(),
        )
        .unwrap();
        assert_eq!(s.tree, TreeSource::Path("/src/linux".into()));
        assert_eq!(s.fragments, ["btf-modules-off", "dwarf4"]);
        assert_eq!(s.pahole, PaholeChoice::Debian("bullseye".into()));
        assert!(BuildSpec::parse("debian:sid,colour=red", &dir()).is_err());
        assert!(BuildSpec::parse("debian:sid,pahole=x,pahole=y", &dir()).is_err());
        assert!(BuildSpec::parse("debian:sid,pahole", &dir()).is_err());
        assert!(BuildSpec::parse("debian:sid,fragments=base", &dir()).is_err());
        assert!(BuildSpec::parse("debian:sid,fragments=a b", &dir()).is_err());
        assert!(BuildSpec::parse("debian:,x=1", &dir()).is_err());
    }

    #[test]
    fn pahole_forms() {
        assert_eq!(PaholeChoice::parse("none").unwrap(), PaholeChoice::None);
        assert_eq!(
            PaholeChoice::parse("./bin/pahole").unwrap(),
            PaholeChoice::Path("./bin/pahole".into())
        );
        assert!(PaholeChoice::parse("pahole").is_err());
        assert!(PaholeChoice::parse("debian:Sid").is_err());
    }
}
