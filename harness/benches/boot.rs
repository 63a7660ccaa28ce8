//! Wall time of the whole suite on one kernel next to a bare `qemu -kernel`
//! boot of the same kernel whose init powers off at once, measured in the
//! same run, interleaved so machine load hits both alike.
//!
//!   cargo bench --bench boot                  # bookworm, 5 rounds
//!   BTFVM_BENCH_KERNEL=trixie BTFVM_BENCH_ROUNDS=10 cargo bench --bench boot
//!
//! Next to them, in the same rounds: one scenario alone, the suite booted
//! by virtme-ng (`--runner vng`), vng alone doing the check a vng user
//! would type (boot, modprobe dummy, /sys/kernel/btf/dummy), and vmtest
//! alone doing it (readied by peers/vmtest-prepare.sh, which says what it
//! needs; without it the row is left out, with the reason); then, after
//! them, the suite over SSH on a guest `btfvm serve-ssh` booted once. A PNG chart
//! of the medians goes to target/bench-boot.png (BTFVM_BENCH_CHART).
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

#[path = "chart.rs"]
mod chart;
mod common;

use common::median;

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
/// under the QEMU line anyone would write (SeaBIOS, the bzImage,
/// `console=ttyS0 panic=-1`). With `lean` (QEMU and the cache), btfvm's own
/// line instead (no ACPI PCI hotplug, qboot where QEMU has it, the ELF
/// vmlinux through PVH where the kernel has it, [`args::LEAN_CMDLINE`]):
/// the floor btfvm's boots stand on.
fn bare_command(
    vmlinuz: &Path,
    accel: vm::Accel,
    dir: &Path,
    lean: Option<(&Path, &Path)>,
) -> Vec<std::ffi::OsString> {
    let mut bare_initrd = Archive::new();
    bare_initrd.add(Entry::file(
        "init",
        0o755,
        btfvm::boot::agent::AGENT.to_vec(),
    ));
    let initrd = dir.join("bare.cpio");
    std::fs::write(&initrd, bare_initrd.to_bytes()).expect("write initrd");
    let mut bare_args = args::base_args();
    let (kernel, cmdline) = match lean {
        Some((qemu, pvh_dir)) => {
            bare_args.extend(args::lean_machine_args());
            bare_args.extend(args::firmware_args(vm::find_qboot(qemu).as_deref()));
            let image = btfvm::boot::pvh::boot_image(vmlinuz, pvh_dir).expect("the PVH image");
            (image.path().to_path_buf(), args::cmdline(&[]))
        }
        None => (vmlinuz.to_path_buf(), args::BASE_CMDLINE.join(" ")),
    };
    bare_args.extend(args::accel_args(accel));
    bare_args.extend(args::memory_args(
        btfvm::run::settings::DEFAULT_MEMORY_MIB,
        1,
    ));
    bare_args.extend(args::kernel_args(&kernel, &initrd, &cmdline));
    bare_args.extend(args::console_args(&dir.join("bare.log")));
    bare_args
}

/// One way of doing the check, timed in every round.
struct Row {
    name: String,
    walls: Vec<Duration>,
    rss: Vec<u64>,
}

fn mid_u64(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn print_table(rows: &mut [Row]) {
    let bare = median(&mut rows[0].walls);
    println!();
    println!(
        "| {:<58} | {:>8} | {:>8} | {:>8} | {:>7} | {:>9} |",
        "", "min", "median", "max", "vs bare", "peak RSS"
    );
    println!(
        "|{:-<60}|{:-<10}|{:-<10}|{:-<10}|{:-<9}|{:-<11}|",
        "", "", "", "", "", ""
    );
    for r in rows.iter_mut() {
        let m = median(&mut r.walls);
        println!(
            "| {:<58} | {:>8} | {:>8} | {:>8} | {:>6.2}x | {:>5} MiB |",
            r.name,
            secs(r.walls[0]),
            secs(m),
            secs(r.walls[r.walls.len() - 1]),
            m.as_secs_f64() / bare.as_secs_f64(),
            mid_u64(&mut r.rss)
        );
    }
}

/// virtme-ng, where it is installed (PATH, then where .ci/run puts it).
fn find_vng() -> Option<std::path::PathBuf> {
    btfvm::target::vng::find(None).ok()
}

/// vmtest, ready to boot `image` (`peers/vmtest-prepare.sh` says what it
/// does and needs): its path and its config, or None after saying why.
fn vmtest_ready(
    image: &btfvm::kernel::KernelImage,
    accel: vm::Accel,
    root: &Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let out = root.join("target/vmtest-peer");
    let prepared = Command::new("sh")
        .arg(root.join("harness/benches/peers/vmtest-prepare.sh"))
        .arg(&out)
        .arg(&image.release)
        .arg(&image.modules_dir)
        .arg(&image.vmlinuz)
        .arg(accel.to_string())
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !prepared.status.success() {
        return None;
    }
    let vmtest = String::from_utf8_lossy(&prepared.stdout).trim().to_string();
    Some((vmtest.into(), out.join("vmtest.toml")))
}

/// vmtest doing the check: boot, insmod dummy, /sys/kernel/btf/dummy.
fn vmtest_check(vmtest: &Path, config: &Path, dir: &Path) -> (Duration, u64) {
    let log = dir.join("vmtest.log");
    let out = std::fs::File::create(&log).expect("vmtest's log");
    let (wall, st, rss) = timed(
        Command::new(vmtest)
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("vmtest's log"))
            .stderr(out),
    );
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        st.success() && said.contains("btf-ok"),
        "vmtest's check did not pass ({st}), see {}",
        log.display()
    );
    (wall, rss)
}

