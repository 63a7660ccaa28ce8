//! What a bisect asks of a tree before it builds: the kernel version of
//! the commit checked out, the pahole that can build it (`--pahole auto`),
//! and what `make olddefconfig` makes of a candidate .config.

use std::fs;
use std::path::Path;

use super::make::{Make, MakeError};
use super::{pahole, source, BuildError, BuildEvent, BuildOptions};
use crate::inputs::build_spec::{PaholeChoice, TreeSource};
use crate::support::cache::{Cache, CacheError};

/// VERSION.PATCHLEVEL.SUBLEVEL from a tree's top Makefile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TreeVersion(pub u32, pub u32, pub u32);

impl std::fmt::Display for TreeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The version a top Makefile declares (`VERSION = 6` ...).
pub fn makefile_version(text: &str) -> Option<TreeVersion> {
    let field = |name: &str| -> Option<u32> {
        text.lines().take(20).find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
        })
    };
    Some(TreeVersion(
        field("VERSION")?,
        field("PATCHLEVEL")?,
        field("SUBLEVEL").unwrap_or(0),
    ))
}

pub fn tree_version(dir: &Path) -> Option<TreeVersion> {
    makefile_version(&fs::read_to_string(dir.join("Makefile")).ok()?)
}

/// `--pahole auto`: the pahole of the Debian suite that shipped the
/// nearest kernel series at or above `v`, among those that work with this
/// host's toolchain (binutils 2.40). Measured by `btfvm matrix`: bookworm's
/// 1.24 built Debian's 6.1 and builds 6.1 here; trixie's 1.30 and sid's
/// 1.32 built 6.12 and 7.2. bullseye's 1.20 (which built 5.10) cannot read
/// what binutils 2.40's assembler emits (DW_TAG_unspecified_type), so older
/// kernels get bookworm's too. Returns the choice and why, for the record.
pub fn auto_pahole(v: TreeVersion) -> (PaholeChoice, String) {
    let (suite, why) = if v < TreeVersion(6, 2, 0) {
        (
            "bookworm",
            "1.24, which built Debian's 6.1 (bullseye's 1.20 cannot read binutils 2.40's DWARF)",
        )
    } else if v < TreeVersion(6, 13, 0) {
        ("trixie", "1.30, which built Debian's 6.12")
    } else {
        ("sid", "1.32, which built Debian's 7.2")
    };
    (
        PaholeChoice::Debian(suite.into()),
        format!("pahole auto: Linux {v} -> debian:{suite} ({why})"),
    )
}

/// The .config `make olddefconfig` makes of `candidate` in `tree`, with
/// the pahole Kconfig will see (the BTF options depend on its version).
/// Takes seconds: only scripts/kconfig is built, in a scratch O= folder.
pub fn olddefconfig(
    tree: &TreeSource,
    pahole_choice: &PaholeChoice,
    candidate: &str,
    cache: &Cache,
    opts: &BuildOptions,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<String, BuildError> {
    let tree = source::prepare(tree, cache, opts.mirror.as_deref(), events)?;
    let pahole = pahole::resolve(pahole_choice, cache, opts.mirror.as_deref(), events)?;
    let scratch = cache.subdir("build/olddefconfig")?;
    let out = scratch.join(&tree.label);
    fs::create_dir_all(&out).map_err(|e| CacheError::io("cannot create", &out, e))?;
    let dot = out.join(".config");
    fs::write(&dot, candidate).map_err(|e| CacheError::io("cannot write", &dot, e))?;
    let make = Make {
        tree: tree.dir.clone(),
        out: out.clone(),
        jobs: 1,
        vars: vec![format!("PAHOLE={}", pahole.program.display())],
        env: Vec::new(),
    };
    let log_path = scratch.join(format!("{}.log", tree.label));
    let mut log = super::make::BuildLog::create(&log_path).map_err(BuildError::Kconfig)?;
    make.run(&["olddefconfig".into()], &mut log, events)
        .map_err(|e| match e {
            MakeError::Interrupted(i) => BuildError::Interrupted(i),
            e => BuildError::Kconfig(e),
        })?;
    fs::read_to_string(&dot).map_err(|e| CacheError::io("cannot read", &dot, e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_the_makefile_and_the_pahole_for_it() {
        let mk = "# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 176\nEXTRAVERSION =\nNAME = Curry Ramen\n";
        assert_eq!(makefile_version(mk), Some(TreeVersion(6, 1, 176)));
        assert_eq!(makefile_version("all:\n"), None);
        let pick = |v| auto_pahole(v).0;
        assert_eq!(
            pick(TreeVersion(5, 10, 0)),
            PaholeChoice::Debian("bookworm".into())
        );
        assert_eq!(
            pick(TreeVersion(6, 1, 176)),
            PaholeChoice::Debian("bookworm".into())
        );
        assert_eq!(
            pick(TreeVersion(6, 12, 1)),
            PaholeChoice::Debian("trixie".into())
        );
        assert_eq!(
            pick(TreeVersion(7, 2, 0)),
            PaholeChoice::Debian("sid".into())
        );
        assert!(auto_pahole(TreeVersion(6, 1, 0))
            .1
            .contains("Linux 6.1.0 -> debian:bookworm"));
    }
}
