//! `btfvm matrix`: every kernel built from source with every pahole, the
//! suite run on each build that worked, and a table pahole x kernel ->
//! built / option kept / scenarios. A pairing that cannot work (Kconfig
//! drops the option, pahole cannot read the DWARF) is a row with its cause,
//! and where a known fragment avoids the cause, that variant gets a row too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use serde::Serialize;

use super::meta::Stage;
use super::{BuildError, BuildOptions, BuildSpec, PaholeChoice};
use crate::cache::{write_atomic, Cache};
use crate::cli::{self, repo_dir, RunOptions, EXIT_FAILED};
use crate::kernelrun::RunEvent;
use crate::kernelspec::{self, KernelSource, KernelSpec};
use crate::scenario;
use crate::suite::Suite;

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

#[derive(Debug, Clone, clap::Args)]
pub struct MatrixArgs {
    /// pahole to build with; repeatable (default: none and Debian's
    /// bullseye, bookworm, trixie and sid).
    #[arg(long = "pahole", value_name = "PAHOLE")]
    pub paholes: Vec<String>,
    /// Where matrix.md, matrix.json and report.json go (default:
    /// <cache>/matrix).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Build only; do not boot anything.
    #[arg(long)]
    pub no_run: bool,
    /// Do not build a known workaround's variant after a failure.
    #[arg(long)]
    pub no_workarounds: bool,
    /// Build even what the cache has (results and failures).
    #[arg(long)]
    pub rebuild: bool,
    /// Kernels are `--kernel` spec names with a `build:` section (default:
    /// all of them); the other options are `btfvm run`'s.
    #[command(flatten)]
    pub run: RunOptions,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
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

pub fn matrix(args: MatrixArgs) -> Result<ExitCode> {
    if args.run.all_kernels {
        bail!("btfvm matrix takes its kernels from --kernel (default: every spec with a build: section)");
    }
    let kernels_dir = args
        .run
        .kernels_dir
        .clone()
        .unwrap_or_else(|| repo_dir("kernels"));
    let specs = kernelspec::load_dir(&kernels_dir)?;
    let kernels: Vec<(KernelSpec, BuildSpec)> = if args.run.kernels.is_empty() {
        specs
            .iter()
            .filter_map(|s| match &s.source {
                KernelSource::Build(b) => Some((s.clone(), b.clone())),
                _ => None,
            })
            .collect()
    } else {
        let mut v = Vec::new();
        for w in &args.run.kernels {
            let (_, b) = super::cmd::resolve_word(w, &kernels_dir, &specs)?;
            let spec = specs
                .iter()
                .find(|s| s.name == *w)
                .cloned()
                .unwrap_or_else(|| KernelSpec::adhoc(w.clone(), KernelSource::Build(b.clone())));
            v.push((spec, b));
        }
        v
    };
    if kernels.is_empty() {
        bail!(
            "no kernel spec in {} has a build: section",
            kernels_dir.display()
        );
    }
    let words: Vec<&str> = if args.paholes.is_empty() {
        DEFAULT_PAHOLES.to_vec()
    } else {
        args.paholes.iter().map(String::as_str).collect()
    };
    let paholes = words
        .iter()
        .map(|p| PaholeChoice::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let cache = Cache::from_env()?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None => cache.subdir("matrix")?,
    };
    std::fs::create_dir_all(&out)?;
    crate::interrupt::install();
    let opts = BuildOptions {
        mirror: args.run.debian_mirror.clone(),
        rebuild: args.rebuild,
        jobs: None,
    };

    let mut cells = Vec::new();
    let mut to_run: Vec<KernelSpec> = Vec::new();
    for pahole in &paholes {
        for (kspec, bspec) in &kernels {
            // The build as specified first, then (only for it) one variant
            // per fragment known to be worth trying against its failure.
            let mut pending =
                std::collections::VecDeque::from([(bspec.with_pahole(pahole.clone()), None)]);
            while let Some((b, variant)) = pending.pop_front() {
                if crate::interrupt::requested().is_some() {
                    break;
                }
                let (cell, run_spec, workarounds) =
                    build_cell(&cache, &opts, pahole, kspec, &b, variant.clone());
                if variant.is_none() && !args.no_workarounds {
                    for w in workarounds {
                        pending.push_back((b.with_fragment(&w), Some(w)));
                    }
                }
                if let Some(r) = run_spec {
                    to_run.push(r);
                }
                cells.push(cell);
            }
        }
    }

    if !args.no_run && !to_run.is_empty() && crate::interrupt::requested().is_none() {
        let scen_dir = args
            .run
            .scenarios
            .clone()
            .unwrap_or_else(|| repo_dir("scenarios"));
        let scenarios = scenario::load_dir(&scen_dir)?;
        let events: Arc<dyn Fn(&RunEvent) + Send + Sync> = Arc::new(cli::print_event);
        let test_args = libtest_mimic::Arguments::default();
        let suite = Suite::new(
            scenarios,
            to_run,
            &test_args,
            Box::new(cli::settings_maker(args.run.clone(), events.clone())),
            events,
        );
        // Failures are counted per row below, from the report.
        let _ = libtest_mimic::run(&test_args, suite.trials());
        let report = suite.report();
        let path = args
            .run
            .report
            .clone()
            .unwrap_or_else(|| out.join("report.json"));
        match report.write(&path) {
            Ok(()) => eprintln!("btfvm: report written to {}", path.display()),
            Err(e) => eprintln!(
                "btfvm: warning: cannot write report {}: {e}",
                path.display()
            ),
        }
        for c in cells.iter_mut().filter(|c| c.built) {
            for t in report.trials.iter().filter(|t| t.kernel == c.name) {
                match t.outcome.as_str() {
                    "passed" => c.passed += 1,
                    "failed" => {
                        c.failed += 1;
                        c.failed_scenarios.push(t.scenario.clone());
                    }
                    _ => c.ignored += 1,
                }
            }
            c.as_expected = c.failed == 0 && c.passed > 0;
        }
    }

    let table = render(&cells, !args.no_run);
    println!("\n{table}");
    write_atomic(&out.join("matrix.md"), table.as_bytes())?;
    let json = serde_json::to_vec_pretty(&cells)?;
    write_atomic(&out.join("matrix.json"), &json)?;
    eprintln!(
        "btfvm: matrix written to {}",
        out.join("matrix.md").display()
    );
    if let Some(sig) = crate::interrupt::requested() {
        return Ok(ExitCode::from(crate::interrupt::exit_status(sig)));
    }
    Ok(if cells.iter().all(|c| c.as_expected) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// Builds one cell; returns it, the spec to run the suite on if it built,
/// and the fragments known to be worth trying against its failure.
fn build_cell(
    cache: &Cache,
    opts: &BuildOptions,
    pahole: &PaholeChoice,
    kspec: &KernelSpec,
    b: &BuildSpec,
    variant: Option<String>,
) -> (Cell, Option<KernelSpec>, Vec<String>) {
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
    let wanted = super::config::load_fragments(b)
        .map(|f| super::config::merge(&f))
        .ok()
        .and_then(|w| w.get(OPTION).map(|(v, _)| v.clone()))
        .unwrap_or_else(|| "(default)".into());
    let mut cell = Cell {
        pahole: pahole.to_string(),
        pahole_version: None,
        kernel,
        variant,
        name: name.clone(),
        spec: b.to_string(),
        built: false,
        cached: false,
        build_seconds: None,
        failed_stage: None,
        option_wanted: wanted,
        option_final: None,
        cause: None,
        evidence: None,
        log: None,
        passed: 0,
        failed: 0,
        ignored: 0,
        failed_scenarios: Vec::new(),
        as_expected: false,
    };
    eprintln!("btfvm: matrix: {name}: {b}");
    let mut printer = super::progress::Printer::new(&name);
    match super::build(b, cache, opts, &mut |e| printer.event(e)) {
        Ok(built) => {
            cell.built = true;
            cell.cached = built.cached;
            cell.build_seconds = Some(built.meta.seconds.total);
            cell.pahole_version = built.meta.pahole.version.clone();
            cell.option_final = Some(built.meta.btf_modules.clone());
            cell.log = Some(built.entry.join("build.log"));
            // Without a boot the row is as expected once it built.
            cell.as_expected = true;
            let run = KernelSpec {
                name,
                about: format!("{} with pahole {pahole}", kspec.about),
                source: KernelSource::Build(b.clone()),
                file: kspec.file.clone(),
                ..kspec.clone()
            };
            (cell, Some(run), Vec::new())
        }
        Err(BuildError::Failed(f)) => {
            cell.pahole_version = f.pahole.clone();
            cell.failed_stage = Some(f.stage);
            cell.cached = f.cached;
            cell.log = f.log.clone();
            // The check compares every wanted option, so one it does not
            // list as changed has the value asked for.
            cell.option_final = Some(
                match f
                    .dropped
                    .iter()
                    .find(|d| d.option == OPTION && d.got != d.wanted)
                {
                    Some(d) => format!("{} (dropped)", d.got),
                    None => cell.option_wanted.clone(),
                },
            );
            let workarounds = f
                .finding
                .as_ref()
                .map(|x| x.workarounds.clone())
                .unwrap_or_default();
            cell.cause = Some(match &f.finding {
                Some(fi) => fi.cause.clone(),
                None if !f.dropped.is_empty() => f
                    .dropped
                    .iter()
                    .map(|d| format!("{}={}: {}", d.option, d.wanted, d.short))
                    .collect::<Vec<_>>()
                    .join("; "),
                None => f.message.lines().take(3).collect::<Vec<_>>().join(" "),
            });
            cell.evidence = f.finding.as_ref().map(|x| x.evidence.clone());
            // Recognised: Kconfig dropped an option (named, with its cause)
            // or the log shows a known cause.
            cell.as_expected = !f.dropped.is_empty() || f.finding.is_some();
            (cell, None, workarounds)
        }
        Err(e) => {
            cell.cause = Some(format!("could not build: {e}"));
            (cell, None, Vec::new())
        }
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
