//! The VM suite under `cargo test`: every kernel spec in kernels/ (or the
//! comma-separated spec names in BTFVM_KERNELS) times every scenario, run
//! by the `btfvm` binary exactly as a user runs it, so its progress, exit
//! status and report are the ones users get. Trials are named
//! `<kernel>::<scenario>`; libtest arguments pass through:
//! `cargo test --test vm -- bookworm::`.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    cmd.arg("run");
    match std::env::var("BTFVM_KERNELS") {
        Ok(list) if !list.trim().is_empty() => {
            for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                cmd.args(["--kernel", k]);
            }
        }
        _ => {
            cmd.arg("--all-kernels");
        }
    }
    if let Ok(r) = std::env::var("BTFVM_REPORT") {
        cmd.arg("--report").arg(r);
    }
    // cargo-nextest starts one process per trial: one trial per kernel
    // keeps it at one boot per kernel, as under cargo test.
    if std::env::var_os("NEXTEST").is_some() {
        cmd.arg("--per-kernel");
    }
    // Run options come from the environment; cargo test owns the command
    // line, and what it passes after `--` is libtest's.
    cmd.args(std::env::args_os().skip(1));
    match cmd.status() {
        Ok(s) => match s.code() {
            Some(c) => ExitCode::from(c.clamp(0, 255) as u8),
            None => ExitCode::from(101),
        },
        Err(e) => {
            eprintln!("cannot run {}: {e}", env!("CARGO_BIN_EXE_btfvm"));
            ExitCode::from(101)
        }
    }
}
