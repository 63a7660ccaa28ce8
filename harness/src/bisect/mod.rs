//! Finding where a verdict flips: between two commits of a kernel tree
//! (git bisect, in a worktree of btfvm's own), along an ordered list of
//! kernels or paholes, or between two .configs of one tree (the smallest
//! set of options that breaks it). This layer decides what to test next
//! and keeps the record; the binary builds, boots and judges each step
//! with the exit-status table of `btfvm run --bisect`, and prints.

pub mod commits;
pub mod configs;
pub mod git;
pub mod journal;
pub mod list;

use serde::{Deserialize, Serialize};

/// What one step counts as, in git bisect's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Good,
    Bad,
    /// It could not be tested: its kernel did not build or never reached
    /// the agent.
    Skip,
}

impl Verdict {
    /// The word `git bisect` takes.
    pub fn term(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skip",
        }
    }
}

/// Why a step was tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The end that must pass (a commit or a .config).
    Good,
    /// The end that must fail.
    Bad,
    /// The first item of a list (its verdict is the one that flips).
    First,
    /// The last item of a list (its verdict must differ from the first's).
    Last,
    /// A step between the ends.
    Step,
}

/// What testing one step found (every try).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tested {
    pub verdict: Verdict,
    /// Why, in one or a few lines: the failing trial's message, the build
    /// failure, or how many trials passed.
    pub reason: String,
    /// The trial that decided a bad verdict.
    pub trial: Option<String>,
    /// How long the kernel's build took (None: not built from source);
    /// for a cached build, how long it took when it was made.
    pub build_seconds: Option<f64>,
    pub build_cached: Option<bool>,
    /// The pahole the kernel was built with, when btfvm chose it.
    pub pahole: Option<String>,
    /// How many times the suite ran on it (`--tries`).
    pub tries: u32,
    /// The whole step, build and boots.
    pub seconds: f64,
}
