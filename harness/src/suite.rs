//! The VM suite as libtest trials: one per kernel and scenario, named
//! `<kernel>::<scenario>`, so filters, `--list`, `--ignored` and `--exact`
//! behave as in any Rust test suite. The first trial of a kernel boots it
//! once for all of that kernel's selected trials.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use btfvm_proto::Outcome;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::kernelrun::{self, EventSink, KernelOutcome, RunSettings};
use crate::kernelspec::KernelSpec;
use crate::report::{KernelRecord, Report, TrialRecord};
use crate::scenario::Scenario;

struct KernelSlot {
    spec: KernelSpec,
    /// Names of this kernel's scenarios that the libtest arguments select.
    selected: Vec<String>,
    outcome: OnceLock<KernelOutcome>,
}

pub struct Suite {
    scenarios: Vec<Scenario>,
    kernels: Vec<KernelSlot>,
    settings: OnceLock<Result<RunSettings, String>>,
    make_settings: Mutex<Option<SettingsMaker>>,
    events: Arc<EventSink>,
    records: Mutex<Vec<TrialRecord>>,
    /// Boots are serialized: two TCG guests and a kernel download on a
    /// 2-core machine only slow each other down, and the console stays
    /// readable.
    boot_lock: Mutex<()>,
}

/// Makes the run settings (KVM probe, QEMU lookup, cache) on first use.
pub type SettingsMaker = Box<dyn FnOnce() -> Result<RunSettings, String> + Send>;

pub fn trial_name(kernel: &str, scenario: &str) -> String {
    format!("{kernel}::{scenario}")
}

impl Suite {
    /// `make_settings` runs at the first trial that needs a VM, so `--list`
    /// or a filter that selects nothing never probes KVM or fetches anything.
    pub fn new(
        scenarios: Vec<Scenario>,
        kernels: Vec<KernelSpec>,
        args: &Arguments,
        make_settings: SettingsMaker,
        events: Arc<EventSink>,
    ) -> Arc<Suite> {
        let kernels = kernels
            .into_iter()
            .map(|spec| {
                let selected = scenarios
                    .iter()
                    .filter(|sc| {
                        // Same name and kind as the real trial: libtest filters match
                        // "[vm] <name>", which is what --list prints.
                        let t = Trial::test(trial_name(&spec.name, &sc.name), || Ok(()))
                            .with_kind("vm");
                        !args.is_filtered_out(&t) && !args.is_ignored(&t)
                    })
                    .map(|sc| sc.name.clone())
                    .collect();
                KernelSlot {
                    spec,
                    selected,
                    outcome: OnceLock::new(),
                }
            })
            .collect();
        Arc::new(Suite {
            scenarios,
            kernels,
            settings: OnceLock::new(),
            make_settings: Mutex::new(Some(make_settings)),
            events,
            records: Mutex::new(Vec::new()),
            boot_lock: Mutex::new(()),
        })
    }

    pub fn trials(self: &Arc<Self>) -> Vec<Trial> {
        let mut v = Vec::new();
        for (ki, k) in self.kernels.iter().enumerate() {
            for sc in &self.scenarios {
                let suite = Arc::clone(self);
                let scenario = sc.name.clone();
                v.push(
                    Trial::ignorable_test(trial_name(&k.spec.name, &sc.name), move || {
                        suite.run_trial(ki, &scenario)
                    })
                    .with_kind("vm"),
                );
            }
        }
        v
    }

    fn settings(&self) -> Result<&RunSettings, String> {
        self.settings
            .get_or_init(|| {
                let make = self.make_settings.lock().ok().and_then(|mut m| m.take());
                match make {
                    Some(f) => f(),
                    None => Err("run settings were already consumed".into()),
                }
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn run_trial(&self, ki: usize, scenario: &str) -> Result<Completion, Failed> {
        let start = Instant::now();
        let slot = &self.kernels[ki];
        let res = self.settings().map(|settings| {
            slot.outcome.get_or_init(|| {
                let _guard = self.boot_lock.lock().unwrap_or_else(|p| p.into_inner());
                let selected: Vec<&Scenario> = self
                    .scenarios
                    .iter()
                    .filter(|s| slot.selected.contains(&s.name))
                    .collect();
                kernelrun::run_kernel(&slot.spec, &selected, settings, &*self.events)
            })
        });
        let (outcome, duration_ms, observations) = match res {
            Err(e) => (Outcome::Failed { message: e }, start.elapsed().as_millis() as u64, None),
            Ok(ko) => match ko.results.get(scenario) {
                Some(r) => (r.outcome.clone(), r.duration_ms, r.observations.clone()),
                None => (
                    Outcome::Failed {
                        message: format!("no result for {scenario} (it was not selected when the suite was planned)"),
                    },
                    0,
                    None,
                ),
            },
        };
        let (label, reason) = match &outcome {
            Outcome::Passed => ("passed", None),
            Outcome::Failed { message } => ("failed", Some(message.clone())),
            Outcome::Ignored { reason } => ("ignored", Some(reason.clone())),
        };
        if let Ok(mut r) = self.records.lock() {
            r.push(TrialRecord {
                name: trial_name(&slot.spec.name, scenario),
                kernel: slot.spec.name.clone(),
                scenario: scenario.to_string(),
                outcome: label.into(),
                reason,
                duration_ms,
                observations,
            });
        }
        match outcome {
            Outcome::Passed => Ok(Completion::Completed),
            Outcome::Ignored { reason } => Ok(Completion::ignored_with(reason)),
            Outcome::Failed { message } => Err(message.into()),
        }
    }

    /// The report of what ran, in trial order.
    pub fn report(&self) -> Report {
        let mut trials = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        let order = |t: &TrialRecord| {
            let k = self
                .kernels
                .iter()
                .position(|k| k.spec.name == t.kernel)
                .unwrap_or(0);
            let s = self
                .scenarios
                .iter()
                .position(|s| s.name == t.scenario)
                .unwrap_or(0);
            (k, s)
        };
        trials.sort_by_key(order);
        let kernels: Vec<KernelRecord> = self
            .kernels
            .iter()
            .filter_map(|k| k.outcome.get().map(|o| o.record.clone()))
            .collect();
        let (accel, accel_reason) = match self.settings.get() {
            Some(Ok(s)) => (
                Some(s.accel.accel.to_string()),
                Some(s.accel.reason.clone()),
            ),
            _ => (None, None),
        };
        let mut r = Report {
            schema: crate::report::SCHEMA,
            btfvm: env!("CARGO_PKG_VERSION").into(),
            accel,
            accel_reason,
            kernels,
            trials,
            summary: Default::default(),
        };
        r.summarize();
        r
    }
}
