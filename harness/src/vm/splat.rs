//! Kernel splats on the console: the lines that mean the kernel under test
//! is unwell even when every check passed. Matching is by the fixed texts
//! the kernel prints (lib/bug.c, kernel/panic.c, arch/x86/mm/fault.c,
//! kernel/watchdog*.c, kernel/rcu/tree_stall.h, kernel/hung_task.c,
//! mm/kasan/report.c, lib/ubsan.c).

use serde::{Deserialize, Serialize};

use super::console::Tag;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplatKind {
    Panic,
    Oops,
    Bug,
    Warning,
    SoftLockup,
    HardLockup,
    RcuStall,
    HungTask,
    Kasan,
    Ubsan,
}

impl SplatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SplatKind::Panic => "kernel panic",
            SplatKind::Oops => "kernel Oops",
            SplatKind::Bug => "kernel BUG",
            SplatKind::Warning => "kernel WARNING",
            SplatKind::SoftLockup => "soft lockup",
            SplatKind::HardLockup => "hard lockup",
            SplatKind::RcuStall => "RCU stall",
            SplatKind::HungTask => "hung task",
            SplatKind::Kasan => "KASAN report",
            SplatKind::Ubsan => "UBSAN report",
        }
    }
}

/// The message part of a console line: without the "[    1.234567] "
/// timestamp that PRINTK_TIME adds.
pub fn message(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some((stamp, msg)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return msg.trim_start();
            }
        }
    }
    t
}

/// The kind of splat a console line starts, if any. Most specific first:
/// a KASAN report also says "BUG:", a soft lockup too.
pub fn classify(line: &str) -> Option<SplatKind> {
    let m = message(line);
    if m.starts_with("Kernel panic - not syncing") {
        Some(SplatKind::Panic)
    } else if m.starts_with("BUG: KASAN:") {
        Some(SplatKind::Kasan)
    } else if m.starts_with("UBSAN:") {
        Some(SplatKind::Ubsan)
    } else if m.contains("soft lockup - CPU#") {
        Some(SplatKind::SoftLockup)
    } else if m.contains("Watchdog detected hard LOCKUP") {
        Some(SplatKind::HardLockup)
    } else if m.starts_with("rcu: INFO: rcu_") && m.contains("stall") {
        Some(SplatKind::RcuStall)
    } else if m.starts_with("INFO: task ") && m.contains("blocked for more than") {
        Some(SplatKind::HungTask)
    } else if m.starts_with("Oops:") || m.contains("] Oops:") {
        Some(SplatKind::Oops)
    } else if m.starts_with("BUG: ") || m.starts_with("kernel BUG at ") {
        Some(SplatKind::Bug)
    } else if m.starts_with("WARNING: CPU: ") || (m.starts_with("WARNING: ") && m.contains(" at "))
    {
        Some(SplatKind::Warning)
    } else {
        None
    }
}

/// A splat found on the console, with its first lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splat {
    pub kind: SplatKind,
    /// The line that starts it, timestamp removed.
    pub line: String,
    /// Up to `EXCERPT_LINES` lines from there, or to the end-of-trace marker.
    pub excerpt: Vec<String>,
    /// The scenario that was running when the line arrived, if any.
    pub scenario: Option<String>,
    /// How many scenarios had finished by then.
    pub finished_before: usize,
    /// Why it is tolerated, when a kernel spec's allowlist matched.
    pub allowed: Option<String>,
}

pub const EXCERPT_LINES: usize = 30;

