//! `--append ARGS`: words for the kernel command line of the boots btfvm
//! makes (`initcall_debug`, `dyndbg=...`, `cryptomgr.notests=0`), checked
//! once when the command line is read. Words that would take the boot out
//! of btfvm's hands, or hide a failure from it, are refused by name.

/// Kernel command-line words, in order, each checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelArgs(Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("--append {given:?}: {word:?} is btfvm's to set: {why}")]
    Reserved {
        given: String,
        word: String,
        why: &'static str,
    },
    #[error("--append {given:?}: {word:?} hides WARNINGs from the console, where btfvm finds splats (KERN_WARNING is level 4; give loglevel=5 or more)")]
    HidesWarnings { given: String, word: String },
    #[error("--append {given:?}: quoted values are not supported ({word:?}); give words without spaces or quotes")]
    Quoted { given: String, word: String },
    #[error("--append: nothing to add (give kernel parameters, e.g. --append initcall_debug)")]
    Empty,
}

/// Why a parameter is btfvm's; `None` when it is the user's.
fn reserved(name: &str) -> Option<&'static str> {
    match name {
        "console" => Some(
            "the console on ttyS0 is where btfvm reads the boot log, its phases and its splats",
        ),
        "init" | "rdinit" => Some("the agent must be the initramfs' /init, PID 1"),
        "panic" => Some("panic=-1 with QEMU's -no-reboot ends the boot at once on a panic"),
        _ => None,
    }
}

impl KernelArgs {
    pub fn parse(given: &str) -> Result<KernelArgs, AppendError> {
        let mut words = Vec::new();
        for word in given.split_whitespace() {
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (word, None),
            };
            let err_given = || given.to_string();
            if word.contains(['"', '\'']) {
                return Err(AppendError::Quoted {
                    given: err_given(),
                    word: word.into(),
                });
            }
            if let Some(why) = reserved(name) {
                return Err(AppendError::Reserved {
                    given: err_given(),
                    word: word.into(),
                    why,
                });
            }
            let hides = match (name, value) {
                ("quiet", _) => true,
                ("loglevel", Some(v)) => v.parse::<u8>().map_or(true, |l| l < 5),
                _ => false,
            };
            if hides {
                return Err(AppendError::HidesWarnings {
                    given: err_given(),
                    word: word.into(),
                });
            }
            words.push(word.to_string());
        }
        if words.is_empty() {
            return Err(AppendError::Empty);
        }
        Ok(KernelArgs(words))
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }

    /// All the words of several `--append`s, in order.
    pub fn join(all: &[KernelArgs]) -> Vec<String> {
        all.iter().flat_map(|a| a.0.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_kept_in_order() {
        let a = KernelArgs::parse(" initcall_debug  dyndbg=+p cryptomgr.notests=0 ").unwrap();
        assert_eq!(
            a.words(),
            ["initcall_debug", "dyndbg=+p", "cryptomgr.notests=0"]
        );
        let b = KernelArgs::parse("loglevel=8").unwrap();
        assert_eq!(
            KernelArgs::join(&[a, b]).last().map(String::as_str),
            Some("loglevel=8")
        );
    }

    #[test]
    fn what_would_take_the_boot_away_is_refused_by_name() {
        for (given, word) in [
            ("console=tty0", "console=tty0"),
            ("debug init=/bin/sh", "init=/bin/sh"),
            ("rdinit=/x", "rdinit=/x"),
            ("panic=0", "panic=0"),
        ] {
            match KernelArgs::parse(given) {
                Err(AppendError::Reserved { word: w, .. }) => assert_eq!(w, word),
                other => panic!("{given}: {other:?}"),
            }
        }
    }

    #[test]
    fn what_would_hide_warnings_is_refused() {
        for given in ["quiet", "loglevel=4", "loglevel=0", "loglevel=x"] {
            let e = KernelArgs::parse(given).unwrap_err();
            assert!(matches!(e, AppendError::HidesWarnings { .. }), "{given}");
            assert!(e.to_string().contains("loglevel=5"), "{e}");
        }
        assert!(KernelArgs::parse("loglevel=5").is_ok());
    }

    #[test]
    fn quotes_and_empty_input_are_refused() {
        assert!(matches!(
            KernelArgs::parse("dyndbg=\"module dummy +p\""),
            Err(AppendError::Quoted { .. })
        ));
        assert_eq!(KernelArgs::parse("   "), Err(AppendError::Empty));
    }
}
