//! One step of `btfvm bisect`: the kernel built (through the build cache
//! and ccache) or fetched, the selected scenarios run on it `--tries`
//! times, and the runs judged with the table of `btfvm run --bisect`
//! (`exit::bisect_verdict`), so a step means what `git bisect run btfvm
//! run --bisect` would make of it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use btfvm::bisect::{Tested, Verdict};
use btfvm::inputs::build_spec::BuildSpec;
use btfvm::inputs::scenario::Scenario;
use btfvm::inputs::source::KernelSource;
use btfvm::kbuild::{self, BuildOptions};
use btfvm::report::{write_report, Report};
use btfvm::run::outcome::TrialOutcome;
use btfvm::run::record::TrialRecord;
use btfvm::run::select::SelectedKernel;
use btfvm::run::settings::RunConfig;
use btfvm::support::cache::Cache;
use btfvm::support::{interrupt, ErrorClass};

use crate::exit::{self, Classified};
use crate::progress::Printer;
use crate::run_cmd::{run_suite, SuiteMode};

/// Lines of a failure message kept in a step's reason.
const REASON_LINES: usize = 8;

/// What every step of one bisection shares.
pub struct StepCtx<'a> {
    pub scenarios: &'a [Scenario],
    pub cfg: RunConfig,
    pub tries: u32,
    pub boot_failure_bad: bool,
    pub cache: &'a Cache,
    /// Each try's report goes here, as `<kernel>-try<N>.json`.
    pub reports: PathBuf,
}

fn short(message: &str) -> String {
    let lines: Vec<&str> = message.lines().collect();
    let mut s = lines[..lines.len().min(REASON_LINES)].join("\n");
    if lines.len() > REASON_LINES {
        s.push_str(&format!(
            "\n({} more lines in the step's report)",
            lines.len() - REASON_LINES
        ));
    }
    s
}

/// Why a trial decided a verdict, in words.
fn reason_of(t: &TrialRecord, attempt: u32, tries: u32) -> String {
    let at = if tries > 1 {
        format!(" (try {attempt} of {tries})")
    } else {
        String::new()
    };
    match &t.outcome {
        TrialOutcome::Failed { message, .. } => format!("{}{at}: {}", t.name, short(message)),
        TrialOutcome::Ignored { reason } => format!(
            "{}{at} was ignored, which a bisect counts as bad (the kernel lost what the \
             scenario requires): {reason}",
            t.name
        ),
        TrialOutcome::Flaky { message, attempts } => format!(
            "{}{at} passed only on attempt {attempts}: {}",
            t.name,
            short(message)
        ),
        TrialOutcome::Passed => format!("{}{at} passed", t.name),
    }
}

fn interrupted() -> Result<(), Classified> {
    match interrupt::requested() {
        Some(sig) => Err(Classified::new(
            ErrorClass::Interrupted(sig),
            anyhow!("interrupted by {}", interrupt::signal_name(sig)),
        )),
        None => Ok(()),
    }
}

/// While alive, what is written to stdout goes to stderr (libtest_mimic
/// prints its lines to stdout and takes no writer).
struct StdoutToStderr {
    saved: Option<std::os::fd::OwnedFd>,
}

impl StdoutToStderr {
    fn new() -> StdoutToStderr {
        use std::io::Write as _;
        use std::os::fd::FromRawFd as _;
        let _ = std::io::stdout().flush();
        // SAFETY: dup and dup2 on the process's own standard descriptors;
        // the duplicate is owned here and closed on drop.
        let saved = unsafe {
            let fd = libc::dup(libc::STDOUT_FILENO);
            if fd < 0 || libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
                if fd >= 0 {
                    libc::close(fd);
                }
                None
            } else {
                Some(std::os::fd::OwnedFd::from_raw_fd(fd))
            }
        };
        StdoutToStderr { saved }
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let _ = std::io::stdout().flush();
        if let Some(fd) = &self.saved {
            // SAFETY: puts the saved descriptor back as stdout.
            unsafe {
                libc::dup2(fd.as_raw_fd(), libc::STDOUT_FILENO);
            }
        }
    }
}

/// Builds (if it is built from source) and tests one kernel. An error is
/// what must stop the bisection: the machine, the input, a signal.
pub fn test_kernel(ctx: &StepCtx<'_>, kernel: SelectedKernel) -> Result<Tested, Classified> {
    let started = Instant::now();
    let mut tested = Tested {
        verdict: Verdict::Good,
        reason: String::new(),
        trial: None,
        build_seconds: None,
        build_cached: None,
        pahole: None,
        tries: 0,
        seconds: 0.0,
    };
    if let KernelSource::Build(b) = &kernel.spec.source {
        build_step(ctx, b, &kernel.spec.name, &mut tested)?;
    }
    if tested.verdict == Verdict::Good {
        try_step(ctx, &kernel, &mut tested)?;
    }
    tested.seconds = started.elapsed().as_secs_f64();
    Ok(tested)
}

