//! Requirements and branch conditions, evaluated against the kernel under
//! test: its .config and its version, never the name of its spec.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{canonical, KernelConfig};

/// `config` options that must have the given values ("y", "m", "n", or
/// "set" for y or m) and an optional kernel version bound (">=5.11").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
}

/// What a condition is evaluated against.
#[derive(Debug, Clone)]
pub struct KernelFacts<'a> {
    pub config: &'a KernelConfig,
    pub version: Option<KernelVersion>,
}

impl<'a> KernelFacts<'a> {
    pub fn from_config(config: &'a KernelConfig) -> Self {
        let version = config.version().and_then(KernelVersion::parse);
        KernelFacts { config, version }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl KernelVersion {
    /// "6.1.119", "5.11", "7.2.0-rc3" -> numeric triple.
    pub fn parse(s: &str) -> Option<KernelVersion> {
        let core = s
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut it = core.split('.').map(|p| p.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next().unwrap_or(Ok(0)).ok()?;
        let patch = it.next().unwrap_or(Ok(0)).ok()?;
        Some(KernelVersion(major, minor, patch))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A parsed version bound such as ">=5.11" or "<5.11".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionBound {
    pub op: &'static str,
    pub version: KernelVersion,
}

impl VersionBound {
    pub fn parse(s: &str) -> Result<VersionBound, String> {
        let s = s.trim();
        let (op, rest) = ["<=", ">=", "==", "<", ">", "="]
            .iter()
            .find_map(|op| s.strip_prefix(op).map(|r| (*op, r)))
            .ok_or_else(|| format!("kernel bound {s:?} must start with one of >=, >, <=, <, =="))?;
        let op = if op == "=" { "==" } else { op };
        let version = KernelVersion::parse(rest.trim())
            .ok_or_else(|| format!("kernel bound {s:?}: {rest:?} is not a version like 5.11"))?;
        Ok(VersionBound { op, version })
    }

    pub fn holds(&self, v: KernelVersion) -> bool {
        let o = v.cmp(&self.version);
        match self.op {
            "<=" => o != Ordering::Greater,
            ">=" => o != Ordering::Less,
            "<" => o == Ordering::Less,
            ">" => o == Ordering::Greater,
            _ => o == Ordering::Equal,
        }
    }
}

impl Condition {
    /// Checks the condition's own syntax, so a scenario file with a typo
    /// fails when it is loaded, not inside a guest.
    pub fn validate(&self) -> Result<(), String> {
        for (k, want) in &self.config {
            if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("config option {k:?} is not a Kconfig symbol"));
            }
            if !matches!(want.as_str(), "y" | "m" | "n" | "set") {
                return Err(format!(
                    "config option {k}: {want:?} is not one of y, m, n, set (set means y or m)"
                ));
            }
        }
        if let Some(k) = &self.kernel {
            VersionBound::parse(k)?;
        }
        Ok(())
    }

    /// `Ok(())` when the kernel meets the condition, else every unmet part,
    /// worded so it can stand as an "ignored" reason.
    pub fn eval(&self, facts: &KernelFacts<'_>) -> Result<(), String> {
        let mut unmet = Vec::new();
        if let Some(bound) = &self.kernel {
            match (VersionBound::parse(bound), facts.version) {
                (Err(e), _) => unmet.push(e),
                (Ok(_), None) => unmet.push(format!(
                    "kernel version unknown (no \"# Linux/<arch> <version>\" line in its config), needs {bound}"
                )),
                (Ok(b), Some(v)) if !b.holds(v) => unmet.push(format!("kernel {v} is not {bound}")),
                _ => {}
            }
        }
        for (name, want) in &self.config {
            let name = canonical(name);
            let have = facts.config.get(&name);
            let ok = match want.as_str() {
                "set" => have == "y" || have == "m",
                "n" => have == "n",
                w => have == w,
            };
            if !ok {
                let have = if have != "n" {
                    format!("={have}")
                } else if facts.config.knows(&name) {
                    " is not set".to_string()
                } else {
                    // Absent, not unset: an option this kernel predates, or
                    // a misspelled name. Saying which keeps a typo from
                    // hiding as a quiet "ignored".
                    " does not exist in this kernel's config".to_string()
                };
                unmet.push(format!("kernel config: {name}{have} (needs {want})"));
            }
        }
        if unmet.is_empty() {
            Ok(())
        } else {
            Err(unmet.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cfg: &KernelConfig) -> KernelFacts<'_> {
        KernelFacts::from_config(cfg)
    }

    #[test]
    fn version_bounds() {
        let v = KernelVersion::parse("5.10.223").unwrap();
        assert!(VersionBound::parse("<5.11").unwrap().holds(v));
        assert!(!VersionBound::parse(">= 5.11").unwrap().holds(v));
        assert!(VersionBound::parse(">=5.11")
            .unwrap()
            .holds(KernelVersion(6, 1, 0)));
        assert!(VersionBound::parse("~5").is_err());
        assert_eq!(
            KernelVersion::parse("7.2.0-rc3"),
            Some(KernelVersion(7, 2, 0))
        );
    }

    #[test]
    fn unmet_parts_are_all_named() {
        let cfg = KernelConfig::parse(
            "# Linux/x86 5.10.223 Kernel Configuration\nCONFIG_DEBUG_INFO_BTF=y\n",
        );
        let c = Condition {
            config: [("CONFIG_DEBUG_INFO_BTF_MODULES".to_string(), "y".to_string())].into(),
            kernel: Some(">=5.11".into()),
        };
        let e = c.eval(&facts(&cfg)).unwrap_err();
        assert!(e.contains("kernel 5.10.223 is not >=5.11"), "{e}");
        assert!(
            e.contains(
                "CONFIG_DEBUG_INFO_BTF_MODULES does not exist in this kernel's config (needs y)"
            ),
            "{e}"
        );
        let c = Condition {
            config: [("DEBUG_INFO_BTF".to_string(), "set".to_string())].into(),
            kernel: None,
        };
        assert!(c.eval(&facts(&cfg)).is_ok());
    }

    #[test]
    fn validate_catches_typos() {
        let c = Condition {
            config: BTreeMap::new(),
            kernel: Some("5.11".into()),
        };
        assert!(c.validate().is_err());
        let c = Condition {
            config: [("CONFIG X".into(), "y".into())].into(),
            kernel: None,
        };
        assert!(c.validate().is_err());
    }
}
