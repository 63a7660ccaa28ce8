//! Everything the btfvm host and its guest agent agree on: the plan the host
//! writes into the initramfs, the step vocabulary of scenarios, the messages
//! the agent sends back, and how they are framed on the wire.

pub mod condition;
pub mod config;
pub mod frame;
pub mod message;
pub mod plan;
pub mod share;
pub mod step;
pub mod tracing;

pub use condition::{Condition, KernelFacts, KernelVersion};
pub use config::KernelConfig;
pub use frame::{encode, Decoder, FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION};
pub use message::{BtfObject, LoadOp, LoadRecord, Message, Observations, Outcome, SysfsEntry};
pub use plan::{GuestProgram, ModuleEntry, Plan, PlannedScenario, ServePlan, ShareMount};
pub use step::{Expect, LoadArgs, ModuleArg, Step, UnloadArgs, Variant, When};
