//! From how a boot went to one verdict per scenario. Nothing the agent did
//! not finish can pass, and a kernel splat fails the scenario it happened in
//! and every one after it: the kernel they ran on was no longer healthy.

use std::collections::BTreeMap;

use btfvm_proto::Message;

use super::outcome::{FailureKind, ScenarioResult, TrialOutcome};
use crate::inputs::kernelspec::AllowSplat;
use crate::support::interrupt::signal_name;
use crate::vm::{BootEnd, BootOutcome, Splat, SplatKind, Way};

/// The end of a boot in words, with the panic line where there was one,
/// and what it says about memory when it says something.
pub fn describe_end(o: &BootOutcome) -> String {
    let text = end_text(o);
    let oom = o
        .splats
        .iter()
        .any(|s| s.line.contains("deadlocked on memory") || s.line.contains("Out of memory"));
    if oom {
        format!("{text} (the guest ran out of memory: give it more with --memory)")
    } else if !o.agent_reported() && o.console_tail.trim().is_empty() {
        format!("{text}; the console stayed empty: the kernel never started (an image QEMU cannot boot, or too little --memory for it and its initramfs)")
    } else {
        text
    }
}

fn end_text(o: &BootOutcome) -> String {
    let panic = o.splats.iter().find(|s| s.kind == SplatKind::Panic);
    let what = o.way.what();
    let killed = format!("{what} killed");
    match (&o.end, panic) {
        (BootEnd::Exited { .. }, Some(p)) if !o.finished() && p.line.contains("Attempted to kill init") => {
            format!("the guest agent (PID 1) exited or crashed, and the kernel panicked: {}", p.line)
        }
        (BootEnd::Exited { .. }, Some(p)) if !o.finished() => format!("kernel panic: {}", p.line),
        (BootEnd::Panicked, Some(p)) => {
            format!("kernel panic: {}; {what} did not exit and was killed", p.line)
        }
        // vng returns the script's status through virtio-serial; where that
        // is a module its initramfs lacks (Debian 6.1), it says 255 for
        // any run. The agent's Done is what counts.
        (BootEnd::Exited { status }, _) if o.finished() && o.way == Way::Vng => {
            format!("powered off (vng's exit status {status:?})")
        }
        (BootEnd::Exited { status: Some(0) }, _) if o.finished() => match o.way {
            Way::Qemu | Way::Vng => "powered off".into(),
            Way::Ssh => "the agent finished".into(),
        },
        (BootEnd::Exited { status: Some(0) }, _) => {
            format!("{what} exited (status 0) before the agent finished, with no panic on the console")
        }
        (BootEnd::Exited { status: Some(c) }, _) => format!("{what} exited with status {c}"),
        (BootEnd::Exited { status: None }, _) => format!("{what} was killed by a signal"),
        (BootEnd::TimedOut { after }, _) => format!("boot timed out after {} s; {killed}", after.as_secs()),
        (BootEnd::NoHello { after }, _) => format!(
            "no hello from the agent within {} s (kernel never reached /init, or the agent died first); {killed}",
            after.as_secs()
        ),
        (BootEnd::ScenarioTimedOut { scenario, after }, _) => {
            format!("scenario {scenario} still running after {} s; {killed}", after.as_secs())
        }
        (BootEnd::Panicked, None) => format!("kernel panic; {what} did not exit and was killed"),
        (BootEnd::Channel(e), _) => format!("{e}; {killed}"),
        (BootEnd::Interrupted { signal }, _) => {
            format!("interrupted by {}; {killed}", signal_name(*signal))
        }
        (BootEnd::Lost { why }, _) => match o.way {
            Way::Ssh => format!("the connection to the target was lost: {why}"),
            Way::Qemu | Way::Vng => format!("{why}; {killed}"),
        },
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

/// Words of the kernel's own reasons in its log: the BTF validator
/// ("BPF: [95069] Invalid kind:31"), module loading ("failed to validate
/// module [dummy] BTF: -22", "disagrees about version of symbol",
/// "version magic ... should be", "Unknown symbol") and splats.
const EXPLAINING: [&str; 14] = [
    "BPF:",
    "BTF",
    "fail",
    "rror",
    "disagrees",
    "Unknown symbol",
    "nvalid",
    "denied",
    "rejected",
    "version magic",
    "should be",
    "Oops",
    "WARNING",
    "BUG",
];
/// Lines quoted at most; the report keeps them all.
const EXPLAINING_MAX: usize = 12;

/// A failed check's message with the kernel log lines of its scenario that
/// explain it, so the kernel's own reason is in the failure, not only in
/// the report.
fn with_kernel_log(message: &str, kmsg: &[String]) -> String {
    let lines: Vec<&String> = kmsg
        .iter()
        .filter(|l| EXPLAINING.iter().any(|w| l.contains(w)))
        .collect();
    if lines.is_empty() {
        return message.to_string();
    }
    let from = lines.len().saturating_sub(EXPLAINING_MAX);
    let skipped = if from > 0 {
        format!(" ({from} earlier ones in the report)")
    } else {
        String::new()
    };
    let quoted: Vec<&str> = lines[from..].iter().map(|l| l.as_str()).collect();
    format!(
        "{message}\nkernel log of this scenario{skipped}:\n  {}",
        quoted.join("\n  ")
    )
}

/// What the agent's messages say: the scenarios it finished, the one it
/// was in, whether it spoke at all, and why it gave up if it did.
struct AgentReport {
    finished: BTreeMap<String, ScenarioResult>,
    running: Option<String>,
    hello: bool,
    fatal: Option<String>,
}

fn read_messages(messages: &[Message]) -> AgentReport {
    let mut r = AgentReport {
        finished: BTreeMap::new(),
        running: None,
        hello: false,
        fatal: None,
    };
    for m in messages {
        match m {
            Message::Hello { .. } => r.hello = true,
            Message::ScenarioStarted { name } => r.running = Some(name.clone()),
            Message::ScenarioFinished {
                name,
                outcome,
                duration_ms,
                observations,
            } => {
                r.running = None;
                let outcome = match TrialOutcome::from_agent(outcome) {
                    TrialOutcome::Failed { kind, message } => TrialOutcome::Failed {
                        kind,
                        message: with_kernel_log(&message, &observations.kmsg),
                    },
                    o => o,
                };
                r.finished.insert(
                    name.clone(),
                    ScenarioResult {
                        outcome,
                        duration_ms: *duration_ms,
                        observations: Some(observations.clone()),
                    },
                );
            }
            Message::Fatal { message } => r.fatal = Some(message.clone()),
            Message::Done { .. } => {}
        }
    }
    r
}

/// The first splat that is not tolerated taints its scenario and all later
/// ones; one before any scenario taints them all.
fn taint(planned: &[String], splats: &[Splat], out: &mut BTreeMap<String, ScenarioResult>) {
    let Some(s) = splats.iter().find(|s| s.allowed.is_none()) else {
        return;
    };
    // The console lags the channel (printk reaches the UART after the
    // agent has moved on), so the scenario whose own kernel log holds the
    // splat's first line is the exact answer; the console tag is the
    // fallback (a panic ends the boot before any log is sent).
    let in_kmsg = planned.iter().position(|p| {
        out.get(p)
            .and_then(|r| r.observations.as_ref())
            .is_some_and(|o| o.kmsg.iter().any(|l| l.trim_end() == s.line.trim_end()))
    });
    let from = match (in_kmsg, &s.scenario) {
        (Some(i), _) => i,
        (None, Some(n)) => planned.iter().position(|p| p == n).unwrap_or(0),
        // Scenarios run in plan order: between two of them, the first not
        // yet finished is the first one tainted.
        (None, None) => s.finished_before.min(planned.len()),
    };
    let text = splat_text(s, in_kmsg.and_then(|i| planned.get(i)).map(String::as_str));
    for name in &planned[from..] {
        let prev = out.remove(name);
        let earlier = match prev.as_ref().and_then(|r| r.outcome.failure()) {
            Some((_, message)) => format!("\n(and its own check failed: {message})"),
            None => String::new(),
        };
        out.insert(
            name.clone(),
            ScenarioResult {
                outcome: TrialOutcome::failed(FailureKind::Check, format!("{text}{earlier}")),
                duration_ms: prev.as_ref().map(|r| r.duration_ms).unwrap_or(0),
                observations: prev.and_then(|r| r.observations),
            },
        );
    }
}

/// Why a scenario the agent never finished failed, with the boot's end,
/// what QEMU said and the console's last lines.
fn unfinished(name: &str, report: &AgentReport, o: &BootOutcome) -> ScenarioResult {
    let end = describe_end(o);
    let mut context = String::new();
    if !o.qemu_stderr.trim().is_empty() {
        context.push_str(&format!(
            "\n{} said:\n{}",
            o.way.what(),
            o.qemu_stderr.trim_end()
        ));
    }
    context.push_str(&format!(
        "\nconsole ({}), last lines:\n{}",
        o.console_log.display(),
        o.console_tail
    ));
    let (kind, why) = if let Some(f) = &report.fatal {
        (FailureKind::Check, format!("the guest agent gave up: {f}"))
    } else if !report.hello {
        (
            FailureKind::NoAgent,
            format!("the guest agent never reported (no hello on the channel); boot ended: {end}"),
        )
    } else if report.running.as_deref() == Some(name) {
        (
            FailureKind::Check,
            format!("boot ended while this scenario ran: {end}"),
        )
    } else {
        (
            FailureKind::Check,
            format!("boot ended before this scenario ran: {end}"),
        )
    };
    let kind = match o.end {
        BootEnd::Interrupted { .. } => FailureKind::NotRun,
        _ => kind,
    };
    ScenarioResult::failed(kind, format!("{why}{context}"))
}

/// One result per planned scenario.
pub fn map_results(planned: &[String], o: &BootOutcome) -> BTreeMap<String, ScenarioResult> {
    let report = read_messages(&o.messages);
    let mut out = report.finished.clone();
    taint(planned, &o.splats, &mut out);
    for name in planned {
        if !out.contains_key(name) {
            out.insert(name.clone(), unfinished(name, &report, o));
        }
    }
    out
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
