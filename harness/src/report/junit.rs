//! The report as JUnit XML (`--junit FILE`) for CI dashboards: a testsuite
//! per kernel, a testcase per trial. The classname carries the kernel, its
//! release, the pahole that made its BTF and a hash of its .config, so a
//! dashboard never merges the rows of two different builds of one kernel.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::Report;
use crate::run::outcome::TrialOutcome;
use crate::run::record::{KernelRecord, TrialRecord};

/// Dashboards split a classname at its dots into package and class: the
/// parts of one identity must not be split further.
fn part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `btfvm.<kernel>.<release>_pahole-<version>_config-<sha>`.
pub fn classname(k: &KernelRecord) -> String {
    let release = k.release.as_deref().unwrap_or("unknown");
    let pahole = k.pahole_version.as_deref().unwrap_or("none");
    let config = k
        .config_sha256
        .as_deref()
        .map(|s| &s[..12.min(s.len())])
        .unwrap_or("unknown");
    format!(
        "btfvm.{}.{}_pahole-{}_config-{}",
        part(&k.name),
        part(release),
        part(pahole),
        part(config)
    )
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn case(t: &TrialRecord, classname: &str) -> TestCase {
    let status = match &t.outcome {
        TrialOutcome::Passed => TestCaseStatus::success(),
        TrialOutcome::Flaky { message, attempts } => {
            let mut rerun = TestRerun::new(NonSuccessKind::Failure);
            rerun
                .set_type("flaky")
                .set_message(first_line(message))
                .set_description(format!("passed on attempt {attempts}; before:\n{message}"));
            let mut s = TestCaseStatus::success();
            s.add_rerun(rerun);
            s
        }
        TrialOutcome::Ignored { reason } => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(reason.as_str());
            s
        }
        TrialOutcome::Failed { kind, message } => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(first_line(message))
                .set_type(format!("{kind:?}").to_lowercase())
                .set_description(message.as_str());
            s
        }
    };
    let mut c = TestCase::new(t.scenario.as_str(), status);
    c.set_classname(classname)
        .set_time(Duration::from_millis(t.duration_ms));
    // The scenario's own kernel log: what a failed check's reader wants next.
    if let Some(obs) = &t.observations {
        if !obs.kmsg.is_empty() && matches!(t.outcome, TrialOutcome::Failed { .. }) {
            c.set_system_out(obs.kmsg.join("\n"));
        }
    }
    c
}

fn suite(k: &KernelRecord, trials: &[&TrialRecord]) -> TestSuite {
    let mut s = TestSuite::new(k.name.as_str());
    let cls = classname(k);
    for (name, value) in [
        ("source", Some(k.source.clone())),
        ("origin", k.origin.clone()),
        ("release", k.release.clone()),
        ("version", k.version.clone()),
        ("pahole", k.pahole_version.clone()),
        ("config_sha256", k.config_sha256.clone()),
    ] {
        if let Some(v) = value {
            s.add_property(Property::new(name, v));
        }
    }
    for t in trials {
        s.add_test_case(case(t, &cls));
    }
    if let Some(b) = &k.boot {
        s.set_time(Duration::from_millis(b.wall_ms));
    }
    s
}

/// One testsuite per kernel of the report, in order; trials of a kernel
/// that has no record (it never ran) get a bare one of their own.
pub fn junit(report: &Report) -> quick_junit::Report {
    let mut out = quick_junit::Report::new("btfvm");
    let mut names: Vec<&str> = report.kernels.iter().map(|k| k.name.as_str()).collect();
    for t in &report.trials {
        if !names.contains(&t.kernel.as_str()) {
            names.push(&t.kernel);
        }
    }
    for name in names {
        let trials: Vec<&TrialRecord> = report.trials.iter().filter(|t| t.kernel == name).collect();
        let bare;
        let k = match report.kernels.iter().find(|k| k.name == name) {
            Some(k) => k,
            None => {
                bare = KernelRecord::named(name);
                &bare
            }
        };
        out.add_test_suite(suite(k, &trials));
    }
    out
}

/// The XML of the report.
pub fn to_xml(report: &Report) -> Result<String, quick_junit::SerializeError> {
    xml_of(junit(report))
}

/// The XML of a JUnit report, ours or read back from a shard's file.
/// quick-junit writes `disabled=` on each testsuite (its count of skipped
/// cases); the JUnit schema (Jenkins' junit-10.xsd, which pytest validates
/// against too) allows only `skipped=` there, so it is renamed. Read back,
/// our own `skipped=` lands in the suite's extra attributes and
/// `disabled` reads 0: the count is taken from the cases again and the
/// extra dropped, or the suite would carry it twice.
pub fn xml_of(mut junit: quick_junit::Report) -> Result<String, quick_junit::SerializeError> {
    for s in &mut junit.test_suites {
        s.extra.shift_remove("skipped");
        s.disabled = s
            .test_cases
            .iter()
            .filter(|c| matches!(c.status, TestCaseStatus::Skipped { .. }))
            .count();
    }
    let xml = junit.to_string()?;
    Ok(xml
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("<testsuite ") {
                l.replacen(" disabled=\"", " skipped=\"", 1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
#[path = "junit_tests.rs"]
mod tests;
