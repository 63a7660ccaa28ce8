//! What the UI hears about a run, typed; the binary decides how to show it.

use std::time::Duration;

use crate::kbuild::BuildEvent;
use crate::kernel::debian::FetchEvent;
use crate::vm::{AccelDecision, BootEnd, VmEvent, Way};

#[derive(Debug, Clone)]
pub enum RunEvent {
    Accel(AccelDecision),
    /// A Debian kernel's fetch.
    Fetch {
        kernel: String,
        event: FetchEvent,
    },
    /// A kernel built from source: configure, make, the test module.
    Build {
        kernel: String,
        event: BuildEvent,
    },
    Resolved {
        kernel: String,
        origin: String,
    },
    Booting {
        kernel: String,
        /// QEMU here, or another way in; `target` names where.
        way: Way,
        target: Option<String>,
        scenarios: usize,
        initramfs_bytes: u64,
        /// What QEMU's `-kernel` got, in btfvm's own boots.
        image: Option<crate::boot::pvh::BootImage>,
    },
    Vm {
        kernel: String,
        event: VmEvent,
    },
    Booted {
        kernel: String,
        way: Way,
        wall: Duration,
        end: BootEnd,
        /// The end in words, with the panic line where there was one.
        summary: String,
    },
    /// Something went wrong that changes no verdict (a log not kept).
    Warning {
        kernel: Option<String>,
        message: String,
    },
}

pub type EventSink = dyn Fn(&RunEvent) + Send + Sync;
