//! Booting one kernel in QEMU and collecting what the agent reports.

pub mod accel;
pub mod args;
pub mod console;
pub mod process;
pub mod pump;
pub mod run;
pub mod splat;

pub use accel::{AccelChoice, AccelDecision};
pub use args::Accel;
pub use pump::Timeouts;
pub use run::{boot, BootEnd, BootOutcome, BootSpec, VmError, VmEvent};
pub use splat::{Splat, SplatKind};
