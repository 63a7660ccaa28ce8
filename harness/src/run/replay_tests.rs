//! Every fault `tests/faults.rs` provokes for real, recorded once from a
//! real boot (`tests/fixtures/boots/<fault>/`: the transcript of what the
//! driver fed the watcher, and boot.json), replayed here through the
//! watcher and the verdict in milliseconds, with the fault tests' own
//! assertions. Re-record with `btfvm run --logs DIR ...` (README).

use std::path::PathBuf;

use super::*;
use crate::run::outcome::{FailureKind, TrialOutcome};
use crate::vm::{BootEnd, SplatKind};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/boots")
        .join(name)
}

fn replayed(name: &str) -> Replayed {
    replay(&fixture(name), &mut |_| {}).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn passed(r: &Replayed, scenario: &str) -> bool {
    r.results[scenario].outcome == TrialOutcome::Passed
}

fn failure<'a>(r: &'a Replayed, scenario: &str) -> (FailureKind, &'a str) {
    r.results[scenario]
        .outcome
        .failure()
        .unwrap_or_else(|| panic!("{scenario} did not fail: {:?}", r.results[scenario].outcome))
}

#[test]
fn a_clean_boot_passes_every_scenario() {
    let r = replayed("passing");
    assert!(r.outcome.finished());
    assert_eq!(r.outcome.end, BootEnd::Exited { status: Some(0) });
    assert_eq!(r.results.len(), 10);
    assert!(r
        .results
        .values()
        .all(|v| v.outcome == TrialOutcome::Passed));
    assert!(r.outcome.splats.is_empty());
}

#[test]
fn a_kernel_panic_fails_its_scenario_with_its_excerpt_and_earlier_passes_stand() {
    let r = replayed("kernel-panic");
    assert!(passed(&r, "before-panic"));
    let (kind, m) = failure(&r, "kernel-panic");
    assert_eq!(kind, FailureKind::Check);
    assert!(m.contains("kernel panic during kernel-panic"), "{m}");
    assert!(
        m.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{m}"
    );
    assert_eq!(r.outcome.splats[0].kind, SplatKind::Panic);
}

#[test]
fn a_panicking_check_fails_its_scenario_and_the_boot_goes_on() {
    let r = replayed("agent-panic");
    let (_, m) = failure(&r, "agent-panic");
    assert!(
        m.contains("agent panicked: selftest: a check panicked"),
        "{m}"
    );
    assert!(passed(&r, "before-panic"));
    assert!(r.outcome.finished());
}

#[test]
fn an_agent_that_exits_is_reported_as_such() {
    let r = replayed("agent-exit");
    let (_, m) = failure(&r, "agent-exit");
    assert!(
        m.contains("the guest agent (PID 1) exited or crashed"),
        "{m}"
    );
    assert!(m.contains("Attempted to kill init"), "{m}");
}

#[test]
fn a_hung_scenario_hits_its_timeout_and_the_console_tail_is_shown() {
    let r = replayed("hang");
    let (kind, m) = failure(&r, "hang");
    assert_eq!(kind, FailureKind::Check);
    assert!(
        m.contains("boot ended while this scenario ran: scenario hang still running after 3 s; QEMU killed"),
        "{m}"
    );
    assert!(m.contains("last lines:"), "{m}");
}

#[test]
fn the_whole_boot_has_a_wall_clock_limit() {
    let r = replayed("boot-timeout");
    let (_, m) = failure(&r, "hang");
    assert!(m.contains("boot timed out after 4 s; QEMU killed"), "{m}");
}

#[test]
fn no_hello_in_time_is_a_boot_failure_of_a_kernel_that_never_reached_the_agent() {
    let r = replayed("no-hello");
    let (kind, m) = failure(&r, "before-panic");
    assert!(m.contains("no hello from the agent within 1 s"), "{m}");
    assert_eq!(kind, FailureKind::NoAgent);
}

#[test]
fn garbage_oversize_and_truncated_frames_are_clear_failures() {
    for (name, want) in [
        ("garbage", "expected frame magic \"BTFV\""),
        (
            "oversize",
            "frame of 1073741824 bytes exceeds the 4194304-byte limit",
        ),
        ("truncated", "stream ended inside a frame"),
    ] {
        let r = replayed(name);
        assert!(matches!(r.outcome.end, BootEnd::Channel(_)), "{name}");
        let (_, m) = failure(&r, name);
        assert!(m.contains(want), "{name}: {m}");
    }
}

#[test]
fn a_real_kernel_warning_fails_its_scenario_and_the_later_ones_unless_allowed() {
    let r = replayed("warning");
    assert!(passed(&r, "a-before"));
    for s in ["b-warn", "c-after"] {
        let (_, m) = failure(&r, s);
        assert!(m.contains("kernel WARNING during b-warn"), "{s}: {m}");
        assert!(m.contains("btfvm_test.c"), "{s}: {m}");
    }
    // The same boot judged with the splat allowlisted: nothing fails, and
    // the splat keeps its reason.
    let dir = fixture("warning");
    let (mut meta, bytes) = load(&dir).unwrap();
    meta.allow_splats
        .push(crate::inputs::kernelspec::AllowSplat {
            matches: "btfvm_test.c".into(),
            reason: "provoked on purpose by the fault tests".into(),
        });
    let r = judge(meta, &bytes, &dir, &mut |_| {}).unwrap();
    assert!(r
        .results
        .values()
        .all(|v| v.outcome == TrialOutcome::Passed));
    assert_eq!(
        r.outcome.splats[0].allowed.as_deref(),
        Some("provoked on purpose by the fault tests")
    );
}

#[test]
fn a_damaged_or_missing_fixture_is_an_error_not_a_verdict() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(
        replay(d.path(), &mut |_| {}),
        Err(ReplayError::Meta { .. })
    ));
    std::fs::copy(
        fixture("hang").join("boot.json"),
        d.path().join("boot.json"),
    )
    .unwrap();
    std::fs::write(d.path().join("transcript.bin"), b"BTFVTR01\x01").unwrap();
    assert!(matches!(
        replay(d.path(), &mut |_| {}),
        Err(ReplayError::Transcript { .. })
    ));
}
