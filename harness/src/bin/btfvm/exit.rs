//! The one place where what happened becomes an exit status.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | every selected trial passed (ignored ones allowed) |
//! | 1 | a trial failed; or the kernel could not be had for a reason of its own (its build failed, its packages are broken) |
//! | 2 | bad usage or input: an option, a YAML file, a kernel word, a package that does not exist |
//! | 3 | the environment: QEMU missing, apt or the mirror unreachable, the cache unwritable, the disk full |
//! | 128+N | interrupted by signal N (130 for Ctrl-C, 143 for SIGTERM) |
//!
//! When several apply, the highest row wins (an environment failure in one
//! trial hides no verdict: it says the run itself was not sound).
//!
//! In bisect mode (`btfvm run --bisect`, every step of `btfvm bisect`) the
//! table is the one `git bisect run` understands, so a broken build is
//! never counted as a bad commit and a broken host stops the bisection:
//!
//! | status | meaning for git bisect |
//! |---|---|
//! | 0 | good: every selected trial passed |
//! | 1 | bad: a selected trial failed on a kernel that booted, passed only on a retry (flaky), or was ignored (the kernel lost what the scenario requires) |
//! | 125 | skip: the commit cannot be tested, its kernel build failed for a reason in the tree or the kernel never reached the agent (`--boot-failure bad` makes this 1) |
//! | 128 | abort: bad usage or input |
//! | 200 | abort: the environment |
//! | 128+N | abort: interrupted by signal N |

use std::process::ExitCode;

use btfvm::bisect::Verdict;
use btfvm::run::outcome::{FailureKind, TrialOutcome};
use btfvm::support::ErrorClass;

pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const ENVIRONMENT: u8 = 3;
pub const SKIP: u8 = 125;
pub const BISECT_USAGE: u8 = 128;
pub const BISECT_ENVIRONMENT: u8 = 200;

/// Which table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// `--boot-failure bad` counts an untestable commit as bad.
    Bisect { boot_failure_bad: bool },
}

/// An error on its way to the user, with what it says about the run.
pub struct Classified {
    pub class: ErrorClass,
    pub error: anyhow::Error,
}

impl Classified {
    pub fn new(class: ErrorClass, error: impl Into<anyhow::Error>) -> Classified {
        Classified {
            class,
            error: error.into(),
        }
    }

    pub fn input(error: impl Into<anyhow::Error>) -> Classified {
        Classified::new(ErrorClass::Input, error)
    }

    pub fn env(error: impl Into<anyhow::Error>) -> Classified {
        Classified::new(ErrorClass::Environment, error)
    }
}

pub type CmdResult = Result<ExitCode, Classified>;

pub fn for_class(mode: Mode, class: ErrorClass) -> u8 {
    match (mode, class) {
        (_, ErrorClass::Interrupted(sig)) => for_signal(sig),
        (Mode::Normal, ErrorClass::Kernel) => FAILED,
        (Mode::Normal, ErrorClass::Input) => USAGE,
        (Mode::Normal, ErrorClass::Environment) => ENVIRONMENT,
        (Mode::Bisect { boot_failure_bad }, ErrorClass::Kernel) => {
            if boot_failure_bad {
                FAILED
            } else {
                SKIP
            }
        }
        (Mode::Bisect { .. }, ErrorClass::Input) => BISECT_USAGE,
        (Mode::Bisect { .. }, ErrorClass::Environment) => BISECT_ENVIRONMENT,
    }
}

/// The signal that decides an error's status: the error's own (a wait
/// that gave way to it), or one that came while the error was on its way
/// (a make that failed because its group was signalled): the highest row.
pub fn interrupting(class: ErrorClass, requested: Option<i32>) -> Option<i32> {
    match class {
        ErrorClass::Interrupted(sig) => Some(sig),
        _ => requested,
    }
}

/// Death by a signal, as a shell reports it.
pub fn for_signal(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

/// How strongly a failure speaks in the normal table: the highest status.
fn normal_status(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Environment => ENVIRONMENT,
        FailureKind::Input => USAGE,
        _ => FAILED,
    }
}

