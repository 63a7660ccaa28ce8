//! From how a boot went to one verdict per scenario. Nothing the agent did
//! not finish can pass, and a kernel splat fails the scenario it happened in
//! and every one after it: the kernel they ran on was no longer healthy.

use std::collections::BTreeMap;

use btfvm_proto::{Message, Outcome};

use crate::kernelrun::ScenarioResult;
use crate::kernelspec::AllowSplat;
use crate::vm::{BootEnd, BootOutcome, Splat};

pub fn failed(message: String) -> ScenarioResult {
    ScenarioResult {
        outcome: Outcome::Failed { message },
        duration_ms: 0,
        observations: None,
    }
}

pub fn describe_end(o: &BootOutcome) -> String {
    let panic = o
        .splats
        .iter()
        .find(|s| s.kind == crate::vm::SplatKind::Panic);
    match (&o.end, panic) {
        (BootEnd::Exited { .. }, Some(p)) if !o.finished() && p.line.contains("Attempted to kill init") => {
            format!("the guest agent (PID 1) exited or crashed, and the kernel panicked: {}", p.line)
        }
        (BootEnd::Exited { .. }, Some(p)) if !o.finished() => format!("kernel panic: {}", p.line),
        (BootEnd::Panicked, Some(p)) => {
            format!("kernel panic: {}; QEMU did not exit and was killed", p.line)
        }
        (BootEnd::Exited { status: Some(0) }, _) if o.finished() => "powered off".into(),
        (BootEnd::Exited { status: Some(0) }, _) => {
            "QEMU exited (status 0) before the agent finished, with no panic on the console".into()
        }
        (BootEnd::Exited { status: Some(c) }, _) => format!("QEMU exited with status {c}"),
        (BootEnd::Exited { status: None }, _) => "QEMU was killed by a signal".into(),
        (BootEnd::TimedOut { after }, _) => format!("boot timed out after {} s; QEMU killed", after.as_secs()),
        (BootEnd::NoHello { after }, _) => format!(
            "no hello from the agent within {} s (kernel never reached /init, or the agent died first); QEMU killed",
            after.as_secs()
        ),
        (BootEnd::ScenarioTimedOut { scenario, after }, _) => {
            format!("scenario {scenario} still running after {} s; QEMU killed", after.as_secs())
        }
        (BootEnd::Panicked, None) => "kernel panic; QEMU did not exit and was killed".into(),
        (BootEnd::Channel(e), _) => format!("{e}; QEMU killed"),
        (BootEnd::Interrupted { signal }, _) => {
            format!("interrupted by {}; QEMU killed", crate::interrupt::signal_name(*signal))
        }
    }
}

/// Marks the splats a kernel spec tolerates, with its reason.
pub fn apply_allowlist(splats: &mut [Splat], allow: &[AllowSplat]) {
    for s in splats {
        if let Some(a) = allow.iter().find(|a| s.line.contains(&a.matches)) {
            s.allowed = Some(a.reason.clone());
        }
    }
}

fn splat_text(s: &Splat, during: Option<&str>) -> String {
    let at = match during.or(s.scenario.as_deref()) {
        Some(n) => format!("during {n}"),
        None => "outside any scenario".into(),
    };
    let who = if s.line.contains("Attempted to kill init") {
        "the guest agent (PID 1) exited or crashed; "
    } else {
        ""
    };
    format!(
        "{who}{} {at}:\n  {}",
        s.kind.as_str(),
        s.excerpt.join("\n  ")
    )
}

