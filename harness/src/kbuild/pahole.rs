//! The pahole a build runs. Debian's paholes are extracted with the
//! libraries they link against and started through their own suite's
//! loader from a wrapper script in the cache: trixie's and sid's need a
//! newer glibc than the host's, and nothing is installed over the host's.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::BuildEvent;
use crate::debian::apt::PackageInfo;
use crate::debian::{DebianError, PackageStep, Pinned, Suite};
use crate::inputs::build_spec::PaholeChoice;
use crate::support::cache::{write_atomic, Cache, CacheError};
use crate::support::child::{self, RunError};
use crate::support::stop::Interrupted;
use crate::support::{hex, interrupt, which, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum PaholeError {
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("--pahole {}: no such executable file", path.display())]
    NotFound { path: PathBuf },
    #[error("{what}: `{} --version` did not print a version (vX.Y): {output}", program.display())]
    NoVersion {
        what: String,
        program: PathBuf,
        output: String,
    },
    #[error("Debian {suite}: {package} has no {missing} after extraction")]
    Incomplete {
        suite: String,
        package: String,
        missing: &'static str,
    },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl PaholeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            PaholeError::Debian(e) => e.class(),
            PaholeError::Cache(e) => e.class(),
            PaholeError::NotFound { .. } | PaholeError::NoVersion { .. } => ErrorClass::Input,
            PaholeError::Incomplete { .. } => ErrorClass::Kernel,
            PaholeError::Interrupted(i) => i.class(),
        }
    }
}

/// The pahole of a build, as make and Kconfig will see it.
#[derive(Debug, Clone)]
pub struct Pahole {
    pub choice: PaholeChoice,
    /// What to pass as `PAHOLE=`; a path that does not exist for `none`.
    pub program: PathBuf,
    /// "v1.24" as `pahole --version` printed it; None without pahole.
    pub version: Option<String>,
    /// For the cache key: version, binary hash and the Debian packages.
    pub identity: String,
    /// For people: "pahole v1.30 (debian:trixie pahole 1.30-1)".
    pub description: String,
}

impl Pahole {
    pub fn present(&self) -> bool {
        self.version.is_some()
    }
}

pub fn resolve(
    choice: &PaholeChoice,
    cache: &Cache,
    mirror: Option<&str>,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Pahole, PaholeError> {
    match choice {
        PaholeChoice::None => Ok(absent(choice, cache, "no pahole (pahole=none)")),
        PaholeChoice::Host => match which("pahole") {
            Some(p) => from_binary(choice, &p, &p, "host"),
            None => Ok(absent(
                choice,
                cache,
                "no pahole (none on the host's PATH: install dwarves)",
            )),
        },
        PaholeChoice::Path(p) => {
            let meta = fs::metadata(p).map_err(|_| PaholeError::NotFound { path: p.clone() })?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(PaholeError::NotFound { path: p.clone() });
            }
            let abs = fs::canonicalize(p).map_err(|_| PaholeError::NotFound { path: p.clone() })?;
            from_binary(choice, &abs, &abs, &abs.display().to_string())
        }
        PaholeChoice::Debian(suite) => debian(choice, suite, cache, mirror, events),
    }
}

fn absent(choice: &PaholeChoice, cache: &Cache, why: &str) -> Pahole {
    Pahole {
        choice: choice.clone(),
        // Kconfig's pahole-version.sh answers 0 for a missing program.
        program: cache.root().join("build/pahole/none/pahole"),
        version: None,
        identity: "none".into(),
        description: why.into(),
    }
}

fn version_of(program: &Path, what: &str) -> Result<String, PaholeError> {
    // A pahole given by path is anybody's program: it may never answer.
    let mut cmd = Command::new(program);
    cmd.arg("--version");
    let out = child::output(&mut cmd, &interrupt::requested);
    if let Err(RunError::Interrupted(i)) = out {
        return Err(i.into());
    }
    let text = match &out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => e.to_string(),
    };
    let v = text.trim();
    let ok = out.as_ref().is_ok_and(|o| o.status.success())
        && v.strip_prefix('v').is_some_and(|r| {
            r.split('.').count() >= 2 && r.chars().all(|c| c.is_ascii_digit() || c == '.')
        });
    if ok {
        Ok(v.to_string())
    } else {
        Err(PaholeError::NoVersion {
            what: what.to_string(),
            program: program.to_path_buf(),
            output: v.chars().take(300).collect(),
        })
    }
}

