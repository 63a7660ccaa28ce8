//! Signals always win: SIGINT and SIGTERM end btfvm within a second
//! wherever it waits on something outside it (a mirror that never
//! answers, a silent make, another run's build lock, a FIFO nobody
//! reads), with status 128+N, no process of its left running and no
//! temporary file left. No QEMU (`--qemu` names no program) and no
//! network (the mirror is a socket of this test's).
//!
//! Each test prints what it measured (`cargo test --test hostile_signals
//! -- --nocapture`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use btfvm::support::child::KillOnDrop;

/// The bound the issue sets, from the signal to btfvm's exit.
const BOUND: Duration = Duration::from_secs(1);

/// A private root: `tmp` is btfvm's TMPDIR and `cache` its cache. Its
/// path is in the environment of every process btfvm starts, which is how
/// survivors are found (apt's http method names nothing of ours).
struct Private {
    root: tempfile::TempDir,
}

impl Private {
    fn new() -> Private {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("tmp")).expect("mkdir tmp");
        Private { root }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }

    fn marker(&self) -> String {
        self.root.path().to_string_lossy().into_owned()
    }

    fn btfvm(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
        c.args(args)
            .env("TMPDIR", self.path("tmp"))
            .env("BTFVM_CACHE_DIR", self.path("cache"))
            .env_remove("BTFVM_DEBIAN_MIRROR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

fn kernels_dir() -> String {
    format!("{}/../kernels", env!("CARGO_MANIFEST_DIR"))
}

/// btfvm running, its stderr read to the end on a thread.
struct Running {
    child: KillOnDrop,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn start(mut cmd: Command) -> Running {
    let mut child = cmd.spawn().expect("spawn btfvm");
    let pipe = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Ok(mut k) = kept.lock() {
                k.push(line.clone());
            }
            let _ = tx.send(line);
        }
    });
    Running {
        child: KillOnDrop(child),
        lines,
        stderr,
    }
}

