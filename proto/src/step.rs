//! The step vocabulary of scenarios. The host reads it from YAML, the guest
//! agent receives it as JSON inside the plan and carries it out.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::condition::{config_map, kernel_bound, Condition};

/// Which file of a module to load. The host makes the non-plain ones from the
/// module as shipped (signature cut first: an edited signed module is refused
/// with EKEYREJECTED).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    #[default]
    Plain,
    /// `.BTF` removed from the ELF.
    NoBtf,
    /// `.BTF` present but damaged so the kernel's validation rejects it.
    CorruptBtf,
    /// The test module built out of tree against the kernel's own Debian
    /// headers packages, as a DKMS module is.
    OutOfTree,
    /// The same with pahole's distilled base (`.BTF.base`), which the
    /// kernel relocates onto its vmlinux BTF at load (6.11+).
    DistilledBase,
}

impl Variant {
    /// The variants made from a module as shipped.
    pub const ALL: [Variant; 3] = [Variant::Plain, Variant::NoBtf, Variant::CorruptBtf];

    /// Variants built from source by the host rather than made from the
    /// kernel's own module file.
    pub fn is_built(self) -> bool {
        matches!(self, Variant::OutOfTree | Variant::DistilledBase)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::NoBtf => "no-btf",
            Variant::CorruptBtf => "corrupt-btf",
            Variant::OutOfTree => "out-of-tree",
            Variant::DistilledBase => "distilled-base",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(Variant::Plain),
            "no-btf" => Ok(Variant::NoBtf),
            "corrupt-btf" => Ok(Variant::CorruptBtf),
            "out-of-tree" => Ok(Variant::OutOfTree),
            "distilled-base" => Ok(Variant::DistilledBase),
            _ => Err(format!(
                "unknown variant {s:?}: expected plain, no-btf, corrupt-btf, out-of-tree or distilled-base"
            )),
        }
    }
}

/// What a load or unload must return: `ok` or an errno name (`EINVAL`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Expect {
    #[default]
    Ok,
    Errno(String),
}

impl From<Expect> for String {
    fn from(e: Expect) -> String {
        match e {
            Expect::Ok => "ok".into(),
            Expect::Errno(n) => n,
        }
    }
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "ok" {
            return Ok(Expect::Ok);
        }
        if crate::step::errno_value(&s).is_none() {
            return Err(de::Error::custom(format!(
                "unknown expectation {s:?}: expected ok or an errno name such as EINVAL, ENOENT, EEXIST, EKEYREJECTED"
            )));
        }
        Ok(Expect::Errno(s))
    }
}

/// The errno names scenarios may expect, with their x86-64 values.
pub const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EINVAL", 22),
    ("ENOSPC", 28),
    ("E2BIG", 7),
    ("ENOSYS", 38),
    ("EOPNOTSUPP", 95),
    ("EKEYREJECTED", 129),
];

pub fn errno_value(name: &str) -> Option<i32> {
    ERRNOS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

pub fn errno_name(value: i32) -> String {
    ERRNOS
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("errno {value}"))
}

/// Arguments of `load`: a bare module name or a map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadArgs {
    #[serde(deserialize_with = "module_name")]
    pub module: String,
    #[serde(default)]
    pub variant: Variant,
    #[serde(default)]
    pub expect: Expect,
    /// Module parameters, as `insmod` takes them ("a=1 b=x").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub params: String,
    /// Load the module from this file in the guest, on a folder the host
    /// shares (`--share DIR:TAG` is mounted at /share/TAG), instead of
    /// from the kernel's modules tree: a module under development.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::share::shared_path"
    )]
    pub path: Option<String>,
}

/// Arguments of `unload`: a bare module name or a map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnloadArgs {
    #[serde(deserialize_with = "module_name")]
    pub module: String,
    #[serde(default)]
    pub expect: Expect,
}

/// Arguments of `expect_btf_struct`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructArgs {
    #[serde(deserialize_with = "module_name")]
    pub module: String,
    /// The struct's name in the module's own BTF.
    pub name: String,
    /// Member name -> name of the vmlinux type it must point at.
    #[serde(default)]
    pub members: BTreeMap<String, String>,
}

/// Faults the agent can provoke for real, so btfvm's handling of each is
/// tested against a real kernel and QEMU rather than a mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selftest {
    /// A Rust panic inside a step.
    AgentPanic,
    /// PID 1 exits: the kernel panics with "Attempted to kill init".
    AgentExit,
    /// The step never returns.
    Hang,
    /// A real kernel panic through /proc/sysrq-trigger ('c').
    KernelPanic,
    /// Bytes on the channel that are not a frame.
    Garbage,
    /// A frame header announcing 1 GiB.
    Oversize,
    /// Half a frame, then power off.
    Truncated,
    /// Fails on a kernel's first boot and passes on its retries: a flaky
    /// scenario, for testing `--retries`.
    FailFirstAttempt,
}

