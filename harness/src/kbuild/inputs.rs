//! Everything that changes a build's output, gathered and hashed into the
//! key its cache entry is named by.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{config, make, pahole, source, testmod, BuildError, BuildEvent, BuildOptions};
use crate::inputs::build_spec::BuildSpec;
use crate::support::cache::Cache;
use crate::support::{hex, which};

/// Bump when the way a kernel is built changes, to retire cached results.
const RECIPE: &str = "btfvm-build-1";

/// Everything that changes a build's output, hashed.
pub(super) struct Inputs {
    pub spec: BuildSpec,
    pub tree: source::Tree,
    pub pahole: pahole::Pahole,
    pub fragments: Vec<config::Fragment>,
    pub compiler: String,
    pub linker: String,
    pub key: String,
    /// Cache folder name: readable prefix plus the key.
    pub name: String,
}

/// Packages that provide what a kernel build runs, for the error message.
const TOOLS: [(&str, &str); 7] = [
    ("make", "make"),
    ("gcc", "gcc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("xz", "xz-utils"),
    ("perl", "perl"),
];

fn check_tools() -> Result<(), BuildError> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(p, _)| which(p).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    // objtool (x86-64) links against libelf.
    if !Path::new("/usr/include/libelf.h").exists() && !Path::new("/usr/include/gelf.h").exists() {
        missing.push("libelf-dev");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(BuildError::MissingTool {
        what: missing.join(", "),
        hint: format!(
            "sudo apt-get install --no-install-recommends {} (see .ci/run for the full list)",
            missing.join(" ")
        ),
    })
}

/// A fragment's name without its folder.
fn fragment_label(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

pub(super) fn gather(
    spec: &BuildSpec,
    cache: &Cache,
    opts: &BuildOptions,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<Inputs, BuildError> {
    check_tools()?;
    let fragments = config::load_fragments(spec)?;
    let tree = source::prepare(&spec.tree, cache, opts.mirror.as_deref(), events)?;
    let pahole = pahole::resolve(&spec.pahole, cache, opts.mirror.as_deref(), events)?;
    let compiler = make::tool_version("gcc").unwrap_or_else(|| "gcc (unknown)".into());
    let linker = make::tool_version("ld").unwrap_or_else(|| "ld (unknown)".into());
    let mut h = Sha256::new();
    for part in [
        RECIPE,
        &tree.identity,
        &pahole.identity,
        &compiler,
        &linker,
        &testmod::sources_hash(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for f in &fragments {
        // A fragment given by path is keyed by its file name and content,
        // not its folder: config bisect writes its candidates into a fresh
        // temporary folder each time, and keying on that rebuilt every
        // candidate on every run (the configs test: 180 s cached).
        h.update(fragment_label(&f.name).as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    let key = hex(&h.finalize());
    let pv = pahole
        .version
        .clone()
        .unwrap_or_else(|| "none".into())
        .replace('/', "_");
    let name = format!(
        "{}_{}_pahole-{pv}_{}",
        tree.label,
        spec.fragments
            .iter()
            .map(|f| fragment_label(f).trim_end_matches(".config"))
            .collect::<Vec<_>>()
            .join("+"),
        &key[..12]
    );
    Ok(Inputs {
        spec: spec.clone(),
        tree,
        pahole,
        fragments,
        compiler,
        linker,
        key,
        name,
    })
}
