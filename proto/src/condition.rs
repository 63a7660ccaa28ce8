//! Requirements and branch conditions, evaluated against the kernel under
//! test: its .config and its version, never the name of its spec.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{canonical, KernelConfig};

/// `config` options that must have the given values ("y", "m", "n", or
/// "set" for y or m) and an optional kernel version bound (">=5.11").
/// Both are checked while deserializing, so a YAML mistake is reported at
/// its line and column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "config_map"
    )]
    pub config: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "kernel_bound"
    )]
    pub kernel: Option<String>,
}

/// Kconfig writes every option as `CONFIG_<SYMBOL>`; requiring that
/// spelling here keeps a scenario's key the same string as the .config's,
/// so a key cannot silently name nothing.
pub fn check_config_key(key: &str) -> Result<(), String> {
    let symbol = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    match key.strip_prefix("CONFIG_") {
        Some(rest) if symbol(rest) => Ok(()),
        None if symbol(key) => Err(format!(
            "config option {key:?} lacks the CONFIG_ prefix: write CONFIG_{key}"
        )),
        _ => Err(format!(
            "config option {key:?} is not a Kconfig option: CONFIG_ followed by A-Z, 0-9 and _"
        )),
    }
}

pub fn check_config_value(key: &str, want: &str) -> Result<(), String> {
    if matches!(want, "y" | "m" | "n" | "set") {
        Ok(())
    } else {
        Err(format!(
            "config option {key}: {want:?} is not one of y, m, n, set (set means y or m)"
        ))
    }
}

/// A `config:` map whose keys and values are checked as they are read: the
/// error then carries the location of the key or value at fault. A key
/// given twice is refused (JSON would keep the last one silently).
pub fn config_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    d.deserialize_map(ConfigMap)
}

struct ConfigMap;

impl<'de> Visitor<'de> for ConfigMap {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of CONFIG_ options to y, m, n or set")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key_seed(ConfigKey)? {
            let want = map.next_value_seed(ConfigValue(&key))?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "config option {key} given twice"
                )));
            }
            out.insert(key, want);
        }
        Ok(out)
    }
}

struct ConfigKey;

impl<'de> DeserializeSeed<'de> for ConfigKey {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let key = String::deserialize(d)?;
        check_config_key(&key).map_err(de::Error::custom)?;
        Ok(key)
    }
}

/// The value's check names its key, so the seed carries it.
struct ConfigValue<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for ConfigValue<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let want = String::deserialize(d)?;
        check_config_value(self.0, &want).map_err(de::Error::custom)?;
        Ok(want)
    }
}

/// `kernel: ">=5.11"`, checked when read.
pub fn kernel_bound<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let bound = Option::<String>::deserialize(d)?;
    if let Some(b) = &bound {
        VersionBound::parse(b).map_err(de::Error::custom)?;
    }
    Ok(bound)
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
    /// The checks `Deserialize` makes, for a condition built in code.
    pub fn validate(&self) -> Result<(), String> {
        for (k, want) in &self.config {
            check_config_key(k)?;
            check_config_value(k, want)?;
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

    fn cond(json: &str) -> Result<Condition, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn config_keys_are_kconfig_options_with_their_prefix() {
        let c = cond(r#"{"config": {"CONFIG_DEBUG_INFO_BTF": "y", "CONFIG_64BIT": "set"}, "kernel": ">=5.11"}"#)
            .unwrap();
        assert_eq!(c.config.len(), 2);
        let e = cond(r#"{"config": {"DEBUG_INFO_BTF": "y"}}"#).unwrap_err();
        assert!(
            e.starts_with("config option \"DEBUG_INFO_BTF\" lacks the CONFIG_ prefix: write CONFIG_DEBUG_INFO_BTF at line 1"),
            "{e}"
        );
        for bad in ["CONFIG_", "CONFIG_debug_info", "CONFIG X", "config_X", ""] {
            let e = cond(&format!(r#"{{"config": {{"{bad}": "y"}}}}"#)).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "config option {bad:?} is not a Kconfig option: CONFIG_ followed by A-Z, 0-9 and _"
                )),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn config_values_and_bounds_are_checked_when_read() {
        let e = cond(r#"{"config": {"CONFIG_X": "yes"}}"#).unwrap_err();
        assert!(
            e.starts_with(
                "config option CONFIG_X: \"yes\" is not one of y, m, n, set (set means y or m)"
            ),
            "{e}"
        );
        let e = cond(r#"{"config": {"CONFIG_X": "y", "CONFIG_X": "n"}}"#).unwrap_err();
        assert!(e.starts_with("config option CONFIG_X given twice"), "{e}");
        let e = cond(r#"{"kernel": "~5"}"#).unwrap_err();
        assert!(
            e.starts_with("kernel bound \"~5\" must start with one of >=, >, <=, <, =="),
            "{e}"
        );
        let e = cond(r#"{"kernel": ">=five"}"#).unwrap_err();
        assert!(
            e.starts_with("kernel bound \">=five\": \"five\" is not a version like 5.11"),
            "{e}"
        );
        assert_eq!(cond(r#"{"kernel": null}"#).unwrap(), Condition::default());
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