/// A module name, the argument of most checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ModuleArg(pub String);

impl<'de> Deserialize<'de> for ModuleArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        module_name(d).map(ModuleArg)
    }
}

/// `when:` runs `then` if the kernel meets the condition, else `else`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct When {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    pub then: Vec<Step>,
    #[serde(rename = "else")]
    pub otherwise: Vec<Step>,
}

/// A `when` with no step in either branch checks nothing whatever the
/// kernel is: refused, at the `when`'s own location.
impl<'de> Deserialize<'de> for When {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            #[serde(default, deserialize_with = "config_map")]
            config: BTreeMap<String, String>,
            #[serde(default, deserialize_with = "kernel_bound")]
            kernel: Option<String>,
            #[serde(default)]
            then: Vec<Step>,
            #[serde(default, rename = "else")]
            otherwise: Vec<Step>,
        }
        let f = Fields::deserialize(d)?;
        if f.then.is_empty() && f.otherwise.is_empty() {
            return Err(de::Error::custom(
                "`when` has no step in `then` or `else`, so it checks nothing; give it at least one",
            ));
        }
        Ok(When {
            config: f.config,
            kernel: f.kernel,
            then: f.then,
            otherwise: f.otherwise,
        })
    }
}

impl When {
    pub fn condition(&self) -> Condition {
        Condition {
            config: self.config.clone(),
            kernel: self.kernel.clone(),
        }
    }
}

