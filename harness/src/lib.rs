//! btfvm: boots Linux kernels in QEMU and proves, end to end, that kernel
//! modules get split BTF. See README.md.

pub mod agent;
pub mod build;
pub mod cache;
pub mod cli;
pub mod initramfs;
pub mod interrupt;
pub mod kernel;
pub mod kernelrun;
pub mod kernelspec;
pub mod modules;
pub mod planner;
pub mod report;
pub mod scenario;
pub mod suite;
pub mod tmpdirs;
pub mod verdict;
pub mod vm;
pub mod yaml;
