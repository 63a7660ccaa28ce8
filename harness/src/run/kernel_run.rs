//! Everything that happens for one kernel of a run: get it, plan its boot,
//! boot it once for all its selected scenarios, keep the boot, and map what
//! came back to a result per scenario.

use std::collections::BTreeMap;

use super::acquire::{acquire, AcquireError, AcquireEvent};
use super::booted::OneBoot;
use super::events::{EventSink, RunEvent};
use super::outcome::{FailureKind, ScenarioResult, TrialOutcome};
use super::qemu_run::{boot_under, BootError};
use super::record::{BootRecord, KernelError, KernelRecord};
use super::select::SelectedKernel;
use super::settings::RunSettings;
use super::target_run::{adopt_target, run_on_target, run_under_vng};
use super::tools::Extras;
use super::verdict::map_results;
use crate::boot::agent::AGENT;
use crate::boot::plan::{self, Prepared, Unprepared};
use crate::inputs::scenario::Scenario;
use crate::kernel::{CacheEntry, KernelImage};
use crate::support::interrupt;
use crate::vm::{Accel, BootOutcome};

pub struct KernelOutcome {
    pub record: KernelRecord,
    pub results: BTreeMap<String, ScenarioResult>,
}

/// Every scenario of a kernel that never booted fails with the same reason.
fn all_failed(
    mut record: KernelRecord,
    scenarios: &[&Scenario],
    kind: FailureKind,
    message: String,
) -> KernelOutcome {
    let results = scenarios
        .iter()
        .map(|sc| {
            (
                sc.name.clone(),
                ScenarioResult::failed(kind, message.clone()),
            )
        })
        .collect();
    record.error = Some(KernelError { kind, message });
    KernelOutcome { record, results }
}

/// Why this kernel is not run at all, if it is not.
fn not_run(s: &RunSettings) -> Option<String> {
    if let Some(sig) = interrupt::requested() {
        return Some(format!(
            "not run: interrupted by {}",
            interrupt::signal_name(sig)
        ));
    }
    if s.run_deadline
        .is_some_and(|d| std::time::Instant::now() >= d)
    {
        let limit = s.run_limit.as_secs();
        return Some(format!(
            "not run: the run's {limit} s limit had passed (--run-timeout)"
        ));
    }
    None
}

pub fn run_kernel(
    k: &SelectedKernel,
    scenarios: &[&Scenario],
    s: &RunSettings,
    events: &EventSink,
) -> KernelOutcome {
    let mut record = KernelRecord::new(&k.spec);
    if let Some(why) = not_run(s) {
        return all_failed(record, scenarios, FailureKind::NotRun, why);
    }
    let (image, prepared, extras) = match prepare(k, scenarios, s, events) {
        Ok(p) => p,
        Err((kind, message)) => return all_failed(record, scenarios, kind, message),
    };
    record.origin = Some(image.origin.clone());
    record.release = Some(image.release.clone());
    record.version = Some(image.config.version.to_string());
    let pahole = image.config.parsed.get("CONFIG_PAHOLE_VERSION");
    record.pahole_version = (pahole != "n").then(|| pahole.to_string());
    record.config_sha256 = Some(crate::support::manifest::sha256_of(
        image.config.text.as_bytes(),
    ));
    let mut results = BTreeMap::new();
    for (n, reason) in &prepared.ignored {
        results.insert(n.clone(), ScenarioResult::ignored(reason.clone()));
    }
    // A module of another kernel is bad input, like a modules tree of
    // another kernel: no boot, and every trial says why.
    if let Some(foreign) = prepared.broken.values().find_map(|u| match u {
        Unprepared::Foreign(m) => Some(m.clone()),
        _ => None,
    }) {
        let others: Vec<&Scenario> = scenarios
            .iter()
            .filter(|sc| !results.contains_key(&sc.name))
            .copied()
            .collect();
        let mut out = all_failed(record, &others, FailureKind::Input, foreign);
        out.results.extend(results);
        return out;
    }
    for (n, why) in &prepared.broken {
        results.insert(
            n.clone(),
            ScenarioResult::failed(FailureKind::Prepare, why.message()),
        );
    }
    if prepared.plan.scenarios.is_empty() {
        return KernelOutcome { record, results };
    }
    let planned: Vec<String> = prepared
        .plan
        .scenarios
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let one = OneBoot {
        k,
        image: &image,
        prepared: &prepared,
        planned: &planned,
        s,
        events,
    };
    match boot_once(&one, &extras) {
        Ok((boot, outcome)) => {
            results.extend(map_results(&planned, &outcome));
            record.boot = Some(boot);
            record.retries = retry_failures(k, &image, scenarios, s, events, &extras, &mut results);
            check_after_failure(&image, &mut results);
        }
        Err(e) => {
            let message = e.to_string();
            for p in &planned {
                results.insert(
                    p.clone(),
                    ScenarioResult::failed(FailureKind::Environment, message.clone()),
                );
            }
            record.error = Some(KernelError {
                kind: FailureKind::Environment,
                message,
            });
        }
    }
    KernelOutcome { record, results }
}

