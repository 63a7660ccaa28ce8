//! Removing a big tree when a stop request leaves no time for it. A
//! half-unpacked linux-source or a kernel's O= folder is tens of thousands
//! of files: 20,000 files of 16 KiB took 4.2 s to remove here, far more
//! than the second a signal may take to end btfvm. So after a stop request
//! a tree is removed only for `STOP_CLEANUP`, and the next run removes
//! the rest (the cache's sweep, or the next build's work folder).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a stopped run spends removing what it leaves.
pub const STOP_CLEANUP: Duration = Duration::from_millis(200);

/// Removes `path`, deepest entries first, until `budget` has passed. An
/// entry named `keep` directly in `path` is left, and `path` with it.
/// True when everything (but `keep`) is gone.
pub fn remove_within(path: &Path, budget: Duration, keep: Option<&str>) -> bool {
    let deadline = Instant::now() + budget;
    if !remove_tree(path, deadline, keep) {
        return false;
    }
    keep.is_some() || fs::remove_dir(path).is_ok() || !path.exists()
}

fn remove_tree(dir: &Path, deadline: Instant, keep: Option<&str>) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return !dir.exists();
    };
    for e in entries.flatten() {
        if Instant::now() >= deadline {
            return false;
        }
        if keep.is_some_and(|k| e.file_name() == k) {
            continue;
        }
        let p = e.path();
        let removed = if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&p, deadline, None) && fs::remove_dir(&p).is_ok()
        } else {
            fs::remove_file(&p).is_ok()
        };
        if !removed {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        for d in 0..10 {
            let dir = root.join(format!("d{d}/sub"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..3 {
                fs::write(dir.join(format!("f{f}")), b"x").unwrap();
            }
        }
        fs::write(root.join("owner"), b"").unwrap();
    }

    #[test]
    fn removes_what_fits_in_the_budget_and_leaves_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        tree(&t);
        assert!(!remove_within(&t, Duration::ZERO, None));
        assert!(t.join("owner").exists(), "nothing removed after the budget");
        assert!(remove_within(&t, Duration::from_secs(30), Some("owner")));
        let left: Vec<_> = fs::read_dir(&t).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "only the kept entry: {left:?}");
        assert!(remove_within(&t, Duration::from_secs(30), None));
        assert!(!t.exists());
        assert!(remove_within(&t, Duration::ZERO, None), "already gone");
    }
}
