//! Everything that happens for one kernel of a run: get it, plan its boot,
//! boot it once for all its selected scenarios, and map what came back to a
//! result per scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use btfvm_proto::{KernelConfig, Message, Observations, Outcome};

use crate::agent::AGENT;
use crate::cache::Cache;
use crate::kernel::{self, debian::FetchEvent, KernelImage};
use crate::kernelspec::KernelSpec;
use crate::planner;
use crate::report::{BootRecord, KernelRecord};
use crate::scenario::Scenario;
use crate::verdict::{describe_end, failed, map_results};
use crate::vm::{self, Accel, AccelDecision, BootOutcome, Timeouts, VmEvent};

/// What the UI hears about, typed; the CLI decides how to show it.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Accel(AccelDecision),
    Fetch {
        kernel: String,
        event: FetchEvent,
    },
    Resolved {
        kernel: String,
        origin: String,
    },
    Booting {
        kernel: String,
        scenarios: usize,
        initramfs_bytes: u64,
    },
    Vm {
        kernel: String,
        event: VmEvent,
    },
    Booted {
        kernel: String,
        wall: Duration,
        end: String,
    },
}

pub type EventSink = dyn Fn(&RunEvent) + Send + Sync;

/// Settings shared by every kernel of a run.
pub struct RunSettings {
    pub cache: Cache,
    pub mirror: Option<String>,
    pub qemu: PathBuf,
    pub accel: AccelDecision,
    pub timeouts: TimeoutSettings,
    /// When the whole run must be over.
    pub run_deadline: std::time::Instant,
    pub memory_mib: u32,
    pub logs_dir: PathBuf,
}

/// Per-scenario result of a kernel's boot.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub observations: Option<Observations>,
}

pub struct KernelOutcome {
    pub record: KernelRecord,
    pub results: BTreeMap<String, ScenarioResult>,
}

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

pub fn run_kernel(
    spec: &KernelSpec,
    scenarios: &[&Scenario],
    s: &RunSettings,
    events: &EventSink,
) -> KernelOutcome {
    let mut record = KernelRecord {
        name: spec.name.clone(),
        source: describe_source(spec),
        origin: None,
        release: None,
        version: None,
        error: None,
        boot: None,
    };
    let all_fail = |record: KernelRecord, msg: String| KernelOutcome {
        results: scenarios
            .iter()
            .map(|sc| (sc.name.clone(), failed(msg.clone())))
            .collect(),
        record: KernelRecord {
            error: Some(msg),
            ..record
        },
    };
    if let Some(sig) = crate::interrupt::requested() {
        let msg = format!(
            "not run: interrupted by {}",
            crate::interrupt::signal_name(sig)
        );
        return all_fail(record, msg);
    }
    if std::time::Instant::now() >= s.run_deadline {
        let limit = s.timeouts.run_limit(s.accel.accel).as_secs();
        return all_fail(
            record,
            format!("not run: the run's {limit} s limit had passed (--run-timeout)"),
        );
    }
    let name = spec.name.clone();
    let image = match kernel::resolve(&spec.source, &s.cache, s.mirror.as_deref(), &mut |event| {
        events(&RunEvent::Fetch {
            kernel: name.clone(),
            event,
        })
    }) {
        Ok(i) => i,
        Err(e) => return all_fail(record, format!("kernel {}: {e}", spec.name)),
    };
    events(&RunEvent::Resolved {
        kernel: spec.name.clone(),
        origin: image.origin.clone(),
    });
    record.origin = Some(image.origin.clone());
    record.release = Some(image.release.clone());
    let config_text = match std::fs::read_to_string(&image.config) {
        Ok(t) => t,
        Err(e) => {
            return all_fail(
                record,
                format!("reading kernel config {}: {e}", image.config.display()),
            )
        }
    };
    record.version = KernelConfig::parse(&config_text)
        .version()
        .map(String::from);
    let prepared = planner::prepare(spec, &image, &config_text, scenarios, AGENT);
    let mut results = BTreeMap::new();
    for (n, reason) in &prepared.ignored {
        results.insert(
            n.clone(),
            ScenarioResult {
                outcome: Outcome::Ignored {
                    reason: reason.clone(),
                },
                duration_ms: 0,
                observations: None,
            },
        );
    }
    for (n, why) in &prepared.broken {
        results.insert(n.clone(), failed(why.clone()));
    }
    if prepared.plan.scenarios.is_empty() {
        return KernelOutcome { record, results };
    }
    match boot_once(spec, &image, &prepared, s, events) {
        Ok((boot, outcome)) => {
            let planned: Vec<String> = prepared
                .plan
                .scenarios
                .iter()
                .map(|p| p.name.clone())
                .collect();
            results.extend(map_results(&planned, &outcome));
            record.boot = Some(boot);
        }
        Err(e) => {
            for p in &prepared.plan.scenarios {
                results.insert(p.name.clone(), failed(e.clone()));
            }
            record.error = Some(e);
        }
    }
    KernelOutcome { record, results }
}

