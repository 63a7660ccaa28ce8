//! Settings shared by every kernel of a run, and the limits of each boot.
//! Made when the first trial needs a VM, so `--list` or a filter that
//! selects nothing never probes KVM or looks for QEMU.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::inputs::share::Share;
use crate::support::cache::{Cache, CacheError};
use crate::support::ErrorClass;
use crate::target::SshParams;
use crate::vm::{self, Accel, AccelChoice, AccelDecision, BootEnd, KvmRecord, Timeouts, VmError};

/// Guest memory by default. The suite's floor, measured under TCG on
/// 2026-12-07 (8 MiB steps): bullseye 72 MiB, bookworm and trixie 88, sid
/// 104; 256 leaves 2.5x over the highest, for debug kernels and vng's
/// overlays (sid under vng passes at 256). It was 512: the whole suite on
/// the 7 kernels of kernels/ passes at 256 too, and QEMU's resident
/// memory shrinks with it.
pub const DEFAULT_MEMORY_MIB: u32 = 256;

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
    /// `--append`: words for the guest kernel's command line.
    pub cmdline_extra: Vec<String>,
    pub qemu: Option<PathBuf>,
    /// Where kept boots go (default: <cache>/logs).
    pub logs: Option<PathBuf>,
    /// Boots again for the scenarios that failed, up to this many times.
    pub retries: u32,
    /// Boots at once (`-j`); default from the cores and the memory.
    pub jobs: Option<usize>,
    /// Run the suite on this SSH target instead of booting it here.
    pub target: Option<SshParams>,
    /// Host folders the guests mount over virtiofs.
    pub shares: Vec<Share>,
    /// Boot under virtme-ng instead of btfvm's own QEMU line: vng's path
    /// (None: from PATH).
    pub vng: Option<Option<PathBuf>>,
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
    pub accel: RunAccel,
    pub timeouts: TimeoutSettings,
    /// When the whole run must be over; None when the limit is beyond
    /// what the clock can represent (`--run-timeout 18446744073709551615`).
    pub run_deadline: Option<Instant>,
    /// The limit that deadline came from, for messages.
    pub run_limit: Duration,
    pub memory_mib: u32,
    /// `--append`: words for the guest kernel's command line.
    pub cmdline_extra: Vec<String>,
    pub logs_dir: PathBuf,
    pub retries: u32,
    /// Boots at once.
    pub jobs: usize,
    /// qboot, when QEMU has it (see `vm::args::firmware_args`).
    pub firmware: Option<PathBuf>,
    /// The SSH target the suite runs on, if not in QEMU here.
    pub target: Option<SshParams>,
    pub shares: Vec<Share>,
    /// The virtiofsd that serves them (found once, when there are shares).
    pub virtiofsd: Option<PathBuf>,
    /// virtme-ng, when the suite boots under it.
    pub vng: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}; the cache must be writable: point BTFVM_CACHE_DIR (or XDG_CACHE_HOME) at a writable directory")]
    Scratch(CacheError),
    #[error(transparent)]
    Qemu(#[from] VmError),
    #[error(transparent)]
    Vng(#[from] crate::target::vng::VngError),
    #[error("--append changes the command line of the kernels btfvm boots; an SSH target runs its kernel already (set its boot loader instead)")]
    AppendOnTarget,
}

impl SettingsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SettingsError::AppendOnTarget => ErrorClass::Input,
            _ => ErrorClass::Environment,
        }
    }
}

impl RunSettings {
    /// Finds QEMU and the cache, sweeps dead runs' temporary folders, and
    /// decides the accelerator (a probe guest under KVM, ~50 ms).
    pub fn prepare(cfg: &RunConfig) -> Result<RunSettings, SettingsError> {
        if cfg.target.is_some() && !cfg.cmdline_extra.is_empty() {
            return Err(SettingsError::AppendOnTarget);
        }
        let cache = Cache::from_env()?;
        // A target needs no QEMU here: a lab's runner may have none.
        let qemu = match (vm::find_qemu(cfg.qemu.as_deref()), &cfg.target) {
            (Ok(q), _) => q,
            (Err(_), Some(_)) => PathBuf::from("qemu-system-x86_64"),
            (Err(e), None) => return Err(e.into()),
        };
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
        let record = crate::support::state::state_dir()
            .unwrap_or_else(|| cache.root().to_path_buf())
            .join(KVM_RECORD);
        let decision = match &cfg.target {
            // A real machine runs at its own speed: KVM's limits.
            Some(t) => AccelDecision {
                accel: Accel::Kvm,
                reason: format!("none here: the suite runs on {}, under KVM's limits", t.url),
            },
            None => vm::accel::decide(&qemu, cfg.accel, &scratch, Some(&record)),
        };
        // A run that auto chose KVM may end under TCG: its limit is TCG's.
        let limit_accel = match cfg.accel {
            AccelChoice::Auto if cfg.target.is_none() => Accel::Tcg,
            _ => decision.accel,
        };
        let accel = RunAccel {
            may_fall_back: cfg.accel == AccelChoice::Auto
                && decision.accel == Accel::Kvm
                && cfg.target.is_none(),
            decision: Mutex::new(decision),
            record,
        };
        let vng = match &cfg.vng {
            Some(path) => Some(crate::target::vng::find(path.as_deref())?),
            None => None,
        };
        let virtiofsd = match cfg.shares.is_empty() {
            true => None,
            false => Some(vm::virtiofsd::find()?),
        };
        let logs_dir = match &cfg.logs {
            Some(l) => l.clone(),
            None => cache.subdir("logs")?,
        };
        Ok(RunSettings {
            run_deadline: Instant::now().checked_add(cfg.timeouts.run_limit(limit_accel)),
            run_limit: cfg.timeouts.run_limit(limit_accel),
            cache,
            mirror: cfg.mirror.clone(),
            accel,
            timeouts: cfg.timeouts,
            memory_mib: cfg.memory_mib,
            cmdline_extra: cfg.cmdline_extra.clone(),
            logs_dir,
            retries: cfg.retries,
            jobs: cfg.jobs.unwrap_or_else(|| default_jobs(cfg.memory_mib)),
            firmware: vm::find_qboot(&qemu),
            qemu,
            target: cfg.target.clone(),
            shares: cfg.shares.clone(),
            virtiofsd,
            vng,
        })
    }
}

