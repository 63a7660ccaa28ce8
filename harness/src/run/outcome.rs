//! How a trial ended, as a value that travels unchanged from the verdict to
//! the report, the matrix and the exit status.

use btfvm_proto::{Observations, Outcome};
use serde::{Deserialize, Serialize};

use crate::support::ErrorClass;

/// Why a trial failed. The exit status and a bisect step are decided from
/// this, never from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The kernel booted and misbehaved: a check failed, a splat tainted
    /// the scenario, or the boot ended during or before it after the agent
    /// had started.
    Check,
    /// The host could not prepare the scenario for this kernel (a module
    /// the scenario loads is missing or unreadable in its tree).
    Prepare,
    /// The kernel never reached the agent (no hello on the channel).
    NoAgent,
    /// The kernel could not be had: its build failed for a reason in its
    /// tree, its packages are broken.
    Kernel,
    /// What the user gave is wrong (see `ErrorClass::Input`).
    Input,
    /// The machine failed: QEMU, apt, the cache, the disk.
    Environment,
    /// Interrupted, or the run's time limit passed before this kernel.
    NotRun,
}

impl From<ErrorClass> for FailureKind {
    fn from(c: ErrorClass) -> FailureKind {
        match c {
            ErrorClass::Kernel => FailureKind::Kernel,
            ErrorClass::Input => FailureKind::Input,
            ErrorClass::Environment => FailureKind::Environment,
            ErrorClass::Interrupted(_) => FailureKind::NotRun,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TrialOutcome {
    Passed,
    /// Not run: the kernel lacks what the scenario requires.
    Ignored {
        reason: String,
    },
    Failed {
        kind: FailureKind,
        message: String,
    },
    /// Failed, then passed when its boot was retried (`--retries`): not a
    /// plain pass, so dashboards and bisects can tell.
    Flaky {
        message: String,
        attempts: u32,
    },
}

impl TrialOutcome {
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> TrialOutcome {
        TrialOutcome::Failed {
            kind,
            message: message.into(),
        }
    }

    /// The agent's verdict of a scenario that ran to its end.
    pub fn from_agent(o: &Outcome) -> TrialOutcome {
        match o {
            Outcome::Passed => TrialOutcome::Passed,
            Outcome::Ignored { reason } => TrialOutcome::Ignored {
                reason: reason.clone(),
            },
            Outcome::Failed { message } => TrialOutcome::failed(FailureKind::Check, message),
        }
    }

    pub fn failure(&self) -> Option<(FailureKind, &str)> {
        match self {
            TrialOutcome::Failed { kind, message } => Some((*kind, message)),
            _ => None,
        }
    }
}

/// Per-scenario result of a kernel's boot.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub outcome: TrialOutcome,
    pub duration_ms: u64,
    pub observations: Option<Observations>,
}

impl ScenarioResult {
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> ScenarioResult {
        ScenarioResult {
            outcome: TrialOutcome::failed(kind, message),
            duration_ms: 0,
            observations: None,
        }
    }

    pub fn ignored(reason: impl Into<String>) -> ScenarioResult {
        ScenarioResult {
            outcome: TrialOutcome::Ignored {
                reason: reason.into(),
            },
            duration_ms: 0,
            observations: None,
        }
    }
}
