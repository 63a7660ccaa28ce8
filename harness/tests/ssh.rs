//! `--target ssh://` for real: `btfvm serve-ssh` boots bookworm's kernel
//! with dropbear behind QEMU's user-mode network, and `btfvm run --target`
//! runs the suite there. Same verdicts as btfvm's own boot of that kernel;
//! the faults (a connection cut mid-scenario, a scenario past its limit,
//! a login without root, an unknown host key) end clearly, in bounded
//! time, and leave nothing behind on the target. One guest serves every
//! trial, so the trials run one at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use btfvm::target::ssh::{Connection, HostKeys, SshParams};
use btfvm::target::SshUrl;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod ways;

const KERNEL: &str = "bookworm";

struct Guest {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Guest {
    fn drop(&mut self) {
        // SIGTERM: serve-ssh stops its QEMU and removes its folder.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Guest {
    fn key(&self) -> PathBuf {
        self.dir.path().join("id")
    }
    fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }
    fn url(&self, user: &str, port: u16) -> String {
        format!("ssh://{user}@127.0.0.1:{port}")
    }

    /// `btfvm run --target` as root on `port` (the guest's, or a proxy's:
    /// known_hosts keys a host key by port, so the proxy gets a line).
    fn run(&self, port: u16, extra: &[&str]) -> Command {
        let known = if port == self.port {
            self.known_hosts()
        } else {
            let line = std::fs::read_to_string(self.known_hosts()).unwrap();
            let key = line.split_once(' ').map(|(_, k)| k).unwrap_or("");
            let f = self.dir.path().join(format!("known_hosts.{port}"));
            std::fs::write(&f, format!("[127.0.0.1]:{port} {key}")).unwrap();
            f
        };
        let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
        c.args(["run", "--kernel", KERNEL, "--target"])
            .arg(self.url("root", port))
            .arg("--ssh-key")
            .arg(self.key())
            .arg("--known-hosts")
            .arg(known)
            .args(extra);
        c
    }

    /// What btfvm left on the target: its folders and running agents.
    fn leftovers(&self) -> String {
        let c = Connection::open(&SshParams {
            url: SshUrl::parse(&self.url("root", self.port)).unwrap(),
            identity: Some(self.key()),
            host_keys: HostKeys::KnownHosts(self.known_hosts()),
            connect_timeout: Duration::from_secs(15),
        })
        .expect("connecting to look for leftovers");
        let o = c
            .run(
                "ls -d /tmp/btfvm.* 2>/dev/null; ps -o pid,args | grep -e '--plan' -e 'cat /dev/kmsg' | grep -v grep",
                None,
                Duration::from_secs(30),
            )
            .expect("looking for leftovers");
        o.text()
    }
}

/// Why the SSH trials cannot run here, if they cannot.
fn missing() -> Option<String> {
    for (p, pkg) in [
        ("dropbear", "dropbear-bin"),
        ("dropbearkey", "dropbear-bin"),
        ("busybox", "busybox-static"),
        ("ssh-keygen", "openssh-client"),
    ] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(p).is_file());
        if !found {
            return Some(format!(
                "{p} is not installed (apt-get install {pkg}; .ci/run does)"
            ));
        }
    }
    None
}

fn start_guest() -> Result<Guest, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let key = dir.path().join("id");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if !st.success() {
        return Err(format!("ssh-keygen failed: {st}"));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args(["serve-ssh", KERNEL, "--authorized-key"])
        .arg(key.with_extension("pub"))
        .arg("--known-hosts-out")
        .arg(dir.path().join("known_hosts"))
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting btfvm serve-ssh: {e}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            let _ = child.kill();
            format!("btfvm serve-ssh printed no URL (got {line:?}); see its stderr above")
        })?;
    Ok(Guest { child, port, dir })
}

fn same_verdicts_as_qemu(g: &Guest) -> Result<(), Failed> {
    let dir = tempfile::tempdir().unwrap();
    let (over_ssh, local) = (dir.path().join("ssh.json"), dir.path().join("qemu.json"));
    let o = g
        .run(g.port, &["--report"])
        .arg(&over_ssh)
        .output()
        .unwrap();
    let ssh_out = String::from_utf8_lossy(&o.stdout).into_owned();
    let q = Command::new(env!("CARGO_BIN_EXE_btfvm"))
        .args(["run", "--kernel", KERNEL, "--report"])
        .arg(&local)
        .output()
        .unwrap();
    if !q.status.success() {
        return Err(format!(
            "the QEMU run failed:\n{}",
            String::from_utf8_lossy(&q.stdout)
        )
        .into());
    }
    if !o.status.success() {
        return Err(format!("the run over SSH failed:\n{ssh_out}").into());
    }
    ways::same_verdicts(&over_ssh, "over SSH", &local, "in QEMU ")?;
    let left = g.leftovers();
    if !left.is_empty() {
        return Err(format!("left on the target: {left}").into());
    }
    Ok(())
}

