//! `btfvm run`'s options, shared with `btfvm matrix`, and what they become:
//! the library's plain values, parsed and checked once.

use std::path::PathBuf;
use std::time::Duration;

use btfvm::inputs::append::KernelArgs;
use btfvm::inputs::share::Share;
use btfvm::inputs::{input_dir, DirOrigin, InputDir};
use btfvm::run::partition::Partition;
use btfvm::run::select::KernelRequest;
use btfvm::run::settings::{RunConfig, TimeoutSettings};
use btfvm::target::{HostKeys, SshParams, SshUrl};
use btfvm::vm::AccelChoice;

/// How the VMs run and where the inputs are: shared by `run`, `matrix`
/// and `bisect`.
#[derive(Debug, Clone, clap::Args)]
pub struct VmOptions {
    /// Debian mirror URI (default: read from the host's apt sources).
    #[arg(long, env = "BTFVM_DEBIAN_MIRROR", value_name = "URI")]
    pub debian_mirror: Option<String>,
    /// Accelerator: auto uses KVM only when a probe guest runs under it.
    #[arg(long, default_value = "auto", env = "BTFVM_ACCEL", value_parser = accel)]
    pub accel: AccelChoice,
    /// Wall-clock limit per boot, in seconds (default 300 under TCG, 120 under KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_TIMEOUT", value_parser = seconds)]
    pub timeout: Option<u64>,
    /// Limit from QEMU's start to the agent's hello (default 60 TCG, 20 KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_HELLO_TIMEOUT", value_parser = seconds)]
    pub hello_timeout: Option<u64>,
    /// Limit per scenario (default 60 TCG, 30 KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_SCENARIO_TIMEOUT", value_parser = seconds)]
    pub scenario_timeout: Option<u64>,
    /// Limit for the whole run, all kernels (default 3600 TCG, 1200 KVM).
    #[arg(long, value_name = "SECS", env = "BTFVM_RUN_TIMEOUT", value_parser = seconds)]
    pub run_timeout: Option<u64>,
    /// Boots at once (default: one per core, as free memory allows; under
    /// TCG a one-vCPU guest keeps a core busy).
    #[arg(short = 'j', long, value_name = "N", env = "BTFVM_JOBS", value_parser = jobs)]
    pub jobs: Option<usize>,
    /// Guest memory in MiB (at least 128).
    #[arg(long, default_value_t = btfvm::run::settings::DEFAULT_MEMORY_MIB, value_name = "MIB", value_parser = memory)]
    pub memory: u32,
    /// Words for the guest kernel's command line (initcall_debug,
    /// dyndbg=..., cryptomgr.notests=0); repeatable, added after btfvm's
    /// own, so a repeated parameter is the user's. console=, init=,
    /// rdinit=, panic=, quiet and loglevel below 5 are refused.
    #[arg(long = "append", value_name = "ARGS", value_parser = append)]
    pub append: Vec<KernelArgs>,
    /// QEMU binary (default: qemu-system-x86_64 on PATH).
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// Directory of scenario YAML files.
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Directory of kernel spec YAML files.
    #[arg(long, value_name = "DIR")]
    pub kernels_dir: Option<PathBuf>,
    /// Where kept boots go (console log, transcript; default: <cache>/logs).
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// Kernel to run on; repeatable. A spec name from kernels/ (bookworm),
    /// debian:<suite>[:<package>], build:<tree>[,...], or a path to a
    /// vmlinuz. Default: the spec marked `default: true`.
    #[arg(long = "kernel", value_name = "KERNEL")]
    pub kernels: Vec<String>,
    /// Run on every spec in kernels/.
    #[arg(long, conflicts_with = "kernels")]
    pub all_kernels: bool,
    /// lib/modules/<kver> tree of the one kernel given by path.
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Kernel .config of the one kernel given by path (default:
    /// config-<kver> next to it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write a JSON report of every trial here (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub vm: VmOptions,
    /// Write a JUnit XML report here too (a testsuite per kernel).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Boot again, up to N times, for the scenarios that failed; a pass on
    /// a retry is reported as flaky, not as passed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Run only this shard of the kernels: hash:M/N (stable as kernels are
    /// added) or count:M/N (even). A kernel is never in two shards.
    #[arg(long, value_name = "SCHEME:M/N", value_parser = partition)]
    pub partition: Option<Partition>,
    /// Exit statuses for `git bisect run`: 0 good, 1 bad, 125 skip (the
    /// kernel did not build or never reached the agent), 128+ abort.
    #[arg(long)]
    pub bisect: bool,
    /// With --bisect: what a kernel that does not build or boot counts as.
    #[arg(long, value_name = "skip|bad", default_value = "skip", value_parser = boot_failure, requires = "bisect")]
    pub boot_failure: BootFailure,
    /// One trial per kernel (all its scenarios), for runners that start a
    /// process per trial, such as cargo-nextest; the report keeps every
    /// scenario.
    #[arg(long)]
    pub per_kernel: bool,
    #[command(flatten)]
    pub target: TargetOptions,
}

/// Another way in than btfvm's own QEMU boot.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetOptions {
    /// Run the suite on a machine that already runs the kernel, over SSH:
    /// ssh://user@host[:port]. --kernel names that kernel (the same
    /// release): its modules are pushed, the target's config decides
    /// what applies.
    #[arg(long, value_name = "URL", value_parser = ssh_url)]
    pub target: Option<SshUrl>,
    /// Private key for the target (default: ssh-agent, then ~/.ssh/id_*).
    #[arg(long, value_name = "FILE", requires = "target", value_parser = private_key)]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file the target's host key is checked against
    /// (default: ~/.ssh/known_hosts).
    #[arg(
        long,
        value_name = "FILE",
        requires = "target",
        conflicts_with = "ssh_insecure_host_key"
    )]
    pub known_hosts: Option<PathBuf>,
    /// Do not check the target's host key (a throwaway VM whose key
    /// changes at every boot).
    #[arg(long, requires = "target")]
    pub ssh_insecure_host_key: bool,
    /// Share a host folder with the guests over virtiofs, mounted at
    /// /share/TAG (TAG: the folder's name); read-only; repeatable. A
    /// scenario loads a module from it with `load: {module: M, path:
    /// /share/TAG/M.ko}`. Needs the Rust virtiofsd.
    #[arg(long = "share", value_name = "HOST_DIR[:TAG]", value_parser = share, conflicts_with = "target")]
    pub shares: Vec<Share>,
    /// What boots the kernel: btfvm's own QEMU line, or virtme-ng (vng,
    /// from PyPI), with the same agent, limits and verdicts.
    #[arg(long, value_name = "qemu|vng", default_value = "qemu", value_parser = runner, conflicts_with = "target")]
    pub runner: Runner,
    /// The vng to run with --runner vng (default: vng on PATH).
    #[arg(long, value_name = "PATH")]
    pub vng: Option<PathBuf>,
    /// Limit for connecting to the target, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = seconds, requires = "target")]
    pub connect_timeout: u64,
}

