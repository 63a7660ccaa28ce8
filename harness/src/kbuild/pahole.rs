//! The pahole a build runs. Debian's paholes are extracted with the
//! libraries they link against and started through their own suite's
//! loader from a wrapper script in the cache: trixie's and sid's need a
//! newer glibc than the host's, and nothing is installed over the host's.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::BuildEvent;
use crate::debian::program::{self, Program, ProgramError, ProgramEvent, Wanted, LIB_DIRS};
use crate::debian::{DebianError, Suite};
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
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl PaholeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            PaholeError::Debian(e) => e.class(),
            PaholeError::Cache(e) => e.class(),
            PaholeError::NotFound { .. } | PaholeError::NoVersion { .. } => ErrorClass::Input,
            PaholeError::Program(e) => e.class(),
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

fn debian(
    choice: &PaholeChoice,
    suite_name: &str,
    cache: &Cache,
    mirror: Option<&str>,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Pahole, PaholeError> {
    let suite = Suite::open(cache, suite_name, mirror)?;
    // trixie and later split the binary into `pahole`; before, `dwarves`.
    let wanted = Wanted {
        packages: &["pahole", "dwarves"],
        binary: "usr/bin/pahole",
        dir: "build/pahole",
        memo: "pahole",
    };
    let program = program::extract(&[&suite], cache, &wanted, &mut |e| match e {
        ProgramEvent::Updating => events(BuildEvent::Step {
            what: format!("updating apt index for {suite_name}"),
        }),
        ProgramEvent::Downloading(p) => events(BuildEvent::Step {
            what: format!("downloading {} {} (debian:{suite_name})", p.name, p.version),
        }),
    })?;
    let wrapper = program.entry.join("pahole");
    if !wrapper.is_file() {
        write_wrapper(&program, suite_name)?;
    }
    debian_pahole(choice, suite_name, &program.entry, &program.packages)
}

/// Writes `<entry>/pahole`, which runs the suite's pahole with the suite's
/// loader and libraries (then the host's, for anything not extracted).
fn write_wrapper(p: &Program, suite: &str) -> Result<(), PaholeError> {
    let root = p.root();
    let mut libs = Program::library_path(&root);
    for d in LIB_DIRS {
        libs.push_str(&format!(":/{d}"));
    }
    let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let package = p.packages.lines().next().unwrap_or_default();
    let script = format!(
        "#!/bin/sh\n# pahole of Debian {suite} ({package}), run with its own loader and libraries\n\
         exec {} --library-path {} {} \"$@\"\n",
        q(&root.join(&p.loader).display().to_string()),
        q(&libs),
        q(&root.join(&p.binary).display().to_string()),
    );
    let path = p.entry.join("pahole");
    write_atomic(&path, script.as_bytes())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .map_err(|e| CacheError::io("cannot chmod", &path, e))?;
    Ok(())
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
            program::resolve_in_root(r, Path::new("lib64/ld-linux-x86-64.so.2")),
            Some(PathBuf::from("lib/x86_64-linux-gnu/ld-2.31.so"))
        );
        assert_eq!(
            program::resolve_in_root(r, Path::new("lib/x86_64-linux-gnu/ld.so")),
            Some(PathBuf::from("lib/x86_64-linux-gnu/ld-2.31.so"))
        );
        assert_eq!(
            program::resolve_in_root(r, Path::new("lib64/nothing")),
            None
        );
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
