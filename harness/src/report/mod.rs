//! The JSON report of a run (`--report FILE`), and the pahole matrix's
//! table. Schema in README.md; bump `SCHEMA` on any incompatible change.

pub mod junit;
pub mod matrix;
pub mod merge;
pub mod summary;
mod write;

use serde::Serialize;

use crate::run::outcome::TrialOutcome;
use crate::run::record::{KernelRecord, TrialRecord};
use crate::run::suite::Suite;
use crate::vm::AccelDecision;

pub use write::{write_report, ReportError};

/// A report target that can never be written is bad usage, said before
/// anything runs rather than after a long run: a link (btfvm follows none
/// when writing), a directory, or a file in a folder that does not exist.
pub fn check_target(path: &std::path::Path) -> Result<(), ReportError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(ReportError::Link {
            path: path.to_path_buf(),
        }),
        Ok(m) if m.is_dir() => Err(ReportError::Directory {
            path: path.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(_) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(ReportError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("its folder {} does not exist", dir.display()),
                    ),
                }),
            }
        }
    }
}

/// 2: typed outcomes (`kind` of a failure), boot ends as objects, kept
/// boot folders.
pub const SCHEMA: u32 = 2;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub schema: u32,
    pub btfvm: String,
    pub accel: Option<AccelDecision>,
    pub kernels: Vec<KernelRecord>,
    pub trials: Vec<TrialRecord>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Summary {
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
    /// Passed only on a retry; not counted as passed.
    #[serde(default)]
    pub flaky: u32,
}

impl Summary {
    pub fn of(trials: &[TrialRecord]) -> Summary {
        let mut s = Summary::default();
        for t in trials {
            match t.outcome {
                TrialOutcome::Passed => s.passed += 1,
                TrialOutcome::Failed { .. } => s.failed += 1,
                TrialOutcome::Ignored { .. } => s.ignored += 1,
                TrialOutcome::Flaky { .. } => s.flaky += 1,
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
            accel: suite.accel(),
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
