//! The sandbox every hostile case runs in: a private TMPDIR and logs
//! folder, and after each case the checks the issue asks for: the exit
//! status, the message, a bounded time, no QEMU left running and no
//! temporary file left behind (in TMPDIR or in the cache's scratch
//! folders). Cases run one at a time: two TCG guests on a 2-core machine
//! only slow each other down, and timing bounds would lie.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    _one: std::sync::MutexGuard<'static, ()>,
}

pub struct Ran {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Ran {
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The cache the suite shares (kernels fetched once for every test).
pub fn shared_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("BTFVM_CACHE_DIR").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(x) => PathBuf::from(x).join("btfvm"),
        None => PathBuf::from(home).join(".cache/btfvm"),
    }
}

/// Scratch entries (`.btfvm-tmp-*`) under the cache's entry folders.
fn scratch_entries(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in [
        "debian/kernels",
        "build/kernels",
        "build/failed",
        "build/pahole",
        "tmp",
        "logs",
    ] {
        if let Ok(rd) = std::fs::read_dir(cache.join(sub)) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".btfvm-tmp-") {
                    out.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

pub fn qemu_running_under(dir: &Path) -> bool {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("qemu-system") && c.contains(&needle)
        })
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["tmp", "logs", "work"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        Sandbox { dir, _one: one }
    }

    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// A folder for the case's own files.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn btfvm<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
        c.args(args)
            .env("TMPDIR", self.tmp())
            .stdin(Stdio::null())
            .current_dir(self.work());
        c
    }

    /// Runs `cmd` and checks what every case must hold; returns the output
    /// for the case's own checks.
    pub fn case(
        &self,
        name: &str,
        mut cmd: Command,
        status: i32,
        wants: &[&str],
        limit: Duration,
    ) -> Ran {
        let cache = cmd
            .get_envs()
            .find(|(k, _)| *k == "BTFVM_CACHE_DIR")
            .and_then(|(_, v)| v.map(PathBuf::from))
            .unwrap_or_else(shared_cache);
        let before = scratch_entries(&cache);
        let start = Instant::now();
        let out: Output = cmd.output().expect("running btfvm");
        let ran = Ran {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: start.elapsed(),
        };
        let all = ran.text();
        assert_eq!(ran.status, Some(status), "{name}: exit status\n{all}");
        for w in wants {
            assert!(all.contains(w), "{name}: expected {w:?} in\n{all}");
        }
        assert!(
            ran.took <= limit,
            "{name}: took {:?}, limit {limit:?}\n{all}",
            ran.took
        );
        assert!(
            !qemu_running_under(&self.tmp()),
            "{name}: QEMU left running"
        );
        let left: Vec<_> = std::fs::read_dir(self.tmp())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: left in TMPDIR: {left:?}");
        let after = scratch_entries(&cache);
        let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
        assert!(
            new.is_empty(),
            "{name}: scratch entries left in the cache: {new:?}"
        );
        // `-- --nocapture` lists every case with its time: how the totals
        // in the README are counted.
        eprintln!("case passed: {name} (exit {status}, {:.2?})", ran.took);
        ran
    }
}

/// The files of the cached bookworm kernel (fetched on first use).
pub struct DiskKernel {
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
    pub modules: PathBuf,
    pub release: String,
}

pub fn fetched(word: &str) -> DiskKernel {
    let out = Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args(["fetch", word])
        .output()
        .expect("btfvm fetch");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("btfvm fetch {word}: no {k} in\n{text}"))
    };
    DiskKernel {
        vmlinuz: field("vmlinuz").into(),
        config: field("config").into(),
        modules: field("modules").into(),
        release: field("release"),
    }
}

pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().expect("utf-8 path")).expect("c string");
    // SAFETY: mkfifo on a path of the test's own, with a valid C string.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {p:?}"
    );
}

pub const FAST: Duration = Duration::from_secs(5);
pub const BOOT: Duration = Duration::from_secs(90);
pub const REFETCH: Duration = Duration::from_secs(240);
