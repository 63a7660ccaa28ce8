//! Runs a plan: each scenario's steps in order, one message per event.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use btfvm_proto::{Message, Outcome, Plan};

use crate::agent::{Agent, Scenario};
use crate::kernel::Kernel;

pub fn run<K: Kernel>(plan: &Plan, agent: &mut Agent<'_, K>, send: &mut dyn FnMut(&Message)) {
    for sc in &plan.scenarios {
        send(&Message::ScenarioStarted {
            name: sc.name.clone(),
        });
        let start = Instant::now();
        let mut state = Scenario::new(agent.kmsg_mark());
        // A panicking check fails its scenario, not the boot: the remaining
        // scenarios still run and the agent still powers off.
        let result = catch_unwind(AssertUnwindSafe(|| {
            for (i, step) in sc.steps.iter().enumerate() {
                let t = Instant::now();
                let r = agent.run_step(&mut state, step);
                state.obs.step_ms.push(millis(t));
                r.map_err(|e| format!("step {} ({}): {e}", i + 1, step_label(step)))?;
            }
            Ok::<(), String>(())
        }));
        let mut outcome = match result {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(message)) => Outcome::Failed { message },
            Err(panic) => Outcome::Failed {
                message: format!("agent panicked: {}", panic_text(&panic)),
            },
        };
        let t = Instant::now();
        agent.snapshot(&mut state);
        let problems = agent.cleanup(&mut state);
        state.obs.step_ms.push(millis(t));
        if !problems.is_empty() {
            // A module that will not unload poisons every later scenario.
            outcome = match outcome {
                Outcome::Passed => Outcome::Failed {
                    message: problems.join("; "),
                },
                Outcome::Failed { message } => Outcome::Failed {
                    message: format!("{message}; {}", problems.join("; ")),
                },
                o => o,
            };
        }
        send(&Message::ScenarioFinished {
            name: sc.name.clone(),
            outcome,
            duration_ms: start.elapsed().as_millis() as u64,
            observations: state.obs,
        });
    }
}

fn millis(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_millis()).unwrap_or(u32::MAX)
}

fn step_label(step: &btfvm_proto::Step) -> String {
    let json = serde_json::to_value(step).unwrap_or_default();
    let kind = match &json {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    match step.module_name() {
        Some(m) => format!("{kind} {m}"),
        None => kind,
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}
