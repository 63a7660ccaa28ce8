//! `btfvm matrix`: every kernel built from source with every pahole, the
//! suite run once on every build that worked, and the table written out.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use btfvm::inputs::kernelspec::{self, KernelSpec};
use btfvm::inputs::scenario;
use btfvm::inputs::source::KernelSource;
use btfvm::kbuild::{self, BuildOptions, BuildSpec, PaholeChoice};
use btfvm::report::matrix::{render, Cell, DEFAULT_PAHOLES};
use btfvm::report::{write_report, Report};
use btfvm::run::select::SelectedKernel;
use btfvm::support::cache::{write_atomic, Cache};
use btfvm::support::interrupt;

use crate::exit::{self, Classified, CmdResult};
use crate::options::RunOptions;
use crate::progress::Printer;

#[derive(Debug, Clone, clap::Args)]
pub struct MatrixArgs {
    /// pahole to build with; repeatable (default: none and Debian's
    /// bullseye, bookworm, trixie and sid).
    #[arg(long = "pahole", value_name = "PAHOLE")]
    pub paholes: Vec<String>,
    /// Where matrix.md, matrix.json and report.json go (default:
    /// <cache>/matrix). With --partition, the shard's part of the table;
    /// `btfvm report merge-matrix` joins the shards' folders.
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

/// The kernels of the matrix: the `--kernel`s given, or every spec with a
/// `build:` section.
fn kernels(
    args: &MatrixArgs,
    kernels_dir: &Path,
) -> Result<Vec<(KernelSpec, BuildSpec)>, Classified> {
    let specs = kernelspec::load_dir(kernels_dir).map_err(Classified::input)?;
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
            let (_, b) = crate::build_cmd::resolve_word(w, kernels_dir, &specs)?;
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
        return Err(Classified::input(anyhow!(
            "no kernel spec in {} has a build: section",
            kernels_dir.display()
        )));
    }
    Ok(kernels)
}

/// Builds every cell: the build as specified, then (for it alone) one
/// variant per fragment known to be worth trying against its failure.
/// Returns the cells and the kernels to run the suite on.
fn build_cells(
    args: &MatrixArgs,
    kernels: &[(KernelSpec, BuildSpec)],
    paholes: &[PaholeChoice],
    cache: &Cache,
) -> (Vec<Cell>, Vec<KernelSpec>) {
    let opts = BuildOptions {
        mirror: args.run.vm.debian_mirror.clone(),
        rebuild: args.rebuild,
        jobs: None,
    };
    let mut cells = Vec::new();
    let mut to_run = Vec::new();
    let mut position = 0;
    for pahole in paholes {
        for (kspec, bspec) in kernels {
            // The row's place in the whole table, so shards merge back
            // into the unsharded order.
            position += 1;
            let name = format!("{}@{}", kspec.name, pahole.label());
            if let Some(p) = args.run.partition {
                if !p.takes(position - 1, &name) {
                    continue;
                }
            }
            let mut pending = VecDeque::from([(bspec.with_pahole(pahole.clone()), None)]);
            while let Some((b, variant)) = pending.pop_front() {
                if interrupt::requested().is_some() {
                    return (cells, to_run);
                }
                let mut cell = Cell::new(pahole, kspec, &b, variant.clone());
                cell.position = position;
                crate::say!("btfvm: matrix: {}: {b}", cell.name);
                let mut printer = Printer::new(&cell.name);
                let result = kbuild::build(&b, cache, &opts, &mut |e| printer.event(e));
                drop(printer);
                let (run, workarounds) = cell.record_build(kspec, &b, &result);
                if variant.is_none() && !args.no_workarounds {
                    for w in workarounds {
                        pending.push_back((b.with_fragment(&w), Some(w)));
                    }
                }
                to_run.extend(run);
                cells.push(cell);
            }
        }
    }
    (cells, to_run)
}

pub fn matrix(args: MatrixArgs) -> CmdResult {
    if args.run.all_kernels {
        return Err(Classified::input(anyhow!(
            "btfvm matrix takes its kernels from --kernel (default: every spec with a build: section)"
        )));
    }
    if let Some(t) = &args.run.target.target {
        return Err(Classified::input(anyhow!(
            "--target {t}: a target runs the one kernel it booted; the matrix builds kernels and boots them itself"
        )));
    }
    let dirs = (args.run.scenarios_dir(), args.run.kernels_dir());
    crate::options::announce_dirs(&[("scenarios", &dirs.0), ("kernel specs", &dirs.1)]);
    let kernels = kernels(&args, &dirs.1.path)?;
    let words: Vec<&str> = if args.paholes.is_empty() {
        DEFAULT_PAHOLES.to_vec()
    } else {
        args.paholes.iter().map(String::as_str).collect()
    };
    let paholes = words
        .iter()
        .map(|p| PaholeChoice::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Classified::input(anyhow!(e)))?;
    let cache = Cache::from_env().map_err(Classified::env)?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None => cache.subdir("matrix").map_err(Classified::env)?,
    };
    std::fs::create_dir_all(&out).map_err(Classified::env)?;
    interrupt::install();
    let (mut cells, to_run) = build_cells(&args, &kernels, &paholes, &cache);
    if !args.no_run && !to_run.is_empty() && interrupt::requested().is_none() {
        run_cells(&args, &out, &mut cells, to_run)?;
    }
    let table = render(&cells, !args.no_run);
    println!("\n{table}");
    write_atomic(&out.join("matrix.md"), table.as_bytes()).map_err(Classified::env)?;
    let json = serde_json::to_vec_pretty(&cells).map_err(Classified::env)?;
    write_atomic(&out.join("matrix.json"), &json).map_err(Classified::env)?;
    crate::say!(
        "btfvm: matrix written to {}",
        out.join("matrix.md").display()
    );
    if let Some(sig) = interrupt::requested() {
        return Ok(ExitCode::from(exit::for_signal(sig)));
    }
    Ok(if cells.iter().all(|c| c.as_expected) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

/// The suite once over every build that worked; each row counts its own.
fn run_cells(
    args: &MatrixArgs,
    out: &Path,
    cells: &mut [Cell],
    to_run: Vec<KernelSpec>,
) -> Result<(), Classified> {
    let scenarios =
        scenario::load_dir(&args.run.scenarios_dir().path).map_err(Classified::input)?;
    let kernels = to_run
        .into_iter()
        .map(|spec| SelectedKernel {
            spec,
            resolved: None,
        })
        .collect();
    let test_args = libtest_mimic::Arguments::default();
    let suite = crate::run_cmd::run_suite(
        scenarios,
        kernels,
        args.run.run_config(),
        crate::run_cmd::SuiteMode::default(),
        &test_args,
    )?;
    let report = Report::of(&suite);
    let path = args
        .run
        .report
        .clone()
        .unwrap_or_else(|| out.join("report.json"));
    match write_report(&path, &report.to_json()) {
        Ok(()) => crate::say!("btfvm: report written to {}", path.display()),
        Err(e) => crate::say!("btfvm: warning: {e}"),
    }
    for c in cells.iter_mut() {
        c.count(&report.trials);
    }
    Ok(())
}
