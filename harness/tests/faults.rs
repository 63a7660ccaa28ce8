//! Each fault provoked for real (a real kernel, QEMU and signals) and what
//! the user sees for it. Boots run one at a time: two TCG guests on a
//! 2-core machine only slow each other down.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());

fn faults_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults")
}

const ALL: &[&str] = &[
    "agent-exit",
    "agent-panic",
    "before-panic",
    "garbage",
    "hang",
    "kernel-panic",
    "oversize",
    "truncated",
];

/// `btfvm run` on bookworm with only the named fault scenarios selected.
fn btfvm(only: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Output {
    let _one = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    cmd.args([
        "run",
        "--kernel",
        "bookworm",
        "--test-threads",
        "1",
        "--scenarios",
    ])
    .arg(faults_dir())
    .args(extra);
    for s in ALL.iter().filter(|s| !only.contains(s)) {
        cmd.args(["--skip", &format!("bookworm::{s}")]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running btfvm")
}

/// The failure text libtest printed for a trial.
fn failure<'a>(stdout: &'a str, scenario: &str) -> &'a str {
    let head = format!("---- bookworm::{scenario} ----");
    stdout
        .split(&head)
        .nth(1)
        .and_then(|s| s.split("\n---- ").next())
        .unwrap_or_else(|| panic!("no failure section for {scenario} in:\n{stdout}"))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn passed(stdout: &str, scenario: &str) -> bool {
    stdout
        .lines()
        .any(|l| l.contains(&format!("bookworm::{scenario} ")) && l.trim_end().ends_with("ok"))
}

#[test]
fn a_panicking_check_fails_its_scenario_and_the_boot_goes_on() {
    let o = btfvm(&["agent-panic", "before-panic"], &[], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        failure(&out, "agent-panic").contains("agent panicked: selftest: a check panicked"),
        "{out}"
    );
    assert!(passed(&out, "before-panic"), "{out}");
}

#[test]
fn an_agent_that_exits_is_reported_as_such() {
    let o = btfvm(&["agent-exit"], &[], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let f = failure(&out, "agent-exit");
    assert!(
        f.contains("the guest agent (PID 1) exited or crashed"),
        "{f}"
    );
    assert!(f.contains("Attempted to kill init"), "{f}");
}

#[test]
fn a_kernel_panic_is_caught_at_once_with_its_excerpt_and_earlier_passes_stand() {
    let t = Instant::now();
    let o = btfvm(&["before-panic", "kernel-panic"], &[], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(passed(&out, "before-panic"), "{out}");
    let f = failure(&out, "kernel-panic");
    assert!(f.contains("kernel panic during kernel-panic"), "{f}");
    assert!(
        f.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{f}"
    );
    assert!(
        err.contains("btfvm: bookworm: kernel panic during kernel-panic"),
        "{err}"
    );
    // No waiting for a timeout: a boot is ~2 s; the default limits are minutes.
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_hung_scenario_hits_its_timeout_and_the_console_tail_is_shown() {
    let t = Instant::now();
    let o = btfvm(&["hang"], &["--scenario-timeout", "3"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let f = failure(&out, "hang");
    assert!(f.contains("boot ended while this scenario ran: scenario hang still running after 3 s; QEMU killed"), "{f}");
    assert!(f.contains("last lines:"), "{f}");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn no_hello_in_time_is_a_boot_failure() {
    let o = btfvm(&["before-panic"], &["--hello-timeout", "1"], &[]);
    let (out, _) = text(&o);
    let f = failure(&out, "before-panic");
    assert!(f.contains("no hello from the agent within 1 s"), "{f}");
}

#[test]
fn the_whole_boot_has_a_wall_clock_limit() {
    let o = btfvm(&["hang"], &["--timeout", "4"], &[]);
    let (out, _) = text(&o);
    assert!(
        failure(&out, "hang").contains("boot timed out after 4 s; QEMU killed"),
        "{out}"
    );
}

#[test]
fn garbage_oversize_and_truncated_frames_are_clear_failures() {
    for (scenario, want) in [
        ("garbage", "expected frame magic \"BTFV\""),
        (
            "oversize",
            "frame of 1073741824 bytes exceeds the 4194304-byte limit",
        ),
        ("truncated", "stream ended inside a frame"),
    ] {
        let o = btfvm(&[scenario], &[], &[]);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
        assert!(failure(&out, scenario).contains(want), "{scenario}: {out}");
    }
}

/// Starts a run whose only scenario hangs, waits for the agent, then sends
/// `sig`. Returns the exit status, the private TMPDIR and the report path.
fn signal_a_hung_run(sig: i32) -> (Option<i32>, Option<i32>, tempfile::TempDir, PathBuf) {
    let _one = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = tmp.path().join("report.json");
    let work = tmp.path().join("tmp");
    std::fs::create_dir(&work).expect("mkdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    cmd.args([
        "run",
        "--kernel",
        "bookworm",
        "--exact",
        "bookworm::hang",
        "--scenarios",
    ])
    .arg(faults_dir())
    .arg("--report")
    .arg(&report)
    .env("TMPDIR", &work)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn btfvm");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep reading to the end, so btfvm never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("agent running") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the agent never started");
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    (status.code(), status.signal(), tmp, report)
}

fn qemu_running_under(dir: &Path) -> bool {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("qemu-system") && c.contains(&needle)
        })
}

#[test]
fn sigint_and_sigterm_stop_cleanly_with_a_partial_report() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let (status, _, tmp, report) = signal_a_hung_run(sig);
        assert_eq!(status, Some(code), "signal {sig}");
        let work = tmp.path().join("tmp");
        assert!(
            !qemu_running_under(&work),
            "QEMU left running after signal {sig}"
        );
        let left: Vec<_> = std::fs::read_dir(&work).expect("read tmp").collect();
        assert!(
            left.is_empty(),
            "temporary files left after signal {sig}: {left:?}"
        );
        let r = std::fs::read_to_string(&report).expect("partial report written");
        assert!(
            r.contains("\"bookworm::hang\"") && r.contains("interrupted by"),
            "{r}"
        );
    }
}

#[test]
fn sigkill_of_btfvm_takes_qemu_with_it() {
    let (_, signal, tmp, _) = signal_a_hung_run(libc::SIGKILL);
    assert_eq!(signal, Some(libc::SIGKILL));
    let work = tmp.path().join("tmp");
    let t = Instant::now();
    while qemu_running_under(&work) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !qemu_running_under(&work),
        "QEMU survived its parent's SIGKILL"
    );
    // Its temporary directory is left behind; the next run sweeps it.
    let left = || std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left(), 1, "a SIGKILLed run leaves its directory");
    let _one = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let o = Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args([
            "run",
            "--kernel",
            "bookworm",
            "--exact",
            "bookworm::before-panic",
            "--scenarios",
        ])
        .arg(faults_dir())
        .env("TMPDIR", &work)
        .output()
        .expect("btfvm");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        left(),
        0,
        "the next run did not sweep the dead run's directory"
    );
}