fn describe_source(spec: &KernelSpec) -> String {
    match &spec.source {
        crate::kernelspec::KernelSource::Debian { suite, package } => match package {
            Some(p) => format!("debian:{suite}:{p}"),
            None => format!("debian:{suite}"),
        },
        crate::kernelspec::KernelSource::Local { vmlinuz, .. } => vmlinuz.display().to_string(),
        crate::kernelspec::KernelSource::Build(b) => b.to_string(),
    }
}

fn boot_once(
    spec: &KernelSpec,
    image: &KernelImage,
    prepared: &planner::Prepared,
    s: &RunSettings,
    events: &EventSink,
) -> Result<(BootRecord, BootOutcome), String> {
    let work =
        crate::tmpdirs::create().map_err(|e| format!("creating a temporary directory: {e}"))?;
    let initrd = work.path().join("initramfs.cpio");
    let bytes = prepared.archive.to_bytes();
    std::fs::write(&initrd, &bytes).map_err(|e| format!("writing {}: {e}", initrd.display()))?;
    let mut timeouts = s.timeouts.resolve(s.accel.accel, spec.boot_timeout);
    // No boot may outlive the run's own limit.
    let left = s
        .run_deadline
        .saturating_duration_since(std::time::Instant::now());
    timeouts.wall = timeouts.wall.min(left);
    let boot_spec = vm::BootSpec {
        qemu: s.qemu.clone(),
        accel: s.accel.accel,
        kernel: image.vmlinuz.clone(),
        initrd,
        cmdline_extra: Vec::new(),
        memory_mib: s.memory_mib,
        timeouts,
        workdir: work.path().to_path_buf(),
    };
    events(&RunEvent::Booting {
        kernel: spec.name.clone(),
        scenarios: prepared.plan.scenarios.len(),
        initramfs_bytes: bytes.len() as u64,
    });
    let name = spec.name.clone();
    let mut outcome = vm::boot(&boot_spec, &mut |event| {
        events(&RunEvent::Vm {
            kernel: name.clone(),
            event: event.clone(),
        })
    })
    .map_err(|e| e.to_string())?;
    crate::verdict::apply_allowlist(&mut outcome.splats, &spec.allow_splats);
    let log = keep_console_log(&outcome.console_log, &s.logs_dir, &spec.name);
    // Messages point at the kept copy: the temporary directory goes next.
    outcome.console_log = log.clone();
    let end = describe_end(&outcome);
    events(&RunEvent::Booted {
        kernel: spec.name.clone(),
        wall: outcome.elapsed,
        end: end.clone(),
    });
    let uptime = |want_done: bool| {
        outcome.messages.iter().find_map(|m| match m {
            Message::Hello { uptime_ms, .. } if !want_done => Some(*uptime_ms),
            Message::Done { uptime_ms } if want_done => Some(*uptime_ms),
            _ => None,
        })
    };
    let record = BootRecord {
        accel: s.accel.accel.to_string(),
        wall_ms: outcome.elapsed.as_millis() as u64,
        agent_hello_uptime_ms: uptime(false),
        agent_done_uptime_ms: uptime(true),
        end,
        initramfs_bytes: bytes.len() as u64,
        console_log: log.display().to_string(),
        splats: outcome.splats.clone(),
        qemu_args: boot_spec.qemu_args(),
    };
    Ok((record, outcome))
}

/// The console log outlives the temp dir: it is what a developer reads when
/// a boot goes wrong.
/// One file per boot (`<kernel>.<unix-seconds>.<pid>.console.log`), so runs
/// sharing the cache never overwrite each other's logs; the oldest go once a
/// kernel has more than `KEEP_LOGS`.
fn keep_console_log(from: &Path, logs_dir: &Path, kernel: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let to = logs_dir.join(format!(
        "{kernel}.{stamp}.{}.console.log",
        std::process::id()
    ));
    let copied = std::fs::create_dir_all(logs_dir).and_then(|_| std::fs::copy(from, &to));
    match copied {
        Ok(_) => {
            prune_logs(logs_dir, kernel);
            to
        }
        Err(e) => {
            eprintln!(
                "btfvm: warning: cannot keep the console log in {}: {e}",
                logs_dir.display()
            );
            from.to_path_buf()
        }
    }
}

const KEEP_LOGS: usize = 20;

fn prune_logs(dir: &Path, kernel: &str) {
    let prefix = format!("{kernel}.");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".console.log"))
        })
        .collect();
    // Same kernel prefix, then the seconds stamp: names sort by age.
    logs.sort();
    let excess = logs.len().saturating_sub(KEEP_LOGS);
    for p in &logs[..excess] {
        let _ = std::fs::remove_file(p);
    }
}
