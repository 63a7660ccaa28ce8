//! The suite under virtme-ng (`--runner vng`): vng boots the kernel with
//! the host's root filesystem and runs the agent as a plain process on a
//! plan whose files sit in a host folder it sees; the agent writes its
//! framed messages to a file on a read-write share, and vng's console
//! (kernel log included, with --verbose) goes to a file. Both are followed
//! and fed to the boot watcher exactly like a QEMU boot's channel and
//! console, under btfvm's own limits (vng has no wall-clock limit).

use std::ffi::OsString;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use btfvm_proto::Plan;

use crate::boot::initramfs::{Archive, Entry};
use crate::support::child::GroupChild;
use crate::vm::driver::ConsoleFile;
use crate::vm::fed::Fed;
use crate::vm::transcript::Recorder;
use crate::vm::watch::Input;
use crate::vm::{BootEnd, BootOutcome, Timeouts, VmEvent, Way};

const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum VngError {
    #[error("vng (virtme-ng) not found on PATH or in ~/.local/vng/bin; install it: python3 -m venv ~/.local/vng && ~/.local/vng/bin/pip install virtme-ng (or pass --vng PATH)")]
    Missing,
    #[error("cannot start {}: {source}", vng.display())]
    Spawn {
        vng: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// vng on PATH, or the one given.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, VngError> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => crate::support::which("vng")
            .or_else(|| {
                let home = std::env::var_os("HOME")?;
                Some(Path::new(&home).join(".local/vng/bin/vng")).filter(|p| p.is_file())
            })
            .ok_or(VngError::Missing),
    }
}

/// One run's inputs.
pub struct VngBoot<'a> {
    pub vng: &'a Path,
    pub kernel: &'a Path,
    pub archive: &'a Archive,
    /// The plan as the archive holds it (paths from /); rooted here.
    pub plan: &'a Plan,
    pub timeouts: Timeouts,
    pub memory_mib: u32,
    pub kvm: bool,
    /// A static busybox for vng's initramfs, when the host has one.
    pub busybox: Option<&'a Path>,
    /// `--append`: the user's words for the kernel's command line.
    pub cmdline_extra: &'a [String],
    /// The run's folder: the plan's files, the result file, the console.
    pub workdir: &'a Path,
}

impl VngBoot<'_> {
    fn root(&self) -> PathBuf {
        self.workdir.join("root")
    }
    fn rw(&self) -> PathBuf {
        self.workdir.join("rw")
    }
    pub fn console_log(&self) -> PathBuf {
        self.workdir.join("console.log")
    }
    pub fn transcript(&self) -> PathBuf {
        self.workdir.join("transcript.bin")
    }
    fn results(&self) -> PathBuf {
        self.rw().join("results.bin")
    }
}

/// vng's command line: the kernel, no KVM where btfvm chose TCG, the
/// guest's memory, btfvm's lean kernel parameters and the user's, the
/// result folder writable, the console verbose (the kernel log is what
/// splat detection reads), and the agent as the one command.
pub fn args(b: &VngBoot<'_>) -> Vec<OsString> {
    let root = b.root();
    let mut exec = OsString::new();
    for (i, part) in [
        root.join("init").into_os_string(),
        "--plan".into(),
        root.join("plan.json").into_os_string(),
        "--out".into(),
        b.results().into_os_string(),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            exec.push(" ");
        }
        exec.push(shell_quote(part));
    }
    let mut v: Vec<OsString> = vec!["--run".into(), b.kernel.into()];
    if !b.kvm {
        v.push("--disable-kvm".into());
    }
    if let Some(bb) = b.busybox {
        v.push("--busybox".into());
        v.push(bb.into());
    }
    let kernel_words: Vec<&str> = crate::vm::args::LEAN_CMDLINE
        .iter()
        .copied()
        .chain(b.cmdline_extra.iter().map(String::as_str))
        .collect();
    v.extend([
        "--memory".into(),
        format!("{}M", b.memory_mib).into(),
        "--append".into(),
        kernel_words.join(" ").into(),
        "--rwdir".into(),
        b.rw().into_os_string(),
        "--verbose".into(),
        "--exec".into(),
        exec,
    ]);
    v
}

