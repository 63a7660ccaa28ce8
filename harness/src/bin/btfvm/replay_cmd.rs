//! `btfvm replay DIR`: a kept boot judged again, without QEMU, as libtest
//! would have printed it.

use std::path::Path;
use std::process::ExitCode;

use btfvm::run::outcome::TrialOutcome;
use btfvm::run::replay::replay;
use btfvm::run::suite::trial_name;

use crate::exit::{self, Classified, CmdResult};

pub fn replay_cmd(dir: &Path) -> CmdResult {
    let r = replay(dir, &mut |_| {}).map_err(Classified::input)?;
    println!(
        "replaying {} ({} scenario(s)): boot {}",
        r.meta.kernel,
        r.meta.planned.len(),
        btfvm::run::verdict::describe_end(&r.outcome)
    );
    for name in &r.meta.planned {
        let Some(res) = r.results.get(name) else {
            continue;
        };
        let t = trial_name(&r.meta.kernel, name);
        match &res.outcome {
            TrialOutcome::Passed => println!("test {t} ... ok"),
            TrialOutcome::Flaky { attempts, .. } => {
                println!("test {t} ... ok (flaky: passed on attempt {attempts})")
            }
            TrialOutcome::Ignored { reason } => println!("test {t} ... ignored, {reason}"),
            TrialOutcome::Failed { kind, message } => {
                println!("test {t} ... FAILED ({kind:?})\n---- {t} ----\n{message}")
            }
        }
    }
    let status = exit::for_run(
        exit::Mode::Normal,
        r.results.values().map(|r| &r.outcome),
        None,
    );
    Ok(ExitCode::from(status))
}
