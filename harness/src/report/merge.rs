//! Joining the reports of shards (`btfvm report merge`): the kernels and
//! trials of each, in the order given, the summary counted again. A trial
//! or kernel in two shards is an error: shards never share a boot, so two
//! records of one trial mean the inputs were not shards of one run.

use super::matrix::Cell;
use super::{Report, Summary, SCHEMA};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("report {index} has schema {schema}; this btfvm writes {SCHEMA}")]
    Schema { index: usize, schema: u32 },
    #[error("trial {name} is in two of the reports: they are not shards of one run")]
    TwoTrials { name: String },
    #[error("kernel {name} is in two of the reports: they are not shards of one run")]
    TwoKernels { name: String },
    #[error("JUnit test suite {name} is in two of the files: they are not shards of one run")]
    TwoSuites { name: String },
    #[error("matrix row {name} is in two of the shards: they are not shards of one matrix")]
    TwoCells { name: String },
}

pub fn merge(reports: Vec<Report>) -> Result<Report, MergeError> {
    let mut it = reports.into_iter().enumerate();
    let (_, mut out) = it.next().ok_or(MergeError::Empty)?;
    if out.schema != SCHEMA {
        return Err(MergeError::Schema {
            index: 1,
            schema: out.schema,
        });
    }
    for (i, r) in it {
        if r.schema != SCHEMA {
            return Err(MergeError::Schema {
                index: i + 1,
                schema: r.schema,
            });
        }
        for k in r.kernels {
            if out.kernels.iter().any(|o| o.name == k.name) {
                return Err(MergeError::TwoKernels { name: k.name });
            }
            out.kernels.push(k);
        }
        for t in r.trials {
            if out.trials.iter().any(|o| o.name == t.name) {
                return Err(MergeError::TwoTrials { name: t.name });
            }
            out.trials.push(t);
        }
        out.accel = out.accel.or(r.accel);
    }
    out.summary = Summary::of(&out.trials);
    Ok(out)
}

/// The matrix rows of shards, in the order of the unsharded table.
pub fn merge_cells(shards: Vec<Vec<Cell>>) -> Result<Vec<Cell>, MergeError> {
    let mut out: Vec<Cell> = Vec::new();
    for c in shards.into_iter().flatten() {
        if out.iter().any(|o| o.name == c.name) {
            return Err(MergeError::TwoCells { name: c.name });
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(MergeError::Empty);
    }
    // Stable: a build's variants stay right after it.
    out.sort_by_key(|c| c.position);
    Ok(out)
}

/// The JUnit files of shards, as one.
pub fn merge_junit(files: Vec<quick_junit::Report>) -> Result<quick_junit::Report, MergeError> {
    let mut out = quick_junit::Report::new("btfvm");
    let mut names: Vec<String> = Vec::new();
    for f in files {
        for s in f.test_suites {
            let name = s.name.as_str().to_string();
            if names.contains(&name) {
                return Err(MergeError::TwoSuites { name });
            }
            names.push(name);
            out.add_test_suite(s);
        }
    }
    Ok(out)
}
