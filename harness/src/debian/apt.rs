//! Drives apt-get / apt-cache on a private configuration inside the cache:
//! its own sources file, lists, package cache and an empty dpkg status, so
//! that any suite can be queried and downloaded without root, without
//! touching the host's apt state, and whatever the host has installed.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::deb822::parse_paragraphs;
use super::mirror::Mirror;
use crate::support::cache::{write_atomic, CacheError};
use crate::support::child::{self, RunError};
use crate::support::stop::{Interrupted, StopCheck};
use crate::support::{interrupt, ErrorClass};

const SOURCES_FILE: &str = "btfvm.sources";
/// Written after each successful `apt-get update`; holds its time, which
/// also identifies that generation of the lists.
const STAMP_FILE: &str = "updated";
const STDERR_TAIL_LINES: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(
        "{program} not found: fetching Debian kernels needs apt (apt-get and apt-cache), \
         e.g. `apt-get install apt` on a Debian-like host"
    )]
    Missing { program: &'static str },
    #[error("`{command}` failed ({status}):\n{stderr_tail}")]
    Failed {
        command: String,
        status: String,
        stderr_tail: String,
    },
    #[error("`{command}` succeeded but left no {package}_*.deb in {}", dir.display())]
    NoDownload {
        command: String,
        package: String,
        dir: PathBuf,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// apt (and the methods it forked) killed on a stop request.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl AptError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AptError::Interrupted(i) => i.class(),
            AptError::Cache(e) => e.class(),
            _ => ErrorClass::Environment,
        }
    }
}

/// A package as `apt-cache show` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    /// Pre-Depends then Depends: clauses of alternative package names.
    pub depends: Vec<Vec<String>>,
    /// Size of the .deb in bytes.
    pub size: Option<u64>,
}

/// A private apt state for one suite of one mirror.
#[derive(Debug)]
pub struct AptDir {
    dir: PathBuf,
}

