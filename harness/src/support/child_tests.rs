use super::*;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// Live processes (zombies left out) whose command line names `marker`.
pub(crate) fn survivors(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) && !state.starts_with('Z') {
            found.push(format!("{} {cmdline}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// A `sleep` reached through a link in a private folder, so that its
/// command line carries a marker no other process has.
pub(crate) fn marked_sleep(dir: &Path) -> String {
    let link = dir.join("sleep");
    let sleep = crate::support::which("sleep").expect("sleep on PATH");
    std::os::unix::fs::symlink(sleep, &link).unwrap();
    link.to_string_lossy().into_owned()
}

fn sh(script: &str, arg0: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script).arg(arg0);
    c
}

#[test]
fn output_reads_both_streams_without_deadlock() {
    let mut c = sh(
        "head -c 1000000 /dev/zero; head -c 700000 /dev/zero >&2; exit 3",
        "sh",
    );
    let out = output(&mut c, &stop::never).unwrap();
    assert_eq!(out.stdout.len(), 1_000_000);
    assert_eq!(out.stderr.len(), 700_000);
    assert_eq!(out.status.code(), Some(3));
    let missing = output(&mut Command::new("/nonexistent/btfvm-x"), &stop::never);
    assert!(
        matches!(missing, Err(RunError::Io(ref e)) if e.kind() == io::ErrorKind::NotFound),
        "{missing:?}"
    );
}

#[test]
fn what_a_command_leaves_in_its_group_is_killed_with_it() {
    let d = tempfile::tempdir().unwrap();
    let sleep = marked_sleep(d.path());
    // The background sleep holds stdout open: Command::output() would
    // wait the full 30 s for it.
    let t = Instant::now();
    let out = output(&mut sh("\"$0\" 30 & echo started", &sleep), &stop::never).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    assert!(survivors(&sleep).is_empty(), "{:?}", survivors(&sleep));
}

/// The flag a signal handler would set, set by a thread after `after`.
pub(crate) fn stop_after(after: Duration) -> (Arc<AtomicI32>, Instant) {
    let flag = Arc::new(AtomicI32::new(0));
    let f = Arc::clone(&flag);
    std::thread::spawn(move || {
        std::thread::sleep(after);
        f.store(libc::SIGINT, Ordering::SeqCst);
    });
    (flag, Instant::now() + after)
}

#[test]
fn a_stop_request_kills_the_whole_group_at_once() {
    let d = tempfile::tempdir().unwrap();
    let sleep = marked_sleep(d.path());
    let (flag, at) = stop_after(Duration::from_millis(100));
    let stop = || Some(flag.load(Ordering::SeqCst)).filter(|s| *s != 0);
    let r = output(&mut sh("\"$0\" 30 & \"$0\" 30", &sleep), &stop);
    let took = at.elapsed();
    assert!(
        matches!(r, Err(RunError::Interrupted(Interrupted { signal: 2 }))),
        "{r:?}"
    );
    // SIGTERM is enough for sleep: no grace period spent.
    assert!(took < Duration::from_millis(250), "{took:?}");
    assert!(survivors(&sleep).is_empty(), "{:?}", survivors(&sleep));
}

#[test]
fn a_group_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let d = tempfile::tempdir().unwrap();
    let sleep = marked_sleep(d.path());
    let (flag, at) = stop_after(Duration::from_millis(20));
    let stop = || Some(flag.load(Ordering::SeqCst)).filter(|s| *s != 0);
    // An ignored signal stays ignored across fork and exec.
    let mut c = sh("trap '' TERM; \"$0\" 30", &sleep);
    let r = output(&mut c, &stop);
    let took = at.elapsed();
    assert!(matches!(r, Err(RunError::Interrupted(_))), "{r:?}");
    assert!(
        took >= GRACE && took < GRACE + Duration::from_millis(300),
        "{took:?}"
    );
    assert!(survivors(&sleep).is_empty(), "{:?}", survivors(&sleep));
}

#[test]
fn a_dropped_group_child_takes_its_group_with_it() {
    let d = tempfile::tempdir().unwrap();
    let sleep = marked_sleep(d.path());
    let mut c = sh("\"$0\" 30 & \"$0\" 30", &sleep);
    let child = GroupChild::spawn(&mut c, libc::SIGKILL).unwrap();
    let t = Instant::now();
    while survivors(&sleep).len() < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(child);
    let t = Instant::now();
    while !survivors(&sleep).is_empty() && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(survivors(&sleep).is_empty(), "{:?}", survivors(&sleep));
}

#[test]
fn wait_timeout_ends_on_exit_on_timeout_and_on_a_stop() {
    let mut quick = KillOnDrop(Command::new("true").spawn().unwrap());
    assert!(matches!(
        wait_timeout(&mut quick.0, Duration::from_secs(5), &stop::never),
        Waited::Exited(s) if s.success()
    ));
    let mut slow = KillOnDrop(Command::new("sleep").arg("30").spawn().unwrap());
    let t = Instant::now();
    let w = wait_timeout(&mut slow.0, Duration::from_millis(50), &stop::never);
    assert_eq!(w, Waited::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(50));
    let (flag, at) = stop_after(Duration::from_millis(50));
    let stop = || Some(flag.load(Ordering::SeqCst)).filter(|s| *s != 0);
    let w = wait_timeout(&mut slow.0, Duration::from_secs(30), &stop);
    assert_eq!(w, Waited::Stopped(libc::SIGINT));
    assert!(at.elapsed() < Duration::from_secs(1), "{:?}", at.elapsed());
}
