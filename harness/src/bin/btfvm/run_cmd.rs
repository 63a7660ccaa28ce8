//! `btfvm run` (and the `cargo test` VM suite, which runs this binary):
//! load the inputs, select the kernels, run the trials, write the report,
//! and conclude.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use btfvm::inputs::scenario::Scenario;
use btfvm::inputs::{kernelspec, scenario};
use btfvm::report::{write_report, Report};
use btfvm::run::events::EventSink;
use btfvm::run::select::{select, SelectedKernel};
use btfvm::run::settings::RunSettings;
use btfvm::run::suite::Suite;
use btfvm::support::interrupt;
use libtest_mimic::Arguments;

use crate::exit::{self, Classified, CmdResult};
use crate::options::RunOptions;
use crate::render::Renderer;

pub fn run(opts: RunOptions, args: Arguments) -> CmdResult {
    if let Some(path) = &opts.report {
        btfvm::report::check_target(path).map_err(Classified::input)?;
    }
    crate::options::announce_dirs(&[
        ("scenarios", &opts.scenarios_dir()),
        ("kernel specs", &opts.kernels_dir()),
    ]);
    let (scenarios, kernels) = load_inputs(&opts)?;
    let suite = run_suite(scenarios, kernels, &opts, &args)?;
    if let Some(path) = &opts.report {
        save_report(&Report::of(&suite), path);
    }
    Ok(conclude(&suite))
}

/// The scenarios and the kernels. A mistake in any file of the two
/// folders is the input's (exit 2), like the same mistake on the command
/// line, and is found before anything is fetched or booted.
fn load_inputs(opts: &RunOptions) -> Result<(Vec<Scenario>, Vec<SelectedKernel>), Classified> {
    let scenarios = scenario::load_dir(&opts.scenarios_dir().path).map_err(Classified::input)?;
    let specs = kernelspec::load_dir(&opts.kernels_dir().path).map_err(Classified::input)?;
    let kernels = select(&opts.kernel_request(), &specs).map_err(Classified::input)?;
    Ok((scenarios, kernels))
}

/// A filter may select nothing; a run without one that selects nothing
/// would pass having tested nothing.
fn check_selection(suite: &Suite, args: &Arguments, scenarios: usize) -> Result<(), Classified> {
    let filtered = args.filter.is_some() || !args.skip.is_empty() || args.ignored;
    if suite.selected() == 0 && !filtered && !args.list {
        return Err(Classified::input(anyhow::anyhow!(
            "nothing to run: {scenarios} scenario(s) on the selected kernel(s) make no trial"
        )));
    }
    Ok(())
}

/// Runs the trials with progress on stderr; returns the suite to report on.
pub fn run_suite(
    scenarios: Vec<Scenario>,
    kernels: Vec<SelectedKernel>,
    opts: &RunOptions,
    args: &Arguments,
) -> Result<Arc<Suite>, Classified> {
    let renderer = Renderer::default();
    let events: Arc<EventSink> = Arc::new(move |e| renderer.event(e));
    let cfg = opts.run_config();
    let count = scenarios.len();
    let suite = Suite::new(
        scenarios,
        kernels,
        args,
        Box::new(move || RunSettings::prepare(&cfg)),
        events,
    );
    check_selection(&suite, args, count)?;
    interrupt::install();
    let _ = libtest_mimic::run(args, suite.trials());
    Ok(suite)
}

/// A report that cannot be written must not hide the trials' verdict
/// behind another status: it is a warning.
pub fn save_report(report: &Report, path: &Path) {
    match write_report(path, &report.to_json()) {
        Ok(()) if path != Path::new("-") => {
            crate::say!("btfvm: report written to {}", path.display())
        }
        Ok(()) => {}
        Err(e) => crate::say!("btfvm: warning: {e}"),
    }
}

pub fn conclude(suite: &Suite) -> ExitCode {
    let sig = interrupt::requested();
    if let Some(sig) = sig {
        crate::say!("btfvm: interrupted by {}", interrupt::signal_name(sig));
    }
    let trials = suite.trial_records();
    ExitCode::from(exit::for_run(trials.iter().map(|t| &t.outcome), sig))
}

#[cfg(test)]
#[path = "run_cmd_tests.rs"]
mod tests;
