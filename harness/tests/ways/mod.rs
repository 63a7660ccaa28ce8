//! What the tests of the other ways in (ssh.rs, vng.rs, share.rs) share:
//! the btfvm binary's output, a report's verdicts, and the processes a run
//! could have left behind.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `btfvm ARGS`, with extra environment.
pub fn btfvm(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running btfvm")
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every trial's (kernel::scenario, outcome) of a JSON report, sorted.
pub fn outcomes(report: &Path) -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).expect("reading the report")).unwrap();
    let mut out: Vec<(String, String)> = v["trials"]
        .as_array()
        .expect("trials")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("").to_string(),
                t["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Two reports' verdicts, trial for trial, and at least one pass (else the
/// comparison proves nothing).
pub fn same_verdicts(a: &Path, a_is: &str, b: &Path, b_is: &str) -> Result<(), String> {
    let (x, y) = (outcomes(a), outcomes(b));
    if x != y {
        return Err(format!("verdicts differ:\n {a_is} {x:?}\n {b_is} {y:?}"));
    }
    if !x.iter().any(|(_, o)| o == "passed") {
        return Err("nothing passed: the comparison would prove nothing".into());
    }
    Ok(())
}

/// Processes (but cargo's) whose command line contains `needle`.
pub fn running_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !cmd.contains("cargo") {
            out.push(cmd);
        }
    }
    out
}
