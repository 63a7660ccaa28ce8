//! `btfvm bisect --kernels K1,K2,...` and `--tree T --paholes P1,P2,...`:
//! the first item of an ordered list whose verdict differs from the
//! first item's (`btfvm::bisect::list` picks the steps).

use std::process::ExitCode;

use anyhow::anyhow;
use btfvm::bisect::journal::{Journal, Question};
use btfvm::bisect::list::{ListSearch, Next};
use btfvm::bisect::Role;
use btfvm::inputs::build_spec::{BuildSpec, PaholeChoice, TreeSource};
use btfvm::inputs::kernelspec::{self, KernelSpec};
use btfvm::inputs::source::KernelSource;
use btfvm::run::select::{select, KernelRequest, SelectedKernel};

use crate::bisect_cmd::{
    finish, fragment_parts, journal, role_word, say_tested, step_ctx, verdict_word, BisectArgs,
    Common,
};
use crate::exit::{self, Classified, CmdResult};

/// One item: the word it was given as, and the kernel it names.
struct Item {
    word: String,
    kernel: SelectedKernel,
}

pub fn kernels(a: &BisectArgs, c: &Common, words: &[String]) -> CmdResult {
    let dir = a.vm.kernels_dir().path;
    let specs = kernelspec::load_dir(&dir).map_err(Classified::input)?;
    // Every word resolved before the first boot: a typo in the fifth must
    // not wait for four steps.
    let mut items = Vec::new();
    for w in words {
        let req = KernelRequest {
            words: vec![w.clone()],
            all: false,
            modules: None,
            config: None,
            fragments_dir: dir.join("fragments"),
        };
        let mut found = select(&req, &specs).map_err(Classified::input)?;
        let kernel = found
            .pop()
            .ok_or_else(|| Classified::input(anyhow!("--kernels: {w:?} names no kernel")))?;
        items.push(Item {
            word: w.clone(),
            kernel,
        });
    }
    let mut parts: Vec<String> = items
        .iter()
        .map(|i| format!("kernel {}: {}", i.word, i.kernel.spec.source))
        .collect();
    parts.extend(c.parts.iter().cloned());
    run_list(
        a,
        c,
        Question {
            kind: "kernels".into(),
            parts,
        },
        items,
    )
}

fn tree_label(t: &TreeSource) -> String {
    match t {
        TreeSource::Debian { suite, .. } => format!("linux-{suite}"),
        TreeSource::Path(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tree".into()),
    }
}

pub fn paholes(
    a: &BisectArgs,
    c: &Common,
    tree: TreeSource,
    paholes: &[PaholeChoice],
) -> CmdResult {
    if a.pahole != "host" {
        return Err(Classified::input(anyhow!(
            "btfvm bisect: --paholes is the list of paholes; --pahole does not apply"
        )));
    }
    let label = tree_label(&tree);
    let items: Vec<Item> = paholes
        .iter()
        .zip(&a.paholes)
        .map(|(p, word)| {
            let spec = BuildSpec {
                tree: tree.clone(),
                fragments: c.fragments.clone(),
                pahole: p.clone(),
                fragments_dir: c.fragments_dir.clone(),
            };
            let name: String = format!("{label}@{}", p.label())
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || "-_.@".contains(ch) {
                        ch
                    } else {
                        '-'
                    }
                })
                .collect();
            Item {
                word: word.clone(),
                kernel: SelectedKernel {
                    spec: KernelSpec::adhoc(name, KernelSource::Build(spec)),
                    resolved: None,
                },
            }
        })
        .collect();
    let mut parts = vec![
        format!("tree: {tree:?}"),
        format!("paholes: {}", a.paholes.join(", ")),
    ];
    parts.extend(fragment_parts(c, tree)?);
    parts.extend(c.parts.iter().cloned());
    run_list(
        a,
        c,
        Question {
            kind: "paholes".into(),
            parts,
        },
        items,
    )
}

/// The answer once the search is done.
fn list_answer(next: Next, j: &Journal, words: &[String]) -> (String, ExitCode, serde_json::Value) {
    let w = |i: usize| words[i].as_str();
    let step = |i: usize| j.find(w(i));
    let verdict = |i: usize| {
        step(i)
            .map(|s| verdict_word(s.tested.verdict))
            .unwrap_or("?")
    };
    let reason = |i: usize| step(i).map(|s| s.tested.reason.clone()).unwrap_or_default();
    let failed = ExitCode::from(exit::FAILED);
    match next {
        Next::Flip { before, at } => (
            format!(
                "first flip: {} ({}) after {} ({})\n  {}",
                w(at),
                verdict(at),
                w(before),
                verdict(before),
                reason(at).replace('\n', "\n  ")
            ),
            ExitCode::SUCCESS,
            serde_json::json!({"flip": {"before": w(before), "at": w(at), "reason": reason(at)}}),
        ),
        Next::Among { before, at } => (
            format!(
                "items that could not be tested hide the flip: it is after {} and at or before {}",
                w(before),
                w(at)
            ),
            failed,
            serde_json::json!({"among": {"after": w(before), "at_or_before": w(at)}}),
        ),
        Next::NoFlip => (
            format!(
                "nothing flips: the last item ({}) is {} like the first ({}); give a list whose ends differ",
                w(words.len() - 1),
                verdict(0),
                w(0)
            ),
            failed,
            serde_json::json!({"no_flip": verdict(0)}),
        ),
        Next::EndUntestable(i) => (
            format!(
                "{} cannot be tested, so there is nothing to bisect:\n  {}",
                w(i),
                reason(i)
            ),
            failed,
            serde_json::json!({"untestable_end": w(i), "reason": reason(i)}),
        ),
        Next::Test(i) => (
            format!("internal: {} is still to be tested", w(i)),
            failed,
            serde_json::Value::Null,
        ),
    }
}

fn run_list(a: &BisectArgs, c: &Common, q: Question, items: Vec<Item>) -> CmdResult {
    let mut j = journal(a, c, q)?;
    let ctx = step_ctx(a, c, &j)?;
    let n = items.len();
    let mut search = ListSearch::new(n);
    for (i, it) in items.iter().enumerate() {
        if let Some(s) = j.find(&it.word) {
            crate::say!(
                "btfvm: bisect: {}: {} (tested by an earlier run)",
                it.word,
                verdict_word(s.tested.verdict)
            );
            search.set(i, s.tested.verdict);
        }
    }
    let words: Vec<String> = items.iter().map(|i| i.word.clone()).collect();
    let word = |i: usize| words[i].as_str();
    loop {
        let (text, status, result) = match search.next() {
            Next::Test(i) => {
                let role = match i {
                    0 => Role::First,
                    x if x + 1 == n => Role::Last,
                    _ => Role::Step,
                };
                crate::say!(
                    "btfvm: bisect: testing {} ({}, {} of {n})",
                    word(i),
                    role_word(role),
                    i + 1
                );
                let t = match crate::bisect_step::test_kernel(&ctx, items[i].kernel.clone()) {
                    Ok(t) => t,
                    Err(e) => {
                        if matches!(e.class, btfvm::support::ErrorClass::Interrupted(_)) {
                            crate::say!(
                                "btfvm: bisect: stopped; the same command resumes where it stopped"
                            );
                        }
                        return Err(e);
                    }
                };
                say_tested(word(i), &t);
                search.set(i, t.verdict);
                j.add(word(i), &items[i].kernel.spec.name, role, t)
                    .map_err(Classified::env)?;
                continue;
            }
            other => list_answer(other, &j, &words),
        };
        finish(&j, &text, result)?;
        return Ok(status);
    }
}
