//! The cache is shared by concurrent runs and survives runs killed halfway:
//! two fetches into one empty cache both succeed with the same kernel, and
//! a fetch killed with SIGKILL mid-download leaves nothing that the next
//! fetch trips over. Uses the Debian archive through apt (bullseye: the
//! smallest kernel package, 21 MB).

use std::process::{Command, Stdio};
use std::time::Duration;

fn fetch(cache: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    c.args(["fetch", "debian:bullseye"])
        .env("BTFVM_CACHE_DIR", cache)
        .stdin(Stdio::null());
    c
}

fn vmlinuz_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .find(|l| l.starts_with("vmlinuz"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn concurrent_fetches_share_one_cache() {
    let cache = tempfile::tempdir().unwrap();
    let a = fetch(cache.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = fetch(cache.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let (va, vb) = (vmlinuz_line(&a.stdout), vmlinuz_line(&b.stdout));
    assert!(!va.is_empty() && va == vb, "{va} vs {vb}");
}

#[test]
fn a_fetch_killed_halfway_leaves_a_usable_cache() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = fetch(cache.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it once it is downloading or extracting (or after 20 s at most).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("downloading") || line.contains("extracting") {
                let _ = tx.send(());
            }
        }
    });
    let _ = rx.recv_timeout(Duration::from_secs(20));
    child.kill().unwrap();
    child.wait().unwrap();
    let again = fetch(cache.path()).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let v = vmlinuz_line(&again.stdout);
    let path = v.trim_start_matches("vmlinuz").trim();
    assert!(std::path::Path::new(path).is_file(), "{v}");
}