/// The kernel and its plan. A cache entry found damaged while planning is
/// discarded and the kernel fetched (or built) once more.
fn prepare(
    k: &SelectedKernel,
    scenarios: &[&Scenario],
    s: &RunSettings,
    events: &EventSink,
) -> Result<(KernelImage, Prepared, Extras), (FailureKind, String)> {
    let acquire = || {
        image_of(k, s, events)
            .map_err(|e| (e.class().into(), format!("kernel {}: {e}", k.spec.name)))
    };
    let mut image = acquire()?;
    let target_root = match &s.target {
        Some(t) => Some(adopt_target(&mut image, t)?.root),
        None => None,
    };
    let name = k.spec.name.clone();
    let extras = Extras {
        bpftool: super::tools::bpftool(k, scenarios, &s.cache, s.mirror.as_deref()),
        built: super::tools::built_modules(
            k,
            &image,
            scenarios,
            &s.cache,
            s.mirror.as_deref(),
            &mut |event| {
                events(&RunEvent::Build {
                    kernel: name.clone(),
                    event,
                })
            },
        ),
        target_root,
    };
    let carried = extras.carried(&s.shares);
    let mut prepared = plan::prepare(&k.spec, &image, scenarios, AGENT, 0, &carried);
    if let (Some(d), Some(entry)) = (&prepared.damaged, &image.cache_entry) {
        events(&RunEvent::Warning {
            kernel: Some(k.spec.name.clone()),
            message: format!("the cached kernel is damaged ({d}): getting it again"),
        });
        CacheEntry::discard(&entry.dir).map_err(|e| {
            (
                FailureKind::Environment,
                format!(
                    "cannot remove the damaged cache entry {}: {e}",
                    entry.dir.display()
                ),
            )
        })?;
        image = acquire()?;
        if let Some(t) = &s.target {
            adopt_target(&mut image, t)?;
        }
        prepared = plan::prepare(&k.spec, &image, scenarios, AGENT, 0, &carried);
        if let Some(d) = &prepared.damaged {
            return Err((
                FailureKind::Environment,
                format!("the cached kernel is damaged again after fetching it anew: {d} (is the disk failing?)"),
            ));
        }
    }
    events(&RunEvent::Resolved {
        kernel: k.spec.name.clone(),
        origin: image.origin.clone(),
    });
    Ok((image, prepared, extras))
}

/// Boots again, up to `--retries` times, for the scenarios whose boot
/// failed them (a check, a splat, the boot ending early). One that passes
/// on a retry is flaky, not passed; one that never does keeps its first
/// failure. Returns the retry boots for the report.
fn retry_failures(
    k: &SelectedKernel,
    image: &KernelImage,
    scenarios: &[&Scenario],
    s: &RunSettings,
    events: &EventSink,
    extras: &Extras,
    results: &mut BTreeMap<String, ScenarioResult>,
) -> Vec<BootRecord> {
    let mut boots = Vec::new();
    let spec_retries = k.spec.flaky_boot.as_ref().map_or(0, |f| f.retries);
    let because = k
        .spec
        .flaky_boot
        .as_ref()
        .filter(|f| f.retries > s.retries)
        .map(|f| format!(" (booted again because its kernel spec says: {})", f.reason))
        .unwrap_or_default();
    for attempt in 1..=s.retries.max(spec_retries) {
        let again: Vec<&Scenario> = scenarios
            .iter()
            .filter(|sc| {
                matches!(
                    results.get(&sc.name).and_then(|r| r.outcome.failure()),
                    Some((FailureKind::Check | FailureKind::NoAgent, _))
                )
            })
            .copied()
            .collect();
        if again.is_empty() || not_run(s).is_some() {
            break;
        }
        let prepared = plan::prepare(
            &k.spec,
            image,
            &again,
            AGENT,
            attempt,
            &extras.carried(&s.shares),
        );
        let planned: Vec<String> = again.iter().map(|sc| sc.name.clone()).collect();
        let one = OneBoot {
            k,
            image,
            prepared: &prepared,
            planned: &planned,
            s,
            events,
        };
        let Ok((boot, outcome)) = boot_once(&one, extras) else {
            break;
        };
        boots.push(boot);
        for (name, r) in map_results(&planned, &outcome) {
            if r.outcome != TrialOutcome::Passed {
                continue;
            }
            let Some(first) = results.get_mut(&name) else {
                continue;
            };
            let message = first
                .outcome
                .failure()
                .map(|(_, m)| format!("{m}{because}"))
                .unwrap_or_default();
            events(&RunEvent::Warning {
                kernel: Some(k.spec.name.clone()),
                message: format!(
                    "{name} passed on retry {attempt} after failing: it is reported as flaky"
                ),
            });
            *first = ScenarioResult {
                outcome: TrialOutcome::Flaky {
                    message,
                    attempts: attempt + 1,
                },
                ..r
            };
        }
    }
    boots
}

