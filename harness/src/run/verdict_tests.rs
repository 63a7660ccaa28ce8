use super::*;
use crate::vm::SplatKind;
use btfvm_proto::{Observations, Outcome};
use std::path::PathBuf;
use std::time::Duration;

fn finished(name: &str) -> Message {
    Message::ScenarioFinished {
        name: name.into(),
        outcome: Outcome::Passed,
        duration_ms: 1,
        observations: Observations::default(),
    }
}

fn outcome(splat_in: Option<&str>, line: &str) -> BootOutcome {
    BootOutcome {
        way: crate::vm::Way::Qemu,
        end: BootEnd::Exited { status: Some(0) },
        messages: vec![
            Message::Hello {
                agent: "t".into(),
                release: "6.1".into(),
                uptime_ms: 1,
                scenarios: 3,
            },
            finished("a"),
            finished("b"),
            finished("c"),
            Message::Done { uptime_ms: 2 },
        ],
        elapsed: Duration::from_secs(2),
        console_log: PathBuf::from("/log"),
        console_tail: String::new(),
        qemu_stderr: String::new(),
        splats: vec![Splat {
            kind: SplatKind::Warning,
            line: line.into(),
            excerpt: vec![line.into(), "Call Trace:".into()],
            scenario: splat_in.map(String::from),
            finished_before: 0,
            allowed: None,
        }],
        console_dropped: 0,
        hello_at: Some(Duration::from_secs(1)),
        marks: Default::default(),
    }
}

fn planned() -> Vec<String> {
    ["a", "b", "c"].map(String::from).to_vec()
}

fn message(r: &ScenarioResult) -> &str {
    match &r.outcome {
        TrialOutcome::Failed { message, .. } => message,
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_splat_fails_its_scenario_and_the_later_ones() {
    let r = map_results(
        &planned(),
        &outcome(Some("b"), "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2"),
    );
    assert_eq!(r["a"].outcome, TrialOutcome::Passed);
    for n in ["b", "c"] {
        let m = message(&r[n]);
        assert!(m.contains("kernel WARNING during b"), "{m}");
        assert!(m.contains("Call Trace:"), "{m}");
        assert_eq!(
            r[n].outcome.failure().map(|f| f.0),
            Some(FailureKind::Check)
        );
    }
}

#[test]
fn an_allowlisted_splat_fails_nothing_and_keeps_its_reason() {
    let mut o = outcome(
        Some("a"),
        "WARNING: CPU: 0 PID: 1 at drivers/known.c:1 f+0x1/0x2",
    );
    let allow = [AllowSplat {
        matches: "drivers/known.c".into(),
        reason: "fixed upstream by commit abc".into(),
    }];
    apply_allowlist(&mut o.splats, &allow);
    assert_eq!(
        o.splats[0].allowed.as_deref(),
        Some("fixed upstream by commit abc")
    );
    let r = map_results(&planned(), &o);
    assert!(r.values().all(|v| v.outcome == TrialOutcome::Passed));
}

#[test]
fn the_scenario_whose_kernel_log_has_the_splat_is_blamed_not_the_console_tag() {
    let line = "WARNING: CPU: 0 PID: 1 at x.c:52 0xffffffffa0004023";
    let mut o = outcome(None, line);
    o.splats[0].finished_before = 3; // the console line came late
    if let Message::ScenarioFinished { observations, .. } = &mut o.messages[2] {
        observations.kmsg = vec!["------------[ cut here ]------------".into(), line.into()];
    }
    let r = map_results(&planned(), &o);
    assert_eq!(r["a"].outcome, TrialOutcome::Passed);
    for n in ["b", "c"] {
        let m = message(&r[n]);
        assert!(m.contains("kernel WARNING during b"), "{m}");
    }
}

#[test]
fn a_splat_before_any_scenario_fails_them_all() {
    let r = map_results(
        &planned(),
        &outcome(None, "BUG: kernel NULL pointer dereference"),
    );
    assert!(r
        .values()
        .all(|v| matches!(v.outcome, TrialOutcome::Failed { .. })));
}

#[test]
fn a_kernel_that_never_reached_the_agent_is_no_agent_not_a_check() {
    let mut o = outcome(None, "x");
    o.splats.clear();
    o.messages.clear();
    o.end = BootEnd::NoHello {
        after: Duration::from_secs(60),
    };
    let r = map_results(&planned(), &o);
    for v in r.values() {
        assert_eq!(v.outcome.failure().map(|f| f.0), Some(FailureKind::NoAgent));
        assert!(message(v).contains("never reported"), "{}", message(v));
    }
}

#[test]
fn a_failed_check_carries_the_kernel_log_lines_that_explain_it() {
    let mut o = outcome(None, "x");
    o.splats.clear();
    if let Message::ScenarioFinished {
        outcome,
        observations,
        ..
    } = &mut o.messages[1]
    {
        *outcome = Outcome::Failed {
            message: "finit_module(dummy [corrupt-btf]) failed with EINVAL (Invalid argument)"
                .into(),
        };
        observations.kmsg = vec![
            "dummy: loading out-of-tree module taints kernel.".into(),
            "BPF: [95069] Invalid kind:31".into(),
            "failed to validate module [dummy] BTF: -22".into(),
        ];
    }
    let r = map_results(&planned(), &o);
    let m = message(&r["a"]);
    assert!(
        m.ends_with("kernel log of this scenario:\n  BPF: [95069] Invalid kind:31\n  failed to validate module [dummy] BTF: -22"),
        "{m}"
    );
    assert!(!m.contains("taints kernel"), "{m}");
    // Nothing that explains: nothing added.
    assert_eq!(with_kernel_log("m", &["dummy: loaded".into()]), "m");
}

#[test]
fn each_way_in_names_what_ended_and_what_was_killed() {
    let mut o = outcome(None, "x");
    o.splats.clear();
    o.way = Way::Vng;
    o.end = BootEnd::Exited { status: Some(255) };
    // vng says 255 where its script I/O is missing; the agent's Done counts.
    assert_eq!(
        describe_end(&o),
        "powered off (vng's exit status Some(255))"
    );
    o.way = Way::Ssh;
    o.end = BootEnd::Exited { status: Some(0) };
    assert_eq!(describe_end(&o), "the agent finished");
    o.end = BootEnd::ScenarioTimedOut {
        scenario: "b".into(),
        after: Duration::from_secs(5),
    };
    assert_eq!(
        describe_end(&o),
        "scenario b still running after 5 s; the agent on the target killed"
    );
    o.end = BootEnd::Lost { why: "EOF".into() };
    assert_eq!(
        describe_end(&o),
        "the connection to the target was lost: EOF"
    );
    o.way = Way::Qemu;
    o.end = BootEnd::Lost {
        why: "share mods: virtiofsd exited".into(),
    };
    assert_eq!(
        describe_end(&o),
        "share mods: virtiofsd exited; QEMU killed"
    );
}
