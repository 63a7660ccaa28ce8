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
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("BTFVM_STATE_DIR")
        .or_else(|| {
            non_empty("XDG_STATE_HOME")
                .filter(|p| p.is_absolute())
                .map(|x| x.join("btfvm"))
        })
        .or_else(|| non_empty("HOME").map(|h| h.join(".local/state/btfvm")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

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