impl AptDir {
    /// Lays out `dir` for `suite` of `mirror` (idempotent; the sources file
    /// is only rewritten when it changes).
    pub fn open(dir: PathBuf, suite: &str, mirror: &Mirror) -> Result<AptDir, AptError> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| CacheError::io("cannot create", &p, e))?;
        }
        let status = dir.join("status");
        if !status.exists() {
            write_atomic(&status, b"")?;
        }
        let mut sources = format!(
            "Types: deb\nURIs: {}\nSuites: {suite}\nComponents: main\nArchitectures: amd64\n\
             Targets: Packages\nLanguages: none\n",
            mirror.uri
        );
        if let Some(keyring) = &mirror.signed_by {
            sources.push_str(&format!("Signed-By: {}\n", keyring.display()));
        }
        let path = dir.join(SOURCES_FILE);
        if fs::read_to_string(&path).ok().as_deref() != Some(sources.as_str()) {
            write_atomic(&path, sources.as_bytes())?;
            // Lists fetched with other settings no longer count as fresh.
            let _ = fs::remove_file(dir.join(STAMP_FILE));
        }
        Ok(AptDir { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Identifies the lists' generation: changes on every update; None
    /// when there are no lists yet.
    pub fn lists_id(&self) -> Option<String> {
        let id = fs::read_to_string(self.dir.join(STAMP_FILE)).ok()?;
        let id = id.trim();
        (!id.is_empty() && self.has_packages_index()).then(|| id.to_string())
    }

    /// How long ago the lists were fetched; None when missing, or when the
    /// stamp is in the future (a clock change makes it meaningless).
    pub fn lists_age(&self) -> Option<Duration> {
        let id = self.lists_id()?;
        let secs: u64 = id.split('.').next()?.parse().ok()?;
        SystemTime::now()
            .duration_since(UNIX_EPOCH + Duration::from_secs(secs))
            .ok()
    }

    fn has_packages_index(&self) -> bool {
        fs::read_dir(self.dir.join("lists")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
    }

    /// `apt-get update`, failing on any index that did not download.
    pub fn update(&self) -> Result<(), AptError> {
        let _ = fs::remove_file(self.dir.join(STAMP_FILE));
        self.run("apt-get", &["--error-on=any", "update"], None)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let id = format!("{}.{:09}\n", now.as_secs(), now.subsec_nanos());
        write_atomic(&self.dir.join(STAMP_FILE), id.as_bytes())?;
        Ok(())
    }

    /// The candidate versions of those of `names` that are real packages in
    /// the suite; unknown and purely virtual names are left out.
    pub fn show(&self, names: &[&str]) -> Result<Vec<PackageInfo>, AptError> {
        let mut args = vec!["show", "--no-all-versions"];
        args.extend(names.iter().copied());
        let stdout = match self.run("apt-cache", &args, None) {
            Ok(out) => out,
            // apt-cache fails only when it found none of the names at all.
            Err(AptError::Failed { stderr_tail, .. })
                if stderr_tail.contains("No packages found") =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        Ok(parse_paragraphs(&stdout)
            .iter()
            .filter_map(|p| {
                let mut depends = parse_depends(p.get("Pre-Depends").unwrap_or(""));
                depends.extend(parse_depends(p.get("Depends").unwrap_or("")));
                Some(PackageInfo {
                    name: p.get("Package")?.trim().to_string(),
                    version: p.get("Version")?.trim().to_string(),
                    depends,
                    size: p.get("Size").and_then(|s| s.trim().parse().ok()),
                })
            })
            .collect())
    }

    /// Downloads `name` at exactly `version` into `dest` and returns the
    /// .deb's path. apt checks it against the signed index.
    pub fn download(&self, name: &str, version: &str, dest: &Path) -> Result<PathBuf, AptError> {
        let spec = format!("{name}={version}");
        self.run("apt-get", &["download", &spec], Some(dest))?;
        let prefix = format!("{name}_");
        let found = fs::read_dir(dest)
            .map_err(|e| CacheError::io("cannot list", dest, e))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            });
        found.ok_or_else(|| AptError::NoDownload {
            command: format!("apt-get download {spec}"),
            package: name.to_string(),
            dir: dest.to_path_buf(),
        })
    }

    /// The options that make apt use this folder instead of the host's state.
    fn options(&self) -> Vec<OsString> {
        let d = |sub: &str| self.dir.join(sub).into_os_string();
        let mut opts: Vec<(&str, OsString)> = vec![
            ("Dir::Etc::SourceList", d(SOURCES_FILE)),
            ("Dir::Etc::SourceParts", "/dev/null".into()),
            // Host pins could hide the versions of other suites.
            ("Dir::Etc::Preferences", "/dev/null".into()),
            ("Dir::Etc::PreferencesParts", "/dev/null".into()),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::status", d("status")),
            ("Dir::State::extended_states", d("extended_states")),
            ("Dir::Cache", d("cache")),
            ("APT::Architecture", "amd64".into()),
            ("Acquire::Languages", "none".into()),
            // Keeps the lists as downloaded (compressed): a fifth of the space.
            ("Acquire::GzipIndexes", "true".into()),
            // Callers serialise on a lock file in this folder; apt's own
            // locks would point at host paths an ordinary user cannot open.
            ("Debug::NoLocking", "1".into()),
        ];
        // As root apt drops to _apt, which cannot write into a private
        // folder under root's home; as anyone else it never switches.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            opts.push(("APT::Sandbox::User", "root".into()));
        }
        let mut out = Vec::new();
        for (key, value) in opts {
            let mut kv = OsString::from(key);
            kv.push("=");
            kv.push(value);
            out.push("-o".into());
            out.push(kv);
        }
        out
    }

    fn run(
        &self,
        program: &'static str,
        args: &[&str],
        cwd: Option<&Path>,
    ) -> Result<String, AptError> {
        self.run_until(program, args, cwd, &interrupt::requested)
    }

    /// apt in a process group of its own: a download from a mirror that
    /// never answers waits minutes for apt's own timeouts, and its http
    /// methods are apt's children, so a stop request kills the group.
    fn run_until(
        &self,
        program: &'static str,
        args: &[&str],
        cwd: Option<&Path>,
        stop: StopCheck<'_>,
    ) -> Result<String, AptError> {
        let opts = self.options();
        let mut cmd = Command::new(program);
        cmd.args(&opts)
            .args(args)
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE");
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let shown = || command_line(program, &opts, args, cwd);
        let out = child::output(&mut cmd, stop).map_err(|e| match e {
            RunError::Interrupted(i) => AptError::Interrupted(i),
            RunError::Io(e) if e.kind() == io::ErrorKind::NotFound => AptError::Missing { program },
            RunError::Io(e) => AptError::Spawn {
                command: shown(),
                source: e,
            },
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // apt prints some errors to stdout (e.g. download failures).
            let text = if stderr.trim().is_empty() {
                stdout.as_str()
            } else {
                &*stderr
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
            return Err(AptError::Failed {
                command: shown(),
                status: out.status.to_string(),
                stderr_tail: tail,
            });
        }
        Ok(stdout)
    }
}

/// The command as one could paste it into a shell to reproduce a failure.
fn command_line(program: &str, opts: &[OsString], args: &[&str], cwd: Option<&Path>) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut parts = Vec::new();
    if let Some(cwd) = cwd {
        parts.push(format!("cd {} &&", quote(&cwd.to_string_lossy())));
    }
    parts.push(program.to_string());
    parts.extend(opts.iter().map(|o| quote(&o.to_string_lossy())));
    parts.extend(args.iter().map(|a| quote(a)));
    parts.join(" ")
}

/// Package names of a Depends-like field, as clauses of alternatives;
/// version constraints, architecture qualifiers and restrictions dropped.
pub fn parse_depends(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|clause| {
            clause
                .split('|')
                .filter_map(|alt| {
                    let name = alt
                        .trim()
                        .split(|c: char| c.is_whitespace() || "(:[<".contains(c))
                        .next()?;
                    (!name.is_empty()).then(|| name.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_depends() {
        let d = parse_depends(
            "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
             linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), libc6:any [amd64] <!nocheck>",
        );
        assert_eq!(
            d,
            vec![
                vec!["dracut", "initramfs-tools", "linux-initramfs-tool"],
                vec!["linux-base-7.2.13+deb14-cloud-amd64"],
                vec!["libc6"],
            ]
        );
        assert!(parse_depends("").is_empty());
    }

    #[test]
    fn quotes_command_lines() {
        let line = command_line(
            "apt-get",
            &["Dir::Cache=/a b".into()],
            &["download", "x=1:2"],
            None,
        );
        assert_eq!(line, "apt-get 'Dir::Cache=/a b' download x=1:2");
    }
}
