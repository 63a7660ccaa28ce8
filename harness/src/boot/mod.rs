//! Boot preparation: from a kernel and the selected scenarios to what one
//! boot needs: which scenarios run (and why the others do not), the plan
//! the agent follows, the module files (as shipped, BTF removed, BTF
//! damaged) and the initramfs that carries them with the agent.

pub mod agent;
pub mod initramfs;
pub mod modules;
pub mod plan;
pub mod plan_modules;
pub mod pvh;
pub mod share;
pub mod sshd;
pub mod tools;
