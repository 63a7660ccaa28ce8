//! Kernel source trees: Debian's `linux-source-<ver>` fetched through apt
//! and unpacked once per package version into the cache (139 MB of .tar.xz
//! become 1.5 GB), or a tree on disk identified by its git commit.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::BuildEvent;
use crate::debian::{DebianError, Pinned, Suite};
use crate::inputs::build_spec::TreeSource;
use crate::support::cache::{Cache, CacheError};
use crate::support::child::{self, RunError};
use crate::support::stop::{Interrupted, StopCheck, StopReader};
use crate::support::{hex, interrupt, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("Debian {suite}: linux-source depends on no linux-source-<version> package")]
    NoVersionedSource { suite: String },
    #[error("{package} has no usr/src/linux-source-*.tar.xz")]
    NoTarball { package: String },
    #[error("unpacking {}: {source}", tarball.display())]
    Unpack {
        tarball: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: no kernel tree there (no Makefile and Kconfig at its top)", path.display())]
    NotATree { path: PathBuf },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl SourceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Debian(e) => e.class(),
            SourceError::Cache(e) => e.class(),
            SourceError::NoVersionedSource { .. } | SourceError::NotATree { .. } => {
                ErrorClass::Input
            }
            SourceError::NoTarball { .. } | SourceError::Unpack { .. } => ErrorClass::Kernel,
            SourceError::Interrupted(i) => i.class(),
        }
    }
}

/// A tree ready for `make -C <dir> O=...`.
#[derive(Debug, Clone)]
pub struct Tree {
    pub dir: PathBuf,
    /// What it is, for people and for the cache key: "linux-source-6.1
    /// 6.1.176-1" or "git 1a2b... (+ uncommitted changes 9f8e...)".
    pub identity: String,
    /// Short, for cache folder names: "6.1.176-1", "git-1a2b3c4d".
    pub label: String,
    /// False for an unversioned tree on disk: its identity does not follow
    /// its content, so its result must not be taken from the cache.
    pub cacheable: bool,
}

pub fn prepare(
    source: &TreeSource,
    cache: &Cache,
    mirror: Option<&str>,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Tree, SourceError> {
    match source {
        TreeSource::Debian { suite, package } => {
            debian_tree(cache, suite, package.as_deref(), mirror, events)
        }
        TreeSource::Path(p) => local_tree(p),
    }
}

fn debian_tree(
    cache: &Cache,
    suite_name: &str,
    package: Option<&str>,
    mirror: Option<&str>,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Tree, SourceError> {
    let suite = Suite::open(cache, suite_name, mirror)?;
    let requested = package.unwrap_or("linux-source");
    let memo_key = format!("source-{requested}");
    let srcdir = cache.subdir("build/src")?;
    // Fast path: no apt call when the lists are fresh and the tree is there.
    if let Some(memo) = suite.memo(&memo_key) {
        if let Some((name, version)) = memo.trim().split_once(' ') {
            if let Some(t) = find_unpacked(&srcdir, name, version) {
                return Ok(t);
            }
        }
    }
    let _lock = suite.ready(&mut || {
        events(BuildEvent::Step {
            what: format!("updating apt index for {suite_name}"),
        })
    })?;
    let name = if requested.starts_with("linux-source-") {
        requested.to_string()
    } else {
        let meta = suite.show_one(requested)?;
        meta.depends
            .iter()
            .flatten()
            .find(|n| n.starts_with("linux-source-"))
            .cloned()
            .ok_or_else(|| SourceError::NoVersionedSource {
                suite: suite_name.to_string(),
            })?
    };
    let info = suite.show_one(&name)?;
    suite.set_memo(&memo_key, &format!("{} {}", info.name, info.version))?;
    if let Some(t) = find_unpacked(&srcdir, &info.name, &info.version) {
        return Ok(t);
    }
    let entry = srcdir.join(entry_name(&info.name, &info.version));
    cache.install_dir(&entry, |tmp| -> Result<(), SourceError> {
        let size = info
            .size
            .map(|s| format!(" ({} MiB)", s >> 20))
            .unwrap_or_default();
        events(BuildEvent::Step {
            what: format!("downloading {} {}{size}", info.name, info.version),
        });
        let root = tmp.join("deb");
        suite.fetch_into(&[Pinned::from(&info)], tmp, &root, &mut |_, _| {})?;
        let tarball = find_tarball(&root.join("usr/src")).ok_or(SourceError::NoTarball {
            package: info.name.clone(),
        })?;
        unpack_xz(&tarball, tmp, events)?;
        let _ = fs::remove_dir_all(&root);
        Ok(())
    })?;
    find_unpacked(&srcdir, &info.name, &info.version).ok_or(SourceError::NotATree { path: entry })
}

fn entry_name(name: &str, version: &str) -> String {
    format!("{name}_{}", version.replace(':', "%3a"))
}

/// The unpacked tree inside a cache entry (the tarball's one top folder).
fn find_unpacked(srcdir: &Path, name: &str, version: &str) -> Option<Tree> {
    let entry = srcdir.join(entry_name(name, version));
    let dir = fs::read_dir(&entry)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| is_tree(p))?;
    Some(Tree {
        dir,
        identity: format!("{name} {version}"),
        label: version.to_string(),
        cacheable: true,
    })
}

fn is_tree(p: &Path) -> bool {
    p.join("Makefile").is_file() && p.join("Kconfig").is_file()
}

fn find_tarball(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-source-") && n.ends_with(".tar.xz"))
        })
}

