//! The JSON report of a run (`--report FILE`). Schema in README.md; bump
//! `SCHEMA` on any incompatible change.

use std::path::Path;

use btfvm_proto::Observations;
use serde::Serialize;

pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub btfvm: String,
    pub accel: Option<String>,
    pub accel_reason: Option<String>,
    pub kernels: Vec<KernelRecord>,
    pub trials: Vec<TrialRecord>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelRecord {
    pub name: String,
    pub source: String,
    /// Package and version, or the path, of what actually booted.
    pub origin: Option<String>,
    pub release: Option<String>,
    /// Upstream version from the kernel's config.
    pub version: Option<String>,
    /// Error that kept the kernel from booting at all.
    pub error: Option<String>,
    pub boot: Option<BootRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootRecord {
    pub accel: String,
    pub wall_ms: u64,
    /// Guest uptime when the agent said hello and when it finished.
    pub agent_hello_uptime_ms: Option<u64>,
    pub agent_done_uptime_ms: Option<u64>,
    /// "powered off", "timed out after 180 s", "QEMU exited with status 1"...
    pub end: String,
    pub initramfs_bytes: u64,
    pub console_log: String,
    /// Kernel splats seen on the console; `allowed` holds the spec's reason
    /// for the ones that did not fail anything.
    pub splats: Vec<crate::vm::Splat>,
    pub qemu_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialRecord {
    pub name: String,
    pub kernel: String,
    pub scenario: String,
    /// "passed", "failed" or "ignored".
    pub outcome: String,
    pub reason: Option<String>,
    pub duration_ms: u64,
    pub observations: Option<Observations>,
}

impl Report {
    pub fn summarize(&mut self) {
        let mut s = Summary::default();
        for t in &self.trials {
            match t.outcome.as_str() {
                "passed" => s.passed += 1,
                "failed" => s.failed += 1,
                _ => s.ignored += 1,
            }
        }
        self.summary = s;
    }

    /// Written to a temp file and renamed: a report is whole or absent.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        // A device or a pipe (/dev/stdout, a fifo) is written in place:
        // renaming a temp file over it would replace the device itself.
        if path.exists() && !path.metadata()?.is_file() {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            let mut bytes = serde_json::to_vec_pretty(self)?;
            bytes.push(b'\n');
            return std::io::Write::write_all(&mut f, &bytes);
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer_pretty(&mut tmp, self)?;
        std::io::Write::write_all(&mut tmp, b"\n")?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}