impl Running {
    fn stderr(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn wait_line(&self, needle: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!(
            "no {needle:?} on stderr within {limit:?}:\n{}",
            self.stderr()
        );
    }

    /// Sends `sig` and returns btfvm's exit code and how long it took to
    /// exit, measured to the millisecond.
    fn signal(&mut self, sig: i32) -> (Option<i32>, Duration) {
        let t = Instant::now();
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.0.id() as i32, sig) };
        loop {
            if let Ok(Some(st)) = self.child.0.try_wait() {
                return (st.code(), t.elapsed());
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "btfvm still running 20 s after signal {sig}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Live processes (zombies left out) whose command line or environment
/// holds `marker`.
fn survivors(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let read = |f: &str| std::fs::read(e.path().join(f)).unwrap_or_default();
        let stat = String::from_utf8_lossy(&read("stat")).into_owned();
        if stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
        {
            continue;
        }
        let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
        let environ = String::from_utf8_lossy(&read("environ")).into_owned();
        if cmdline.contains(marker) || environ.contains(marker) {
            found.push(format!("{} {cmdline}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// Folders whose every entry is a leftover: TMPDIR, the cache's scratch
/// folder, and the builds' work folder (O= folders and logs).
const SCRATCH: [&str; 3] = ["tmp", "cache/tmp", "cache/build/work"];

/// Temporary files left: anything in `scratch` folders, and any
/// `.btfvm-tmp-*` or `.btfvm-report-*` anywhere.
fn leftovers(p: &Private, scratch: &[&str]) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for dir in scratch {
        for e in std::fs::read_dir(p.path(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            left.push(e.path());
        }
    }
    let mut stack = vec![p.root.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".btfvm-tmp-") || name.starts_with(".btfvm-report-") {
                left.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    left
}

/// What every case asserts once btfvm has exited.
fn assert_stopped(what: &str, p: &Private, run: &Running, got: (Option<i32>, Duration), code: i32) {
    assert_exit(what, p, run, got, code);
    let left = leftovers(p, &SCRATCH);
    assert!(left.is_empty(), "{what}: left behind: {left:#?}");
}

/// The status, the bound and the survivors.
fn assert_exit(what: &str, p: &Private, run: &Running, got: (Option<i32>, Duration), code: i32) {
    let (status, took) = got;
    println!(
        "hostile_signals: {what}: exit {status:?} {} ms after the signal",
        took.as_millis()
    );
    assert_eq!(status, Some(code), "{what}:\n{}", run.stderr());
    assert!(took < BOUND, "{what}: took {took:?}:\n{}", run.stderr());
    let alive = survivors(&p.marker());
    assert!(alive.is_empty(), "{what}: left running: {alive:#?}");
}

/// A mirror that accepts connections and never answers; sends on the
/// channel at each connection, and holds every socket open.
fn silent_mirror() -> (String, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
            let _ = tx.send(());
        }
    });
    (format!("http://127.0.0.1:{port}/debian"), rx)
}

#[test]
fn sigterm_while_apt_waits_for_a_mirror_that_never_answers() {
    let (mirror, connected) = silent_mirror();
    for what in ["fetch", "run"] {
        let p = Private::new();
        let report = p.path("report.json");
        let mut cmd = match what {
            "fetch" => p.btfvm(&["fetch", "debian:bookworm"]),
            _ => {
                let mut c = p.btfvm(&["run", "--kernel", "debian:bookworm", "--accel", "tcg"]);
                c.args(["--qemu", "/nonexistent/qemu", "--report"])
                    .arg(&report);
                c
            }
        };
        cmd.args(["--debian-mirror", &mirror]);
        let started = Instant::now();
        let mut run = start(cmd);
        connected
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what}: apt never connected:\n{}", run.stderr()));
        std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
        let got = run.signal(libc::SIGTERM);
        assert_stopped(&format!("{what} (apt-get update)"), &p, &run, got, 143);
        assert!(
            run.stderr().contains("interrupted by SIGTERM"),
            "{}",
            run.stderr()
        );
        if what == "run" {
            let r = std::fs::read_to_string(&report).expect("the partial report");
            assert!(
                r.contains("interrupted by SIGTERM") && r.contains("not_run"),
                "{r}"
            );
        }
    }
}

/// A tree kbuild takes for a kernel (a Makefile and a Kconfig), whose
/// `tinyconfig` runs `recipe`; `sleep` is a link inside it, so that the
/// sleep's command line names the tree.
fn fake_tree(p: &Private, recipe: &str) -> PathBuf {
    let tree = p.path("tree");
    std::fs::create_dir(&tree).expect("mkdir tree");
    let sleep = btfvm::support::which("sleep").expect("sleep on PATH");
    std::os::unix::fs::symlink(sleep, tree.join("sleep")).expect("link sleep");
    std::fs::write(tree.join("Kconfig"), "config X\n\tbool \"x\"\n").expect("Kconfig");
    let makefile = format!(
        "tinyconfig:\n\t@{}\n",
        recipe.replace("SLEEP", &tree.join("sleep").to_string_lossy())
    );
    std::fs::write(tree.join("Makefile"), makefile).expect("Makefile");
    tree
}

fn kernel_build(p: &Private, tree: &Path) -> Command {
    let mut c = p.btfvm(&["kernel", "build"]);
    c.arg(tree)
        .args(["--kernels-dir", &kernels_dir(), "--jobs", "1"]);
    c
}

#[test]
fn sigint_while_make_is_silent() {
    let p = Private::new();
    let tree = fake_tree(&p, "SLEEP 300");
    let mut run = start(kernel_build(&p, &tree));
    wait_for_sleep(&p, &tree, &run);
    let got = run.signal(libc::SIGINT);
    assert_stopped("kernel build (silent make)", &p, &run, got, 130);
    let err = run.stderr();
    assert!(
        err.contains("interrupted by SIGINT") && !err.contains("build failed"),
        "{err}"
    );
    // Nothing remembered: a stopped build says nothing about its inputs.
    let failed = std::fs::read_dir(p.path("cache/build/failed")).map(|d| d.count());
    assert_eq!(failed.unwrap_or(0), 0);
}

fn wait_for_sleep(p: &Private, tree: &Path, run: &Running) {
    let sleep = format!("{} 300", tree.join("sleep").display());
    let t = Instant::now();
    // The sleep itself, not the shell whose script names it.
    let running = || {
        survivors(&p.marker()).iter().any(|s| {
            s.split_once(' ')
                .is_some_and(|(_, cmd)| cmd.starts_with(&sleep))
        })
    };
    while !running() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "sleep never ran:\n{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real O= folder is tens of thousands of files, seconds to remove
/// (here 10,240 object-sized files, 160 MB):
/// the stopped build removes what it can in 200 ms, and the next build
/// clears the rest before it starts.
#[test]
fn sigint_while_make_is_silent_over_a_big_o_folder() {
    let p = Private::new();
    let tree = fake_tree(
        &p,
        "[ ! -e $(CURDIR)/again ] || exit 1; mkdir -p $(O)/objs && cd $(O)/objs \\\n\t\
         && head -c 160M /dev/zero | split -b 16k -a 5 - o. && SLEEP 300",
    );
    let mut run = start(kernel_build(&p, &tree));
    wait_for_sleep(&p, &tree, &run);
    let got = run.signal(libc::SIGINT);
    assert_exit(
        "kernel build (silent make, 10,240 files of 16 KiB in O=)",
        &p,
        &run,
        got,
        130,
    );
    let left = leftovers(&p, &SCRATCH[..2]);
    assert!(left.is_empty(), "left behind: {left:#?}");
    let objs = std::fs::read_dir(p.path("cache/build/work"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("objs"))
        .find(|o| o.is_dir());
    let remaining = objs.map(|o| std::fs::read_dir(o).map(|d| d.count()).unwrap_or(0));
    println!("hostile_signals: O= files left for the next build: {remaining:?}");

    std::fs::write(tree.join("again"), b"").expect("flag");
    let second = kernel_build(&p, &tree).output().expect("btfvm");
    assert_eq!(
        second.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let left = leftovers(&p, &SCRATCH);
    assert!(left.is_empty(), "the next build left: {left:#?}");
}

#[test]
fn sigint_while_waiting_for_the_build_lock() {
    let p = Private::new();
    let tree = fake_tree(&p, "SLEEP 300");
    let lock = p.path("cache/build/lock");
    std::fs::create_dir_all(p.path("cache/build")).expect("mkdir");
    let held = File::create(&lock).expect("lock file");
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut run = start(kernel_build(&p, &tree));
    run.wait_line("waiting for another run's build", Duration::from_secs(60));
    let got = run.signal(libc::SIGINT);
    assert_stopped("kernel build (build lock held)", &p, &run, got, 130);
    drop(held);
}

/// A FIFO whose reader opened it and never reads, its pipe shrunk to one
/// page, so that a report of more than 4096 bytes cannot fit.
fn stuck_fifo(path: &Path) -> File {
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .expect("open the FIFO");
    // SAFETY: fcntl on a descriptor we own.
    let size = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert_eq!(size, 4096);
    reader
}

fn queued(f: &File) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int we own.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    n
}

/// The report of a run whose kernel build fails at once (so nothing
/// boots) lists that failure, with make's last 25 lines, for each of the
/// 13 trials: about 30 KB, which a 4096-byte pipe cannot take.
#[test]
fn sigint_while_the_report_waits_for_a_fifo_nobody_reads() {
    let p = Private::new();
    let tree = fake_tree(
        &p,
        "seq 25 | sed 's/$$/: a line of make output that the report quotes per trial/'; false",
    );
    let fifo = p.path("report.fifo");
    let reader = stuck_fifo(&fifo);
    let word = format!("build:{}", tree.display());
    let mut cmd = p.btfvm(&[
        "run",
        "--kernel",
        &word,
        "--accel",
        "tcg",
        "--qemu",
        "/nonexistent/qemu",
    ]);
    cmd.args(["--kernels-dir", &kernels_dir()])
        .arg("--report")
        .arg(&fifo);
    let mut run = start(cmd);
    let t = Instant::now();
    while queued(&reader) < 4096 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no report came:\n{}",
            run.stderr()
        );
        if let Ok(Some(st)) = run.child.0.try_wait() {
            panic!(
                "btfvm ended ({st}) with the report written:\n{}",
                run.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Full, and btfvm still there: it waits for room.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        matches!(run.child.0.try_wait(), Ok(None)),
        "{}",
        run.stderr()
    );
    let got = run.signal(libc::SIGINT);
    assert_stopped("run (report to a stuck FIFO)", &p, &run, got, 130);
    let err = run.stderr();
    assert!(err.contains("cut short, interrupted by SIGINT"), "{err}");
    let mut head = vec![0u8; 4096];
    let n = std::io::Read::read(&mut &reader, &mut head).expect("read the FIFO");
    assert!(
        n == 4096 && head.starts_with(b"{"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
}