fn shell_quote(s: &std::ffi::OsStr) -> OsString {
    let t = s.to_string_lossy();
    OsString::from(format!("'{}'", t.replace('\'', r"'\''")))
}

/// Writes the archive's members under `dir`, as the kernel would unpack
/// the initramfs.
pub fn unpack(archive: &Archive, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in archive.entries() {
        match e {
            Entry::Dir { path } => std::fs::create_dir_all(dir.join(path.trim_start_matches('/')))?,
            Entry::File { path, mode, data } => {
                let to = dir.join(path.trim_start_matches('/'));
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p)?;
                }
                std::fs::write(&to, data)?;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*mode))?;
            }
        }
    }
    Ok(())
}

/// Writes the plan's files, the rooted plan and the empty result file,
/// and opens the console log and the transcript.
fn prepare(b: &VngBoot<'_>) -> Result<(File, Recorder<BufWriter<File>>), VngError> {
    let io = |what, path: PathBuf| move |source| VngError::Io { what, path, source };
    let root = b.root();
    unpack(b.archive, &root).map_err(io("writing the plan's files into", root.clone()))?;
    let plan =
        serde_json::to_vec_pretty(&b.plan.rooted(&root.to_string_lossy())).unwrap_or_default();
    std::fs::write(root.join("plan.json"), plan).map_err(io("writing", root.join("plan.json")))?;
    std::fs::create_dir_all(b.rw()).map_err(io("creating", b.rw()))?;
    File::create(b.results()).map_err(io("creating", b.results()))?;
    let console = File::create(b.console_log()).map_err(io("creating", b.console_log()))?;
    let transcript = File::create(b.transcript()).map_err(io("creating", b.transcript()))?;
    let recorder =
        Recorder::new(BufWriter::new(transcript)).map_err(io("writing", b.transcript()))?;
    Ok((console, recorder))
}

/// vng's command (`vng_command`), its output into the console log.
fn command(b: &VngBoot<'_>, argv: &[OsString], console: File) -> Result<Command, VngError> {
    let mut cmd = vng_command(b.vng);
    let out = console.try_clone().map_err(|source| VngError::Io {
        what: "opening",
        path: b.console_log(),
        source,
    })?;
    cmd.args(argv)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(console);
    Ok(cmd)
}

/// `vng`, with the folder it lives in first on PATH: vng runs its helpers
/// (virtme-run) from PATH, so a venv's vng given by path, not activated,
/// finds them only there.
pub fn vng_command(vng: &Path) -> Command {
    let mut cmd = Command::new(vng);
    if let Some(bin) = vng.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            cmd.env("PATH", joined);
        }
    }
    cmd
}