/// What every contender of a round shares.
struct Bench {
    kernel: String,
    root: std::path::PathBuf,
    cache: btfvm::support::cache::Cache,
    image: btfvm::kernel::KernelImage,
    qemu: std::path::PathBuf,
    scratch: tempfile::TempDir,
    report: std::path::PathBuf,
}

impl Bench {
    /// `btfvm run` on the bench's kernel as a process, writing the report.
    fn btfvm_run(&self, extra: &[&str]) -> (Duration, u64) {
        let report = self.report.to_string_lossy();
        let mut c = common::btfvm_run(&self.root, &["--kernel", &self.kernel, "--report", &report]);
        c.args(extra);
        let (wall, st, rss) = timed(&mut c);
        assert!(st.success(), "btfvm run {extra:?} failed: {st}");
        (wall, rss)
    }

    fn qemu_run(&self, args: &[std::ffi::OsString], what: &str) -> (Duration, u64) {
        let (wall, st, rss) = timed(Command::new(&self.qemu).args(args).stdin(Stdio::null()));
        assert!(st.success(), "{what} failed: {st}");
        (wall, rss)
    }
}

type Contender<'a> = (String, Box<dyn Fn() -> (Duration, u64) + 'a>);

/// Each row's name and how one round runs it, in the rounds' order; the
/// whole suite is third (its report gives the phases).
fn contenders(b: &Bench, accel: vm::Accel) -> Vec<Contender<'_>> {
    let dir = b.scratch.path();
    let bare = bare_command(&b.image.vmlinuz, accel, dir, None);
    let pvh_dir = b.cache.subdir("pvh").expect("the cache's pvh folder");
    let lean = bare_command(&b.image.vmlinuz, accel, dir, Some((&b.qemu, &pvh_dir)));
    let single = format!("{}::module-load", b.kernel);
    let mut v: Vec<Contender<'_>> = vec![
        (
            "bare qemu -kernel, init powers off".into(),
            Box::new(move || b.qemu_run(&bare, "bare boot")),
        ),
        (
            "bare, btfvm's lean line (qboot, PVH, lean cmdline)".into(),
            Box::new(move || b.qemu_run(&lean, "lean bare boot")),
        ),
        (
            format!("btfvm run --kernel {} (whole suite)", b.kernel),
            Box::new(|| b.btfvm_run(&[])),
        ),
        (
            "btfvm run, one scenario (module-load)".into(),
            Box::new(move || b.btfvm_run(&["--exact", &single])),
        ),
    ];
    match find_vng() {
        Some(vng) => {
            let path = vng.to_string_lossy().into_owned();
            v.push((
                "btfvm run --runner vng (whole suite)".into(),
                Box::new(move || b.btfvm_run(&["--runner", "vng", "--vng", &path])),
            ));
            v.push((
                "vng alone: boot, modprobe dummy, /sys/kernel/btf/dummy".into(),
                Box::new(move || vng_check(&vng, &b.image.vmlinuz, accel, dir)),
            ));
        }
        None => println!("vng: not installed, its rows are left out (python3 -m venv ~/.local/vng && ~/.local/vng/bin/pip install virtme-ng)"),
    }
    if let Some((vmtest, config)) = vmtest_ready(&b.image, accel, &b.root) {
        v.push((
            "vmtest 0.18 alone: boot, insmod dummy, /sys/kernel/btf/dummy".into(),
            Box::new(move || vmtest_check(&vmtest, &config, dir)),
        ));
    }
    v
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
    let scratch = tempfile::tempdir().expect("tempdir");
    let b = Bench {
        kernel: spec.name.clone(),
        report: scratch.path().join("report.json"),
        root,
        cache,
        image,
        qemu: vm::find_qemu(None).expect("qemu"),
        scratch,
    };
    // Untimed: fills the caches, and on a host whose KVM passes the probe
    // but fails real boots, leaves the record the bare boot must heed too.
    b.btfvm_run(&[]);
    let record = btfvm::support::state::state_dir()
        .unwrap_or_else(|| b.cache.root().to_path_buf())
        .join(btfvm::run::settings::KVM_RECORD);
    let accel = vm::accel::decide(
        &b.qemu,
        vm::AccelChoice::Auto,
        b.scratch.path(),
        Some(&record),
    );
    println!(
        "kernel {} ({}), accel {} ({}), {rounds} rounds",
        b.kernel, b.image.origin, accel.accel, accel.reason
    );
    let contenders = contenders(&b, accel.accel);
    let mut rows: Vec<Row> = contenders
        .iter()
        .map(|(name, _)| Row {
            name: name.clone(),
            walls: Vec::new(),
            rss: Vec::new(),
        })
        .collect();
    let mut phases = Vec::new();
    for round in 1..=rounds {
        let mut line = Vec::new();
        for (i, (row, (_, run))) in rows.iter_mut().zip(&contenders).enumerate() {
            let (wall, rss) = run();
            if i == 2 {
                phases.push(boot_phases(&b.report));
            }
            line.push(secs(wall));
            row.walls.push(wall);
            row.rss.push(rss);
        }
        println!("round {round}: {}", line.join("  "));
    }
    if let Some(row) = ssh_rows(env!("CARGO_BIN_EXE_btfvm"), &b.root, &b.kernel, rounds) {
        rows.push(row);
    }
    print_table(&mut rows);
    print_phases(&phases);
    let chart = std::env::var_os("BTFVM_BENCH_CHART")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| b.root.join("target/bench-boot.png"));
    match chart::draw(&chart, &b.kernel, &rows_for_chart(&mut rows)) {
        Ok(()) => println!("\nchart: {}", chart.display()),
        Err(e) => println!("\nchart: not drawn: {e}"),
    }
}

