//! `btfvm bisect --tree T --good-config A --bad-config B`: the smallest
//! set of options whose change breaks the scenarios. Each candidate goes
//! through `make olddefconfig` first (seconds); its final .config is the
//! step's identity, so two requests that Kconfig turns into the same
//! config are tested once, and a resumed run reuses every verdict.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use btfvm::bisect::configs::{candidate, diff, minimize, Change, Minimal, Probe};
use btfvm::bisect::journal::{Journal, Question};
use btfvm::bisect::{Role, Verdict};
use btfvm::inputs::build_spec::{BuildSpec, PaholeChoice, TreeSource};
use btfvm::inputs::kernelspec::KernelSpec;
use btfvm::inputs::source::KernelSource;
use btfvm::kbuild::config::parse_dot_config;
use btfvm::kbuild::probe::olddefconfig;
use btfvm::kbuild::BuildOptions;
use btfvm::run::select::SelectedKernel;
use btfvm::support::fsread;
use btfvm::support::hex;
use sha2::{Digest, Sha256};

use crate::bisect_cmd::{finish, journal, say_tested, step_ctx, verdict_word, BisectArgs, Common};
use crate::bisect_step::{test_kernel, StepCtx};
use crate::exit::{self, Classified, CmdResult};
use crate::progress::Printer;

/// A distribution's .config is about 250 KiB.
const CONFIG_CAP: u64 = 16 << 20;

fn read_config(p: &Path) -> Result<String, Classified> {
    let text = fsread::read_text(p, CONFIG_CAP, "a kernel .config").map_err(Classified::input)?;
    if parse_dot_config(&text).is_empty() {
        return Err(Classified::input(anyhow!(
            "{}: no CONFIG_ line: not a kernel .config",
            p.display()
        )));
    }
    Ok(text)
}

fn build_err(e: btfvm::kbuild::BuildError) -> Classified {
    Classified::new(e.class(), e)
}

fn list(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| format!("  {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn names(changes: &[Change]) -> String {
    let n: Vec<&str> = changes.iter().map(|c| c.option.as_str()).collect();
    match n.len() {
        0 => "no change".into(),
        1..=4 => n.join(", "),
        k => format!("{}, ... ({k} options)", n[..3].join(", ")),
    }
}

/// What every candidate of one config bisect shares.
struct Probing<'a> {
    tree: TreeSource,
    pahole: PaholeChoice,
    good_final: String,
    good_values: BTreeMap<String, String>,
    c: &'a Common,
    ctx: StepCtx<'a>,
    opts: BuildOptions,
}

impl Probing<'_> {
    fn resolve(&self, text: &str) -> Result<String, Classified> {
        let mut printer = Printer::new("olddefconfig");
        olddefconfig(
            &self.tree,
            &self.pahole,
            text,
            &self.c.cache,
            &self.opts,
            &mut |e| {
                if !matches!(e, btfvm::kbuild::BuildEvent::Make { .. }) {
                    printer.event(e)
                }
            },
        )
        .map_err(build_err)
    }

    /// The candidate with `set` changed: its effective change and verdict.
    fn probe(&self, j: &mut Journal, set: &[Change], role: Role) -> Result<Probe, Classified> {
        let text = candidate(&self.good_final, set);
        let final_text = self.resolve(&text)?;
        let effective = diff(&self.good_values, &parse_dot_config(&final_text));
        let key = hex(&Sha256::digest(final_text.as_bytes())[..6]);
        let label = format!("asked: {}; changes: {}", names(set), names(&effective));
        if let Some(s) = j.find(&key) {
            crate::say!(
                "btfvm: bisect: config {key} ({label}): {} (tested before)",
                verdict_word(s.tested.verdict)
            );
            return Ok(Probe {
                verdict: s.tested.verdict,
                effective,
            });
        }
        crate::say!("btfvm: bisect: testing config {key} ({label})");
        let frag = j
            .write(&format!("configs/{key}.config"), final_text.as_bytes())
            .map_err(Classified::env)?;
        let spec = BuildSpec {
            tree: self.tree.clone(),
            fragments: vec![frag.display().to_string()],
            pahole: self.pahole.clone(),
            fragments_dir: self.c.fragments_dir.clone(),
        };
        let kernel = SelectedKernel {
            spec: KernelSpec::adhoc(format!("config-{key}"), KernelSource::Build(spec)),
            resolved: None,
        };
        let t = test_kernel(&self.ctx, kernel)?;
        say_tested(&format!("config {key}"), &t);
        let verdict = t.verdict;
        j.add(&key, &label, role, t).map_err(Classified::env)?;
        Ok(Probe { verdict, effective })
    }
}

