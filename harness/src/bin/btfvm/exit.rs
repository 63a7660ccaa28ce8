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

use std::process::ExitCode;

use btfvm::run::outcome::{FailureKind, TrialOutcome};
use btfvm::support::ErrorClass;

pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const ENVIRONMENT: u8 = 3;

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

pub fn for_class(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Kernel => FAILED,
        ErrorClass::Input => USAGE,
        ErrorClass::Environment => ENVIRONMENT,
        ErrorClass::Interrupted(sig) => for_signal(sig),
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

fn for_failure(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Environment => ENVIRONMENT,
        FailureKind::Input => USAGE,
        FailureKind::Check
        | FailureKind::Prepare
        | FailureKind::NoAgent
        | FailureKind::Kernel
        | FailureKind::NotRun => FAILED,
    }
}

/// The status of a run from its trials' outcomes.
pub fn for_run<'a>(
    outcomes: impl IntoIterator<Item = &'a TrialOutcome>,
    interrupted: Option<i32>,
) -> u8 {
    if let Some(sig) = interrupted {
        return for_signal(sig);
    }
    outcomes
        .into_iter()
        .filter_map(|o| o.failure().map(|(k, _)| for_failure(k)))
        .max()
        .unwrap_or(0)
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
        assert_eq!(for_run([&TrialOutcome::Passed, &ignored], None), 0);
        assert_eq!(for_run([], None), 0);
        assert_eq!(
            for_run([&TrialOutcome::Passed, &failed(FailureKind::Check)], None),
            1
        );
        assert_eq!(for_run([&failed(FailureKind::NoAgent)], None), 1);
        assert_eq!(for_run([&failed(FailureKind::Kernel)], None), 1);
        assert_eq!(for_run([&failed(FailureKind::Input)], None), 2);
        // One broken host in the run outweighs any verdict.
        assert_eq!(
            for_run(
                [
                    &failed(FailureKind::Check),
                    &failed(FailureKind::Environment)
                ],
                None
            ),
            3
        );
        assert_eq!(
            for_run([&failed(FailureKind::Check)], Some(libc::SIGINT)),
            130
        );
        assert_eq!(for_run([], Some(libc::SIGTERM)), 143);
        assert_eq!(for_class(ErrorClass::Input), 2);
        assert_eq!(for_class(ErrorClass::Environment), 3);
        assert_eq!(for_class(ErrorClass::Kernel), 1);
        assert_eq!(for_class(ErrorClass::Interrupted(libc::SIGINT)), 130);
        assert_eq!(for_class(ErrorClass::Interrupted(libc::SIGTERM)), 143);
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
}