/// Finds every splat in console lines tagged with the scenario running when
/// each arrived. Lines inside one splat's excerpt do not start another
/// (an Oops prints "BUG: ..." first; that is one event).
pub fn find(lines: &[(String, Tag)]) -> Vec<Splat> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(kind) = classify(&lines[i].0) else {
            i += 1;
            continue;
        };
        let mut end = i + 1;
        while end < lines.len() && end - i < EXCERPT_LINES {
            let m = message(&lines[end].0);
            end += 1;
            if m.starts_with("---[ end") {
                break;
            }
        }
        // An Oops report starts with "BUG: unable to handle..." and goes on
        // with "Oops:" a line or two later: call it what it is.
        let kind = if kind == SplatKind::Bug
            && lines[i + 1..end]
                .iter()
                .take(4)
                .any(|(l, _)| classify(l) == Some(SplatKind::Oops))
        {
            SplatKind::Oops
        } else {
            kind
        };
        out.push(Splat {
            kind,
            line: message(&lines[i].0).to_string(),
            excerpt: lines[i..end]
                .iter()
                .map(|(l, _)| message(l).to_string())
                .collect(),
            scenario: lines[i].1.scenario.clone(),
            finished_before: lines[i].1.finished,
            allowed: None,
        });
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(text: &str) -> Vec<(String, Tag)> {
        let tag = Tag {
            scenario: Some("s".to_string()),
            finished: 0,
        };
        text.lines().map(|l| (l.to_string(), tag.clone())).collect()
    }

    #[test]
    fn real_splat_first_lines() {
        // First lines as 6.1 prints them.
        let cases = [
            ("[    3.140000] Kernel panic - not syncing: sysrq triggered crash", SplatKind::Panic),
            ("[    2.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100", SplatKind::Panic),
            ("[   12.1] WARNING: CPU: 0 PID: 1 at kernel/module/main.c:2100 load_module+0x1/0x2", SplatKind::Warning),
            ("[    5.5] BUG: kernel NULL pointer dereference, address: 0000000000000000", SplatKind::Bug),
            ("[    5.5] kernel BUG at mm/slub.c:4321!", SplatKind::Bug),
            ("[   30.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:77]", SplatKind::SoftLockup),
            ("[   30.0] NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", SplatKind::HardLockup),
            ("[   40.0] rcu: INFO: rcu_preempt self-detected stall on CPU", SplatKind::RcuStall),
            ("[   40.0] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", SplatKind::RcuStall),
            ("[  250.0] INFO: task kworker/0:1:12 blocked for more than 122 seconds.", SplatKind::HungTask),
            ("[    9.9] BUG: KASAN: slab-out-of-bounds in foo+0x10/0x20", SplatKind::Kasan),
            ("[    9.9] UBSAN: array-index-out-of-bounds in lib/x.c:10:5", SplatKind::Ubsan),
            ("[    9.9] Oops: 0002 [#1] PREEMPT SMP NOPTI", SplatKind::Oops),
        ];
        for (line, kind) in cases {
            assert_eq!(classify(line), Some(kind), "{line}");
        }
    }

    #[test]
    fn ordinary_lines_are_not_splats() {
        for line in [
            "[    0.1] BPF: Invalid magic",
            "[    0.2] failed to validate module [dummy] BTF: -22",
            "[    0.3] dummy: module verification failed: signature and/or required key missing - tainting kernel",
            "[    0.4] rcu: Hierarchical RCU implementation.",
            "[    0.5] Kernel command line: console=ttyS0 panic=-1",
            "[    0.6] RAS: Correctable Errors collector initialized.",
        ] {
            assert_eq!(classify(line), None, "{line}");
        }
    }

    #[test]
    fn an_oops_report_is_one_splat_with_its_excerpt() {
        let text = "[    5.1] BUG: kernel NULL pointer dereference, address: 0000000000000000\n\
                    [    5.1] #PF: supervisor write access in kernel mode\n\
                    [    5.1] Oops: 0002 [#1] PREEMPT SMP NOPTI\n\
                    [    5.1] RIP: 0010:sysrq_handle_crash+0x16/0x20\n\
                    [    5.1] ---[ end trace 0000000000000000 ]---\n\
                    [    5.2] Kernel panic - not syncing: Fatal exception\n";
        let s = find(&tagged(text));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind, SplatKind::Oops);
        assert_eq!(s[0].excerpt.len(), 5);
        assert_eq!(s[1].kind, SplatKind::Panic);
        assert_eq!(s[0].scenario.as_deref(), Some("s"));
    }
}