/// What a bisect makes of one trial, and how strongly it speaks: a broken
/// host or input stops the bisection; a failure on a kernel that booted is
/// a verdict, which outweighs "could not test this one" from another trial.
fn bisect_call(
    boot_failure_bad: bool,
    o: &TrialOutcome,
) -> Option<(u8, Result<Verdict, ErrorClass>)> {
    match o {
        TrialOutcome::Passed => None,
        TrialOutcome::Failed { kind, .. } => Some(match kind {
            FailureKind::Environment | FailureKind::NotRun => (4, Err(ErrorClass::Environment)),
            FailureKind::Input => (3, Err(ErrorClass::Input)),
            FailureKind::Check | FailureKind::Prepare => (2, Ok(Verdict::Bad)),
            FailureKind::NoAgent | FailureKind::Kernel if boot_failure_bad => (2, Ok(Verdict::Bad)),
            FailureKind::NoAgent | FailureKind::Kernel => (1, Ok(Verdict::Skip)),
        }),
        // A pass on retry is a failure to a bisect: retries never turn
        // bad into good (that is what --tries is for).
        TrialOutcome::Flaky { .. } => Some((2, Ok(Verdict::Bad))),
        // The commit lost what the scenario requires (Kconfig dropped the
        // option, say): that is a change of behaviour, never a pass.
        TrialOutcome::Ignored { .. } => Some((2, Ok(Verdict::Bad))),
    }
}

/// A run's verdict for a bisect and the index of the trial that decided
/// it (None: every trial passed); or the class of an error that must stop
/// the bisection. `for_run`'s bisect table is this.
pub fn bisect_verdict<'a>(
    boot_failure_bad: bool,
    outcomes: impl IntoIterator<Item = &'a TrialOutcome>,
) -> Result<(Verdict, Option<usize>), (ErrorClass, usize)> {
    let decided = outcomes
        .into_iter()
        .enumerate()
        .filter_map(|(i, o)| bisect_call(boot_failure_bad, o).map(|(rank, c)| (rank, i, c)))
        // The first trial of the highest rank.
        .min_by_key(|(rank, i, _)| (std::cmp::Reverse(*rank), *i));
    match decided {
        None => Ok((Verdict::Good, None)),
        Some((_, i, Ok(v))) => Ok((v, Some(i))),
        Some((_, i, Err(class))) => Err((class, i)),
    }
}

