//! What btfvm asks of a target's shell, as pure functions: every command
//! it runs there, and the tar stream that carries the plan's files. A
//! target needs only a POSIX shell, tar, mktemp, cat, kill and rm (a
//! static busybox has them all), and sudo when the login is not root.

use std::io::Write;

use crate::boot::initramfs::{Archive, Entry};

/// The prefix of every folder btfvm makes on a target: what a leftover
/// search looks for, and what `checked_dir` accepts.
pub const DIR_PREFIX: &str = "/tmp/btfvm.";

/// The agent's and the kmsg reader's pid files, in the run's folder.
const AGENT_PID: &str = "agent.pid";
const KMSG_PID: &str = "kmsg.pid";

/// One argument for `sh -c`, single-quoted.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// How root is had on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// The login is root.
    Login,
    /// `sudo -n` works (no password asked).
    Sudo,
}

impl Root {
    fn prefix(self) -> &'static str {
        match self {
            Root::Login => "",
            Root::Sudo => "sudo -n ",
        }
    }
}

pub const MAKE_DIR: &str = "mktemp -d /tmp/btfvm.XXXXXXXX";
pub const RELEASE: &str = "uname -r";
pub const UID: &str = "id -u";
pub const SUDO_CHECK: &str = "sudo -n true";
/// /proc/config.gz (IKCONFIG_PROC) first, as the running kernel's own.
pub const CONFIG_PROC: &str = "cat /proc/config.gz";
pub const CONFIG_BOOT: &str = "cat \"/boot/config-$(uname -r)\"";
pub const UPTIME: &str = "cat /proc/uptime";

/// mktemp's answer, accepted only in the form it has, so nothing the
/// target says ends up in a command unquoted or outside /tmp.
pub fn checked_dir(answer: &str) -> Option<String> {
    let d = answer.trim();
    let tail = d.strip_prefix(DIR_PREFIX)?;
    (!tail.is_empty() && tail.chars().all(|c| c.is_ascii_alphanumeric())).then(|| d.to_string())
}

pub fn unpack(dir: &str) -> String {
    format!("tar -x -f - -C {}", quote(dir))
}

/// The agent, as root, with its pid where the cleanup finds it.
pub fn run_agent(dir: &str, root: Root) -> String {
    format!(
        "cd {d} && echo $$ > {pid} && exec {sudo}{d}/init --plan {d}/plan.json",
        d = quote(dir),
        pid = AGENT_PID,
        sudo = root.prefix()
    )
}

/// The kernel log as it comes, for splat detection (reading /dev/kmsg
/// needs root where dmesg_restrict is set).
pub fn follow_kmsg(dir: &str, root: Root) -> String {
    format!(
        "echo $$ > {d}/{pid} && exec {sudo}cat /dev/kmsg",
        d = quote(dir),
        pid = KMSG_PID,
        sudo = root.prefix()
    )
}

/// Ends what btfvm started and removes what it pushed. The pids are
/// those of the login shells that exec'd (sudo relays the signal to the
/// agent); sudo for the kill, as the agent runs as root.
pub fn cleanup(dir: &str, root: Root) -> String {
    let d = quote(dir);
    format!(
        "for p in {d}/{AGENT_PID} {d}/{KMSG_PID}; do [ -f \"$p\" ] && {sudo}kill -KILL \"$(cat \"$p\")\" 2>/dev/null; done; rm -rf {d}",
        sudo = root.prefix()
    )
}

/// The archive's members as a tar stream, paths relative to the folder
/// it is unpacked in.
pub fn tar_of(archive: &Archive) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in archive.entries() {
        let mut h = tar::Header::new_gnu();
        let (path, mode, data): (&str, u32, &[u8]) = match e {
            Entry::Dir { path } => {
                h.set_entry_type(tar::EntryType::Directory);
                (path, 0o755, &[])
            }
            Entry::File { path, mode, data } => (path, *mode, data),
        };
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path.trim_start_matches('/'), data)?;
    }
    b.into_inner().and_then(|mut v| {
        v.flush()?;
        Ok(v)
    })
}

/// A kernel config as the target gave it: /proc/config.gz is gzip.
pub fn config_text(bytes: &[u8]) -> Result<String, String> {
    let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out)
            .map_err(|e| format!("/proc/config.gz does not decompress: {e}"))?;
        out
    } else {
        bytes.to_vec()
    };
    String::from_utf8(plain).map_err(|_| "the kernel config is not text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn only_mktemps_own_answer_is_a_folder() {
        assert_eq!(
            checked_dir("/tmp/btfvm.aB3x9Qz1\n").as_deref(),
            Some("/tmp/btfvm.aB3x9Qz1")
        );
        for bad in [
            "",
            "/tmp/btfvm.",
            "/tmp/other",
            "/tmp/btfvm.a/../..",
            "/tmp/btfvm.a b",
            "/tmp/btfvm.$(x)",
        ] {
            assert_eq!(checked_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn commands_run_as_root_where_needed_and_record_their_pids() {
        let d = "/tmp/btfvm.X1";
        assert_eq!(
            run_agent(d, Root::Login),
            "cd '/tmp/btfvm.X1' && echo $$ > agent.pid && exec '/tmp/btfvm.X1'/init --plan '/tmp/btfvm.X1'/plan.json"
        );
        assert!(run_agent(d, Root::Sudo).contains("exec sudo -n '/tmp/btfvm.X1'/init"));
        assert!(follow_kmsg(d, Root::Sudo).ends_with("exec sudo -n cat /dev/kmsg"));
        let c = cleanup(d, Root::Sudo);
        assert!(c.contains("sudo -n kill -KILL"), "{c}");
        assert!(c.ends_with("rm -rf '/tmp/btfvm.X1'"), "{c}");
        assert_eq!(unpack(d), "tar -x -f - -C '/tmp/btfvm.X1'");
    }

    #[test]
    fn the_tar_holds_the_archive() {
        let mut a = Archive::new();
        a.add(Entry::file("init", 0o755, b"agent".to_vec()));
        a.add(Entry::file("/modules/x.ko", 0o644, b"elf".to_vec()));
        let t = tar_of(&a).unwrap();
        let mut r = tar::Archive::new(&t[..]);
        let got: Vec<(String, u32, usize)> = r
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.header().size().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("init".to_string(), 0o755, 5),
                ("modules".to_string(), 0o755, 0),
                ("modules/x.ko".to_string(), 0o644, 3)
            ]
        );
    }

    #[test]
    fn configs_plain_and_gzipped() {
        assert_eq!(config_text(b"CONFIG_X=y\n").unwrap(), "CONFIG_X=y\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"CONFIG_Y=m\n").unwrap();
        assert_eq!(config_text(&gz.finish().unwrap()).unwrap(), "CONFIG_Y=m\n");
        assert!(config_text(&[0x1f, 0x8b, 0, 1])
            .unwrap_err()
            .contains("config.gz"));
    }
}
