//! The XDG base-directory rule btfvm's own folders follow: an override
//! variable of btfvm's, else `$XDG_*_HOME/btfvm`, else a folder under HOME.
//! Empty values count as unset, as the XDG spec says; a relative `XDG_*`
//! value is invalid per the spec and would depend on the working directory.

use std::ffi::OsString;
use std::path::PathBuf;

/// `var` reads the environment (a map in tests).
pub fn dir(
    var: impl Fn(&str) -> Option<OsString>,
    override_var: &str,
    xdg_var: &str,
    under_home: &str,
) -> Option<PathBuf> {
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty(override_var)
        .or_else(|| {
            non_empty(xdg_var)
                .filter(|p| p.is_absolute())
                .map(|x| x.join("btfvm"))
        })
        .or_else(|| non_empty("HOME").map(|h| h.join(under_home).join("btfvm")))
}

/// An environment made of `pairs`, for tests of the rule's users.
#[cfg(test)]
pub fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: std::collections::HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}
