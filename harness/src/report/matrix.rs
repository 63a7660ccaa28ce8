//! The pahole matrix's table: every kernel built from source with every
//! pahole, whether it built (or why not), whether the option survived,
//! and how the suite went on it. A pairing that cannot work (Kconfig drops
//! the option, pahole cannot read the DWARF) is a row with its cause, and
//! where a known fragment avoids the cause, that variant gets a row too.
//! (`btfvm matrix` in the binary runs the builds and the suite.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::inputs::kernelspec::KernelSpec;
use crate::inputs::source::KernelSource;
use crate::kbuild::{config, BuildError, BuildSpec, Built, PaholeChoice, Stage};
use crate::run::outcome::TrialOutcome;
use crate::run::record::TrialRecord;

/// The paholes of the table in the README: none (Kconfig's answer to a host
/// without dwarves), then Debian's, oldest first.
pub const DEFAULT_PAHOLES: [&str; 5] = [
    "none",
    "debian:bullseye",
    "debian:bookworm",
    "debian:trixie",
    "debian:sid",
];

const OPTION: &str = "CONFIG_DEBUG_INFO_BTF_MODULES";

/// One row of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// The row's place in the whole (unsharded) table, from 1; a variant
    /// shares its build's.
    #[serde(default)]
    pub position: usize,
    pub pahole: String,
    pub pahole_version: Option<String>,
    pub kernel: String,
    /// The workaround fragment this row adds, if it is a variant.
    pub variant: Option<String>,
    /// Trial prefix in the report (`<kernel>@<pahole>`).
    pub name: String,
    pub spec: String,
    pub built: bool,
    pub cached: bool,
    pub build_seconds: Option<f64>,
    pub failed_stage: Option<Stage>,
    /// What the fragments asked for and what the final .config has.
    pub option_wanted: String,
    pub option_final: Option<String>,
    pub cause: Option<String>,
    pub evidence: Option<String>,
    pub log: Option<PathBuf>,
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
    pub failed_scenarios: Vec<String>,
    /// Built and every scenario passed or was ignored, or did not build
    /// for a cause btfvm recognised: the row is a finding, not a problem.
    pub as_expected: bool,
}

impl Cell {
    /// A row before its build: what the fragments ask for.
    pub fn new(
        pahole: &PaholeChoice,
        kspec: &KernelSpec,
        b: &BuildSpec,
        variant: Option<String>,
    ) -> Cell {
        let kernel = match &variant {
            Some(v) => format!("{} + {v}", kspec.name),
            None => kspec.name.clone(),
        };
        let name = format!(
            "{}{}@{}",
            kspec.name,
            variant
                .as_deref()
                .map(|v| format!("+{v}"))
                .unwrap_or_default(),
            pahole.label()
        );
        let option_wanted = config::load_fragments(b)
            .map(|f| config::merge(&f))
            .ok()
            .and_then(|w| w.get(OPTION).map(|(v, _)| v.clone()))
            .unwrap_or_else(|| "(default)".into());
        Cell {
            position: 0,
            pahole: pahole.to_string(),
            pahole_version: None,
            kernel,
            variant,
            name,
            spec: b.to_string(),
            built: false,
            cached: false,
            build_seconds: None,
            failed_stage: None,
            option_wanted,
            option_final: None,
            cause: None,
            evidence: None,
            log: None,
            passed: 0,
            failed: 0,
            ignored: 0,
            failed_scenarios: Vec::new(),
            as_expected: false,
        }
    }

    /// Takes the build's result. Returns the spec to run the suite on if
    /// it built, and the fragments known to be worth trying against its
    /// failure if it did not.
    pub fn record_build(
        &mut self,
        kspec: &KernelSpec,
        b: &BuildSpec,
        result: &Result<Built, BuildError>,
    ) -> (Option<KernelSpec>, Vec<String>) {
        match result {
            Ok(built) => {
                self.built = true;
                self.cached = built.cached;
                self.build_seconds = Some(built.meta.seconds.total);
                self.pahole_version = built.meta.pahole.version.clone();
                self.option_final = Some(built.meta.btf_modules.clone());
                self.log = Some(built.entry.join("build.log"));
                // Without a boot the row is as expected once it built.
                self.as_expected = true;
                let run = KernelSpec {
                    name: self.name.clone(),
                    about: format!("{} with pahole {}", kspec.about, self.pahole),
                    source: KernelSource::Build(b.clone()),
                    ..kspec.clone()
                };
                (Some(run), Vec::new())
            }
            Err(BuildError::Failed(f)) => (None, self.record_failure(f)),
            Err(e) => {
                self.cause = Some(format!("could not build: {e}"));
                (None, Vec::new())
            }
        }
    }

