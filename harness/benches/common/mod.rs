//! What the benches share (a folder, so cargo does not take it for a
//! bench of its own).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `btfvm run ARGS` on the repository's kernel specs and scenarios,
/// quiet: what every timed run of the benches starts from.
pub fn btfvm_run(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    c.arg("run")
        .args(args)
        .arg("-q")
        .arg("--kernels-dir")
        .arg(root.join("kernels"))
        .arg("--scenarios")
        .arg(root.join("scenarios"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}
