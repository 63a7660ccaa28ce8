//! Bad input is rejected early, with a message that names the file and the
//! problem, and status 2; never a hang, never a pass.

use std::path::Path;
use std::process::{Command, Output};

fn btfvm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args(args)
        .output()
        .expect("running btfvm")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn kernels_that_are_not_x86_bzimages() {
    let d = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "text",
            b"#!/bin/sh\necho not a kernel\n".to_vec(),
            "not a usable x86 kernel",
        ),
        (
            "truncated",
            {
                // A boot sector and the start of a setup header, cut short.
                let mut v = vec![0u8; 0x210];
                v[0x1fe] = 0x55;
                v[0x1ff] = 0xaa;
                v[0x202..0x206].copy_from_slice(b"HdrS");
                v
            },
            "not a usable x86 kernel",
        ),
        (
            "arm64",
            {
                // The arm64 Image header: "ARM\x64" at byte 56.
                let mut v = vec![0u8; 4096];
                v[56..60].copy_from_slice(b"ARM\x64");
                v
            },
            "not a usable x86 kernel",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = d.path().join(format!("vmlinuz-{name}"));
        std::fs::write(&p, bytes).unwrap();
        let o = btfvm(&["run", "--kernel", p.to_str().unwrap()]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(
            e.contains(want) && e.contains(&p.display().to_string()),
            "{name}: {e}"
        );
    }
}

/// The cached bookworm kernel, fetched by any earlier test or run.
fn bookworm() -> Option<(String, String)> {
    let out = btfvm(&["fetch", "debian:bookworm"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    Some((field("vmlinuz")?, field("modules")?))
}

#[test]
fn a_modules_dir_of_another_kernel_and_a_module_that_is_not_elf() {
    let Some((vmlinuz, modules)) = bookworm() else {
        panic!("cannot fetch debian:bookworm");
    };
    let d = tempfile::tempdir().unwrap();
    let other = d.path().join("lib/modules/5.10.0-32-cloud-amd64");
    std::fs::create_dir_all(&other).unwrap();
    let o = btfvm(&[
        "run",
        "--kernel",
        &vmlinuz,
        "--modules",
        other.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("is for kernel 5.10.0-32-cloud-amd64"), "{e}");

    // Same release, but dummy.ko is not an ELF file.
    let release = Path::new(&modules).file_name().unwrap().to_str().unwrap();
    let tree = d.path().join("lib/modules").join(release);
    std::fs::create_dir_all(tree.join("kernel/drivers/net")).unwrap();
    std::fs::write(tree.join("kernel/drivers/net/dummy.ko"), b"this is not ELF").unwrap();
    let o = btfvm(&[
        "run",
        "--kernel",
        &vmlinuz,
        "--modules",
        tree.to_str().unwrap(),
        "--exact",
        &format!(
            "{}::module-load",
            Path::new(&vmlinuz).file_name().unwrap().to_str().unwrap()
        ),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    assert!(
        out.contains("preparing module dummy") && out.contains("dummy.ko"),
        "{out}"
    );
}

#[test]
fn a_package_that_does_not_exist() {
    let o = btfvm(&[
        "fetch",
        "debian:bookworm:linux-image-0.0.0-nonexistent-amd64",
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("linux-image-0.0.0-nonexistent-amd64") && e.contains("bookworm"),
        "{e}"
    );
}

#[test]
fn yaml_mistakes_name_file_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    for (name, text, want) in [
        (
            "unknown-key.yaml",
            "about: x\nsteps: [expect_user_btf]\nrequire: {}\n",
            ":3:1: unknown field `require`",
        ),
        (
            "wrong-type.yaml",
            "about: x\nsteps: expect_user_btf\n",
            ":2:8:",
        ),
        (
            "missing.yaml",
            "steps: [expect_user_btf]\n",
            "missing field `about`",
        ),
        (
            "bad-value.yaml",
            "about: x\nrequires: {config: {CONFIG_X: yes}}\nsteps: [expect_user_btf]\n",
            "is not one of y, m, n, set",
        ),
    ] {
        let dir = d.path().join(name.trim_end_matches(".yaml"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
        let o = btfvm(&["run", "--scenarios", dir.to_str().unwrap()]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
}

#[test]
fn no_apt_on_the_host() {
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args(["fetch", "debian:trixie"])
        .env("BTFVM_CACHE_DIR", cache.path())
        .env("PATH", "/nonexistent")
        .output()
        .expect("running btfvm");
    let e = stderr(&o);
    // A host without apt is the environment's problem, not bad usage:
    // exit status 3 (see the exit-status table in README.md).
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(e.contains("apt"), "{e}");
}

/// An apt outage is the environment, for `fetch` and `kernel build` alike
/// (status 3), never "bad usage": a mirror nobody listens on, and a cache
/// of its own so no fresh index hides the outage.
#[test]
fn an_apt_outage_is_the_environment_for_fetch_and_build() {
    let cache = tempfile::tempdir().unwrap();
    let mirror = "http://127.0.0.1:9/debian";
    for args in [
        &["fetch", "debian:bookworm"][..],
        &["kernel", "build", "build:debian:bookworm"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_btfvm"))
            .args(args)
            .args(["--debian-mirror", mirror])
            .env("BTFVM_CACHE_DIR", cache.path())
            .output()
            .expect("running btfvm");
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {e}");
        assert!(
            e.contains("apt-get") && e.contains("update"),
            "{args:?}: {e}"
        );
    }
}

/// `--modules` and `--config` belong to one kernel given by path; with a
/// spec name they are refused instead of being ignored.
#[test]
fn modules_and_config_without_a_path_kernel_are_usage_errors() {
    for (opt, val) in [
        ("--modules", "/lib/modules/x"),
        ("--config", "/boot/config-x"),
    ] {
        let o = btfvm(&["run", "--kernel", "bookworm", opt, val]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{opt}: {e}");
        assert!(
            e.contains(&format!("{opt} belongs to a kernel given by path")),
            "{opt}: {e}"
        );
    }
}