/// One result per planned scenario.
pub fn map_results(planned: &[String], o: &BootOutcome) -> BTreeMap<String, ScenarioResult> {
    let mut out = BTreeMap::new();
    let mut started: Option<String> = None;
    let mut fatal: Option<String> = None;
    let mut hello = false;
    for m in &o.messages {
        match m {
            Message::Hello { .. } => hello = true,
            Message::ScenarioStarted { name } => started = Some(name.clone()),
            Message::ScenarioFinished {
                name,
                outcome,
                duration_ms,
                observations,
            } => {
                started = None;
                out.insert(
                    name.clone(),
                    ScenarioResult {
                        outcome: outcome.clone(),
                        duration_ms: *duration_ms,
                        observations: Some(observations.clone()),
                    },
                );
            }
            Message::Fatal { message } => fatal = Some(message.clone()),
            Message::Done { .. } => {}
        }
    }
    // The first splat that is not tolerated taints its scenario and all
    // later ones; one before any scenario taints them all.
    if let Some(s) = o.splats.iter().find(|s| s.allowed.is_none()) {
        // The console lags the channel (printk reaches the UART after the
        // agent has moved on), so the scenario whose own kernel log holds
        // the splat's first line is the exact answer; the console tag is
        // the fallback (a panic ends the boot before any log is sent).
        let in_kmsg = planned.iter().position(|p| {
            out.get(p)
                .and_then(|r| r.observations.as_ref())
                .is_some_and(|o| o.kmsg.iter().any(|l| l.trim_end() == s.line.trim_end()))
        });
        let from = match (in_kmsg, &s.scenario) {
            (Some(i), _) => i,
            (None, Some(n)) => planned.iter().position(|p| p == n).unwrap_or(0),
            // Scenarios run in plan order: between two of them, the first
            // not yet finished is the first one tainted.
            (None, None) => s.finished_before.min(planned.len()),
        };
        for name in &planned[from..] {
            let prev = out.remove(name);
            let observations = prev.as_ref().and_then(|r| r.observations.clone());
            let duration_ms = prev.as_ref().map(|r| r.duration_ms).unwrap_or(0);
            let earlier = match prev.map(|r| r.outcome) {
                Some(Outcome::Failed { message }) => {
                    format!("\n(and its own check failed: {message})")
                }
                _ => String::new(),
            };
            out.insert(
                name.clone(),
                ScenarioResult {
                    outcome: Outcome::Failed {
                        message: format!(
                            "{}{earlier}",
                            splat_text(s, in_kmsg.and_then(|i| planned.get(i)).map(String::as_str))
                        ),
                    },
                    duration_ms,
                    observations,
                },
            );
        }
    }
    let end = describe_end(o);
    let mut context = String::new();
    if !o.qemu_stderr.trim().is_empty() {
        context.push_str(&format!("\nQEMU said:\n{}", o.qemu_stderr.trim_end()));
    }
    context.push_str(&format!(
        "\nconsole ({}), last lines:\n{}",
        o.console_log.display(),
        o.console_tail
    ));
    for name in planned {
        if out.contains_key(name) {
            continue;
        }
        let why = if let Some(f) = &fatal {
            format!("the guest agent gave up: {f}")
        } else if !hello {
            format!("the guest agent never reported (no hello on the channel); boot ended: {end}")
        } else if started.as_deref() == Some(name.as_str()) {
            format!("boot ended while this scenario ran: {end}")
        } else {
            format!("boot ended before this scenario ran: {end}")
        };
        out.insert(name.clone(), failed(format!("{why}{context}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::SplatKind;
    use btfvm_proto::Observations;
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
        }
    }

    fn planned() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    #[test]
    fn a_splat_fails_its_scenario_and_the_later_ones() {
        let r = map_results(
            &planned(),
            &outcome(Some("b"), "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2"),
        );
        assert_eq!(r["a"].outcome, Outcome::Passed);
        for n in ["b", "c"] {
            match &r[n].outcome {
                Outcome::Failed { message } => {
                    assert!(message.contains("kernel WARNING during b"), "{message}");
                    assert!(message.contains("Call Trace:"), "{message}");
                }
                o => panic!("{n}: {o:?}"),
            }
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
        assert!(r.values().all(|v| v.outcome == Outcome::Passed));
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
        assert_eq!(r["a"].outcome, Outcome::Passed);
        for n in ["b", "c"] {
            match &r[n].outcome {
                Outcome::Failed { message } => {
                    assert!(message.contains("kernel WARNING during b"), "{message}")
                }
                other => panic!("{n}: {other:?}"),
            }
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
            .all(|v| matches!(v.outcome, Outcome::Failed { .. })));
    }
}
