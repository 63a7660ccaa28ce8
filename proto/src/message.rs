//! Messages from the guest agent to the host.

use serde::{Deserialize, Serialize};

use crate::step::Variant;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// First message of a boot: the agent runs and read its plan.
    Hello {
        agent: String,
        release: String,
        uptime_ms: u64,
        scenarios: u32,
    },
    ScenarioStarted {
        name: String,
    },
    ScenarioFinished {
        name: String,
        outcome: Outcome,
        duration_ms: u64,
        observations: Observations,
    },
    /// The agent cannot go on (plan unreadable, /dev missing...).
    Fatal {
        message: String,
    },
    /// Last message: everything ran; the agent powers off next.
    Done {
        uptime_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed { message: String },
    Ignored { reason: String },
}

/// What the guest saw during a scenario, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observations {
    /// Every BTF object at the end of the scenario.
    pub btf_objects: Vec<BtfObject>,
    /// /sys/kernel/btf at the end of the scenario.
    pub sysfs_btf: Vec<SysfsEntry>,
    /// Each module load and unload, in order.
    pub loads: Vec<LoadRecord>,
    /// Kernel log lines printed during the scenario.
    pub kmsg: Vec<String>,
    /// Facts the checks established (IDs, sizes, type ranges).
    pub notes: Vec<String>,
    /// Each step's wall time in the guest, in order, then the scenario's
    /// snapshot and cleanup as the last entry: where a scenario's time
    /// goes under TCG, without a profiler in the guest.
    #[serde(default)]
    pub step_ms: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtfObject {
    pub id: u32,
    pub name: String,
    pub kernel_btf: bool,
    pub btf_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysfsEntry {
    pub name: String,
    pub size: u64,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadOp {
    Load,
    Unload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRecord {
    pub op: LoadOp,
    pub module: String,
    /// The file loaded (dependencies are always plain); None for an unload,
    /// which names a module, not a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
    /// 0 on success, else the errno.
    pub errno: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_records_serialize_as_the_report_shows_them() {
        let load = LoadRecord {
            op: LoadOp::Load,
            module: "dummy".into(),
            variant: Some(Variant::NoBtf),
            errno: 0,
        };
        let unload = LoadRecord {
            op: LoadOp::Unload,
            module: "dummy".into(),
            variant: None,
            errno: 11,
        };
        let json = serde_json::to_string(&[&load, &unload]).expect("serializable");
        assert_eq!(
            json,
            r#"[{"op":"load","module":"dummy","variant":"no-btf","errno":0},{"op":"unload","module":"dummy","errno":11}]"#
        );
        let back: Vec<LoadRecord> = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, [load, unload]);
    }

    #[test]
    fn unknown_load_op_is_refused() {
        let r = serde_json::from_str::<LoadRecord>(r#"{"op":"reload","module":"dummy","errno":0}"#);
        assert!(r.is_err(), "{r:?}");
    }
}
