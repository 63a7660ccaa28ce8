//! What a run is asked to do, read and checked before anything else
//! happens: scenarios, kernel specs, `--kernel` words and the `build:`
//! form, all from YAML or the command line, with errors that name the
//! file, line and column.

pub mod build_spec;
pub mod kernelspec;
pub mod scenario;
pub mod source;
pub mod yaml;

use std::path::{Path, PathBuf};

/// Where the repo's scenarios and kernel specs are when none are given.
pub fn repo_dir(sub: &str) -> PathBuf {
    let cwd = PathBuf::from(sub);
    if cwd.is_dir() {
        return cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(sub)
}