/// What boots the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    Qemu,
    Vng,
}

fn runner(s: &str) -> Result<Runner, String> {
    match s {
        "qemu" => Ok(Runner::Qemu),
        "vng" => Ok(Runner::Vng),
        _ => Err(format!("{s:?}: expected qemu or vng")),
    }
}

/// A key file that is there and readable: else the run would reach the
/// target only to say that no key let it in.
fn private_key(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match std::fs::File::open(&p) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(p),
        Ok(_) => Err(format!("{s} is not a file")),
        Err(e) => Err(format!("{s}: {e}")),
    }
}

fn append(s: &str) -> Result<KernelArgs, String> {
    KernelArgs::parse(s).map_err(|e| e.to_string())
}

fn share(s: &str) -> Result<Share, String> {
    Share::parse(s).map_err(|e| e.to_string())
}

fn ssh_url(s: &str) -> Result<SshUrl, String> {
    SshUrl::parse(s).map_err(|e| e.to_string())
}

impl TargetOptions {
    pub fn params(&self) -> Option<SshParams> {
        let url = self.target.clone()?;
        Some(SshParams {
            url,
            identity: self.ssh_key.clone(),
            host_keys: if self.ssh_insecure_host_key {
                HostKeys::Insecure
            } else {
                HostKeys::KnownHosts(
                    self.known_hosts
                        .clone()
                        .unwrap_or_else(btfvm::target::ssh::default_known_hosts),
                )
            },
            connect_timeout: Duration::from_secs(self.connect_timeout),
        })
    }
}