/// After a boot with failures, the kernel's whole cache entry is hashed:
/// a damaged file is the disk's fault, not the kernel's, and the entry is
/// removed so the next run fetches it again.
fn check_after_failure(image: &KernelImage, results: &mut BTreeMap<String, ScenarioResult>) {
    let failed = results.values().any(|r| {
        matches!(
            r.outcome.failure(),
            Some((FailureKind::Check | FailureKind::NoAgent, _))
        )
    });
    let Some(entry) = image.cache_entry.as_ref().filter(|_| failed) else {
        return;
    };
    let Err(d) = entry.check_full() else {
        return;
    };
    let removed = match CacheEntry::discard(&entry.dir) {
        Ok(()) => "it was removed; run again to fetch it anew".to_string(),
        Err(e) => format!(
            "removing it failed too ({e}): remove {} by hand",
            entry.dir.display()
        ),
    };
    for r in results.values_mut() {
        if let TrialOutcome::Failed { kind, message } = &mut r.outcome {
            *kind = FailureKind::Environment;
            message.push_str(&format!(
                "\nnote: the cached kernel is damaged ({d}), so this says nothing about the kernel; {removed}"
            ));
        }
    }
}

/// The kernel to boot: resolved at selection for a kernel on disk, else
/// fetched or built now (with progress as events).
fn image_of(
    k: &SelectedKernel,
    s: &RunSettings,
    events: &EventSink,
) -> Result<KernelImage, AcquireError> {
    if let Some(i) = &k.resolved {
        return Ok(i.clone());
    }
    let name = k.spec.name.clone();
    acquire(&k.spec.source, &s.cache, s.mirror.as_deref(), &mut |e| {
        let kernel = name.clone();
        events(&match e {
            AcquireEvent::Fetch(event) => RunEvent::Fetch { kernel, event },
            AcquireEvent::Build(event) => RunEvent::Build { kernel, event },
        })
    })
}

/// One boot under the run's accelerator; a KVM that auto chose and under
/// which the kernel never reached its agent gets one more boot under TCG
/// (see `vm::accel` for the machines where that happens).
fn boot_once(b: &OneBoot<'_>, extras: &Extras) -> Result<(BootRecord, BootOutcome), BootError> {
    let (k, s, events) = (b.k, b.s, b.events);
    if let (Some(t), Some(root)) = (&s.target, extras.target_root) {
        return Ok(run_on_target(b, t, root)?);
    }
    if let Some(vng) = &s.vng {
        return Ok(run_under_vng(b, vng)?);
    }
    let accel = s.accel.current().accel;
    let first = boot_under(b, accel)?;
    if !s.accel.falls_back(accel, &first.1.end) || interrupt::requested().is_some() {
        return Ok(first);
    }
    let name = &k.spec.name;
    events(&RunEvent::Accel(s.accel.step_back(name, first.1.elapsed)));
    let again = boot_under(b, Accel::Tcg)?;
    if again.1.agent_reported() {
        let message = match s.accel.remember(&s.qemu, name) {
            Ok(path) => format!(
                "KVM failed where TCG booted: later runs on this host use TCG at once (remembered in {}; delete it to try KVM again)",
                path.display()
            ),
            Err(e) => format!("KVM failed where TCG booted, but that cannot be remembered: {e}"),
        };
        events(&RunEvent::Warning {
            kernel: Some(name.clone()),
            message,
        });
    }
    Ok(again)
}
