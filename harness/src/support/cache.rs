//! The user's btfvm cache folder and the few primitives that keep it
//! consistent: everything lands by rename, so a run killed at any point
//! leaves either the old state or the new one, never a half-written entry.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::cleanup::{remove_within, STOP_CLEANUP};
use super::interrupt;
use super::stop::{self, Interrupted, StopCheck};

/// Prefix of the scratch folders and files that become cache entries by
/// rename; anything with it is an unfinished entry and never read.
const TEMP_PREFIX: &str = ".btfvm-tmp-";

/// Inside a scratch folder, locked by the run filling it, so that the
/// leftovers of killed runs can be told from folders still being filled.
const OWNER_FILE: &str = ".btfvm-owner";

/// Scratch entries without an owner file older than this are leftovers
/// too: no fill (a kernel download and extraction) takes that long.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "cannot find a cache folder: none of BTFVM_CACHE_DIR, XDG_CACHE_HOME or HOME is set \
         (set BTFVM_CACHE_DIR to a writable folder)"
    )]
    NoCacheDir,
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Waiting for a lock, given up on a stop request.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl CacheError {
    pub fn class(&self) -> super::ErrorClass {
        match self {
            CacheError::Interrupted(i) => i.class(),
            _ => super::ErrorClass::Environment,
        }
    }

    pub fn io(what: &'static str, path: &Path, source: io::Error) -> CacheError {
        CacheError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// $XDG_CACHE_HOME/btfvm, else ~/.cache/btfvm; BTFVM_CACHE_DIR overrides.
    pub fn from_env() -> Result<Cache, CacheError> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Cache, CacheError> {
        super::xdg::dir(var, "BTFVM_CACHE_DIR", "XDG_CACHE_HOME", ".cache")
            .map(Cache::at)
            .ok_or(CacheError::NoCacheDir)
    }

    pub fn at(root: PathBuf) -> Cache {
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/name`, created if missing. `name` may contain `/`.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, CacheError> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).map_err(|e| CacheError::io("cannot create", &dir, e))?;
        Ok(dir)
    }

    /// Runs `fill` on a fresh temp dir next to `final_dir` (so inside the
    /// cache and on the same file system) and renames it to `final_dir`;
    /// if `final_dir` exists, returns it without calling `fill`. When
    /// `fill` fails the temp dir is removed (after a stop request, only
    /// for `STOP_CLEANUP`: see `abandon`). When another process installed
    /// the same entry meanwhile, its copy wins and ours is discarded.
    pub fn install_dir<F, E>(&self, final_dir: &Path, fill: F) -> Result<PathBuf, E>
    where
        F: FnOnce(&Path) -> Result<(), E>,
        E: From<CacheError>,
    {
        self.install_dir_until(final_dir, &interrupt::requested, fill)
    }

    /// `install_dir` with the stop check given.
    pub fn install_dir_until<F, E>(
        &self,
        final_dir: &Path,
        stop: StopCheck<'_>,
        fill: F,
    ) -> Result<PathBuf, E>
    where
        F: FnOnce(&Path) -> Result<(), E>,
        E: From<CacheError>,
    {
        if final_dir.is_dir() {
            return Ok(final_dir.to_path_buf());
        }
        let parent = final_dir
            .parent()
            .ok_or_else(|| {
                CacheError::io(
                    "cannot install at",
                    final_dir,
                    io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"),
                )
            })?
            .to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| CacheError::io("cannot create", &parent, e))?;
        sweep_stale_temps(&parent);
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| CacheError::io("cannot create a temp dir in", &parent, e))?;
        let owner_path = tmp.path().join(OWNER_FILE);
        let owner = File::create(&owner_path)
            .map_err(|e| CacheError::io("cannot create", &owner_path, e))?;
        // Nobody else knows this file yet, so the lock cannot be contended.
        // Held (by keeping `owner` open) until after the rename.
        flock(&owner, libc::LOCK_EX | libc::LOCK_NB)
            .map_err(|e| CacheError::io("cannot lock", &owner_path, e))?;
        if let Err(e) = fill(tmp.path()) {
            if stop().is_some() {
                abandon(tmp);
            }
            return Err(e);
        }
        fs::remove_file(&owner_path)
            .map_err(|e| CacheError::io("cannot remove", &owner_path, e))?;
        let renamed = fs::rename(tmp.path(), final_dir);
        drop(owner);
        match renamed {
            Ok(()) => {
                // The directory now lives on as final_dir: nothing to clean up.
                let _ = tmp.keep();
                Ok(final_dir.to_path_buf())
            }
            // Lost a race against a concurrent run: its entry is as good as
            // ours, and dropping `tmp` removes our copy.
            Err(_) if final_dir.is_dir() => Ok(final_dir.to_path_buf()),
            Err(e) => Err(CacheError::io("cannot rename a temp dir to", final_dir, e).into()),
        }
    }

    /// Takes an exclusive advisory lock on `path` (created if missing),
    /// waiting for other holders and calling `on_wait` once if it has to;
    /// released when the guard is dropped. Gives up on a stop request.
    pub fn lock(&self, path: &Path, on_wait: &mut dyn FnMut()) -> Result<CacheLock, CacheError> {
        self.lock_until(path, &interrupt::requested, on_wait)
    }

    /// `lock` with the stop check given.
    pub fn lock_until(
        &self,
        path: &Path,
        stop: StopCheck<'_>,
        on_wait: &mut dyn FnMut(),
    ) -> Result<CacheLock, CacheError> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| CacheError::io("cannot create", parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| CacheError::io("cannot open lock file", path, e))?;
        // A blocking flock ends only when the holder lets go: a signal's
        // EINTR is retried, so Ctrl-C would wait for another run's build.
        let mut waiting = false;
        loop {
            match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => return Ok(CacheLock { _file: file }),
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                    if !waiting {
                        waiting = true;
                        on_wait();
                    }
                    stop::pause(stop)?;
                }
                Err(e) => return Err(CacheError::io("cannot lock", path, e)),
            }
        }
    }
}

/// A temp dir whose fill a stop request cut short may be a half-unpacked
/// 1.5 GB tree: it is removed only for `STOP_CLEANUP`. What is left keeps
/// its owner file, whose lock goes when this process does, so the next
/// install in the same folder sweeps it as abandoned.
fn abandon(tmp: tempfile::TempDir) {
    let dir = tmp.keep();
    if remove_within(&dir, STOP_CLEANUP, Some(OWNER_FILE)) {
        let _ = fs::remove_file(dir.join(OWNER_FILE));
        let _ = fs::remove_dir(&dir);
    }
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a file descriptor we own; no memory involved.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Holds a `Cache::lock`; the kernel drops the lock when the file closes.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// Replaces `path` with `data` by writing a temp file beside it and
/// renaming, so readers see the old content or the new, never a part.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), CacheError> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(parent).map_err(|e| CacheError::io("cannot create", parent, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(parent)
        .map_err(|e| CacheError::io("cannot create a temp file in", parent, e))?;
    tmp.write_all(data)
        .map_err(|e| CacheError::io("cannot write", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| CacheError::io("cannot rename a temp file to", path, e.error))?;
    Ok(())
}

/// Removes scratch entries of runs that died. Best effort: a leftover only
/// wastes space, so failures are ignored.
fn sweep_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        // The lock is free only once its holder is gone; the holder keeps
        // it until its folder has been renamed away, so removing the path
        // then fails harmlessly.
        let abandoned = match File::open(path.join(OWNER_FILE)) {
            Ok(owner) => flock(&owner, libc::LOCK_EX | libc::LOCK_NB).is_ok(),
            // Just created or just finished: only age tells.
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TEMP_AGE),
        };
        if abandoned {
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::xdg::vars;

    #[test]
    fn cache_dir_precedence() {
        let all = [
            ("BTFVM_CACHE_DIR", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            Cache::from_vars(vars(&all)).unwrap().root(),
            Path::new("/c")
        );
        let no_override = [
            ("BTFVM_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            Cache::from_vars(vars(&no_override)).unwrap().root(),
            Path::new("/x/btfvm")
        );
        let relative_xdg = [("XDG_CACHE_HOME", "rel"), ("HOME", "/h")];
        assert_eq!(
            Cache::from_vars(vars(&relative_xdg)).unwrap().root(),
            Path::new("/h/.cache/btfvm")
        );
        assert!(matches!(
            Cache::from_vars(vars(&[])),
            Err(CacheError::NoCacheDir)
        ));
    }

    #[test]
    fn install_dir_is_atomic_and_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().to_path_buf());
        let target = cache.subdir("things").unwrap().join("one");

        let failed: Result<PathBuf, CacheError> = cache.install_dir(&target, |tmp| {
            fs::write(tmp.join("half"), b"x").unwrap();
            Err(CacheError::io("test", tmp, io::Error::other("boom")))
        });
        assert!(failed.is_err());
        assert!(!target.exists());
        let leftovers = fs::read_dir(target.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 0, "a failed fill must not leave its temp dir");

        let got = cache
            .install_dir::<_, CacheError>(&target, |tmp| {
                fs::write(tmp.join("file"), b"data").map_err(|e| CacheError::io("w", tmp, e))
            })
            .unwrap();
        assert_eq!(fs::read(got.join("file")).unwrap(), b"data");

        let again = cache
            .install_dir::<_, CacheError>(&target, |_| panic!("must not refill"))
            .unwrap();
        assert_eq!(again, target);
    }

    #[test]
    fn a_fill_cut_short_by_a_stop_leaves_nothing_it_had_time_to_remove() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().to_path_buf());
        let target = cache.subdir("k").unwrap().join("one");
        let stopped = || Some(libc::SIGINT);
        let r: Result<PathBuf, CacheError> = cache.install_dir_until(&target, &stopped, |tmp| {
            fs::create_dir_all(tmp.join("linux/kernel")).unwrap();
            fs::write(tmp.join("linux/kernel/a.c"), b"x").unwrap();
            Err(Interrupted { signal: 2 }.into())
        });
        assert!(matches!(r, Err(CacheError::Interrupted(_))), "{r:?}");
        let left = fs::read_dir(target.parent().unwrap()).unwrap().count();
        assert_eq!(left, 0, "a small temp dir is removed within the budget");
    }

    #[test]
    fn sweeps_only_abandoned_temps() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path().to_path_buf());
        let parent = cache.subdir("k").unwrap();
        // A killed run: owner file present, nobody holds its lock.
        let dead = parent.join(format!("{TEMP_PREFIX}dead"));
        fs::create_dir_all(&dead).unwrap();
        File::create(dead.join(OWNER_FILE)).unwrap();
        // A live run elsewhere: its lock is held.
        let live = parent.join(format!("{TEMP_PREFIX}live"));
        fs::create_dir_all(&live).unwrap();
        let held = File::create(live.join(OWNER_FILE)).unwrap();
        flock(&held, libc::LOCK_EX).unwrap();
        // Between creation and locking: recent, so left alone.
        let young = parent.join(format!("{TEMP_PREFIX}young"));
        fs::create_dir_all(&young).unwrap();

        cache
            .install_dir::<_, CacheError>(&parent.join("new"), |tmp| {
                assert!(tmp.join(OWNER_FILE).is_file(), "owner file while filling");
                Ok(())
            })
            .unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && young.exists());
        assert!(!parent.join("new").join(OWNER_FILE).exists());
    }

    #[test]
    fn write_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn lock_is_reentrant_across_guards_in_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf());
        let p = dir.path().join("l/lock");
        let mut waited = false;
        drop(cache.lock(&p, &mut || waited = true).unwrap());
        let _again = cache.lock(&p, &mut || waited = true).unwrap();
        assert!(!waited, "a free lock is taken without waiting");
    }

    #[test]
    fn waiting_for_a_held_lock_gives_way_to_a_stop_and_sees_its_release() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf());
        let p = dir.path().join("lock");
        // Another open file description: flock locks are per description.
        let held = File::create(&p).unwrap();
        flock(&held, libc::LOCK_EX).unwrap();
        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            (asked.get() > 2).then_some(libc::SIGINT)
        };
        let mut waits = 0;
        let t = std::time::Instant::now();
        let r = cache.lock_until(&p, &stop, &mut || waits += 1);
        assert!(
            matches!(r, Err(CacheError::Interrupted(Interrupted { signal: 2 }))),
            "{r:?}"
        );
        assert_eq!(waits, 1, "the wait is announced once");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(
            CacheError::Interrupted(Interrupted { signal: 15 }).class(),
            crate::support::ErrorClass::Interrupted(15)
        );

        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            drop(held);
        });
        let got = cache.lock_until(&p, &stop::never, &mut || {});
        assert!(got.is_ok(), "{got:?}");
        releaser.join().unwrap();
    }
}