fn jobs(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 boots at once would boot nothing; give at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a whole number ({e})")),
    }
}

fn partition(s: &str) -> Result<Partition, String> {
    s.parse()
}

/// What an untestable commit counts as in bisect mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootFailure {
    Skip,
    Bad,
}

pub fn boot_failure(s: &str) -> Result<BootFailure, String> {
    match s {
        "skip" => Ok(BootFailure::Skip),
        "bad" => Ok(BootFailure::Bad),
        _ => Err(format!("{s:?}: expected skip or bad")),
    }
}

fn accel(s: &str) -> Result<AccelChoice, String> {
    s.parse()
}

/// A limit of 0 would end every boot before it starts; a huge one is
/// fine (no deadline is computed past what the clock can hold).
fn seconds(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("0 s would end every boot at once; give at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a whole number of seconds ({e})")),
    }
}

/// Measured under TCG with the whole suite (2026-12-07, 8 MiB steps):
/// bullseye passes from 72 MiB, bookworm and trixie from 88, sid from 104;
/// below about 72 MiB QEMU exits at once with an empty console, and just
/// under the floor the kernel panics "System is deadlocked on memory".
/// 128 keeps every kernel here above its floor.
pub const MIN_MEMORY_MIB: u32 = 128;

fn memory(s: &str) -> Result<u32, String> {
    let mib: u32 = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a whole number of MiB ({e})"))?;
    if mib < MIN_MEMORY_MIB {
        return Err(format!(
            "{mib} MiB is below the {MIN_MEMORY_MIB} MiB btfvm accepts: the Debian kernels need 72-104 MiB to boot the suite (measured), and with less the boot ends with an empty console or an out-of-memory panic"
        ));
    }
    if let Some(host) = host_memory_mib() {
        if u64::from(mib) > host {
            return Err(format!(
                "{mib} MiB is more than this machine's {host} MiB of memory"
            ));
        }
    }
    Ok(mib)
}

fn host_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

impl VmOptions {
    pub fn scenarios_dir(&self) -> InputDir {
        input_dir("scenarios", self.scenarios.as_deref())
    }

    pub fn kernels_dir(&self) -> InputDir {
        input_dir("kernels", self.kernels_dir.as_deref())
    }

    pub fn run_config(&self, retries: u32) -> RunConfig {
        let secs = |v: Option<u64>| v.map(Duration::from_secs);
        RunConfig {
            mirror: self.debian_mirror.clone(),
            accel: self.accel,
            timeouts: TimeoutSettings {
                hello: secs(self.hello_timeout),
                scenario: secs(self.scenario_timeout),
                boot: secs(self.timeout),
                run: secs(self.run_timeout),
            },
            memory_mib: self.memory,
            cmdline_extra: KernelArgs::join(&self.append),
            qemu: self.qemu.clone(),
            logs: self.logs.clone(),
            retries,
            jobs: self.jobs,
            target: None,
            shares: Vec::new(),
            vng: None,
        }
    }
}

impl RunOptions {
    pub fn scenarios_dir(&self) -> InputDir {
        self.vm.scenarios_dir()
    }

    pub fn kernels_dir(&self) -> InputDir {
        self.vm.kernels_dir()
    }