fn sha_file(p: &Path) -> String {
    fs::read(p)
        .map(|b| hex(&Sha256::digest(&b)[..8]))
        .unwrap_or_else(|_| "unreadable".into())
}

/// `program` runs it; `binary` is the ELF whose hash identifies it.
fn from_binary(
    choice: &PaholeChoice,
    program: &Path,
    binary: &Path,
    origin: &str,
) -> Result<Pahole, PaholeError> {
    let version = version_of(program, origin)?;
    Ok(Pahole {
        choice: choice.clone(),
        program: program.to_path_buf(),
        identity: format!("{version} sha256:{}", sha_file(binary)),
        description: format!("pahole {version} ({origin})"),
        version: Some(version),
    })
}

/// A Debian pahole as make will run it, from its extracted entry.
fn debian_pahole(
    choice: &PaholeChoice,
    suite: &str,
    entry: &Path,
    packages: &str,
) -> Result<Pahole, PaholeError> {
    let mut p = from_binary(
        choice,
        &entry.join("pahole"),
        &entry.join("root/usr/bin/pahole"),
        &format!("debian:{suite}"),
    )?;
    p.identity = format!("{} debian:{suite} {packages}", p.identity);
    p.description = format!(
        "pahole {} (debian:{suite} {})",
        p.version.as_deref().unwrap_or("?"),
        packages.lines().next().unwrap_or_default()
    );
    Ok(p)
}

/// pahole's package and the libraries it needs: the loader, libc and what
/// pahole links against (zlib's package is the one whose name does not
/// start with lib).
fn packages_of(suite: &Suite) -> Result<Vec<PackageInfo>, PaholeError> {
    // trixie and later split the binary into `pahole`; before, `dwarves`.
    let root_pkg = match suite.show_one("pahole") {
        Ok(p) => p,
        Err(DebianError::NotFound { .. }) => suite.show_one("dwarves")?,
        Err(e) => return Err(e.into()),
    };
    let mut seen: BTreeSet<String> = BTreeSet::from([root_pkg.name.clone()]);
    let mut chosen = vec![root_pkg];
    let mut i = 0;
    while i < chosen.len() {
        let wanted: Vec<String> = chosen[i]
            .depends
            .iter()
            .filter_map(|alts| alts.first())
            .filter(|n| (n.starts_with("lib") || *n == "zlib1g") && !seen.contains(*n))
            .cloned()
            .collect();
        for n in wanted {
            seen.insert(n.clone());
            if let Ok(info) = suite.show_one(&n) {
                chosen.push(info);
            }
        }
        i += 1;
    }
    Ok(chosen)
}