/// The status of a run from its trials' outcomes.
pub fn for_run<'a>(
    mode: Mode,
    outcomes: impl IntoIterator<Item = &'a TrialOutcome>,
    interrupted: Option<i32>,
) -> u8 {
    if let Some(sig) = interrupted {
        return for_signal(sig);
    }
    match mode {
        Mode::Normal => outcomes
            .into_iter()
            .filter_map(|o| match o {
                TrialOutcome::Failed { kind, .. } => Some(normal_status(*kind)),
                _ => None,
            })
            .max()
            .unwrap_or(0),
        Mode::Bisect { boot_failure_bad } => match bisect_verdict(boot_failure_bad, outcomes) {
            Ok((Verdict::Good, _)) => 0,
            Ok((Verdict::Bad, _)) => FAILED,
            Ok((Verdict::Skip, _)) => SKIP,
            Err((class, _)) => for_class(mode, class),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: FailureKind) -> TrialOutcome {
        TrialOutcome::failed(kind, "x")
    }

    #[test]
    fn the_table() {
        let ignored = TrialOutcome::Ignored {
            reason: "absent".into(),
        };
        let n = Mode::Normal;
        assert_eq!(for_run(n, [&TrialOutcome::Passed, &ignored], None), 0);
        assert_eq!(for_run(n, [], None), 0);
        assert_eq!(
            for_run(
                n,
                [&TrialOutcome::Passed, &failed(FailureKind::Check)],
                None
            ),
            1
        );
        assert_eq!(for_run(n, [&failed(FailureKind::NoAgent)], None), 1);
        assert_eq!(for_run(n, [&failed(FailureKind::Kernel)], None), 1);
        assert_eq!(for_run(n, [&failed(FailureKind::Input)], None), 2);
        // One broken host in the run outweighs any verdict.
        assert_eq!(
            for_run(
                n,
                [
                    &failed(FailureKind::Check),
                    &failed(FailureKind::Environment)
                ],
                None
            ),
            3
        );
        assert_eq!(
            for_run(n, [&failed(FailureKind::Check)], Some(libc::SIGINT)),
            130
        );
        assert_eq!(for_run(n, [], Some(libc::SIGTERM)), 143);
        let flaky = TrialOutcome::Flaky {
            message: "x".into(),
            attempts: 2,
        };
        assert_eq!(for_run(n, [&flaky], None), 0);
        assert_eq!(for_class(n, ErrorClass::Input), 2);
        assert_eq!(for_class(n, ErrorClass::Environment), 3);
        assert_eq!(for_class(n, ErrorClass::Kernel), 1);
        assert_eq!(for_class(n, ErrorClass::Interrupted(libc::SIGINT)), 130);
        assert_eq!(for_class(n, ErrorClass::Interrupted(libc::SIGTERM)), 143);
        assert_eq!(
            interrupting(ErrorClass::Environment, Some(libc::SIGTERM)),
            Some(libc::SIGTERM)
        );
        assert_eq!(interrupting(ErrorClass::Environment, None), None);
        assert_eq!(
            interrupting(ErrorClass::Interrupted(libc::SIGINT), None),
            Some(libc::SIGINT)
        );
    }

    #[test]
    fn the_bisect_table() {
        let skip = Mode::Bisect {
            boot_failure_bad: false,
        };
        let bad = Mode::Bisect {
            boot_failure_bad: true,
        };
        let check = failed(FailureKind::Check);
        let build = failed(FailureKind::Kernel);
        let no_agent = failed(FailureKind::NoAgent);
        assert_eq!(for_run(skip, [&TrialOutcome::Passed], None), 0);
        assert_eq!(for_run(skip, [&check], None), 1);
        assert_eq!(for_run(skip, [&build], None), 125);
        assert_eq!(for_run(skip, [&no_agent], None), 125);
        assert_eq!(for_run(bad, [&build], None), 1);
        assert_eq!(for_run(bad, [&no_agent], None), 1);
        // A failure on a kernel that booted is a verdict.
        assert_eq!(for_run(skip, [&no_agent, &check], None), 1);
        assert_eq!(for_run(skip, [&failed(FailureKind::Input)], None), 128);
        assert_eq!(
            for_run(skip, [&check, &failed(FailureKind::Environment)], None),
            200
        );
        let flaky = TrialOutcome::Flaky {
            message: "x".into(),
            attempts: 2,
        };
        assert_eq!(for_run(skip, [&flaky], None), 1);
        let ignored = TrialOutcome::Ignored {
            reason: "requires CONFIG_DEBUG_INFO_BTF_MODULES=y".into(),
        };
        assert_eq!(for_run(skip, [&TrialOutcome::Passed, &ignored], None), 1);
        assert_eq!(for_run(skip, [&check], Some(libc::SIGINT)), 130);
        // The deciding trial is the first of the strongest.
        assert_eq!(
            bisect_verdict(false, [&build, &check, &flaky]),
            Ok((Verdict::Bad, Some(1)))
        );
        assert_eq!(
            bisect_verdict(false, [&TrialOutcome::Passed]),
            Ok((Verdict::Good, None))
        );
        assert_eq!(
            bisect_verdict(false, [&check, &failed(FailureKind::Input)]),
            Err((ErrorClass::Input, 1))
        );
        assert_eq!(for_class(skip, ErrorClass::Kernel), 125);
        assert_eq!(for_class(bad, ErrorClass::Kernel), 1);
        assert_eq!(for_class(skip, ErrorClass::Input), 128);
        assert_eq!(for_class(skip, ErrorClass::Environment), 200);
        // Every abort is one git bisect run stops on, none a verdict.
        for s in [BISECT_USAGE, BISECT_ENVIRONMENT, 130, 143] {
            assert!(s >= 128, "{s}");
        }
    }
}
