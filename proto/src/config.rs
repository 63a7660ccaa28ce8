//! Kernel .config files: the source of every expectation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A parsed kernel `.config`: `CONFIG_X=value` lines; `# CONFIG_X is not set`
/// and absent options both read as "n", as Kconfig treats them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelConfig {
    values: BTreeMap<String, String>,
    /// Options Kconfig wrote as "# CONFIG_X is not set": they exist in this
    /// kernel. An option in neither map does not exist here at all (older
    /// kernel, or a misspelled name in a scenario).
    unset: std::collections::BTreeSet<String>,
    /// Upstream version from the header Kconfig writes ("# Linux/x86 6.1.119
    /// Kernel Configuration"); Debian's release strings ("6.1.0-28") hide it.
    version: Option<String>,
}

impl KernelConfig {
    pub fn parse(text: &str) -> KernelConfig {
        let mut values = BTreeMap::new();
        let mut unset = std::collections::BTreeSet::new();
        let mut version = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# Linux/") {
                // "x86 6.1.119 Kernel Configuration"
                let mut words = rest.split_whitespace();
                words.next();
                if let Some(v) = words.next() {
                    version.get_or_insert_with(|| v.to_string());
                }
                continue;
            }
            if let Some(name) = line
                .strip_prefix("# ")
                .and_then(|l| l.strip_suffix(" is not set"))
            {
                if name.starts_with("CONFIG_") {
                    unset.insert(name.to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                if k.starts_with("CONFIG_") {
                    values.insert(k.to_string(), v.trim_matches('"').to_string());
                }
            }
        }
        KernelConfig {
            values,
            unset,
            version,
        }
    }

    /// The option's value, "n" when unset. Accepts names with or without
    /// the `CONFIG_` prefix.
    pub fn get(&self, name: &str) -> &str {
        self.values
            .get(&canonical(name))
            .map(String::as_str)
            .unwrap_or("n")
    }

    /// Whether Kconfig knows the option in this kernel (set or "is not set").
    pub fn knows(&self, name: &str) -> bool {
        let n = canonical(name);
        self.values.contains_key(&n) || self.unset.contains(&n)
    }

    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// `DEBUG_INFO_BTF` and `CONFIG_DEBUG_INFO_BTF` name the same option.
pub fn canonical(name: &str) -> String {
    if name.starts_with("CONFIG_") {
        name.to_string()
    } else {
        format!("CONFIG_{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_unset_and_version() {
        let c = KernelConfig::parse(
            "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.1.119 Kernel Configuration\n#\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_DUMMY=m\n# CONFIG_MODULE_ALLOW_BTF_MISMATCH is not set\nCONFIG_LOCALVERSION=\"-x\"\n",
        );
        assert_eq!(c.get("CONFIG_DEBUG_INFO_BTF"), "y");
        assert_eq!(c.get("DUMMY"), "m");
        assert_eq!(c.get("CONFIG_MODULE_ALLOW_BTF_MISMATCH"), "n");
        assert_eq!(c.get("CONFIG_NOT_THERE"), "n");
        assert_eq!(c.get("LOCALVERSION"), "-x");
        assert_eq!(c.version(), Some("6.1.119"));
        assert!(c.knows("MODULE_ALLOW_BTF_MISMATCH"));
        assert!(!c.knows("CONFIG_NOT_THERE"));
    }
}