/// Builds the step's kernel here rather than inside the run, for its time
/// and its typed failure; the run then finds it in the cache. A kernel
/// that does not build leaves the step skipped (or bad) with the reason.
fn build_step(
    ctx: &StepCtx<'_>,
    b: &BuildSpec,
    name: &str,
    tested: &mut Tested,
) -> Result<(), Classified> {
    let opts = BuildOptions {
        mirror: ctx.cfg.mirror.clone(),
        ..Default::default()
    };
    let mut printer = Printer::new(name);
    let built = kbuild::build(b, ctx.cache, &opts, &mut |e| printer.event(e));
    drop(printer);
    interrupted()?;
    match built {
        Ok(built) => {
            tested.build_seconds = Some(built.meta.seconds.total);
            tested.build_cached = Some(built.cached);
            Ok(())
        }
        Err(e) if e.class() == ErrorClass::Kernel => {
            tested.verdict = if ctx.boot_failure_bad {
                Verdict::Bad
            } else {
                Verdict::Skip
            };
            tested.reason = match &e {
                kbuild::BuildError::Failed(f) => format!(
                    "the kernel does not build ({} stage): {}{}",
                    f.stage,
                    f.headline(),
                    f.log
                        .as_ref()
                        .map(|l| format!("\nbuild log: {}", l.display()))
                        .unwrap_or_default()
                ),
                e => format!("the kernel does not build: {}", short(&e.to_string())),
            };
            Ok(())
        }
        Err(e) => Err(Classified::new(e.class(), e)),
    }
}

/// Runs the suite up to `--tries` times; the first failure decides.
fn try_step(
    ctx: &StepCtx<'_>,
    kernel: &SelectedKernel,
    tested: &mut Tested,
) -> Result<(), Classified> {
    let name = &kernel.spec.name;
    let mut passed = 0;
    for attempt in 1..=ctx.tries {
        tested.tries = attempt;
        // The answer alone goes to stdout; the run's libtest lines are
        // progress like the rest.
        let suite = {
            let _progress = StdoutToStderr::new();
            run_suite(
                ctx.scenarios.to_vec(),
                vec![kernel.clone()],
                ctx.cfg.clone(),
                SuiteMode {
                    bisect: true,
                    ..SuiteMode::default()
                },
                &libtest_mimic::Arguments::default(),
            )?
        };
        let report = Report::of(&suite);
        let path = ctx.reports.join(format!("{name}-try{attempt}.json"));
        if let Err(e) = write_report(&path, &report.to_json()) {
            crate::say!("btfvm: warning: {e}");
        }
        interrupted()?;
        let outcomes = report.trials.iter().map(|t| &t.outcome);
        match exit::bisect_verdict(ctx.boot_failure_bad, outcomes) {
            Ok((Verdict::Good, _)) => passed = report.trials.len(),
            Ok((verdict, i)) => {
                let t = i.and_then(|i| report.trials.get(i));
                tested.verdict = verdict;
                tested.trial = t.map(|t| t.name.clone());
                tested.reason = t
                    .map(|t| reason_of(t, attempt, ctx.tries))
                    .unwrap_or_default();
                return Ok(());
            }
            Err((class, i)) => {
                let why = report
                    .trials
                    .get(i)
                    .map(|t| reason_of(t, attempt, ctx.tries))
                    .unwrap_or_default();
                return Err(Classified::new(class, anyhow!("{why}")));
            }
        }
    }
    tested.reason = match ctx.tries {
        1 => format!("{passed} trial(s) passed"),
        n => format!("{passed} trial(s) passed on each of {n} tries"),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use btfvm::run::outcome::FailureKind;

    fn trial(outcome: TrialOutcome) -> TrialRecord {
        TrialRecord {
            name: "git-1a2b::module-btf".into(),
            kernel: "git-1a2b".into(),
            scenario: "module-btf".into(),
            outcome,
            duration_ms: 1,
            observations: None,
        }
    }

    #[test]
    fn reasons_name_the_trial_and_say_why() {
        let long: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let r = reason_of(&trial(TrialOutcome::failed(FailureKind::Check, long)), 2, 3);
        assert!(
            r.starts_with("git-1a2b::module-btf (try 2 of 3): line 0"),
            "{r}"
        );
        assert!(r.contains("(12 more lines in the step's report)"), "{r}");
        let r = reason_of(
            &trial(TrialOutcome::Ignored {
                reason: "requires CONFIG_X=y".into(),
            }),
            1,
            1,
        );
        assert!(
            r.contains("was ignored, which a bisect counts as bad"),
            "{r}"
        );
        assert!(r.ends_with("requires CONFIG_X=y"), "{r}");
    }
}
