//! The library's dependencies point one way: each top-level module uses
//! only those before it in `LAYERS`, and inside a module no two files use
//! each other (directly or around a loop). Read from the sources, so a new
//! `use` that breaks the flow fails `cargo test`, with the offending file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The flow of a run, first to last.
const LAYERS: [&str; 11] = [
    "support", "inputs", "debian", "kernel", "kbuild", "boot", "vm", "target", "run", "report",
    "bisect",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crate::<layer>` names in a file's code (comments left out).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + 7..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
            rest = after;
        }
    }
    out
}

/// The layer a file belongs to, and its module name within the layer
/// (`mod` for the layer's own mod.rs, which may hold shared types).
fn place(rel: &Path) -> Option<(String, String)> {
    let mut comps = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = comps.next()?;
    let layer = first.trim_end_matches(".rs").to_string();
    let module = match comps.next() {
        Some(m) => m.trim_end_matches(".rs").to_string(),
        None => "mod".into(),
    };
    LAYERS.contains(&layer.as_str()).then_some((layer, module))
}

#[test]
fn layers_point_one_way() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut bad = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap_or(f);
        let Some((layer, _)) = place(rel) else {
            continue;
        };
        let rank = LAYERS.iter().position(|l| *l == layer).unwrap_or(0);
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for used in crate_refs(&text) {
            let Some(r) = LAYERS.iter().position(|l| *l == used) else {
                continue;
            };
            if used != layer {
                graph.entry(layer.clone()).or_default().insert(used.clone());
            }
            if r > rank {
                bad.push(format!(
                    "{} uses crate::{used}, a later layer",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "dependencies against the flow:\n{}",
        bad.join("\n")
    );
    // For the record (`cargo test layers -- --nocapture`).
    for (l, uses) in &graph {
        println!(
            "{l} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
}

/// `super::x` / `crate::<layer>::x` references between files of one layer.
fn sibling_refs(text: &str, layer: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for prefix in ["super::".to_string(), format!("crate::{layer}::")] {
            let mut rest = code;
            while let Some(i) = rest.find(&prefix) {
                let after = &rest[i + prefix.len()..];
                let group: Vec<String> = if let Some(inner) = after.strip_prefix('{') {
                    inner
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|s| s.trim().split("::").next().unwrap_or("").to_string())
                        .collect()
                } else {
                    vec![after
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect()]
                };
                out.extend(group.into_iter().filter(|g| siblings.contains(g)));
                rest = after;
            }
        }
    }
    out
}

#[test]
fn no_two_files_of_a_layer_use_each_other() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut by_layer: BTreeMap<String, Vec<(String, PathBuf)>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src()).unwrap_or(&f).to_path_buf();
        // Files two folders down (boot/modules/elf.rs) form their own group.
        if rel.components().count() > 2 {
            continue;
        }
        if let Some((layer, module)) = place(&rel) {
            if module != "mod" && !module.ends_with("_tests") {
                by_layer.entry(layer).or_default().push((module, f));
            }
        }
    }
    let mut cycles = Vec::new();
    for (layer, mods) in &by_layer {
        let names: BTreeSet<String> = mods.iter().map(|(m, _)| m.clone()).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (m, f) in mods {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            // A folder module (boot/modules/) is read as its mod.rs.
            let text = if f.is_dir() {
                std::fs::read_to_string(f.join("mod.rs")).unwrap_or_default()
            } else {
                text
            };
            let mut refs = sibling_refs(&text, layer, &names);
            refs.remove(m);
            edges.insert(m.clone(), refs);
        }
        for start in &names {
            // Depth-first: can `start` reach itself?
            let mut stack: Vec<Vec<String>> = vec![vec![start.clone()]];
            let mut seen = BTreeSet::new();
            while let Some(path) = stack.pop() {
                let last = path.last().cloned().unwrap_or_default();
                for next in edges.get(&last).into_iter().flatten() {
                    if next == start {
                        let mut p = path.clone();
                        p.push(next.clone());
                        cycles.push(format!("{layer}: {}", p.join(" -> ")));
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push(p);
                    }
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(
        cycles.is_empty(),
        "files that use each other:\n{}",
        cycles.join("\n")
    );
}