fn rows_for_chart(rows: &mut [Row]) -> Vec<(String, f64)> {
    rows.iter_mut()
        .map(|r| (r.name.clone(), median(&mut r.walls).as_secs_f64()))
        .collect()
}

/// The suite over SSH (`--target`) on a guest `btfvm serve-ssh` booted
/// once beforehand: what a lab machine that already runs the kernel costs
/// per run. After the interleaved rounds, since the served guest (idle
/// under TCG) would take a little of a core from them. None where
/// dropbear, busybox-static or ssh-keygen are missing.
fn ssh_rows(bin: &str, root: &Path, kernel: &str, rounds: usize) -> Option<Row> {
    use std::io::BufRead;
    let dir = tempfile::tempdir().ok()?;
    let key = dir.path().join("id");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .ok()?;
    if !made.success() {
        return None;
    }
    let known = dir.path().join("known_hosts");
    let mut guest = Command::new(bin)
        .args(["serve-ssh", kernel, "--authorized-key"])
        .arg(key.with_extension("pub"))
        .arg("--known-hosts-out")
        .arg(&known)
        .arg("--kernels-dir")
        .arg(root.join("kernels"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut url = String::new();
    let out = guest.stdout.take()?;
    let _ = std::io::BufReader::new(out).read_line(&mut url);
    let mut row = Row {
        name: "btfvm run --target ssh:// (suite; target already up)".into(),
        walls: Vec::new(),
        rss: Vec::new(),
    };
    if url.trim().starts_with("ssh://") {
        for _ in 0..rounds {
            let (key, known) = (key.to_string_lossy(), known.to_string_lossy());
            let mut c = common::btfvm_run(
                root,
                &[
                    "--kernel",
                    kernel,
                    "--target",
                    url.trim(),
                    "--ssh-key",
                    &key,
                    "--known-hosts",
                    &known,
                ],
            );
            let (wall, st, rss) = timed(&mut c);
            assert!(st.success(), "btfvm run --target failed: {st}");
            row.walls.push(wall);
            row.rss.push(rss);
        }
    } else {
        println!("ssh: serve-ssh printed no URL ({url:?}); its row is left out");
    }
    // SIGTERM: serve-ssh stops its QEMU and removes its folder.
    // SAFETY: a pid we spawned and have not waited for.
    unsafe { libc::kill(guest.id() as i32, libc::SIGTERM) };
    let _ = guest.wait();
    (!row.walls.is_empty()).then_some(row)
}

/// What a vng user would type for the same check: boot the kernel, load
/// dummy, look for its BTF in sysfs. vng's exit status cannot say (it is
/// 255 whenever the kernel lacks virtio-serial for vng's script I/O, as
/// Debian 6.1 does), so the answer comes back through a writable share.
fn vng_check(vng: &Path, vmlinuz: &Path, accel: vm::Accel, dir: &Path) -> (Duration, u64) {
    let rw = dir.join("vng-rw");
    let _ = std::fs::remove_dir_all(&rw);
    std::fs::create_dir_all(&rw).expect("vng's folder");
    let answer = rw.join("answer");
    let mut c = btfvm::target::vng::vng_command(vng);
    c.arg("--run").arg(vmlinuz);
    if accel == vm::Accel::Tcg {
        c.arg("--disable-kvm");
    }
    c.arg("--memory")
        .arg(format!("{}M", btfvm::run::settings::DEFAULT_MEMORY_MIB))
        .arg("--rwdir")
        .arg(&rw)
        .arg("--exec")
        .arg(format!(
            "modprobe dummy && test -e /sys/kernel/btf/dummy && echo ok > {}",
            answer.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (wall, _, rss) = timed(&mut c);
    let said = std::fs::read_to_string(&answer).unwrap_or_default();
    assert_eq!(said.trim(), "ok", "vng's check did not pass");
    (wall, rss)
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
        ("QEMU, firmware, to the kernel", |p| p.to_kernel_ms),
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
