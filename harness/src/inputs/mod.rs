//! What a run is asked to do, read and checked before anything else
//! happens: scenarios, kernel specs, `--kernel` words and the `build:`
//! form, all from YAML or the command line, with errors that name the
//! file, line and column.

pub mod append;
pub mod build_spec;
pub mod kernelspec;
pub mod scenario;
pub mod share;
pub mod source;
pub mod yaml;

use std::path::{Path, PathBuf};

/// Why a folder of inputs was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirOrigin {
    /// Given as an option (`--scenarios`, `--kernels-dir`).
    Option,
    /// `./scenarios` or `./kernels` of the working directory, which is not
    /// the repository's own folder.
    WorkingDir,
    /// The repository's own folder (also when the working directory is the
    /// repository).
    Repository,
}

/// A folder of inputs and why it is the one used: a copy in the working
/// directory replaces the repository's, and a run must be able to say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDir {
    pub path: PathBuf,
    pub origin: DirOrigin,
}

/// `given` when there is one; else `./<sub>` when the working directory
/// has it (the CI runs the binary from a folder with copies of both);
/// else the repository's.
pub fn input_dir(sub: &str, given: Option<&Path>) -> InputDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(sub);
    choose(given, Path::new(sub), &repo)
}

fn choose(given: Option<&Path>, local: &Path, repo: &Path) -> InputDir {
    let (path, origin) = match given {
        Some(p) => (p, DirOrigin::Option),
        None if local.is_dir() => {
            let same = match (std::fs::canonicalize(local), std::fs::canonicalize(repo)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            let origin = if same {
                DirOrigin::Repository
            } else {
                DirOrigin::WorkingDir
            };
            (local, origin)
        }
        None => (repo, DirOrigin::Repository),
    };
    InputDir {
        path: path.to_path_buf(),
        origin,
    }
}

/// Where the scenarios or kernel specs are when none are given.
pub fn repo_dir(sub: &str) -> InputDir {
    input_dir(sub, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_of_a_folder_says_why() {
        let d = tempfile::tempdir().unwrap();
        let (repo, copy) = (d.path().join("repo"), d.path().join("copy"));
        std::fs::create_dir(&repo).unwrap();
        let given = Path::new("/x/mine");
        let got = choose(Some(given), &copy, &repo);
        assert_eq!((got.path.as_path(), got.origin), (given, DirOrigin::Option));
        let got = choose(None, &copy, &repo);
        assert_eq!(
            (got.path, got.origin),
            (repo.clone(), DirOrigin::Repository)
        );
        std::fs::create_dir(&copy).unwrap();
        let got = choose(None, &copy, &repo);
        assert_eq!((got.path, got.origin), (copy, DirOrigin::WorkingDir));
        // The working directory is the repository: its folder is the repository's.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&repo, &link).unwrap();
        let got = choose(None, &link, &repo);
        assert_eq!((got.path, got.origin), (link, DirOrigin::Repository));
    }

    /// `cargo test` runs in harness/, which has no scenarios/ of its own.
    #[test]
    fn without_a_copy_in_the_working_directory_the_repositorys_is_used() {
        let d = repo_dir("scenarios");
        assert_eq!(d.origin, DirOrigin::Repository);
        assert!(d.path.join("module-load.yaml").is_file(), "{:?}", d.path);
    }
}
