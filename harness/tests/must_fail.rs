//! Every check can fail: scenarios in tests/must-fail/ each assert something
//! false about a real kernel, and each must come back FAILED with the
//! message of the check that caught it. Needs QEMU and the default kernel
//! (fetched on first use); without QEMU it says so and fails.

use std::process::Command;

#[test]
fn false_expectations_fail_with_their_reason() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/must-fail");
    let out = Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args(["run", "--kernel", "bookworm", "--scenarios"])
        .arg(&dir)
        .args(["--test-threads", "1"])
        .output()
        .expect("running btfvm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for (trial, why) in [
        ("btf-on-stripped", "no BTF object named \"dummy\""),
        ("wrong-errno", "succeeded, expected ENOEXEC"),
        ("kmsg-missing", "no kernel log line contains"),
        ("gone-while-loaded", "still exists after unload"),
        ("none-while-present", "expected none"),
        ("pre-feature-on-new", "the feature is there"),
        ("fentry-no-runs", "ran 0 time(s), expected 1"),
        (
            "fentry-unload-attached",
            "delete_module(dummy) failed with EAGAIN",
        ),
        (
            "fentry-wrong-object",
            "naming vmlinux's BTF (attach_btf_obj_fd 0)): BPF_PROG_LOAD failed with EINVAL",
        ),
    ] {
        let name = format!("bookworm::{trial}");
        let failed = stdout
            .lines()
            .any(|l| l.contains(&format!("{name} ")) && l.trim_end().ends_with("FAILED"));
        assert!(failed, "{name} did not fail:\n{stdout}");
        let section = stdout
            .split(&format!("---- {name} ----"))
            .nth(1)
            .unwrap_or_default();
        assert!(
            section.contains(why),
            "{name}: expected {why:?} in\n{section}"
        );
    }
    assert!(stdout.contains("0 passed; 9 failed"), "{stdout}");
}
