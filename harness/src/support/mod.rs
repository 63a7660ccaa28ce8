//! What every layer stands on: the cache folder and its atomic writes,
//! Ctrl-C handling and the waits that give way to it (child processes,
//! locks, streams), per-boot temporary folders, and two small helpers
//! that were once written out in five places.

pub mod cache;
pub mod child;
pub mod cleanup;
pub mod fsread;
pub mod interrupt;
pub mod manifest;
pub mod state;
pub mod stop;
pub mod tmpdirs;
pub mod xdg;

use std::path::PathBuf;

/// What an error says about the run, so that one place (the binary) can
/// turn it into an exit status, and a bisect can tell a bad commit from a
/// broken machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The kernel under test could not be had for a reason of its own: its
    /// build failed, its packages are broken, it is not a bootable kernel.
    Kernel,
    /// What the user gave is wrong: an option, a YAML file, a kernel word,
    /// a package that does not exist, a setting in the environment.
    Input,
    /// The machine: QEMU, apt or the mirror, the cache, the disk, a tool.
    Environment,
    /// A signal (the number) asked the run to stop, and it did: says
    /// nothing about the kernel, the input or the machine.
    Interrupted(i32),
}

/// Lower-case hex, for hashes in cache keys and folder names.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The first regular file called `program` in a `PATH` directory.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab]), "000fab");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn which_finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("no-such-program-btfvm").is_none());
    }
}
