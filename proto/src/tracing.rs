//! Steps for what module BTF is for: fentry and fexit programs attached to
//! a module's function through the module's BTF object, the trigger that
//! makes the function run, and the count of the program's runs.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::step::{Expect, Step};

/// Which trampoline hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachKind {
    Fentry,
    Fexit,
}

impl AttachKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachKind::Fentry => "fentry",
            AttachKind::Fexit => "fexit",
        }
    }
}

/// The BTF object named in `attach_btf_obj_fd`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The module's own BTF object.
    #[default]
    Module,
    /// vmlinux's (`attach_btf_obj_fd` 0), with the ID found by name in the
    /// module's BTF: what a tool that forgets modules does.
    Vmlinux,
}

/// Arguments of `attach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachArgs {
    /// What later steps call it (`expect_runs`, `detach`).
    #[serde(deserialize_with = "attach_name")]
    pub name: String,
    pub kind: AttachKind,
    /// The module whose BTF the function is looked up in (its own types
    /// first, then vmlinux's under it), and whose object is named.
    #[serde(deserialize_with = "crate::step::module_name_de")]
    pub module: String,
    pub function: String,
    #[serde(default)]
    pub via: Via,
    /// What BPF_PROG_LOAD (or the attach after it) must return.
    #[serde(default)]
    pub expect: Expect,
}

/// Arguments of `trigger`: one action from user space that makes a kernel
/// function run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Write `value` to a file under /sys or /proc (a module parameter,
    /// /proc/sysrq-trigger).
    Write {
        #[serde(deserialize_with = "kernel_path")]
        path: String,
        value: String,
    },
    /// Read a file under /sys or /proc (a network device's statistics
    /// file calls its driver's ndo_get_stats64 once).
    Read(#[serde(deserialize_with = "kernel_path")] String),
}

/// Arguments of `expect_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsArgs {
    #[serde(deserialize_with = "attach_name")]
    pub attach: String,
    /// The program's run_cnt must be exactly this.
    pub count: u64,
}

pub fn valid_attach_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn attach_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let n = String::deserialize(d)?;
    if !valid_attach_name(&n) {
        return Err(de::Error::custom(format!(
            "{n:?} is not an attachment name: letters, digits, _ and -, at most 32"
        )));
    }
    Ok(n)
}

/// The guest has /sys and /proc and nothing else worth writing to; a
/// relative path or one elsewhere is a mistake.
fn kernel_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let p = String::deserialize(d)?;
    let ok =
        (p.starts_with("/sys/") || p.starts_with("/proc/")) && !p.split('/').any(|c| c == "..");
    if !ok {
        return Err(de::Error::custom(format!(
            "{p:?}: a trigger reads or writes a file under /sys/ or /proc/ (no ..)"
        )));
    }
    Ok(p)
}

/// Every `expect_runs` and `detach` names an `attach` made before it in
/// the scenario (in any branch of a `when` before it), and no two `attach`
/// steps share a name: otherwise the check would look at nothing.
pub fn check_attach_names(steps: &[Step]) -> Result<(), String> {
    fn walk(steps: &[Step], known: &mut Vec<String>) -> Result<(), String> {
        for s in steps {
            match s {
                Step::Attach(a) => {
                    if known.contains(&a.name) {
                        return Err(format!(
                            "two `attach` steps are named {:?}; give each its own name",
                            a.name
                        ));
                    }
                    known.push(a.name.clone());
                }
                Step::ExpectRuns(RunsArgs { attach: n, .. }) | Step::Detach(n)
                    if !known.contains(n) =>
                {
                    return Err(format!(
                        "no `attach` named {n:?} comes before this step; attach it first"
                    ));
                }
                Step::When(w) => {
                    let mut then = known.clone();
                    walk(&w.then, &mut then)?;
                    let mut otherwise = known.clone();
                    walk(&w.otherwise, &mut otherwise)?;
                    for n in then.into_iter().chain(otherwise) {
                        if !known.contains(&n) {
                            known.push(n);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    walk(steps, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(json: &str) -> Result<Vec<Step>, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn the_steps_read_and_refuse_what_cannot_work() {
        let ok = steps(
            r#"[{"attach": {"name": "in", "kind": "fentry", "module": "btfvm_test", "function": "f"}},
                {"trigger": {"write": {"path": "/sys/module/btfvm_test/parameters/trigger", "value": "1"}}},
                {"trigger": {"read": "/proc/version"}},
                {"expect_runs": {"attach": "in", "count": 1}}, {"detach": "in"}]"#,
        )
        .unwrap();
        assert_eq!(check_attach_names(&ok), Ok(()));
        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(steps(&json).unwrap(), ok);
        let e = steps(r#"[{"trigger": {"write": {"path": "/etc/passwd", "value": "x"}}}]"#)
            .unwrap_err();
        assert!(
            e.contains("a trigger reads or writes a file under /sys/ or /proc/"),
            "{e}"
        );
        let e = steps(r#"[{"trigger": {"read": "/sys/../etc/passwd"}}]"#).unwrap_err();
        assert!(e.contains("(no ..)"), "{e}");
        let e = steps(
            r#"[{"attach": {"name": "a b", "kind": "fentry", "module": "m", "function": "f"}}]"#,
        )
        .unwrap_err();
        assert!(e.contains("is not an attachment name"), "{e}");
        let e = steps(
            r#"[{"attach": {"name": "a", "kind": "kprobe", "module": "m", "function": "f"}}]"#,
        )
        .unwrap_err();
        assert!(
            e.contains("unknown variant `kprobe`, expected `fentry` or `fexit`"),
            "{e}"
        );
    }

    #[test]
    fn a_count_or_detach_must_name_an_earlier_attach() {
        let s = steps(r#"[{"expect_runs": {"attach": "in", "count": 1}}]"#).unwrap();
        assert_eq!(
            check_attach_names(&s).unwrap_err(),
            "no `attach` named \"in\" comes before this step; attach it first"
        );
        let a = r#"{"attach": {"name": "in", "kind": "fexit", "module": "m", "function": "f"}}"#;
        let s = steps(&format!("[{a}, {a}]")).unwrap();
        assert!(check_attach_names(&s)
            .unwrap_err()
            .contains("two `attach` steps are named \"in\""));
        let s = steps(&format!(
            r#"[{{"when": {{"kernel": ">=5.11", "then": [{a}]}}}}, {{"detach": "in"}}]"#
        ))
        .unwrap();
        assert_eq!(check_attach_names(&s), Ok(()));
    }
}