/// A TCP forwarder whose connections can all be cut at once.
struct Proxy {
    port: u16,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn new(to: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let keep = live.clone();
        std::thread::spawn(move || {
            for a in l.incoming().flatten() {
                let Ok(b) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                for s in [&a, &b] {
                    keep.lock().unwrap().push(s.try_clone().unwrap());
                }
                for (mut from, mut into) in
                    [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)]
                {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || into.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, live }
    }

    fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn faults_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults")
}

/// Runs `cmd` until its stderr shows the agent running, then calls `then`;
/// returns stdout and the time from `then` to the end.
fn after_agent_starts(mut cmd: Command, then: impl FnOnce()) -> (String, Duration) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        eprintln!("{line}");
        if line.contains("agent running") {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    then();
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        t.elapsed(),
    )
}

fn a_cut_connection_is_lost_in_bounded_time_and_cleaned(g: &Guest) -> Result<(), Failed> {
    let proxy = Proxy::new(g.port);
    let mut cmd = g.run(proxy.port, &["--exact", "bookworm::hang", "--scenarios"]);
    cmd.arg(faults_dir()).args(["--scenario-timeout", "120"]);
    let (out, took) = after_agent_starts(cmd, || proxy.cut());
    if !out.contains("the connection to the target was lost") {
        return Err(format!("no lost connection reported:\n{out}").into());
    }
    if took > Duration::from_secs(60) {
        return Err(format!("took {took:?} after the cut").into());
    }
    let left = g.leftovers();
    if !left.is_empty() {
        return Err(format!("left on the target after the cut: {left}").into());
    }
    Ok(())
}

fn a_scenario_past_its_limit_is_killed_on_the_target(g: &Guest) -> Result<(), Failed> {
    let mut cmd = g.run(g.port, &["--exact", "bookworm::hang", "--scenarios"]);
    cmd.arg(faults_dir()).args(["--scenario-timeout", "5"]);
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    if !out.contains("scenario hang still running after 5 s; the agent on the target killed") {
        return Err(format!("no scenario timeout reported:\n{out}").into());
    }
    let left = g.leftovers();
    if !left.is_empty() {
        return Err(format!("left on the target: {left}").into());
    }
    Ok(())
}

fn a_login_without_root_is_refused_by_name(g: &Guest) -> Result<(), Failed> {
    let o = one_scenario(g.url("plain", g.port))
        .arg("--ssh-key")
        .arg(g.key())
        .arg("--known-hosts")
        .arg(g.known_hosts())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    if o.status.success()
        || !out.contains("plain on ssh://plain@127.0.0.1")
        || !out.contains("is not root and `sudo -n` does not work")
    {
        return Err(format!("({}) no clear refusal:\n{out}", o.status).into());
    }
    Ok(())
}

fn an_unknown_host_key_is_refused_unless_waived(g: &Guest) -> Result<(), Failed> {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    let base = |extra: &[&str]| {
        let mut c = one_scenario(g.url("root", g.port));
        c.arg("--ssh-key").arg(g.key()).args(extra);
        c
    };
    let o = base(&["--known-hosts", empty.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    if o.status.success() || !out.contains("ssh-keyscan -p") {
        return Err(format!("an unknown host was not refused:\n{out}").into());
    }
    let o = base(&["--ssh-insecure-host-key"]).output().unwrap();
    if !o.status.success() {
        return Err(format!(
            "--ssh-insecure-host-key did not let the run go:\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
        .into());
    }
    Ok(())
}

/// Without --ssh-key and without keys in ~/.ssh (an empty HOME), the key
/// comes from ssh-agent (SSH_AUTH_SOCK).
fn ssh_agent_authenticates(g: &Guest) -> Result<(), Failed> {
    let home = tempfile::tempdir().unwrap();
    let sock = home.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("ssh-agent: {e}"))?;
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(g.key())
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .map_err(|e| format!("ssh-add: {e}"));
    // The real cache and state folders: an empty HOME would fetch the
    // kernel again.
    let cache = btfvm::support::cache::Cache::from_env().map_err(|e| e.to_string())?;
    let o = one_scenario(g.url("root", g.port))
        .arg("--known-hosts")
        .arg(g.known_hosts())
        .env("HOME", home.path())
        .env("SSH_AUTH_SOCK", &sock)
        .env("BTFVM_CACHE_DIR", cache.root())
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    let added = added?;
    if !added.status.success() {
        return Err(format!("ssh-add failed: {}", String::from_utf8_lossy(&added.stderr)).into());
    }
    if !o.status.success() {
        return Err(format!(
            "({}) the agent's key did not let btfvm in:\n{}",
            o.status,
            ways::text(&o)
        )
        .into());
    }
    Ok(())
}

/// `btfvm run` of one scenario (module-load) on `url`.
fn one_scenario(url: String) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    c.args([
        "run",
        "--kernel",
        KERNEL,
        "--exact",
        "bookworm::module-load",
        "--target",
    ])
    .arg(url);
    c
}

type Case = fn(&Guest) -> Result<(), Failed>;

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One guest serves every trial.
    args.test_threads = Some(1);
    let cases: [(&str, Case); 6] = [
        ("ssh::same_verdicts_as_qemu", same_verdicts_as_qemu),
        (
            "ssh::a_cut_connection_is_lost_in_bounded_time_and_cleaned",
            a_cut_connection_is_lost_in_bounded_time_and_cleaned,
        ),
        (
            "ssh::a_scenario_past_its_limit_is_killed_on_the_target",
            a_scenario_past_its_limit_is_killed_on_the_target,
        ),
        (
            "ssh::a_login_without_root_is_refused_by_name",
            a_login_without_root_is_refused_by_name,
        ),
        ("ssh::ssh_agent_authenticates", ssh_agent_authenticates),
        (
            "ssh::an_unknown_host_key_is_refused_unless_waived",
            an_unknown_host_key_is_refused_unless_waived,
        ),
    ];
    let guest: Arc<Mutex<Option<Result<Guest, String>>>> = Arc::default();
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let guest = guest.clone();
            Trial::ignorable_test(name, move || {
                if let Some(why) = missing() {
                    return Ok(Completion::ignored_with(why));
                }
                let mut g = guest.lock().unwrap_or_else(|p| p.into_inner());
                let g = g.get_or_insert_with(start_guest);
                match g {
                    Ok(g) => case(g).map(|()| Completion::Completed),
                    Err(e) => Err(format!("the SSH guest did not start: {e}").into()),
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(guest.lock().unwrap_or_else(|p| p.into_inner()).take());
    conclusion.exit_code()
}