/// Prepares the folder, runs vng and watches it to its end. Returns the
/// outcome and vng's command line, as run.
pub fn run(
    b: &VngBoot<'_>,
    cancelled: &dyn Fn() -> Option<i32>,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<(BootOutcome, Vec<String>), VngError> {
    let (console, recorder) = prepare(b)?;
    let argv = args(b);
    let shown: Vec<String> = std::iter::once(b.vng.to_string_lossy().into_owned())
        .chain(argv.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect();
    let mut cmd = command(b, &argv, console)?;
    let fed = Fed::new(b.timeouts, recorder);
    // vng is python, QEMU and virtiofsd: a process group, all ended
    // together on every way out (GroupChild's drop included).
    let mut child =
        GroupChild::spawn(&mut cmd, libc::SIGKILL).map_err(|source| VngError::Spawn {
            vng: b.vng.to_path_buf(),
            source,
        })?;
    on_event(&VmEvent::Started { pid: child.id() });
    let mut f = Follow {
        fed,
        channel: ConsoleFile::new(&b.results()),
        log: ConsoleFile::new(&b.console_log()),
    };
    let end = f.follow(&mut child, cancelled, on_event);
    child.terminate();
    let elapsed = f.fed.elapsed();
    let mut outcome = BootOutcome::from_watched(f.fed.finish(), b.console_log(), String::new());
    outcome.way = Way::Vng;
    outcome.end = end;
    outcome.elapsed = elapsed;
    Ok((outcome, shown))
}

/// The watcher and what feeds it: the result file and the console log.
struct Follow {
    fed: Fed,
    channel: ConsoleFile,
    log: ConsoleFile,
}

impl Follow {
    fn feed(&mut self, input: Input, on_event: &mut dyn FnMut(&VmEvent)) -> Option<BootEnd> {
        self.fed.feed(input, on_event)
    }

    /// New console and result bytes, fed in that order.
    fn drain(&mut self, on_event: &mut dyn FnMut(&VmEvent)) -> Option<BootEnd> {
        let text = self.log.read_new();
        if !text.is_empty() {
            if let Some(e) = self.feed(Input::Console(text), on_event) {
                return Some(e);
            }
        }
        let bytes = self.channel.read_new();
        if bytes.is_empty() {
            return None;
        }
        self.feed(Input::Channel(bytes), on_event)
    }

    fn follow(
        &mut self,
        child: &mut GroupChild,
        cancelled: &dyn Fn() -> Option<i32>,
        on_event: &mut dyn FnMut(&VmEvent),
    ) -> BootEnd {
        loop {
            if let Some(e) = self.drain(on_event) {
                return e;
            }
            if let Some(signal) = cancelled() {
                if let Some(e) = self.feed(Input::Interrupted { signal }, on_event) {
                    return e;
                }
            }
            if child.has_exited().unwrap_or(true) {
                let status = child.wait(&|| None).ok().and_then(|s| s.code());
                // What vng and the agent wrote last.
                if let Some(e) = self.drain(on_event) {
                    return e;
                }
                return self
                    .feed(Input::Exited { status }, on_event)
                    .unwrap_or(BootEnd::Exited { status });
            }
            if let Some(e) = self.feed(Input::Tick, on_event) {
                return e;
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_runs_the_agent_on_the_rooted_plan_under_btfvms_choices() {
        let archive = Archive::new();
        let plan: Plan = serde_json::from_str(
            r#"{"protocol":1,"kernel":"k","config_path":"/config","spec_config":{},"modules":{},"scenarios":[]}"#,
        )
        .unwrap();
        let b = VngBoot {
            vng: Path::new("/usr/bin/vng"),
            kernel: Path::new("/k/vmlinuz"),
            archive: &archive,
            plan: &plan,
            timeouts: Timeouts {
                hello: Duration::from_secs(1),
                scenario: Duration::from_secs(1),
                wall: Duration::from_secs(1),
            },
            memory_mib: 384,
            kvm: false,
            busybox: Some(Path::new("/bin/busybox")),
            cmdline_extra: &["initcall_debug".to_string()],
            workdir: Path::new("/w/it's"),
        };
        let a: Vec<String> = args(&b)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            a,
            [
                "--run",
                "/k/vmlinuz",
                "--disable-kvm",
                "--busybox",
                "/bin/busybox",
                "--memory",
                "384M",
                "--append",
                "rcupdate.rcu_expedited=1 cryptomgr.notests initcall_debug",
                "--rwdir",
                "/w/it's/rw",
                "--verbose",
                "--exec",
                r"'/w/it'\''s/root/init' '--plan' '/w/it'\''s/root/plan.json' '--out' '/w/it'\''s/rw/results.bin'"
            ]
        );
        let kvm = VngBoot {
            kvm: true,
            busybox: None,
            ..b
        };
        let a: Vec<String> = args(&kvm)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert!(
            !a.iter().any(|x| x == "--disable-kvm" || x == "--busybox"),
            "{a:?}"
        );
    }

    #[test]
    fn unpacking_writes_the_archive_with_its_modes() {
        use std::os::unix::fs::PermissionsExt;
        let mut a = Archive::new();
        a.add(Entry::file("init", 0o755, b"x".to_vec()));
        a.add(Entry::file("/modules/m.ko", 0o644, b"elf".to_vec()));
        let d = tempfile::tempdir().unwrap();
        unpack(&a, d.path()).unwrap();
        let m = std::fs::metadata(d.path().join("init")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            std::fs::read(d.path().join("modules/m.ko")).unwrap(),
            b"elf"
        );
    }
}
