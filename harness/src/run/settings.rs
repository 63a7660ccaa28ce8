//! Settings shared by every kernel of a run, and the limits of each boot.
//! Made when the first trial needs a VM, so `--list` or a filter that
//! selects nothing never probes KVM or looks for QEMU.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::cache::{Cache, CacheError};
use crate::support::ErrorClass;
use crate::vm::{self, Accel, AccelChoice, AccelDecision, Timeouts, VmError};

/// Limits given on the command line or in the environment; unset ones
/// get defaults for the accelerator.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutSettings {
    pub hello: Option<Duration>,
    pub scenario: Option<Duration>,
    pub boot: Option<Duration>,
    pub run: Option<Duration>,
}

impl TimeoutSettings {
    /// Defaults: a Debian kernel reaches /init in 1-2 s under TCG and a
    /// scenario takes well under a second; the margins cover a machine
    /// loaded 10x and a debug kernel, while a hang still ends in minutes.
    pub fn resolve(&self, accel: Accel, spec_boot: Option<u64>) -> Timeouts {
        let (hello, scenario, boot) = match accel {
            Accel::Tcg => (60, 60, 300),
            Accel::Kvm => (20, 30, 120),
        };
        Timeouts {
            hello: self.hello.unwrap_or(Duration::from_secs(hello)),
            scenario: self.scenario.unwrap_or(Duration::from_secs(scenario)),
            wall: self
                .boot
                .or(spec_boot.map(Duration::from_secs))
                .unwrap_or(Duration::from_secs(boot)),
        }
    }

    /// The limit of a whole run (all kernels, downloads included).
    pub fn run_limit(&self, accel: Accel) -> Duration {
        self.run.unwrap_or(Duration::from_secs(match accel {
            Accel::Tcg => 3600,
            Accel::Kvm => 1200,
        }))
    }
}

/// What the user chose, as plain values (the binary parses the options).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub mirror: Option<String>,
    pub accel: AccelChoice,
    pub timeouts: TimeoutSettings,
    pub memory_mib: u32,
    pub qemu: Option<PathBuf>,
    /// Where kept boots go (default: <cache>/logs).
    pub logs: Option<PathBuf>,
    /// Boots again for the scenarios that failed, up to this many times.
    pub retries: u32,
    /// Boots at once (`-j`); default from the cores and the memory.
    pub jobs: Option<usize>,
}

/// Boots at once by default: under TCG a one-vCPU guest keeps a core
/// busy, so one per core; and no more than half the free memory holds.
pub fn default_jobs(memory_mib: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024);
    let by_memory = free.map_or(usize::MAX, |mib| {
        ((mib / 2) / u64::from(memory_mib.max(1))) as usize
    });
    cores.min(by_memory).max(1)
}

/// Settings shared by every kernel of a run.
#[derive(Debug)]
pub struct RunSettings {
    pub cache: Cache,
    pub mirror: Option<String>,
    pub qemu: PathBuf,
    pub accel: AccelDecision,
    pub timeouts: TimeoutSettings,
    /// When the whole run must be over; None when the limit is beyond
    /// what the clock can represent (`--run-timeout 18446744073709551615`).
    pub run_deadline: Option<Instant>,
    pub memory_mib: u32,
    pub logs_dir: PathBuf,
    pub retries: u32,
    /// Boots at once.
    pub jobs: usize,
    /// qboot, when QEMU has it (see `vm::args::firmware_args`).
    pub firmware: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}; the cache must be writable: point BTFVM_CACHE_DIR (or XDG_CACHE_HOME) at a writable directory")]
    Scratch(CacheError),
    #[error(transparent)]
    Qemu(#[from] VmError),
}

impl SettingsError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Environment
    }
}

impl RunSettings {
    /// Finds QEMU and the cache, sweeps dead runs' temporary folders, and
    /// decides the accelerator (a probe guest under KVM, ~50 ms).
    pub fn prepare(cfg: &RunConfig) -> Result<RunSettings, SettingsError> {
        let cache = Cache::from_env()?;
        let qemu = vm::find_qemu(cfg.qemu.as_deref())?;
        let scratch = cache.subdir("tmp").map_err(SettingsError::Scratch)?;
        // A cache that is there but read-only fails later and elsewhere
        // (the KVM probe's image, kept boots, downloads): say so now.
        tempfile::tempfile_in(&scratch).map_err(|e| {
            SettingsError::Scratch(crate::support::cache::CacheError::io(
                "cannot write into",
                &scratch,
                e,
            ))
        })?;
        crate::support::tmpdirs::sweep(&std::env::temp_dir());
        let accel = vm::accel::decide(&qemu, cfg.accel, &scratch);
        let logs_dir = match &cfg.logs {
            Some(l) => l.clone(),
            None => cache.subdir("logs")?,
        };
        Ok(RunSettings {
            run_deadline: Instant::now().checked_add(cfg.timeouts.run_limit(accel.accel)),
            cache,
            mirror: cfg.mirror.clone(),
            accel,
            timeouts: cfg.timeouts,
            memory_mib: cfg.memory_mib,
            logs_dir,
            retries: cfg.retries,
            jobs: cfg.jobs.unwrap_or_else(|| default_jobs(cfg.memory_mib)),
            firmware: vm::find_qboot(&qemu),
            qemu,
        })
    }
}
