//! Other ways in: running the suite somewhere btfvm did not boot itself
//! (an SSH target). The agent runs there as a plain process on a plan
//! rooted in a folder of its own, and its framed messages and the kernel
//! log feed the same watcher as a QEMU boot (`vm::watch`), so trials,
//! verdicts and splat detection do not depend on the way in.

pub mod kmsg;
pub mod remote;
pub mod ssh;
pub mod ssh_run;
pub mod url;

pub use ssh::{HostKeys, SshError, SshParams};
pub use url::{SshUrl, UrlError};
pub mod vng;