/// Reports how far into the compressed file the unpacking is.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    last_pct: u64,
    events: &'a mut dyn FnMut(BuildEvent),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let pct = self.done * 100 / self.total.max(1);
        if pct != self.last_pct {
            self.last_pct = pct;
            (self.events)(BuildEvent::Progress {
                done: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

fn unpack_xz(
    tarball: &Path,
    dest: &Path,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<(), SourceError> {
    unpack_xz_until(tarball, dest, events, &interrupt::requested)
}

/// Unpacks for minutes (139 MB of xz to 1.5 GB), so every read of the
/// decompressed stream asks the stop check first. What was unpacked is in
/// the caller's temporary entry, which goes with the error.
fn unpack_xz_until(
    tarball: &Path,
    dest: &Path,
    events: &mut dyn FnMut(BuildEvent),
    stop: StopCheck<'_>,
) -> Result<(), SourceError> {
    let err = |source| SourceError::Unpack {
        tarball: tarball.to_path_buf(),
        source,
    };
    let file = File::open(tarball).map_err(err)?;
    let total = file.metadata().map_err(err)?.len();
    events(BuildEvent::Step {
        what: format!(
            "unpacking {} ({} MiB compressed)",
            tarball.file_name().unwrap_or_default().to_string_lossy(),
            total >> 20
        ),
    });
    let counting = Counting {
        inner: io::BufReader::with_capacity(1 << 20, file),
        done: 0,
        total,
        last_pct: 0,
        events,
    };
    let xz = liblzma::read::XzDecoder::new(counting);
    let mut ar = tar::Archive::new(StopReader::new(xz, stop));
    ar.set_preserve_mtime(true);
    // `unpack` refuses entries that would land outside `dest`.
    ar.unpack(dest).map_err(|e| match stop() {
        Some(signal) => Interrupted { signal }.into(),
        None => err(e),
    })
}

fn local_tree(path: &Path) -> Result<Tree, SourceError> {
    let dir = fs::canonicalize(path).map_err(|_| SourceError::NotATree {
        path: path.to_path_buf(),
    })?;
    if !is_tree(&dir) {
        return Err(SourceError::NotATree { path: dir });
    }
    // `git diff` over a big dirty tree takes seconds.
    let git = |args: &[&str]| -> Result<Option<String>, Interrupted> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&dir).args(args);
        match child::output(&mut cmd, &interrupt::requested) {
            Ok(out) => Ok(out
                .status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())),
            Err(RunError::Interrupted(i)) => Err(i),
            Err(RunError::Io(_)) => Ok(None),
        }
    };
    let Some(head) = git(&["rev-parse", "HEAD"])?.map(|s| s.trim().to_string()) else {
        return Ok(Tree {
            identity: format!("unversioned tree {}", dir.display()),
            label: "local".into(),
            dir,
            cacheable: false,
        });
    };
    // Uncommitted changes to tracked files count; a bisect's tree is clean.
    let diff = git(&["diff", "HEAD"])?.unwrap_or_default();
    let short: String = head.chars().take(12).collect();
    let (identity, label) = if diff.is_empty() {
        (format!("git {head}"), format!("git-{short}"))
    } else {
        let h = hex(&Sha256::digest(diff.as_bytes())[..6]);
        (
            format!("git {head} + uncommitted changes {h}"),
            format!("git-{short}-dirty-{h}"),
        )
    };
    Ok(Tree {
        dir,
        identity,
        label,
        cacheable: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("Makefile"), "all:\n").unwrap();
        fs::write(d.path().join("Kconfig"), "config X\n\tbool\n").unwrap();
        d
    }

    /// A .tar.xz of `files` files of 64 KiB each.
    fn tarball(dir: &Path, files: usize) -> PathBuf {
        let path = dir.join("linux-source-9.9.tar.xz");
        let xz = liblzma::write::XzEncoder::new(File::create(&path).unwrap(), 0);
        let mut b = tar::Builder::new(xz);
        for i in 0..files {
            let data = vec![b'x'; 64 << 10];
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("linux-source-9.9/f{i}"), &data[..])
                .unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn unpacking_gives_way_to_a_stop_between_two_reads() {
        let d = tempfile::tempdir().unwrap();
        let tar = tarball(d.path(), 40);
        let whole = d.path().join("whole");
        unpack_xz_until(&tar, &whole, &mut |_| {}, &crate::support::stop::never).unwrap();
        let count = |p: &Path| fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
        assert_eq!(count(&whole.join("linux-source-9.9")), 40);

        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            (asked.get() > 30).then_some(libc::SIGTERM)
        };
        let part = d.path().join("part");
        let r = unpack_xz_until(&tar, &part, &mut |_| {}, &stop);
        assert!(
            matches!(r, Err(SourceError::Interrupted(Interrupted { signal: 15 }))),
            "{r:?}"
        );
        let got = count(&part.join("linux-source-9.9"));
        assert!(got < 40, "stopped after the request, not at the end: {got}");
        assert_eq!(
            SourceError::Interrupted(Interrupted { signal: 15 }).class(),
            ErrorClass::Interrupted(15)
        );
    }

    #[test]
    fn trees_on_disk() {
        assert!(matches!(
            local_tree(Path::new("/nonexistent/linux")),
            Err(SourceError::NotATree { .. })
        ));
        let d = fake_tree();
        let t = local_tree(d.path()).unwrap();
        assert!(!t.cacheable, "{t:?}");
        assert!(t.identity.starts_with("unversioned tree"), "{t:?}");
        // The rest needs git (as in a bisect); without it there is nothing to check.
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(d.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !(git(&["init", "-q"]) && git(&["add", "."]) && git(&["commit", "-qm", "x"])) {
            return;
        }
        let clean = local_tree(d.path()).unwrap();
        assert!(
            clean.cacheable && clean.identity.starts_with("git "),
            "{clean:?}"
        );
        assert!(clean.label.starts_with("git-") && !clean.label.contains("dirty"));
        fs::write(d.path().join("Makefile"), "all:\n\ttrue\n").unwrap();
        let dirty = local_tree(d.path()).unwrap();
        assert!(dirty.label.contains("-dirty-"), "{dirty:?}");
        assert_ne!(dirty.identity, clean.identity);
    }
}
