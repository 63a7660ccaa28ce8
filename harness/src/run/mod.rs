//! Running the suite: which kernels (`select`), getting each one
//! (`acquire`), one kernel's boot and its results (`kernel_run`), the
//! verdict per scenario (`verdict`, `outcome`), boots kept for `replay`,
//! and the libtest trials (`suite`). Progress leaves as typed `events`.

pub mod acquire;
pub mod booted;
pub mod events;
pub mod kept;
pub mod kernel_run;
pub mod outcome;
pub mod partition;
pub mod qemu_run;
pub mod record;
pub mod replay;
pub mod select;
pub mod settings;
pub mod suite;
pub mod target_run;
pub mod tools;
pub mod verdict;