    pub fn kernel_request(&self) -> KernelRequest {
        KernelRequest {
            words: self.kernels.clone(),
            all: self.all_kernels,
            modules: self.modules.clone(),
            config: self.config.clone(),
            fragments_dir: self.kernels_dir().path.join("fragments"),
        }
    }

    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            target: self.target.params(),
            shares: self.target.shares.clone(),
            vng: (self.target.runner == Runner::Vng).then(|| self.target.vng.clone()),
            ..self.vm.run_config(self.retries)
        }
    }

    /// Which exit-status table applies.
    pub fn mode(&self) -> crate::exit::Mode {
        if self.bisect {
            crate::exit::Mode::Bisect {
                boot_failure_bad: self.boot_failure == BootFailure::Bad,
            }
        } else {
            crate::exit::Mode::Normal
        }
    }
}

/// One line naming the input folders when any of them is not the
/// repository's, so that a stray `./scenarios` cannot stand in for the
/// suite unseen.
pub fn dirs_line(dirs: &[(&str, &InputDir)]) -> Option<String> {
    if dirs.iter().all(|(_, d)| d.origin == DirOrigin::Repository) {
        return None;
    }
    let parts: Vec<String> = dirs
        .iter()
        .map(|(what, d)| {
            let why = match d.origin {
                DirOrigin::Option => "given as an option",
                DirOrigin::WorkingDir => "found in the working directory, not the repository's",
                DirOrigin::Repository => "the repository's",
            };
            format!("{what} from {} ({why})", d.path.display())
        })
        .collect();
    Some(format!("btfvm: using {}", parts.join(" and ")))
}

pub fn announce_dirs(dirs: &[(&str, &InputDir)]) {
    if let Some(line) = dirs_line(dirs) {
        crate::say!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ways_in_are_checked_as_they_are_read() {
        assert_eq!(runner("vng"), Ok(Runner::Vng));
        assert!(runner("vmtest")
            .unwrap_err()
            .contains("expected qemu or vng"));
        assert!(ssh_url("root@box")
            .unwrap_err()
            .contains("ssh://user@host[:port]"));
        assert!(private_key("/nonexistent/key")
            .unwrap_err()
            .contains("No such file"));
        assert!(private_key("/").unwrap_err().contains("not a file"));
        let d = tempfile::tempdir().unwrap();
        assert!(share(&format!("{}:a b", d.path().display()))
            .unwrap_err()
            .contains("letters, digits"));
    }

    #[test]
    fn numbers_are_bounded_with_the_reason() {
        assert!(memory("0").unwrap_err().contains("below the 128 MiB"));
        assert!(memory("64").unwrap_err().contains("72-104 MiB"));
        assert_eq!(memory("512"), Ok(512));
        assert!(memory("4294967295")
            .unwrap_err()
            .contains("more than this machine's"));
        assert!(memory("-1").is_err());
        assert!(seconds("0").unwrap_err().contains("at least 1"));
        assert_eq!(seconds("18446744073709551615"), Ok(u64::MAX));
        assert!(seconds("1.5").is_err());
    }

    fn dir(path: &str, origin: DirOrigin) -> InputDir {
        InputDir {
            path: PathBuf::from(path),
            origin,
        }
    }

    #[test]
    fn the_folders_are_named_when_they_are_not_the_repositorys() {
        let repo_s = dir("/r/scenarios", DirOrigin::Repository);
        let repo_k = dir("/r/kernels", DirOrigin::Repository);
        assert_eq!(
            dirs_line(&[("scenarios", &repo_s), ("kernel specs", &repo_k)]),
            None
        );
        let cwd = dir("scenarios", DirOrigin::WorkingDir);
        assert_eq!(
            dirs_line(&[("scenarios", &cwd), ("kernel specs", &repo_k)]).as_deref(),
            Some("btfvm: using scenarios from scenarios (found in the working directory, not the repository's) and kernel specs from /r/kernels (the repository's)")
        );
        let opt = dir("/x/k", DirOrigin::Option);
        assert_eq!(
            dirs_line(&[("kernel specs", &opt)]).as_deref(),
            Some("btfvm: using kernel specs from /x/k (given as an option)")
        );
    }
}
