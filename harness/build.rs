//! Builds the guest agent as a static executable and hands its path to the
//! harness, so `cargo test` and `cargo run` need no extra step.
//!
//! Only x86_64-unknown-linux-gnu is installed here (no musl), so the agent is
//! linked statically against glibc with `+crt-static` and an explicit
//! `--target` (without it, RUSTFLAGS would also hit build scripts and proc
//! macros, which cannot be static).

use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("harness/ lives in the workspace")
        .to_path_buf();
    for dir in [
        "guest/src",
        "guest/Cargo.toml",
        "proto/src",
        "proto/Cargo.toml",
        "btf/src",
        "btf/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    // A separate target dir: the outer cargo holds the lock on its own.
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let target_dir = target_dir_for(&out, &root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "btfvm-guest",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir)
        // Stripped: the agent is copied into every initramfs, and symbols
        // would double its size for nothing (panics still print messages).
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Ctarget-feature=+crt-static\x1f-Cstrip=symbols",
        )
        // Variables the outer cargo set for this build script; left in place
        // they would redirect or reconfigure the inner build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS");
    let status = cmd.status().expect("running cargo for the guest agent");
    if !status.success() {
        panic!("building the guest agent (btfvm-guest, static, {TARGET}) failed; see the cargo output above");
    }
    let bin = target_dir.join(TARGET).join("release").join("btfvm-guest");
    println!("cargo:rustc-env=BTFVM_GUEST_BIN={}", bin.display());
}

/// `<workspace target>/guest`, found from OUT_DIR
/// (`<target>/<profile>/build/btfvm-<hash>/out`).
fn target_dir_for(out: &std::path::Path, root: &std::path::Path) -> PathBuf {
    out.ancestors()
        .nth(4)
        .map(|t| t.join("guest"))
        .unwrap_or_else(|| root.join("target").join("guest"))
}
