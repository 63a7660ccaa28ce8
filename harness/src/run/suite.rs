//! The VM suite as libtest trials: one per kernel and scenario, named
//! `<kernel>::<scenario>`, so filters, `--list`, `--ignored` and `--exact`
//! behave as in any Rust test suite. The first trial of a kernel boots it
//! once for all of that kernel's selected trials.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::Instant;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use super::events::{EventSink, RunEvent};
use super::kernel_run::{run_kernel, KernelOutcome};
use super::outcome::{FailureKind, TrialOutcome};
use super::record::{KernelRecord, TrialRecord};
use super::select::SelectedKernel;
use super::settings::{RunSettings, SettingsError};
use crate::inputs::scenario::Scenario;
use crate::vm::AccelDecision;

struct KernelSlot {
    kernel: SelectedKernel,
    /// Indexes of this kernel's scenarios that the libtest arguments select.
    selected: Vec<usize>,
    outcome: OnceLock<KernelOutcome>,
}

/// What one libtest trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// `<kernel>::<scenario>`, one per scenario: filters pick scenarios.
    PerScenario,
    /// `<kernel>`, one per kernel running all its scenarios: for runners
    /// that start a process per trial (cargo-nextest), where a trial per
    /// scenario would boot the kernel once per scenario.
    PerKernel,
}

/// Makes the run settings (KVM probe, QEMU lookup, cache) on first use.
pub type SettingsMaker = Box<dyn FnOnce() -> Result<RunSettings, SettingsError> + Send>;

pub struct Suite {
    scenarios: Vec<Scenario>,
    kernels: Vec<KernelSlot>,
    settings: OnceLock<Result<RunSettings, (FailureKind, String)>>,
    make_settings: Mutex<Option<SettingsMaker>>,
    events: Arc<EventSink>,
    /// One slot per (kernel, scenario): two trials can never share one,
    /// so no result can stand in for another's.
    records: Mutex<Vec<Option<TrialRecord>>>,
    /// Boots running now, at most `RunSettings::jobs`: kernels boot in
    /// parallel from the first trial on, in the order of the trials.
    booting: Mutex<usize>,
    boot_done: Condvar,
    pool: Once,
    grouping: Grouping,
}

/// A boot's place among the `jobs` that may run at once.
struct Permit<'a> {
    suite: &'a Suite,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut n = self.suite.booting.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.suite.boot_done.notify_one();
    }
}

pub fn trial_name(kernel: &str, scenario: &str) -> String {
    format!("{kernel}::{scenario}")
}

/// The kind libtest shows and filters on: "[vm] <name>" in `--list`.
const KIND: &str = "vm";

impl Suite {
    /// `make_settings` runs at the first trial that needs a VM, so `--list`
    /// or a filter that selects nothing never probes KVM or fetches anything.
    pub fn new(
        scenarios: Vec<Scenario>,
        kernels: Vec<SelectedKernel>,
        args: &Arguments,
        grouping: Grouping,
        make_settings: SettingsMaker,
        events: Arc<EventSink>,
    ) -> Arc<Suite> {
        let kernels: Vec<KernelSlot> = kernels
            .into_iter()
            .map(|kernel| {
                let picked = |name: String| {
                    let t = Trial::test(name, || Ok(())).with_kind(KIND);
                    !args.is_filtered_out(&t) && !args.is_ignored(&t)
                };
                let selected = match grouping {
                    Grouping::PerScenario => (0..scenarios.len())
                        .filter(|&si| picked(trial_name(&kernel.spec.name, &scenarios[si].name)))
                        .collect(),
                    Grouping::PerKernel if picked(kernel.spec.name.clone()) => {
                        (0..scenarios.len()).collect()
                    }
                    Grouping::PerKernel => Vec::new(),
                };
                KernelSlot {
                    kernel,
                    selected,
                    outcome: OnceLock::new(),
                }
            })
            .collect();
        let slots = kernels.len() * scenarios.len();
        Arc::new(Suite {
            scenarios,
            kernels,
            settings: OnceLock::new(),
            make_settings: Mutex::new(Some(make_settings)),
            events,
            records: Mutex::new(vec![None; slots]),
            booting: Mutex::new(0),
            boot_done: Condvar::new(),
            pool: Once::new(),
            grouping,
        })
    }

    /// How many trials the libtest arguments select.
    pub fn selected(&self) -> usize {
        self.kernels.iter().map(|k| k.selected.len()).sum()
    }

    pub fn trials(self: &Arc<Self>) -> Vec<Trial> {
        if self.grouping == Grouping::PerKernel {
            return self.kernel_trials();
        }
        let mut v = Vec::new();
        for (ki, k) in self.kernels.iter().enumerate() {
            for (si, sc) in self.scenarios.iter().enumerate() {
                let suite = Arc::clone(self);
                v.push(
                    Trial::ignorable_test(trial_name(&k.kernel.spec.name, &sc.name), move || {
                        suite.run_trial(ki, si)
                    })
                    .with_kind(KIND),
                );
            }
        }
        v
    }

