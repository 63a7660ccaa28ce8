//! Facts about this host that outlive a run but are no cache entry (a
//! cache may be private to one test or CI job; the host is the same).

use std::path::PathBuf;

/// Where facts about this host live ($XDG_STATE_HOME/btfvm, else
/// ~/.local/state/btfvm; BTFVM_STATE_DIR overrides): apart from the
/// cache, since tests and CI point BTFVM_CACHE_DIR at folders of their own
/// while the host stays the same. None without HOME.
pub fn state_dir() -> Option<PathBuf> {
    state_dir_from(|name| std::env::var_os(name))
}

fn state_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    super::xdg::dir(var, "BTFVM_STATE_DIR", "XDG_STATE_HOME", ".local/state")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::xdg::vars;

    #[test]
    fn state_dir_precedence() {
        let d = |pairs: &[(&str, &str)]| state_dir_from(vars(pairs));
        assert_eq!(
            d(&[
                ("BTFVM_STATE_DIR", "/s"),
                ("XDG_STATE_HOME", "/x"),
                ("HOME", "/h")
            ]),
            Some(PathBuf::from("/s"))
        );
        assert_eq!(
            d(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]),
            Some(PathBuf::from("/x/btfvm"))
        );
        // A relative XDG_STATE_HOME is invalid per the spec.
        assert_eq!(
            d(&[("XDG_STATE_HOME", "x"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.local/state/btfvm"))
        );
        assert_eq!(d(&[("HOME", "")]), None);
    }
}
