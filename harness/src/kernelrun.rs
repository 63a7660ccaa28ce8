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
use crate::vm::{self, Accel, AccelDecision, BootEnd, BootOutcome, VmEvent};

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
    pub timeout: Option<Duration>,
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

fn failed(message: String) -> ScenarioResult {
    ScenarioResult {
        outcome: Outcome::Failed { message },
        duration_ms: 0,
        observations: None,
    }
}

/// Default wall-clock limit of a boot: a TCG boot of a Debian kernel takes
/// 2-3 s to /init and the suite a few more; 2x for a busy machine and a wide
/// margin beyond.
pub fn default_timeout(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => Duration::from_secs(60),
        Accel::Tcg => Duration::from_secs(180),
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
    }
}

fn boot_once(
    spec: &KernelSpec,
    image: &KernelImage,
    prepared: &planner::Prepared,
    s: &RunSettings,
    events: &EventSink,
) -> Result<(BootRecord, BootOutcome), String> {
    let work = tempfile::Builder::new()
        .prefix("btfvm-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))?;
    let initrd = work.path().join("initramfs.cpio");
    let bytes = prepared.archive.to_bytes();
    std::fs::write(&initrd, &bytes).map_err(|e| format!("writing {}: {e}", initrd.display()))?;
    let timeout = s
        .timeout
        .or(spec.boot_timeout.map(Duration::from_secs))
        .unwrap_or_else(|| default_timeout(s.accel.accel));
    let boot_spec = vm::BootSpec {
        qemu: s.qemu.clone(),
        accel: s.accel.accel,
        kernel: image.vmlinuz.clone(),
        initrd,
        cmdline_extra: Vec::new(),
        memory_mib: s.memory_mib,
        timeout,
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

pub fn describe_end(o: &BootOutcome) -> String {
    match &o.end {
        BootEnd::Exited { status: Some(0) } if o.finished() => "powered off".into(),
        BootEnd::Exited { status: Some(0) } => {
            "QEMU exited (status 0) before the agent finished: kernel panic or agent crash".into()
        }
        BootEnd::Exited { status: Some(c) } => format!("QEMU exited with status {c}"),
        BootEnd::Exited { status: None } => "QEMU was killed by a signal".into(),
        BootEnd::TimedOut { after } => {
            format!("timed out after {} s; QEMU killed", after.as_secs())
        }
        BootEnd::Channel(e) => format!("{e}; QEMU killed"),
        BootEnd::Interrupted { signal } => {
            format!(
                "interrupted by {}; QEMU killed",
                crate::interrupt::signal_name(*signal)
            )
        }
    }
}

/// One result per planned scenario. A scenario the agent did not finish
/// fails with how the boot ended and the console tail: never a silent pass.
pub fn map_results(planned: &[String], o: &BootOutcome) -> BTreeMap<String, ScenarioResult> {
    let mut out = BTreeMap::new();
    let mut started: Option<String> = None;
    let mut fatal: Option<String> = None;
    let mut hello = false;
    for m in &o.messages {
        match m {
            Message::Hello { .. } => hello = true,
            Message::ScenarioStarted { name } => started = Some(name.clone()),
            Message::ScenarioFinished {
                name,
                outcome,
                duration_ms,
                observations,
            } => {
                started = None;
                out.insert(
                    name.clone(),
                    ScenarioResult {
                        outcome: outcome.clone(),
                        duration_ms: *duration_ms,
                        observations: Some(observations.clone()),
                    },
                );
            }
            Message::Fatal { message } => fatal = Some(message.clone()),
            Message::Done { .. } => {}
        }
    }
    let end = describe_end(o);
    let mut context = String::new();
    if !o.qemu_stderr.trim().is_empty() {
        context.push_str(&format!("\nQEMU said:\n{}", o.qemu_stderr.trim_end()));
    }
    context.push_str(&format!(
        "\nconsole ({}), last lines:\n{}",
        o.console_log.display(),
        o.console_tail
    ));
    for name in planned {
        if out.contains_key(name) {
            continue;
        }
        let why = if let Some(f) = &fatal {
            format!("the guest agent gave up: {f}")
        } else if !hello {
            format!("the guest agent never reported (no hello on the channel); boot {end}")
        } else if started.as_deref() == Some(name.as_str()) {
            format!("boot ended while this scenario ran: {end}")
        } else {
            format!("boot ended before this scenario ran: {end}")
        };
        out.insert(name.clone(), failed(format!("{why}{context}")));
    }
    out
}