/// One step of a scenario. Checks start with `expect_`; a failed check ends
/// the scenario with a message naming the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Load a module (its dependencies first, leaves first).
    Load(#[serde(deserialize_with = "load_args")] LoadArgs),
    /// Unload a module loaded by this scenario.
    Unload(#[serde(deserialize_with = "unload_args")] UnloadArgs),
    /// Exactly one kernel BTF named "vmlinux", kernel_btf=1, btf_size equal
    /// to /sys/kernel/btf/vmlinux, and the same bytes through the object.
    ExpectVmlinuxBtf,
    /// One new BTF object named after the module, kernel_btf=1, ID above
    /// vmlinux's, and /sys/kernel/btf/<module> 0444 with the same bytes.
    ExpectModuleBtf(ModuleArg),
    /// The module's BTF parses as split BTF over vmlinux, every reference
    /// resolves, and at least one lands in vmlinux.
    ExpectSplitBtf(ModuleArg),
    /// `expect_module_btf` and `expect_split_btf` for the module and each
    /// of its dependencies, with distinct IDs and names; fails when the
    /// module has no dependencies (nothing would be proved).
    ExpectChainBtf(ModuleArg),
    /// The module's own BTF has this struct, and each listed member's type
    /// is the named vmlinux type (an ID inside vmlinux, not a copy).
    ExpectBtfStruct(StructArgs),
    /// No BTF object and no /sys/kernel/btf file for the module.
    ExpectNoModuleBtf(ModuleArg),
    /// Open an fd on the module's BTF object and keep it.
    HoldBtfFd(ModuleArg),
    /// After unload: sysfs file gone, ID gone (GET_FD_BY_ID gives ENOENT),
    /// name out of the iteration, a held fd still answers GET_INFO.
    ExpectBtfGone(ModuleArg),
    /// BPF_BTF_LOAD of a small blob: kernel_btf=0, empty name, no sysfs file.
    ExpectUserBtf,
    /// GET_INFO name buffer rules: too small gives ENOSPC with a truncated,
    /// NUL-terminated name and the full name_len; pointer without length
    /// gives EINVAL.
    ExpectNameBuffer,
    /// A kernel log line since the scenario started contains this text.
    ExpectKmsg(#[serde(deserialize_with = "kmsg_text")] String),
    /// The kernel's config has every value the kernel spec expects.
    ExpectSpecConfig,
    /// The kernel answers like a pre-5.11 kernel: E2BIG for the extended
    /// bpf_btf_info, and /sys/kernel/btf lists no module.
    ExpectPreFeatureBtfInfo,
    /// Branch on the kernel's config and version.
    When(When),
    /// Provokes a fault on purpose, to test btfvm itself (tests/faults).
    Selftest(Selftest),
    /// Load an fentry or fexit program for a module's function, found by
    /// name in the module's split BTF, and attach it.
    Attach(crate::tracing::AttachArgs),
    /// Close an attachment (its link and program).
    Detach(#[serde(deserialize_with = "crate::tracing::attach_name")] String),
    /// Make a kernel function run, from user space.
    Trigger(crate::tracing::Trigger),
    /// An attachment's program ran exactly this many times.
    ExpectRuns(crate::tracing::RunsArgs),
    /// The module was loaded from a file whose `.BTF` is split over a
    /// distilled base (`.BTF.base`), and the kernel's copy of its BTF is
    /// split over the running vmlinux: the kernel relocated it.
    ExpectDistilledBase(ModuleArg),
    /// The kernel's suite's own bpftool, `btf show` and `-j btf show`,
    /// lists the BTF objects the agent sees: same IDs, names, sizes and
    /// kernel flags, and `name [vmlinux]`, `name [<module>]` in the text.
    ExpectBpftoolBtfShow,
}

impl Step {
    /// Whether this step (or a step of its branches) runs bpftool.
    pub fn uses_bpftool(&self) -> bool {
        match self {
            Step::ExpectBpftoolBtfShow => true,
            Step::When(w) => w.then.iter().chain(&w.otherwise).any(Step::uses_bpftool),
            _ => false,
        }
    }

    /// Modules (with variants) any branch of this step may load.
    pub fn modules(&self, out: &mut Vec<(String, Variant)>) {
        match self {
            Step::Load(a) if a.path.is_none() => out.push((a.module.clone(), a.variant)),
            Step::When(w) => {
                for s in w.then.iter().chain(&w.otherwise) {
                    s.modules(out);
                }
            }
            _ => {}
        }
    }

    /// Every module name a step refers to, for checking them against the
    /// loads of the scenario.
    pub fn module_name(&self) -> Option<&str> {
        match self {
            Step::Load(a) => Some(&a.module),
            Step::Unload(a) => Some(&a.module),
            Step::ExpectBtfStruct(a) => Some(&a.module),
            Step::Attach(a) => Some(&a.module),
            Step::ExpectModuleBtf(m)
            | Step::ExpectSplitBtf(m)
            | Step::ExpectChainBtf(m)
            | Step::ExpectNoModuleBtf(m)
            | Step::HoldBtfFd(m)
            | Step::ExpectDistilledBase(m)
            | Step::ExpectBtfGone(m) => Some(&m.0),
            _ => None,
        }
    }
}

/// Module names as the kernel spells them (`ip6_udp_tunnel`): BTF objects,
/// /sys/kernel/btf and delete_module all use '_', so a '-' spelling would
/// load but never match. Anything else (a path, a glob) is a mistake worth
/// catching when the scenario is read.
pub fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 56
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `valid_module_name`, with the message a scenario's author needs.
pub fn check_module_name(name: &str) -> Result<(), String> {
    if valid_module_name(name) {
        return Ok(());
    }
    let hint = if name.contains('-') {
        format!(" (the kernel spells it {})", name.replace('-', "_"))
    } else {
        String::new()
    };
    Err(format!(
        "{name:?} is not a module name: letters, digits and _, at most 56{hint}"
    ))
}

pub(crate) fn module_name_de<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    module_name(d)
}

fn module_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    check_module_name(&name).map_err(de::Error::custom)?;
    Ok(name)
}

/// Every kernel log line contains the empty string (and nearly every one
/// a space): such a check could never fail.
fn kmsg_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(de::Error::custom(
            "expect_kmsg: the text is blank, and (nearly) every kernel log line contains it, so the check cannot fail; give the text to look for",
        ));
    }
    Ok(text)
}

fn load_args<'de, D: Deserializer<'de>>(d: D) -> Result<LoadArgs, D::Error> {
    let a = d.deserialize_any(NameOrMap::<LoadArgs>::new(|m| LoadArgs {
        module: m,
        variant: Variant::Plain,
        expect: Expect::Ok,
        params: String::new(),
        path: None,
    }))?;
    if a.path.is_some() && a.variant != Variant::Plain {
        return Err(de::Error::custom(format!(
            "load {}: a variant ({}) is made from the kernel's own module file; a module from a share (path) is loaded as it is",
            a.module, a.variant
        )));
    }
    Ok(a)
}

fn unload_args<'de, D: Deserializer<'de>>(d: D) -> Result<UnloadArgs, D::Error> {
    d.deserialize_any(NameOrMap::<UnloadArgs>::new(|m| UnloadArgs {
        module: m,
        expect: Expect::Ok,
    }))
}

/// Accepts `load: dummy` as well as `load: {module: dummy, ...}` with the
/// map's own error messages (unknown field, missing field) intact, which an
/// untagged enum would replace with "did not match any variant".
struct NameOrMap<T> {
    from_name: fn(String) -> T,
}

impl<T> NameOrMap<T> {
    fn new(from_name: fn(String) -> T) -> Self {
        NameOrMap { from_name }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for NameOrMap<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a module name or a map with `module:` and options")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        check_module_name(v).map_err(E::custom)?;
        Ok((self.from_name)(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
