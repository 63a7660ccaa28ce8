//! `btfvm bisect --tree T --good R --bad R`: the first bad commit, found
//! by git bisect in a worktree of btfvm's own (`btfvm::bisect::commits`),
//! each step built from that worktree through the build cache and ccache.

use std::path::Path;
use std::process::ExitCode;

use btfvm::bisect::commits::{Bisection, Commit, Event, Found};
use btfvm::bisect::git::Git;
use btfvm::bisect::journal::Question;
use btfvm::bisect::{Role, Tested};
use btfvm::inputs::build_spec::{BuildSpec, TreeSource};
use btfvm::inputs::kernelspec::KernelSpec;
use btfvm::inputs::source::KernelSource;
use btfvm::run::select::SelectedKernel;
use btfvm::support::hex;
use sha2::{Digest, Sha256};

use crate::bisect_cmd::{
    finish, fragment_parts, git_err, journal, role_word, say_tested, step_ctx, stopped,
    verdict_word, BisectArgs, Common,
};
use crate::bisect_step::test_kernel;
use crate::exit::{self, Classified, CmdResult};

/// btfvm's worktree of the repository, locked: one per repository, used
/// by one bisection at a time.
fn worktree(
    c: &Common,
    repo: &Git,
    top: &Path,
    good: &Commit,
) -> Result<(Git, btfvm::support::cache::CacheLock), Classified> {
    let wts = c
        .cache
        .subdir("bisect/worktrees")
        .map_err(Classified::env)?;
    let id = hex(&Sha256::digest(top.display().to_string().as_bytes())[..6]);
    let lock_path = wts.join(format!("{id}.lock"));
    let lock = c
        .cache
        .lock(&lock_path, &mut || {
            crate::say!(
                "btfvm: bisect: waiting for another bisection of {} ({})",
                top.display(),
                lock_path.display()
            )
        })
        .map_err(Classified::env)?;
    let wt_dir = wts.join(&id);
    if !wt_dir.exists() {
        crate::say!(
            "btfvm: bisect: making the worktree {} (a kernel tree: this takes a minute)",
            wt_dir.display()
        );
    }
    let wt = repo.worktree(&wt_dir, &good.sha).map_err(git_err)?;
    Ok((wt, lock))
}

/// The answer: what to print, the exit status, result.json's part.
fn answer(found: &Found) -> (String, ExitCode, serde_json::Value) {
    match found {
        Found::FirstBad { commit, step } => (
            format!(
                "first bad commit: {} {}\n  {}",
                commit.sha,
                commit.subject,
                step.tested.reason.replace('\n', "\n  ")
            ),
            ExitCode::SUCCESS,
            serde_json::json!({
                "first_bad": {"commit": commit.sha.0, "subject": commit.subject,
                              "trial": step.tested.trial, "reason": step.tested.reason}
            }),
        ),
        Found::Among { commits } => (
            format!(
                "commits that could not be tested hide the first bad one; it is one of:\n{}",
                commits
                    .iter()
                    .map(|c| format!("  {} {}", c.sha, c.subject))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            ExitCode::from(exit::FAILED),
            serde_json::json!({
                "among": commits.iter().map(|c| serde_json::json!({"commit": c.sha.0, "subject": c.subject})).collect::<Vec<_>>()
            }),
        ),
    }
}

fn say_event(e: Event<'_>) {
    match e {
        Event::Testing { commit, role, left } => crate::say!(
            "btfvm: bisect: testing {} {} ({}{})",
            commit.sha.short(),
            commit.subject,
            role_word(role),
            if role == Role::Step {
                format!("; about {left} more after it")
            } else {
                String::new()
            }
        ),
        Event::Reused { commit, step } => crate::say!(
            "btfvm: bisect: {} {}: {} (tested by an earlier run)",
            commit.sha.short(),
            commit.subject,
            verdict_word(step.tested.verdict)
        ),
        Event::Tested { commit, tested } => say_tested(commit.sha.short(), tested),
    }
}

pub fn commits(a: &BisectArgs, c: &Common, tree: &Path, good: &str, bad: &str) -> CmdResult {
    let top = Git::toplevel(tree).map_err(git_err)?;
    let repo = Git::at(&top);
    let good = Commit::of(&repo, repo.commit(good).map_err(git_err)?).map_err(git_err)?;
    let bad = Commit::of(&repo, repo.commit(bad).map_err(git_err)?).map_err(git_err)?;
    // Before anything is made for the bisection (its record, a worktree).
    if !repo.is_ancestor(&good.sha, &bad.sha).map_err(git_err)? {
        crate::say!(
            "btfvm: bisect: the good commit {} is no ancestor of the bad commit {}: give a good commit from the bad one's history",
            good.sha.short(),
            bad.sha.short()
        );
        return Ok(ExitCode::from(exit::FAILED));
    }
    let mut parts = vec![
        format!("tree: {}", top.display()),
        format!("good: {}", good.sha),
        format!("bad: {}", bad.sha),
        format!("pahole: {}", a.pahole),
    ];
    parts.extend(fragment_parts(c, TreeSource::Path(top.clone()))?);
    parts.extend(c.parts.iter().cloned());
    let mut j = journal(
        a,
        c,
        Question {
            kind: "commits".into(),
            parts,
        },
    )?;
    let (wt, _lock) = worktree(c, &repo, &top, &good)?;
    let ctx = step_ctx(a, c, &j)?;
    let mut test = |commit: &Commit, _role: Role| -> Result<Tested, Classified> {
        let (pahole, note) = c.pahole.for_tree(&wt.dir)?;
        if let Some(n) = &note {
            crate::say!("btfvm: bisect: {n}");
        }
        let spec = BuildSpec {
            tree: TreeSource::Path(wt.dir.clone()),
            fragments: c.fragments.clone(),
            pahole,
            fragments_dir: c.fragments_dir.clone(),
        };
        let name = format!("git-{}", commit.sha.short());
        let kernel = SelectedKernel {
            spec: KernelSpec::adhoc(name, KernelSource::Build(spec)),
            resolved: None,
        };
        let mut t = test_kernel(&ctx, kernel)?;
        t.pahole = note;
        Ok(t)
    };
    let mut on = say_event;
    let found = Bisection {
        git: &wt,
        journal: &mut j,
        test: &mut test,
        on: &mut on,
    }
    .run(&good, &bad);
    let found = match found {
        Ok(f) => f,
        Err(s) => return stopped(s),
    };
    let (text, status, result) = answer(&found);
    finish(&j, &text, result)?;
    Ok(status)
}
