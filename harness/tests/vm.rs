//! The VM suite under `cargo test`: every kernel spec in kernels/ (or the
//! comma-separated spec names in BTFVM_KERNELS) times every scenario.
//! Trials are named `<kernel>::<scenario>`; libtest filters apply:
//! `cargo test --test vm -- bookworm::`.

use std::process::ExitCode;

use btfvm::cli::{run_suite, usage_error, RunOptions};
use clap::Parser;

#[derive(clap::Parser)]
struct Opts {
    #[command(flatten)]
    run: RunOptions,
}

fn main() -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    // Run options come from the environment here: cargo test owns the
    // command line.
    let mut opts = Opts::parse_from(["vm"]).run;
    match std::env::var("BTFVM_KERNELS") {
        Ok(list) if !list.trim().is_empty() => {
            opts.kernels = list.split(',').map(|s| s.trim().to_string()).collect();
        }
        _ => opts.all_kernels = true,
    }
    if let Ok(r) = std::env::var("BTFVM_REPORT") {
        opts.report = Some(r.into());
    }
    run_suite(opts, args).unwrap_or_else(|e| usage_error(&e))
}
