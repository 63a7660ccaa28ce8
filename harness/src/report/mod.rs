//! The JSON report of a run (`--report FILE`), and the pahole matrix's
//! table. Schema in README.md; bump `SCHEMA` on any incompatible change.

pub mod matrix;
mod write;

use serde::Serialize;

use crate::run::outcome::TrialOutcome;
use crate::run::record::{KernelRecord, TrialRecord};
use crate::run::suite::Suite;
use crate::vm::AccelDecision;

pub use write::{write_report, ReportError};

/// 2: typed outcomes (`kind` of a failure), boot ends as objects, kept
/// boot folders.
pub const SCHEMA: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub btfvm: String,
    pub accel: Option<AccelDecision>,
    pub kernels: Vec<KernelRecord>,
    pub trials: Vec<TrialRecord>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

impl Summary {
    pub fn of(trials: &[TrialRecord]) -> Summary {
        let mut s = Summary::default();
        for t in trials {
            match t.outcome {
                TrialOutcome::Passed => s.passed += 1,
                TrialOutcome::Failed { .. } => s.failed += 1,
                TrialOutcome::Ignored { .. } => s.ignored += 1,
            }
        }
        s
    }
}

impl Report {
    pub fn of(suite: &Suite) -> Report {
        let trials = suite.trial_records();
        Report {
            schema: SCHEMA,
            btfvm: env!("CARGO_PKG_VERSION").into(),
            accel: suite.accel().cloned(),
            kernels: suite.kernel_records(),
            summary: Summary::of(&trials),
            trials,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}