fn debian(
    choice: &PaholeChoice,
    suite_name: &str,
    cache: &Cache,
    mirror: Option<&str>,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Pahole, PaholeError> {
    let suite = Suite::open(cache, suite_name, mirror)?;
    let base = cache.subdir("build/pahole")?;
    // Memo: entry name, then the package list; no apt when it is there.
    if let Some(memo) = suite.memo("pahole") {
        if let Some((name, packages)) = memo.split_once('\n') {
            let entry = base.join(name);
            if entry.join("pahole").is_file() {
                return debian_pahole(choice, suite_name, &entry, packages);
            }
        }
    }
    let _lock = suite.ready(&mut || {
        events(BuildEvent::Step {
            what: format!("updating apt index for {suite_name}"),
        })
    })?;
    let chosen = packages_of(&suite)?;
    let packages: String = chosen
        .iter()
        .map(|p| format!("{} {}\n", p.name, p.version))
        .collect();
    // The whole package set names the entry: a library update is a new one.
    let name = format!(
        "{suite_name}_{}_{}",
        chosen[0].version.replace(':', "%3a"),
        &hex(&Sha256::digest(packages.as_bytes()))[..8]
    );
    let entry = base.join(&name);
    cache.install_dir(&entry, |tmp| -> Result<(), PaholeError> {
        let pinned: Vec<Pinned> = chosen.iter().map(Pinned::from).collect();
        suite.fetch_into(&pinned, tmp, &tmp.join("root"), &mut |p, step| {
            if step == PackageStep::Downloading {
                events(BuildEvent::Step {
                    what: format!("downloading {} {} (debian:{suite_name})", p.name, p.version),
                });
            }
        })?;
        write_wrapper(tmp, &entry, suite_name, &chosen[0].name)?;
        Ok(())
    })?;
    suite.set_memo("pahole", &format!("{name}\n{packages}"))?;
    debian_pahole(choice, suite_name, &entry, &packages)
}

/// Library folders of a Debian root, merged-/usr or not.
const LIB_DIRS: [&str; 2] = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"];

/// Writes `<tmp>/pahole`, which runs the suite's pahole with the suite's
/// loader and libraries (then the host's, for anything not extracted).
/// Paths in it are those of the final entry, where it will live.
fn write_wrapper(tmp: &Path, entry: &Path, suite: &str, package: &str) -> Result<(), PaholeError> {
    let root = tmp.join("root");
    let incomplete = |missing| PaholeError::Incomplete {
        suite: suite.into(),
        package: package.into(),
        missing,
    };
    if !root.join("usr/bin/pahole").is_file() {
        return Err(incomplete("usr/bin/pahole"));
    }
    let loader = ["lib64", LIB_DIRS[0], LIB_DIRS[1]]
        .iter()
        .map(|d| Path::new(d).join("ld-linux-x86-64.so.2"))
        .find_map(|rel| resolve_in_root(&root, &rel))
        .ok_or_else(|| incomplete("ld-linux-x86-64.so.2"))?;
    let final_root = entry.join("root");
    let mut libs: Vec<String> = LIB_DIRS
        .iter()
        .map(|d| final_root.join(d).display().to_string())
        .collect();
    libs.extend(LIB_DIRS.iter().map(|d| format!("/{d}")));
    let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\n# pahole of Debian {suite} ({package}), run with its own loader and libraries\n\
         exec {} --library-path {} {} \"$@\"\n",
        q(&final_root.join(&loader).display().to_string()),
        q(&libs.join(":")),
        q(&final_root.join("usr/bin/pahole").display().to_string()),
    );
    let path = tmp.join("pahole");
    write_atomic(&path, script.as_bytes())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .map_err(|e| CacheError::io("cannot chmod", &path, e))?;
    Ok(())
}

/// Follows symlinks of `rel` as if `root` were `/` (the loader's links are
/// absolute: /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-2.31.so).
/// Returns the path relative to `root` of the file it ends at.
fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut cur = rel.to_path_buf();
    for _ in 0..16 {
        let mut acc = PathBuf::new();
        let comps: Vec<Component> = cur.components().collect();
        let mut redirected = None;
        for (i, c) in comps.iter().enumerate() {
            match c {
                Component::Normal(n) => acc.push(n),
                Component::ParentDir => {
                    acc.pop();
                }
                _ => continue,
            }
            let full = root.join(&acc);
            let meta = fs::symlink_metadata(&full).ok()?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&full).ok()?;
                let mut next = if target.is_absolute() {
                    target.strip_prefix("/").ok()?.to_path_buf()
                } else {
                    acc.parent().unwrap_or(Path::new("")).join(target)
                };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                redirected = Some(next);
                break;
            }
        }
        match redirected {
            Some(n) => cur = n,
            None => return root.join(&acc).is_file().then_some(acc),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn follows_absolute_links_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(r.join("lib64")).unwrap();
        fs::write(r.join("lib/x86_64-linux-gnu/ld-2.31.so"), b"elf").unwrap();
        symlink(
            "/lib/x86_64-linux-gnu/ld-2.31.so",
            r.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        symlink("ld-2.31.so", r.join("lib/x86_64-linux-gnu/ld.so")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("lib64/ld-linux-x86-64.so.2")),
            Some(PathBuf::from("lib/x86_64-linux-gnu/ld-2.31.so"))
        );
        assert_eq!(
            resolve_in_root(r, Path::new("lib/x86_64-linux-gnu/ld.so")),
            Some(PathBuf::from("lib/x86_64-linux-gnu/ld-2.31.so"))
        );
        assert_eq!(resolve_in_root(r, Path::new("lib64/nothing")), None);
    }

    #[test]
    fn version_must_look_like_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fake");
        fs::write(&p, "#!/bin/sh\necho v1.18\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(version_of(&p, "t").unwrap(), "v1.18");
        fs::write(&p, "#!/bin/sh\necho hello\n").unwrap();
        assert!(version_of(&p, "t").is_err());
    }
}
