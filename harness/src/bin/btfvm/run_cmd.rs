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
use btfvm::run::settings::{RunConfig, RunSettings};
use btfvm::run::suite::{Grouping, Suite};
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
    if let Some(path) = &opts.junit {
        btfvm::report::check_target(path).map_err(Classified::input)?;
    }
    let (scenarios, mut kernels) = load_inputs(&opts)?;
    if let Some(p) = opts.partition {
        kernels = p.select(kernels, |k| k.spec.name.as_str());
    }
    let suite = run_suite(
        scenarios,
        kernels,
        opts.run_config(),
        SuiteMode::of(&opts),
        &args,
    )?;
    write_outputs(&opts, &Report::of(&suite));
    Ok(conclude(&suite, opts.mode()))
}

/// The report, the JUnit file and GitHub's step summary, as asked.
pub fn write_outputs(opts: &RunOptions, report: &Report) {
    if let Some(path) = &opts.report {
        save_report(report, path);
    }
    if let Some(path) = &opts.junit {
        match btfvm::report::junit::to_xml(report) {
            Ok(xml) => save(path, xml.as_bytes(), "JUnit report"),
            Err(e) => crate::say!("btfvm: warning: cannot make the JUnit report: {e}"),
        }
    }
    // GitHub Actions shows this file on the run's page.
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let md = btfvm::report::summary::markdown(report);
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, md.as_bytes()));
        if let Err(e) = appended {
            crate::say!(
                "btfvm: warning: cannot write the step summary {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// The scenarios and the kernels. A mistake in any file of the two
/// folders is the input's (exit 2), like the same mistake on the command
/// line, and is found before anything is fetched or booted.
fn load_inputs(opts: &RunOptions) -> Result<(Vec<Scenario>, Vec<SelectedKernel>), Classified> {
    let scenarios = scenario::load_dir(&opts.scenarios_dir().path).map_err(Classified::input)?;
    let specs = kernelspec::load_dir(&opts.kernels_dir().path).map_err(Classified::input)?;
    let kernels = select(&opts.kernel_request(), &specs).map_err(Classified::input)?;
    btfvm::inputs::share::check_tags(&opts.target.shares).map_err(Classified::input)?;
    if opts.target.runner == crate::options::Runner::Vng && !opts.target.shares.is_empty() {
        return Err(Classified::input(anyhow::anyhow!(
            "--share is for btfvm's own boot (virtiofs on its QEMU line); under --runner vng, vng shares the host's root with the guest itself"
        )));
    }
    Ok((scenarios, kernels))
}

/// How a suite is run: what `run_suite` needs beyond the VM settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct SuiteMode {
    /// One trial per kernel (`--per-kernel`).
    pub per_kernel: bool,
    /// Selecting nothing is an error even with a filter.
    pub bisect: bool,
    /// A shard may hold no kernel.
    pub partitioned: bool,
}

impl SuiteMode {
    pub fn of(opts: &RunOptions) -> SuiteMode {
        SuiteMode {
            per_kernel: opts.per_kernel,
            bisect: opts.bisect,
            partitioned: opts.partition.is_some(),
        }
    }
}

/// A filter may select nothing; a run without one that selects nothing
/// would pass having tested nothing. Under `git bisect run` neither may:
/// a mistyped filter would mark every commit good.
fn check_selection(
    suite: &Suite,
    args: &Arguments,
    scenarios: usize,
    mode: SuiteMode,
) -> Result<(), Classified> {
    if suite.selected() > 0 || args.list {
        return Ok(());
    }
    if mode.bisect {
        return Err(Classified::input(anyhow::anyhow!(
            "nothing to run: the filter selects none of the trials, and in bisect mode \
             that would call the commit good; `btfvm run --list` shows their names"
        )));
    }
    let filtered =
        args.filter.is_some() || !args.skip.is_empty() || args.ignored || mode.partitioned;
    if !filtered {
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
    cfg: RunConfig,
    mode: SuiteMode,
    args: &Arguments,
) -> Result<Arc<Suite>, Classified> {
    let renderer = Renderer::default();
    let events: Arc<EventSink> = Arc::new(move |e| renderer.event(e));
    let count = scenarios.len();
    let grouping = if mode.per_kernel {
        Grouping::PerKernel
    } else {
        Grouping::PerScenario
    };
    let suite = Suite::new(
        scenarios,
        kernels,
        args,
        grouping,
        Box::new(move || RunSettings::prepare(&cfg)),
        events,
    );
    check_selection(&suite, args, count, mode)?;
    interrupt::install();
    let _ = libtest_mimic::run(args, suite.trials());
    Ok(suite)
}

/// A report that cannot be written must not hide the trials' verdict
/// behind another status: it is a warning.
pub fn save_report(report: &Report, path: &Path) {
    save(path, &report.to_json(), "report");
}

fn save(path: &Path, bytes: &[u8], what: &str) {
    match write_report(path, bytes) {
        Ok(()) if path != Path::new("-") => {
            crate::say!("btfvm: {what} written to {}", path.display())
        }
        Ok(()) => {}
        Err(e) => crate::say!("btfvm: warning: {e}"),
    }
}

pub fn conclude(suite: &Suite, mode: exit::Mode) -> ExitCode {
    let sig = interrupt::requested();
    if let Some(sig) = sig {
        crate::say!("btfvm: interrupted by {}", interrupt::signal_name(sig));
    }
    let trials = suite.trial_records();
    ExitCode::from(exit::for_run(mode, trials.iter().map(|t| &t.outcome), sig))
}

#[cfg(test)]
#[path = "run_cmd_tests.rs"]
mod tests;