    fn record_failure(&mut self, f: &crate::kbuild::BuildFailure) -> Vec<String> {
        self.pahole_version = f.pahole.clone();
        self.failed_stage = Some(f.stage);
        self.cached = f.cached;
        self.log = f.log.clone();
        // The check compares every wanted option, so one it does not list
        // as changed has the value asked for.
        self.option_final = Some(
            match f
                .dropped
                .iter()
                .find(|d| d.option == OPTION && d.got != d.wanted)
            {
                Some(d) => format!("{} (dropped)", d.got),
                None => self.option_wanted.clone(),
            },
        );
        self.cause = Some(match &f.finding {
            Some(fi) => fi.cause.clone(),
            None if !f.dropped.is_empty() => f
                .dropped
                .iter()
                .map(|d| format!("{}={}: {}", d.option, d.wanted, d.short))
                .collect::<Vec<_>>()
                .join("; "),
            None => f.message.lines().take(3).collect::<Vec<_>>().join(" "),
        });
        self.evidence = f.finding.as_ref().map(|x| x.evidence.clone());
        // Recognised: Kconfig dropped an option (named, with its cause) or
        // the log shows a known cause.
        self.as_expected = !f.dropped.is_empty() || f.finding.is_some();
        f.finding
            .as_ref()
            .map(|x| x.workarounds.clone())
            .unwrap_or_default()
    }

    /// Counts the suite's results for this row's kernel.
    pub fn count(&mut self, trials: &[TrialRecord]) {
        if !self.built {
            return;
        }
        for t in trials.iter().filter(|t| t.kernel == self.name) {
            match &t.outcome {
                TrialOutcome::Passed | TrialOutcome::Flaky { .. } => self.passed += 1,
                TrialOutcome::Failed { .. } => {
                    self.failed += 1;
                    self.failed_scenarios.push(t.scenario.clone());
                }
                TrialOutcome::Ignored { .. } => self.ignored += 1,
            }
        }
        self.as_expected = self.failed == 0 && self.passed > 0;
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The table as Markdown.
pub fn render(cells: &[Cell], ran: bool) -> String {
    let mut t = String::from(
        "| pahole | kernel | built | DEBUG_INFO_BTF_MODULES | scenarios | cause |\n|---|---|---|---|---|---|\n",
    );
    for c in cells {
        let pahole = match &c.pahole_version {
            Some(v) if c.pahole != "none" => {
                let v = v
                    .split_whitespace()
                    .find(|w| w.starts_with('v'))
                    .unwrap_or(v);
                format!("{v} ({})", c.pahole)
            }
            _ => c.pahole.clone(),
        };
        let built = match (c.built, c.failed_stage) {
            (true, _) => match c.build_seconds {
                Some(s) => format!("yes ({}:{:02})", s as u64 / 60, s as u64 % 60),
                None => "yes".into(),
            },
            (false, Some(stage)) => format!("no ({stage})"),
            (false, None) => "no".into(),
        };
        let option = match &c.option_final {
            Some(f) if *f == c.option_wanted => format!("{f} (as asked)"),
            Some(f) => format!("{f}, asked {}", c.option_wanted),
            None => format!("asked {}", c.option_wanted),
        };
        let scen = if !c.built {
            "-".to_string()
        } else if !ran {
            "not run".into()
        } else if c.failed > 0 {
            format!(
                "{} passed, **{} failed** ({}), {} ignored",
                c.passed,
                c.failed,
                c.failed_scenarios.join(", "),
                c.ignored
            )
        } else {
            format!("{} passed, {} ignored", c.passed, c.ignored)
        };
        let cause = match (&c.cause, &c.evidence) {
            (Some(cause), Some(ev)) => format!("{} (`{}`)", md(cause), md(ev)),
            (Some(cause), None) => md(cause),
            _ => String::new(),
        };
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            md(&pahole),
            md(&c.kernel),
            built,
            option,
            scen,
            cause
        ));
    }
    t
}
