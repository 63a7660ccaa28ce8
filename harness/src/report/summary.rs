//! The GitHub Actions step summary: a table per kernel and the failures,
//! in Markdown, for `$GITHUB_STEP_SUMMARY`.

use super::Report;
use crate::run::outcome::TrialOutcome;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::from(
        "### btfvm\n\n| kernel | origin | passed | failed | ignored | flaky |\n|---|---|---|---|---|---|\n",
    );
    let mut names: Vec<&str> = Vec::new();
    for t in &report.trials {
        if !names.contains(&t.kernel.as_str()) {
            names.push(&t.kernel);
        }
    }
    for name in &names {
        let (mut p, mut f, mut i, mut fl) = (0, 0, 0, 0);
        for t in report.trials.iter().filter(|t| t.kernel == *name) {
            match t.outcome {
                TrialOutcome::Passed => p += 1,
                TrialOutcome::Failed { .. } => f += 1,
                TrialOutcome::Ignored { .. } => i += 1,
                TrialOutcome::Flaky { .. } => fl += 1,
            }
        }
        let origin = report
            .kernels
            .iter()
            .find(|k| k.name == *name)
            .and_then(|k| k.origin.as_deref())
            .unwrap_or("-");
        out.push_str(&format!(
            "| {} | {} | {p} | {f} | {i} | {fl} |\n",
            cell(name),
            cell(origin)
        ));
    }
    let failed: Vec<_> = report
        .trials
        .iter()
        .filter_map(|t| t.outcome.failure().map(|(_, m)| (t, m)))
        .collect();
    if !failed.is_empty() {
        out.push_str("\n| failed trial | why |\n|---|---|\n");
        for (t, m) in failed {
            let first = m.lines().next().unwrap_or("");
            out.push_str(&format!("| `{}` | {} |\n", t.name, cell(first)));
        }
    }
    out
}
