//! The repo's test module (testmod/), built against each built tree. Its
//! sources are compiled into btfvm so that the binary alone can build it,
//! and so that their hash is part of every build's cache key.

use std::fs;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};
use sha2::{Digest, Sha256};

use super::make::{BuildLog, Make, MakeError};
use super::BuildEvent;
use crate::support::hex;

pub const MODULE: &str = "btfvm_test";

/// Added to a built kernel's config, after its own options: scenarios about
/// the test module `require` it, so kernels without it ignore them.
pub const MARKER_OPTION: &str = "CONFIG_BTFVM_TEST_MODULE";

const SOURCES: [(&str, &str); 2] = [
    (
        "btfvm_test.c",
        include_str!("../../../testmod/btfvm_test.c"),
    ),
    ("Kbuild", include_str!("../../../testmod/Kbuild")),
];

#[derive(Debug, thiserror::Error)]
pub enum TestModError {
    #[error(transparent)]
    Make(#[from] MakeError),
    #[error("test module: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "test module {MODULE}: kbuild said {line:?} although the tree has \
         CONFIG_DEBUG_INFO_BTF_MODULES=y: the module has no BTF"
    )]
    SkippedBtf { line: String },
    #[error("test module {}: {problem}", ko.display())]
    Btf { ko: PathBuf, problem: String },
}

pub fn sources_hash() -> String {
    let mut h = Sha256::new();
    for (name, text) in SOURCES {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..8])
}

#[derive(Debug, Clone)]
pub struct TestModule {
    pub ko: PathBuf,
    /// Size of its .BTF section; None when it has none.
    pub btf_bytes: Option<u64>,
}

/// Builds the module in `dir` against the tree `make` builds, and checks
/// that it has BTF exactly when the tree makes module BTF.
pub fn build(
    make: &Make,
    dir: &Path,
    btf_expected: bool,
    log: &mut BuildLog,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<TestModule, TestModError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| TestModError::Io { what, path, source }
    };
    fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    for (name, text) in SOURCES {
        let p = dir.join(name);
        fs::write(&p, text).map_err(io("cannot write", &p))?;
    }
    let lines = make.run(
        &[format!("M={}", dir.display()), "modules".into()],
        log,
        events,
    )?;
    // kbuild builds the module anyway and only prints this: a module
    // without BTF where BTF is expected would pass unnoticed otherwise.
    if btf_expected {
        if let Some(l) = lines.iter().find(|l| l.contains("Skipping BTF generation")) {
            return Err(TestModError::SkippedBtf { line: l.clone() });
        }
    }
    let ko = dir.join(format!("{MODULE}.ko"));
    let bytes = fs::read(&ko).map_err(io("cannot read", &ko))?;
    let btf_bytes = btf_section_size(&bytes).map_err(|problem| TestModError::Btf {
        ko: ko.clone(),
        problem,
    })?;
    match (btf_expected, btf_bytes) {
        (true, None) => Err(TestModError::Btf {
            ko,
            problem: "no .BTF section although the tree has CONFIG_DEBUG_INFO_BTF_MODULES=y".into(),
        }),
        (false, Some(n)) => Err(TestModError::Btf {
            ko,
            problem: format!(
                "a {n}-byte .BTF section although the tree has no CONFIG_DEBUG_INFO_BTF_MODULES"
            ),
        }),
        _ => Ok(TestModule { ko, btf_bytes }),
    }
}

fn btf_section_size(elf: &[u8]) -> Result<Option<u64>, String> {
    let f = object::File::parse(elf).map_err(|e| format!("not an ELF object: {e}"))?;
    Ok(f.section_by_name(".BTF").map(|s| s.size()))
}

/// The marker block appended to a built kernel's config for the guest.
pub fn config_marker() -> String {
    format!(
        "\n# Added by btfvm, not a Kconfig option: the out-of-tree test module\n\
         # {MODULE}.ko (testmod/) was built against this tree and is in extra/.\n\
         {MARKER_OPTION}=m\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_embedded_and_hashed() {
        assert!(SOURCES[0].1.contains("struct btfvm_test_point"));
        assert!(SOURCES[0].1.contains("noinline int btfvm_test_func"));
        assert_eq!(sources_hash().len(), 16);
        assert!(config_marker().contains("CONFIG_BTFVM_TEST_MODULE=m"));
    }

    #[test]
    fn btf_section_is_found() {
        let mut obj = object::write::Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let id = obj.add_section(Vec::new(), b".BTF".to_vec(), object::SectionKind::Other);
        obj.append_section_data(id, &[0u8; 24], 4);
        let bytes = obj.write().unwrap();
        assert_eq!(btf_section_size(&bytes).unwrap(), Some(24));
        assert!(btf_section_size(b"nope").is_err());
    }
}