    fn settings(&self) -> Result<&RunSettings, (FailureKind, String)> {
        self.settings
            .get_or_init(|| {
                let make = self.make_settings.lock().ok().and_then(|mut m| m.take());
                let made = match make {
                    Some(f) => f(),
                    None => {
                        return Err((
                            FailureKind::Environment,
                            "run settings were already consumed".into(),
                        ))
                    }
                };
                match made {
                    Ok(s) => {
                        (self.events)(&RunEvent::Accel(s.accel.current()));
                        Ok(s)
                    }
                    Err(e) => Err((e.class().into(), e.to_string())),
                }
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn permit(&self, jobs: usize) -> Permit<'_> {
        let mut n = self.booting.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= jobs.max(1) {
            n = self.boot_done.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
        Permit { suite: self }
    }

    /// Boots every selected kernel, `jobs` at once, in trial order: the
    /// trials then only wait for their kernel's outcome. Whichever of a
    /// worker and a trial asks for a kernel first boots it.
    fn start_pool(self: &Arc<Self>, jobs: usize) {
        self.pool.call_once(|| {
            let next = Arc::new(AtomicUsize::new(0));
            let todo: Vec<usize> = (0..self.kernels.len())
                .filter(|&ki| !self.kernels[ki].selected.is_empty())
                .collect();
            let todo = Arc::new(todo);
            for _ in 0..jobs.min(todo.len()) {
                let (suite, next, todo) = (Arc::clone(self), Arc::clone(&next), Arc::clone(&todo));
                let spawned = std::thread::Builder::new()
                    .name("boot".into())
                    .spawn(move || loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(&ki) = todo.get(i) else { break };
                        let _ = suite.outcome_of(ki);
                    });
                // Without workers the trials boot their kernels themselves.
                if spawned.is_err() {
                    break;
                }
            }
        });
    }

    fn outcome_of(self: &Arc<Self>, ki: usize) -> Result<&KernelOutcome, (FailureKind, String)> {
        let settings = self.settings()?;
        self.start_pool(settings.jobs);
        let slot = &self.kernels[ki];
        Ok(slot.outcome.get_or_init(|| {
            let _permit = self.permit(settings.jobs);
            let selected: Vec<&Scenario> = slot
                .selected
                .iter()
                .map(|&si| &self.scenarios[si])
                .collect();
            run_kernel(&slot.kernel, &selected, settings, &*self.events)
        }))
    }

    fn run_trial(self: &Arc<Self>, ki: usize, si: usize) -> Result<Completion, Failed> {
        let start = Instant::now();
        let scenario = &self.scenarios[si].name;
        let (outcome, duration_ms, observations) = match self.outcome_of(ki) {
            Err((kind, message)) => (
                TrialOutcome::failed(kind, message),
                start.elapsed().as_millis() as u64,
                None,
            ),
            Ok(ko) => match ko.results.get(scenario) {
                Some(r) => (r.outcome.clone(), r.duration_ms, r.observations.clone()),
                None => (
                    TrialOutcome::failed(
                        FailureKind::Check,
                        format!("no result for {scenario} (it was not selected when the suite was planned)"),
                    ),
                    0,
                    None,
                ),
            },
        };
        let kernel = &self.kernels[ki].kernel.spec.name;
        if let Ok(mut r) = self.records.lock() {
            r[ki * self.scenarios.len() + si] = Some(TrialRecord {
                name: trial_name(kernel, scenario),
                kernel: kernel.clone(),
                scenario: scenario.clone(),
                outcome: outcome.clone(),
                duration_ms,
                observations,
            });
        }
        match outcome {
            TrialOutcome::Passed => Ok(Completion::Completed),
            // libtest has no word for it; the report and JUnit have, and
            // the event says it as it happens.
            TrialOutcome::Flaky { .. } => Ok(Completion::Completed),
            TrialOutcome::Ignored { reason } => Ok(Completion::ignored_with(reason)),
            TrialOutcome::Failed { message, .. } => Err(message.into()),
        }
    }

    fn kernel_trials(self: &Arc<Self>) -> Vec<Trial> {
        (0..self.kernels.len())
            .map(|ki| {
                let suite = Arc::clone(self);
                Trial::test(self.kernels[ki].kernel.spec.name.clone(), move || {
                    suite.run_kernel_trial(ki)
                })
                .with_kind(KIND)
            })
            .collect()
    }

    /// Every scenario of a kernel as one trial: it fails with each failed
    /// scenario's message; ignored and flaky ones do not fail it.
    fn run_kernel_trial(self: &Arc<Self>, ki: usize) -> Result<(), Failed> {
        let failures: Vec<String> = self.kernels[ki]
            .selected
            .clone()
            .into_iter()
            .filter_map(|si| match self.run_trial(ki, si) {
                Err(f) => Some(format!(
                    "---- {} ----\n{}",
                    trial_name(&self.kernels[ki].kernel.spec.name, &self.scenarios[si].name),
                    f.message().unwrap_or("failed")
                )),
                Ok(_) => None,
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n").into())
        }
    }

    /// What ran, in trial order.
    pub fn trial_records(&self) -> Vec<TrialRecord> {
        self.records
            .lock()
            .map(|r| r.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// The kernels that were run (booted or not), in order.
    pub fn kernel_records(&self) -> Vec<KernelRecord> {
        self.kernels
            .iter()
            .filter_map(|k| k.outcome.get().map(|o| o.record.clone()))
            .collect()
    }

    /// The accelerator at the end of the run (a boot may have stepped
    /// back from KVM to TCG).
    pub fn accel(&self) -> Option<AccelDecision> {
        match self.settings.get() {
            Some(Ok(s)) => Some(s.accel.current()),
            _ => None,
        }
    }
}