/// Where a host whose KVM failed real boots is remembered, in the state
/// folder (`support::state::state_dir`).
pub const KVM_RECORD: &str = "kvm-failed.json";

/// The run's accelerator: what was decided at the start, and the one step
/// back from KVM to TCG that a boot may take (see `vm::accel`).
#[derive(Debug)]
pub struct RunAccel {
    decision: Mutex<AccelDecision>,
    /// Auto chose KVM, and no step back was taken yet.
    may_fall_back: bool,
    record: PathBuf,
}

impl RunAccel {
    pub fn current(&self) -> AccelDecision {
        self.decision
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a boot under `used` that ended with `end` goes again under
    /// TCG: auto chose KVM, and the kernel never reached its agent.
    pub fn falls_back(&self, used: Accel, end: &BootEnd) -> bool {
        self.may_fall_back && used == Accel::Kvm && matches!(end, BootEnd::NoHello { .. })
    }

    /// From now on this run boots under TCG; returns the new decision.
    pub fn step_back(&self, kernel: &str, after: Duration) -> AccelDecision {
        let mut d = self.decision.lock().unwrap_or_else(|p| p.into_inner());
        if d.accel == Accel::Kvm {
            *d = AccelDecision {
                accel: Accel::Tcg,
                reason: format!(
                    "{kernel} did not reach its agent under KVM in {} s although the KVM probe passed: TCG from here on",
                    after.as_secs()
                ),
            };
        }
        d.clone()
    }

    /// TCG reached the agent where KVM did not: later runs on this host
    /// skip KVM. Returns where that was written.
    pub fn remember(&self, qemu: &std::path::Path, kernel: &str) -> Result<PathBuf, CacheError> {
        let what = format!("{kernel} did not reach its agent under KVM and did under TCG");
        let rec = KvmRecord::current(qemu, what)
            .map_err(|e| CacheError::io("cannot look at", qemu, e))?;
        rec.write(&self.record)?;
        Ok(self.record.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto_kvm(may_fall_back: bool) -> RunAccel {
        RunAccel {
            decision: Mutex::new(AccelDecision {
                accel: Accel::Kvm,
                reason: "probe guest ran under KVM in 2 ms".into(),
            }),
            may_fall_back,
            record: PathBuf::from("/nonexistent/kvm-failed.json"),
        }
    }

    #[test]
    fn only_a_kernel_that_never_reached_its_agent_under_auto_kvm_goes_again() {
        let no_hello = BootEnd::NoHello {
            after: Duration::from_secs(20),
        };
        let a = auto_kvm(true);
        assert!(a.falls_back(Accel::Kvm, &no_hello));
        assert!(
            !a.falls_back(Accel::Tcg, &no_hello),
            "TCG has nowhere to go"
        );
        for end in [
            BootEnd::Exited { status: Some(0) },
            BootEnd::Panicked,
            BootEnd::TimedOut {
                after: Duration::from_secs(1),
            },
        ] {
            assert!(!a.falls_back(Accel::Kvm, &end), "{end:?} is the kernel's");
        }
        // `--accel kvm` is obeyed: its failures are the kernel's.
        assert!(!auto_kvm(false).falls_back(Accel::Kvm, &no_hello));

        let d = a.step_back("bookworm", Duration::from_secs(20));
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d
            .reason
            .contains("bookworm did not reach its agent under KVM in 20 s"));
        assert_eq!(a.current(), d);
        // A boot already running under KVM when the step was taken still
        // goes again; the decision does not change twice.
        assert!(a.falls_back(Accel::Kvm, &no_hello));
        assert_eq!(a.step_back("sid", Duration::from_secs(20)), d);
    }
}
