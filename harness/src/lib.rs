//! btfvm: boots Linux kernels in QEMU and proves, end to end, that kernel
//! modules get split BTF. See README.md.
//!
//! The modules follow the flow of a run, and each one uses only those
//! above it in this list (`tests::layers_point_one_way` checks it):
//! inputs -> Debian archive -> kernel acquisition -> kernel building ->
//! boot preparation -> VM (or another way in: target) -> run and verdict -> report -> bisect (which
//! asks for many runs). `support` sits
//! under all of them. The `btfvm` binary (src/bin/btfvm) owns the commands
//! and everything that is printed; this library never prints.

pub mod support;

pub mod inputs;

pub mod debian;

pub mod kernel;

pub mod kbuild;

pub mod boot;

pub mod vm;

pub mod target;

pub mod run;

pub mod report;

pub mod bisect;

#[cfg(test)]
mod layers;