#[test]
fn after_a_hung_kernel_the_remaining_kernels_still_go() {
    let _one = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let o = Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args([
            "run",
            "--kernel",
            "bookworm",
            "--kernel",
            "bullseye",
            "--scenario-timeout",
            "2",
        ])
        .args(["--test-threads", "1", "hang", "--scenarios"])
        .arg(faults_dir())
        .output()
        .expect("btfvm");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    for k in ["bookworm", "bullseye"] {
        let f = out
            .split(&format!("---- {k}::hang ----"))
            .nth(1)
            .unwrap_or_else(|| panic!("{k}::hang did not fail: {out}"));
        assert!(
            f.contains("scenario hang still running after 2 s"),
            "{k}: {f}"
        );
    }
}

#[test]
fn host_faults_say_what_and_how_to_fix() {
    let o = btfvm(
        &["before-panic"],
        &["--qemu", "/nonexistent/qemu-system-x86_64"],
        &[],
    );
    let (out, _) = text(&o);
    let f = failure(&out, "before-panic");
    assert!(
        f.contains("/nonexistent/qemu-system-x86_64") && f.contains("apt-get install"),
        "{f}"
    );

    let o = btfvm(
        &["before-panic"],
        &[],
        &[("BTFVM_CACHE_DIR", "/proc/btfvm-cache")],
    );
    let (out, _) = text(&o);
    let f = failure(&out, "before-panic");
    assert!(f.contains("/proc/btfvm-cache"), "{f}");

    // A full disk, for real: /dev/full answers every write with ENOSPC.
    let o = btfvm(&["before-panic"], &["--report", "/dev/full"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        err.contains("cannot write report /dev/full") && err.contains("No space left on device"),
        "{err}"
    );
}

/// Runs tests/faults-built on the built 6.1 kernel (built by `.ci/run` before
/// `cargo test`, or here on first use), with `kernels_dir` for its spec.
fn built(kernels_dir: &Path) -> Output {
    let _one = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args(["run", "--kernel", "built-6.1-btf-on", "--test-threads", "1"])
        .arg("--kernels-dir")
        .arg(kernels_dir)
        .arg("--scenarios")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults-built"))
        .arg("--report")
        .arg(kernels_dir.join("report.json"))
        .output()
        .expect("running btfvm")
}

fn built_outcome(stdout: &str, scenario: &str) -> &'static str {
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("built-6.1-btf-on::{scenario} ")))
        .unwrap_or_default();
    if line.trim_end().ends_with("ok") {
        "ok"
    } else if line.trim_end().ends_with("FAILED") {
        "FAILED"
    } else {
        "?"
    }
}

