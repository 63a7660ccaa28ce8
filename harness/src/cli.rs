//! What `btfvm run` and the `cargo test` VM suite share: options, the
//! progress printer, and the exit status (0 passed, 1 a trial failed, 2 bad
//! usage or input).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use btfvm_proto::Message;
use libtest_mimic::Arguments;

use crate::cache::Cache;
use crate::kernel::debian::FetchEvent;
use crate::kernelrun::{RunEvent, RunSettings, TimeoutSettings};
use crate::kernelspec::{self, KernelSource, KernelSpec};
use crate::scenario;
use crate::suite::Suite;
use crate::vm::{self, AccelChoice, VmEvent};

/// Progress on stderr that never panics: `eprintln!` would abort the run
/// when whoever reads stderr has gone away (EPIPE), killing QEMU mid-check.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Where the repo's scenarios and kernel specs are when none are given.
pub fn repo_dir(sub: &str) -> PathBuf {
    let cwd = PathBuf::from(sub);
    if cwd.is_dir() {
        return cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(sub)
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// Kernel to run on; repeatable. A spec name from kernels/ (bookworm),
    /// debian:<suite>[:<package>], or a path to a vmlinuz. Default: the spec
    /// marked `default: true`.
    #[arg(long = "kernel", value_name = "KERNEL")]
    pub kernels: Vec<String>,
    /// Run on every spec in kernels/.
    #[arg(long, conflicts_with = "kernels")]
    pub all_kernels: bool,
    /// lib/modules/<kver> tree for a vmlinuz given by path.
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Kernel .config for a vmlinuz given by path (default: config-<kver>
    /// next to it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Debian mirror URI (default: read from the host's apt sources).
    #[arg(long, env = "BTFVM_DEBIAN_MIRROR", value_name = "URI")]
    pub debian_mirror: Option<String>,
    /// Write a JSON report of every trial here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Accelerator: auto uses KVM only when a probe guest runs under it.
    #[arg(long, value_enum, default_value = "auto", env = "BTFVM_ACCEL")]
    pub accel: AccelChoice,
    /// Wall-clock limit per boot, in seconds (default 300 under TCG, 120 under KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_TIMEOUT")]
    pub timeout: Option<u64>,
    /// Limit from QEMU's start to the agent's hello (default 60 TCG, 20 KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_HELLO_TIMEOUT")]
    pub hello_timeout: Option<u64>,
    /// Limit per scenario (default 60 TCG, 30 KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_SCENARIO_TIMEOUT")]
    pub scenario_timeout: Option<u64>,
    /// Limit for the whole run, all kernels (default 3600 TCG, 1200 KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_RUN_TIMEOUT")]
    pub run_timeout: Option<u64>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub memory: u32,
    /// QEMU binary (default: qemu-system-x86_64 on PATH).
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// Directory of scenario YAML files.
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Directory of kernel spec YAML files.
    #[arg(long, value_name = "DIR")]
    pub kernels_dir: Option<PathBuf>,
    /// Where console logs are kept (default: <cache>/logs).
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
}

/// Resolves `--kernel` words to specs.
pub fn select_kernels(opts: &RunOptions, specs: &[KernelSpec]) -> Result<Vec<KernelSpec>> {
    if opts.all_kernels {
        return Ok(specs.to_vec());
    }
    if opts.kernels.is_empty() {
        return specs
            .iter()
            .find(|s| s.default)
            .cloned()
            .map(|s| vec![s])
            .context("no kernel spec has `default: true`; pass --kernel");
    }
    let mut out: Vec<KernelSpec> = Vec::new();
    for word in &opts.kernels {
        let spec = if let Some(s) = specs.iter().find(|s| &s.name == word) {
            s.clone()
        } else {
            let kernels_dir = opts
                .kernels_dir
                .clone()
                .unwrap_or_else(|| repo_dir("kernels"));
            let mut source =
                KernelSource::parse_in(word, &kernels_dir).map_err(anyhow::Error::msg)?;
            if let KernelSource::Local {
                vmlinuz,
                modules,
                config,
            } = &mut source
            {
                if !vmlinuz.exists() {
                    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                    bail!(
                        "--kernel {word}: not a kernel spec ({}), not debian:<suite>[:<package>] or build:<tree>, and no file by that name",
                        names.join(", ")
                    );
                }
                modules.clone_from(&opts.modules);
                config.clone_from(&opts.config);
                // A kernel on disk is checked now (bzImage header, config
                // and modules of the same kernel): bad input, status 2,
                // rather than eleven failed trials.
                crate::kernel::local::resolve(vmlinuz, modules.as_deref(), config.as_deref())
                    .with_context(|| format!("--kernel {word}"))?;
            }
            // A spec with the same source supplies the expectations and the
            // name a user would look for (debian:bookworm -> bookworm).
            match specs.iter().find(|s| s.source == source) {
                Some(s) => s.clone(),
                None => KernelSpec::adhoc(adhoc_name(word), source),
            }
        };
        if out.iter().any(|k| k.name == spec.name) {
            bail!("kernel {word} given twice");
        }
        out.push(spec);
    }
    Ok(out)
}

fn adhoc_name(word: &str) -> String {
    let base = word.rsplit('/').next().unwrap_or(word);
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Prints progress to stderr (stdout belongs to libtest's lines).
pub fn print_event(e: &RunEvent) {
    match e {
        RunEvent::Accel(d) => say!("btfvm: accelerator {} ({})", d.accel, d.reason),
        RunEvent::Fetch { kernel, event } => match event {
            FetchEvent::UpdatingIndex { suite } => {
                say!("btfvm: {kernel}: updating apt index for {suite}")
            }
            FetchEvent::Resolved { package, version } => {
                say!("btfvm: {kernel}: {package} {version}")
            }
            FetchEvent::Downloading { package } => {
                say!("btfvm: {kernel}: downloading {package}")
            }
            FetchEvent::Extracting { package } => {
                say!("btfvm: {kernel}: extracting {package}")
            }
            FetchEvent::Cached { .. } => {}
        },
        RunEvent::Resolved { kernel, origin } => say!("btfvm: {kernel}: kernel {origin}"),
        RunEvent::Booting {
            kernel,
            scenarios,
            initramfs_bytes,
        } => say!(
            "btfvm: {kernel}: booting for {scenarios} scenario(s), initramfs {} KiB",
            initramfs_bytes / 1024
        ),
        RunEvent::Vm { kernel, event } => match event {
            VmEvent::Message(Message::Hello {
                release, uptime_ms, ..
            }) => say!(
                "btfvm: {kernel}: agent running on {release} at guest uptime {:.2} s",
                *uptime_ms as f64 / 1000.0
            ),
            VmEvent::Splat {
                kind,
                line,
                scenario,
            } => say!(
                "btfvm: {kernel}: {} during {}: {line}",
                kind.as_str(),
                scenario
                    .as_deref()
                    .unwrap_or("no scenario (boot or between two)")
            ),
            _ => {}
        },
        RunEvent::Booted { kernel, wall, end } => {
            say!(
                "btfvm: {kernel}: boot {end} after {:.1} s",
                wall.as_secs_f64()
            )
        }
    }
}

/// Settings that need the outside world (QEMU, KVM probe, cache), made when
/// the first VM trial runs.
pub fn settings_maker(
    opts: RunOptions,
    events: Arc<dyn Fn(&RunEvent) + Send + Sync>,
) -> impl FnOnce() -> Result<RunSettings, String> + Send {
    move || {
        let cache = Cache::from_env().map_err(|e| e.to_string())?;
        let qemu = vm::run::find_qemu(opts.qemu.as_deref())?;
        let scratch = cache.subdir("tmp").map_err(|e| {
            format!("{e}; the cache must be writable: point BTFVM_CACHE_DIR (or XDG_CACHE_HOME) at a writable directory")
        })?;
        crate::tmpdirs::sweep(&std::env::temp_dir());
        let accel = vm::accel::decide(&qemu, opts.accel, &scratch);
        let secs = |v: Option<u64>| v.map(Duration::from_secs);
        let timeouts = TimeoutSettings {
            hello: secs(opts.hello_timeout),
            scenario: secs(opts.scenario_timeout),
            boot: secs(opts.timeout),
            run: secs(opts.run_timeout),
        };
        let run_deadline = std::time::Instant::now() + timeouts.run_limit(accel.accel);
        events(&RunEvent::Accel(accel.clone()));
        let logs_dir = match &opts.logs {
            Some(l) => l.clone(),
            None => cache.subdir("logs").map_err(|e| e.to_string())?,
        };
        Ok(RunSettings {
            cache,
            mirror: opts.debian_mirror.clone(),
            qemu,
            accel,
            timeouts,
            run_deadline,
            memory_mib: opts.memory,
            logs_dir,
        })
    }
}

/// Loads inputs, runs the trials, writes the report. Errors in the inputs
/// (YAML, kernel words) come back as `Err` for exit status 2.
pub fn run_suite(opts: RunOptions, args: Arguments) -> Result<ExitCode> {
    let scen_dir = opts
        .scenarios
        .clone()
        .unwrap_or_else(|| repo_dir("scenarios"));
    let kern_dir = opts
        .kernels_dir
        .clone()
        .unwrap_or_else(|| repo_dir("kernels"));
    let scenarios = scenario::load_dir(&scen_dir)?;
    let specs = kernelspec::load_dir(&kern_dir)?;
    let kernels = select_kernels(&opts, &specs)?;
    let report_path = opts.report.clone();
    let events: Arc<dyn Fn(&RunEvent) + Send + Sync> = Arc::new(print_event);
    let suite = Suite::new(
        scenarios,
        kernels,
        &args,
        Box::new(settings_maker(opts, events.clone())),
        events,
    );
    crate::interrupt::install();
    let conclusion = libtest_mimic::run(&args, suite.trials());
    if let Some(path) = report_path {
        // A report that cannot be written must not hide the trials' verdict
        // behind the "bad input" status.
        match suite.report().write(&path) {
            Ok(()) => say!("btfvm: report written to {}", path.display()),
            Err(e) => say!(
                "btfvm: warning: cannot write report {}: {e}",
                path.display()
            ),
        }
    }
    if let Some(sig) = crate::interrupt::requested() {
        say!(
            "btfvm: interrupted by {}",
            crate::interrupt::signal_name(sig)
        );
        return Ok(ExitCode::from(crate::interrupt::exit_status(sig)));
    }
    Ok(if conclusion.has_failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints an input error the way a compiler would, and gives status 2.
pub fn usage_error(e: &anyhow::Error) -> ExitCode {
    say!("btfvm: error: {e:#}");
    ExitCode::from(EXIT_USAGE)
}
