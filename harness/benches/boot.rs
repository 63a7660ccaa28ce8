//! Wall time of the whole suite on one kernel next to a bare `qemu -kernel`
//! boot of the same kernel whose init powers off at once, measured in the
//! same run, interleaved so machine load hits both alike.
//!
//!   cargo bench --bench boot                  # bookworm, 5 rounds
//!   BTFVM_BENCH_KERNEL=trixie BTFVM_BENCH_ROUNDS=10 cargo bench --bench boot
//!
//! "suite" is the user's view: `btfvm run --kernel K` as a process (KVM
//! probe, cache lookup, initramfs, boot, every scenario, report).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btfvm::boot::initramfs::{Archive, Entry};
use btfvm::inputs::kernelspec::{self, KernelSpec};
use btfvm::run::acquire::acquire;
use btfvm::vm::phases::BootPhases;
use btfvm::vm::{self, args};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `cmd` to its end: wall time, and the peak resident memory of the
/// largest process in its tree (wait4's ru_maxrss covers the waited-for
/// descendants, so QEMU under btfvm counts), in MiB.
// wait4 below reaps the child; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn timed(cmd: &mut Command) -> (Duration, std::process::ExitStatus, u64) {
    use std::os::unix::process::ExitStatusExt;
    let t = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a pid we spawned and have not waited for; both pointers are
    // to locals that outlive the call.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    assert!(r > 0, "wait4: {}", std::io::Error::last_os_error());
    let wall = t.elapsed();
    (
        wall,
        std::process::ExitStatus::from_raw(status),
        ru.ru_maxrss as u64 / 1024,
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The baseline: the same kernel with an init that powers off at once,
/// under the same QEMU line minus the agent's channel.
fn bare_command(vmlinuz: &Path, accel: vm::Accel, dir: &Path) -> Vec<std::ffi::OsString> {
    let mut bare_initrd = Archive::new();
    bare_initrd.add(Entry::file(
        "init",
        0o755,
        btfvm::boot::agent::AGENT.to_vec(),
    ));
    let initrd = dir.join("bare.cpio");
    std::fs::write(&initrd, bare_initrd.to_bytes()).expect("write initrd");
    let mut bare_args = args::base_args();
    bare_args.extend(args::accel_args(accel));
    bare_args.extend(args::memory_args(512, 1));
    bare_args.extend(args::kernel_args(vmlinuz, &initrd, &args::cmdline(&[])));
    bare_args.extend(args::console_args(&dir.join("bare.log")));
    bare_args
}

fn print_table(kernel: &str, bare: &mut [Duration], suite: &mut [Duration]) {
    let (bm, sm) = (median(bare), median(suite));
    println!();
    println!(
        "| {:<38} | {:>8} | {:>8} | {:>8} |",
        "", "min", "median", "max"
    );
    println!("|{:-<40}|{:-<10}|{:-<10}|{:-<10}|", "", "", "", "");
    println!(
        "| {:<38} | {:>8} | {:>8} | {:>8} |",
        "bare qemu -kernel, init powers off",
        secs(bare[0]),
        secs(bm),
        secs(bare[bare.len() - 1])
    );
    println!(
        "| {:<38} | {:>8} | {:>8} | {:>8} |",
        format!("btfvm run --kernel {kernel} (whole suite)"),
        secs(suite[0]),
        secs(sm),
        secs(suite[suite.len() - 1])
    );
    println!();
    println!(
        "suite / bare (medians): {:.2}x",
        sm.as_secs_f64() / bm.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes --bench; anything else is a libtest filter we ignore.
    let kernel = std::env::var("BTFVM_BENCH_KERNEL").unwrap_or_else(|_| "bookworm".into());
    let rounds: usize = std::env::var("BTFVM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let specs = kernelspec::load_dir(&root.join("kernels")).expect("kernel specs");
    let spec: &KernelSpec = specs
        .iter()
        .find(|s| s.name == kernel)
        .expect("BTFVM_BENCH_KERNEL names a spec in kernels/");
    let cache = btfvm::support::cache::Cache::from_env().expect("cache dir");
    let image = acquire(&spec.source, &cache, None, &mut |_| {}).expect("kernel");
    let qemu = vm::find_qemu(None).expect("qemu");
    let scratch = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_btfvm");
    let report = scratch.path().join("report.json");
    let suite_run = || {
        let (wall, st, rss) = timed(
            Command::new(bin)
                .args(["run", "--kernel", &spec.name, "-q", "--report"])
                .arg(&report)
                .arg("--kernels-dir")
                .arg(root.join("kernels"))
                .arg("--scenarios")
                .arg(root.join("scenarios"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        assert!(st.success(), "btfvm run failed: {st}");
        (wall, rss)
    };
    // Untimed: fills the caches, and on a host whose KVM passes the probe
    // but fails real boots, leaves the record the bare boot must heed too.
    suite_run();
    let record = btfvm::support::state::state_dir()
        .unwrap_or_else(|| cache.root().to_path_buf())
        .join(btfvm::run::settings::KVM_RECORD);
    let accel = vm::accel::decide(&qemu, vm::AccelChoice::Auto, scratch.path(), Some(&record));
    let bare_args = bare_command(&image.vmlinuz, accel.accel, scratch.path());
    println!(
        "kernel {} ({}), accel {} ({}), {rounds} rounds",
        spec.name, image.origin, accel.accel, accel.reason
    );
    let (mut bare, mut suite, mut phases) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bare_rss, mut suite_rss) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (wall, st, rss) = timed(Command::new(&qemu).args(&bare_args).stdin(Stdio::null()));
        assert!(st.success(), "bare boot failed: {st}");
        bare.push(wall);
        bare_rss.push(rss);
        let (wall, rss) = suite_run();
        suite.push(wall);
        suite_rss.push(rss);
        phases.push(boot_phases(&report));
        println!(
            "round {round}: bare {}  suite {}",
            secs(bare[round - 1]),
            secs(suite[round - 1])
        );
    }
    print_table(&spec.name, &mut bare, &mut suite);
    print_phases(&phases);
    let mid = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!(
        "\npeak resident memory, largest process (medians): bare {} MiB, suite {} MiB",
        mid(&mut bare_rss),
        mid(&mut suite_rss)
    );
}

/// The suite boot's phases (`vm::phases`) from the run's report.
fn boot_phases(report: &Path) -> BootPhases {
    let text = std::fs::read_to_string(report).expect("the run's report");
    let v: serde_json::Value = serde_json::from_str(&text).expect("report JSON");
    serde_json::from_value(v["kernels"][0]["boot"]["phases"].clone()).expect("the boot's phases")
}

type Phase = fn(&BootPhases) -> Option<u64>;

/// Median of each phase over the rounds.
fn print_phases(rounds: &[BootPhases]) {
    let fields: [(&str, Phase); 7] = [
        ("QEMU, firmware, decompression", |p| p.to_kernel_ms),
        ("kernel init", |p| p.kernel_init_ms),
        ("  (initramfs unpacked at)", |p| p.initramfs_unpacked_at_ms),
        ("agent start", |p| p.agent_start_ms),
        ("scenarios", |p| p.scenarios_ms),
        ("power-off", |p| p.power_off_ms),
        ("QEMU exit", |p| p.qemu_exit_ms),
    ];
    println!("\nwhere the suite's boot goes (medians over the rounds, ms):");
    for (name, get) in fields {
        let mut v: Vec<u64> = rounds.iter().filter_map(get).collect();
        v.sort_unstable();
        match v.get(v.len() / 2) {
            Some(m) => println!("  {name:<30} {m:>6}"),
            None => println!("  {name:<30}      -"),
        }
    }
}