#[test]
fn a_real_kernel_warning_fails_its_scenario_and_the_later_ones_unless_allowed() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let kernels = tempfile::tempdir().unwrap();
    std::fs::create_dir(kernels.path().join("fragments")).unwrap();
    for e in std::fs::read_dir(repo.join("kernels/fragments"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(
            e.path(),
            kernels.path().join("fragments").join(e.file_name()),
        )
        .unwrap();
    }
    let spec = std::fs::read_to_string(repo.join("kernels/built-6.1-btf-on.yaml")).unwrap();
    let spec_path = kernels.path().join("built-6.1-btf-on.yaml");
    std::fs::write(&spec_path, &spec).unwrap();

    let o = built(kernels.path());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert_eq!(built_outcome(&out, "a-before"), "ok", "{out}");
    for s in ["b-warn", "c-after"] {
        assert_eq!(built_outcome(&out, s), "FAILED", "{out}");
        let f = out
            .split(&format!("---- built-6.1-btf-on::{s} ----"))
            .nth(1)
            .unwrap_or_default();
        assert!(f.contains("kernel WARNING during b-warn"), "{s}: {f}");
        assert!(f.contains("btfvm_test.c"), "{s}: {f}");
    }
    // Live, the console line may arrive after the agent moved on; the
    // verdicts above come from the kernel log of each scenario.
    assert!(err.contains("kernel WARNING during "), "{err}");

    // The same WARNING, allowlisted with a reason: nothing fails, and the
    // report still lists it with the reason.
    std::fs::write(
        &spec_path,
        format!("{spec}allow_splats:\n  - matches: \"btfvm_test.c\"\n    reason: \"provoked on purpose by the fault tests\"\n"),
    )
    .unwrap();
    let o = built(kernels.path());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let report = std::fs::read_to_string(kernels.path().join("report.json")).unwrap();
    assert!(
        report.contains("provoked on purpose by the fault tests"),
        "{report}"
    );
}
