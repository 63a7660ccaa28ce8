//! The guest agent binary, built static by build.rs and embedded here so the
//! `btfvm` binary is self-contained.

pub const AGENT: &[u8] = include_bytes!(env!("BTFVM_GUEST_BIN"));