/// What to print and result.json's part.
fn answer(found: &Minimal, differ: usize, reason: &str) -> (String, serde_json::Value) {
    let followed: Vec<Change> = found
        .effective
        .iter()
        .filter(|e| !found.options.iter().any(|o| o.option == e.option))
        .cloned()
        .collect();
    let mut text = format!(
        "smallest set of options that breaks it ({} of the {} that differ):\n{}",
        found.options.len(),
        differ,
        list(&found.options)
    );
    if !followed.is_empty() {
        text.push_str(&format!(
            "\nwith it, by Kconfig's dependencies:\n{}",
            list(&followed)
        ));
    }
    if found.untestable > 0 {
        text.push_str(&format!(
            "\n({} candidate(s) could not be built or booted and counted as not bad)",
            found.untestable
        ));
    }
    text.push_str(&format!("\n  {}", reason.replace('\n', "\n  ")));
    let result = serde_json::json!({
        "options": found.options,
        "followed": followed,
        "untestable": found.untestable,
        "reason": reason,
    });
    (text, result)
}

pub fn configs(a: &BisectArgs, c: &Common, tree: TreeSource, good: &Path, bad: &Path) -> CmdResult {
    let good_text = read_config(good)?;
    let bad_text = read_config(bad)?;
    let opts = BuildOptions {
        mirror: a.vm.debian_mirror.clone(),
        ..Default::default()
    };
    let mut printer = Printer::new("tree");
    let prepared =
        btfvm::kbuild::source::prepare(&tree, &c.cache, opts.mirror.as_deref(), &mut |e| {
            printer.event(e)
        })
        .map_err(|e| Classified::new(e.class(), e))?;
    drop(printer);
    let (pahole, note) = c.pahole.for_tree(&prepared.dir)?;
    if let Some(n) = &note {
        crate::say!("btfvm: bisect: {n}");
    }
    let sha = |t: &str| hex(&Sha256::digest(t.as_bytes())[..8]);
    let mut parts = vec![
        format!("tree: {}", prepared.identity),
        format!("good config: {} ({})", good.display(), sha(&good_text)),
        format!("bad config: {} ({})", bad.display(), sha(&bad_text)),
        format!("pahole: {}", a.pahole),
    ];
    parts.extend(c.parts.iter().cloned());
    let mut j = journal(
        a,
        c,
        Question {
            kind: "configs".into(),
            parts,
        },
    )?;
    let ctx = step_ctx(a, c, &j)?;
    let mut p = Probing {
        tree,
        pahole,
        good_final: String::new(),
        good_values: BTreeMap::new(),
        c,
        ctx,
        opts,
    };
    // Both ends as Kconfig has them in this tree with this pahole.
    p.good_final = p.resolve(&good_text)?;
    p.good_values = parse_dot_config(&p.good_final);
    let bad_final = p.resolve(&bad_text)?;
    let all = diff(&p.good_values, &parse_dot_config(&bad_final));
    if all.is_empty() {
        println!("the two configs are the same after make olddefconfig: nothing to bisect");
        return Ok(ExitCode::from(exit::FAILED));
    }
    crate::say!(
        "btfvm: bisect: {} option(s) differ after olddefconfig",
        all.len()
    );
    let g = p.probe(&mut j, &[], Role::Good)?;
    let b = p.probe(&mut j, &all, Role::Bad)?;
    for (probe, want, end) in [(&g, Verdict::Good, "good"), (&b, Verdict::Bad, "bad")] {
        if probe.verdict != want {
            println!(
                "the {end} config is {}, so there is nothing to bisect",
                verdict_word(probe.verdict)
            );
            return Ok(ExitCode::from(exit::FAILED));
        }
    }
    let found = minimize(&all, &mut |set| p.probe(&mut j, set, Role::Step))?;
    // The verdict of the answer's own config, for its reason.
    let key_text = p.resolve(&candidate(&p.good_final, &found.options))?;
    let key = hex(&Sha256::digest(key_text.as_bytes())[..6]);
    let reason = j
        .find(&key)
        .map(|s| s.tested.reason.clone())
        .unwrap_or_default();
    let (text, result) = answer(&found, all.len(), &reason);
    finish(&j, &text, result)?;
    Ok(ExitCode::SUCCESS)
}
