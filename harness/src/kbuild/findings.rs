//! Known reasons a kernel build fails, read from its log, so that a failure
//! says why (and the matrix can try the variant that works) instead of
//! leaving a user with the last lines of make.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// One sentence, for tables and messages.
    pub cause: String,
    /// The log line that showed it.
    pub evidence: String,
    /// Fragments worth trying against it, in order; the matrix builds a
    /// variant with each, so a fragment that does not help shows as such.
    pub workarounds: Vec<String>,
}

struct Pattern {
    needle: &'static str,
    cause: &'static str,
    workarounds: &'static [&'static str],
}

/// Checked in order; the first pattern found in the log wins, so the most
/// specific ones come first.
const PATTERNS: &[Pattern] = &[
    Pattern {
        needle: "Unsupported DW_TAG_unspecified_type",
        // Measured: the tag comes from the assembler (binutils 2.40 emits it
        // for every assembly function, with -gdwarf-4 as with -gdwarf-5),
        // not from gcc's DWARF 5; so DWARF 4 does not help, and dropping
        // the assembly files' debug info does.
        cause: "this pahole does not know DW_TAG_unspecified_type, which the assembler \
                (binutils >= 2.40) emits for assembly functions in DWARF 4 and 5 alike",
        workarounds: &["dwarf4", "asm-nodebug"],
    },
    Pattern {
        needle: "Failed to parse base BTF",
        cause: "pahole could not read vmlinux's BTF as the base of a module's split BTF",
        workarounds: &[],
    },
    Pattern {
        needle: "error while loading shared libraries",
        cause: "pahole cannot start: a shared library is missing",
        workarounds: &[],
    },
    Pattern {
        needle: "version `GLIBC_",
        cause: "pahole cannot start: it needs a newer glibc than the one it ran with",
        workarounds: &[],
    },
    Pattern {
        needle: "is not available",
        cause: "no pahole to generate BTF with",
        workarounds: &[],
    },
    Pattern {
        needle: "Failed to generate BTF for vmlinux",
        cause: "pahole failed to generate vmlinux's BTF",
        workarounds: &[],
    },
    Pattern {
        needle: "No space left on device",
        cause: "the disk is full",
        workarounds: &[],
    },
];

/// The first known cause in `log`.
pub fn diagnose(log: &str) -> Option<Finding> {
    PATTERNS.iter().find_map(|p| {
        let line = log.lines().find(|l| l.contains(p.needle))?;
        Some(Finding {
            cause: p.cause.to_string(),
            evidence: line.trim().chars().take(200).collect(),
            workarounds: p.workarounds.iter().map(|w| w.to_string()).collect(),
        })
    })
}

/// The first line where gcc (or ld, or make's own check) reports an error.
pub fn first_error(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .find(|l| {
            l.contains(": error: ")
                || l.contains(": fatal error: ")
                || l.contains(": undefined reference to")
        })
        .map(|l| l.chars().take(300).collect())
}

/// A failure that says nothing about the build itself and must not be
/// remembered as its result.
pub fn is_transient(f: &Finding) -> bool {
    f.cause == "the disk is full"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_first() {
        let log = "  BTF     .btf.vmlinux.bin.o\n\
                   die__process_unit: DW_TAG_compile_unit, DW_TAG_unspecified_type (0x3b) @ <0x2d> not handled!\n\
                   Unsupported DW_TAG_unspecified_type(0x3b)\n\
                   Failed to generate BTF for vmlinux\n";
        let f = diagnose(log).unwrap();
        assert_eq!(f.workarounds, ["dwarf4", "asm-nodebug"]);
        assert!(f.evidence.starts_with("Unsupported DW_TAG"), "{f:?}");
        assert!(diagnose("all fine\n").is_none());
        assert_eq!(
            first_error("  CC a.o\nb.c:3:9: error: expected ';'\nc.c:1:1: error: z\n").as_deref(),
            Some("b.c:3:9: error: expected ';'")
        );
        let full = diagnose("cp: write error: No space left on device").unwrap();
        assert!(is_transient(&full));
    }
}
