//! Hostile and careless input: each case is one thing a user (or a broken
//! disk) can hand btfvm, with the exit status, the message, a time bound,
//! and no QEMU and no temporary file left behind (see sandbox/mod.rs).
//! Grouped by the class of the issue "Nothing hidden, nothing hangs,
//! nothing followed"; the YAML and name classes and the signals have their
//! own tests (inputs' unit tests, hostile_signals.rs).

mod sandbox;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sandbox::{fetched, mkfifo, DiskKernel, Sandbox, BOOT, FAST, REFETCH};

/// bookworm's kernel on disk in the sandbox, with this config text.
fn disk_kernel(sb: &Sandbox, config: Option<&str>) -> (PathBuf, DiskKernel) {
    let k = fetched("debian:bookworm");
    let dir = sb.work().join("k");
    fs::create_dir_all(&dir).unwrap();
    let vmlinuz = dir.join(format!("vmlinuz-{}", k.release));
    symlink(&k.vmlinuz, &vmlinuz).unwrap();
    let cfg = dir.join(format!("config-{}", k.release));
    match config {
        Some(text) => fs::write(&cfg, text).unwrap(),
        None => {
            fs::copy(&k.config, &cfg).unwrap();
        }
    }
    (vmlinuz, k)
}

fn run_on(sb: &Sandbox, vmlinuz: &Path, modules: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = sb.btfvm(["run", "--kernel"]);
    c.arg(vmlinuz)
        .arg("--modules")
        .arg(modules)
        .arg("--logs")
        .arg(sb.logs());
    c.args(extra);
    c
}

// ---- A run that tested nothing does not pass -------------------------

#[test]
fn an_empty_scenarios_folder_is_an_error_not_a_pass() {
    let sb = Sandbox::new();
    let empty = sb.work().join("scenarios");
    fs::create_dir(&empty).unwrap();
    let mut c = sb.btfvm(["run", "--kernel", "bookworm", "--scenarios"]);
    c.arg(&empty);
    sb.case("empty scenarios", c, 2, &["nothing to run"], FAST);
}

#[test]
fn a_filter_that_selects_nothing_is_allowed() {
    let sb = Sandbox::new();
    let c = sb.btfvm(["run", "--kernel", "bookworm", "no-such-scenario"]);
    sb.case("empty filter", c, 0, &["0 passed"], FAST);
}

#[test]
fn configs_that_say_nothing_are_bad_input_before_any_boot() {
    for (name, text, want) in [
        ("empty config", "", "is empty"),
        (
            "comment-only config",
            "# nothing\n",
            "without a single CONFIG_ option",
        ),
        (
            "config without version",
            "CONFIG_X=y\n",
            "no \"# Linux/<arch> <version>",
        ),
    ] {
        let sb = Sandbox::new();
        let (vmlinuz, k) = disk_kernel(&sb, Some(text));
        let c = run_on(&sb, &vmlinuz, &k.modules, &[]);
        sb.case(name, c, 2, &[want], FAST);
    }
}

// ---- Cache entries are checked before use ----------------------------

/// A private cache made of hard links to the shared one's Debian files, so
/// a case can damage its own copy (break the link first) and the next run
/// fetches it again into the private cache only.
fn private_cache(sb: &Sandbox) -> PathBuf {
    fetched("debian:bookworm");
    let cache = sb.dir.path().join("cache");
    fs::create_dir(&cache).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-al")
        .arg(sandbox::shared_cache().join("debian"))
        .arg(cache.join("debian"))
        .status()
        .unwrap();
    assert!(st.success());
    cache
}

fn bookworm_entry(cache: &Path) -> PathBuf {
    fs::read_dir(cache.join("debian/kernels"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            // The cloud kernel the bookworm spec names: the cache may also
            // hold bookworm's generic kernel (`btfvm fetch
            // debian:bookworm:linux-image-6.1.0-50-amd64`), and damaging
            // that one would test nothing.
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("linux-image-6.1.0-") && name.contains("-cloud-")
        })
        .expect("bookworm entry")
}

/// A case: its name, the file to damage, and how.
type Damaging = (&'static str, &'static str, fn(&mut Vec<u8>));
/// A case: its name, the module's file name, how to make it, the message.
type FakeModule = (&'static str, &'static str, fn(&Path), &'static str);

/// Replaces a hard-linked file by a modified copy.
fn damage(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    edit(&mut bytes);
    fs::remove_file(path).unwrap();
    fs::write(path, bytes).unwrap();
}

fn find(dir: &Path, name: &str) -> PathBuf {
    let out = std::process::Command::new("find")
        .arg(dir)
        .args(["-name", name])
        .output()
        .unwrap();
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect(name),
    )
}

#[test]
fn damaged_cached_kernels_are_fetched_again_and_the_run_passes() {
    let sb = Sandbox::new();
    let cache = private_cache(&sb);
    let cases: [Damaging; 4] = [
        ("truncated vmlinuz", "vmlinuz-*", |b| {
            b.truncate(b.len() / 2)
        }),
        ("flipped byte in vmlinuz", "vmlinuz-*", |b| {
            let i = b.len() - 100;
            b[i] ^= 1
        }),
        ("flipped byte in dummy.ko", "dummy.ko", |b| {
            let i = b.len() / 2;
            b[i] ^= 1
        }),
        ("emptied config", "config-*", |b| b.clear()),
    ];
    for (name, file, edit) in cases {
        damage(&find(&bookworm_entry(&cache), file), edit);
        let mut c = sb.btfvm([
            "run",
            "--kernel",
            "bookworm",
            "--exact",
            "bookworm::module-load",
        ]);
        c.arg("--logs")
            .arg(sb.logs())
            .env("BTFVM_CACHE_DIR", &cache);
        let r = sb.case(name, c, 0, &["damaged", "1 passed"], REFETCH);
        assert!(!r.text().contains("FAILED"), "{name}");
    }
}

#[test]
fn fetch_verify_hashes_everything_and_repairs() {
    let sb = Sandbox::new();
    let cache = private_cache(&sb);
    let mut c = sb.btfvm(["fetch", "debian:bookworm", "--verify"]);
    c.env("BTFVM_CACHE_DIR", &cache);
    sb.case("verify intact", c, 0, &["verified 1144 files"], FAST);
    // A module no scenario loads: only a full check can see it.
    damage(&find(&bookworm_entry(&cache), "xfs.ko"), |b| {
        let i = b.len() / 3;
        b[i] ^= 0x40
    });
    let mut c = sb.btfvm(["fetch", "debian:bookworm"]);
    c.env("BTFVM_CACHE_DIR", &cache);
    let r = sb.case(
        "quick check misses a same-size change",
        c,
        0,
        &["vmlinuz"],
        FAST,
    );
    assert!(!r.stderr.contains("damaged"), "{}", r.stderr);
    let mut c = sb.btfvm(["fetch", "debian:bookworm", "--verify"]);
    c.env("BTFVM_CACHE_DIR", &cache);
    sb.case(
        "verify repairs",
        c,
        0,
        &[
            "xfs.ko: content changed",
            "getting it again",
            "verified 1144 files",
        ],
        REFETCH,
    );
}

// ---- Writes follow no links -------------------------------------------

#[test]
fn report_targets_that_cannot_be_written_are_refused_before_running() {
    let sb = Sandbox::new();
    let target = sb.work().join("target.json");
    fs::write(&target, b"keep me").unwrap();
    let link = sb.work().join("link.json");
    symlink(&target, &link).unwrap();
    for (name, path, want) in [
        ("report through a link", link.clone(), "is a symbolic link"),
        (
            "report to /dev/stdout (a link)",
            PathBuf::from("/dev/stdout"),
            "is a symbolic link",
        ),
        ("report to a directory", sb.work(), "is a directory"),
        (
            "report into a missing folder",
            sb.work().join("no/such/dir/r.json"),
            "does not exist",
        ),
    ] {
        let mut c = sb.btfvm(["run", "--kernel", "bookworm", "--report"]);
        c.arg(&path);
        sb.case(name, c, 2, &[want], FAST);
    }
    assert_eq!(fs::read(&target).unwrap(), b"keep me");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn kept_boots_have_names_nobody_predicts_and_modes_btfvm_chooses() {
    let sb = Sandbox::new();
    // Planted where a predictable name would have gone.
    symlink("/etc", sb.logs().join("bookworm.console.log")).unwrap();
    let mut dirs = Vec::new();
    for round in 0..2 {
        let mut c = sb.btfvm([
            "run",
            "--kernel",
            "bookworm",
            "--exact",
            "bookworm::user-btf",
        ]);
        c.arg("--logs").arg(sb.logs());
        sb.case(&format!("kept boot {round}"), c, 0, &["1 passed"], BOOT);
    }
    for e in fs::read_dir(sb.logs()).unwrap().flatten() {
        let p = e.path();
        if fs::symlink_metadata(&p).unwrap().file_type().is_symlink() {
            continue;
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700,
            "{p:?}"
        );
        let log = fs::metadata(p.join("console.log")).unwrap();
        assert_eq!(log.permissions().mode() & 0o777, 0o644, "{p:?}");
        dirs.push(p);
    }
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    assert_ne!(dirs[0], dirs[1]);
    assert!(fs::symlink_metadata(sb.logs().join("bookworm.console.log"))
        .unwrap()
        .file_type()
        .is_symlink());
}

// ---- Every read checks what it reads ----------------------------------

#[test]
fn what_is_not_a_file_is_named_for_what_it_is() {
    let sb = Sandbox::new();
    let k = fetched("debian:bookworm");
    let fifo = sb.work().join("fifo");
    mkfifo(&fifo);
    let dir = sb.work().join("a-dir");
    fs::create_dir(&dir).unwrap();
    let (vmlinuz, _) = disk_kernel(&sb, None);
    for (name, args, want) in [
        (
            "FIFO as --config",
            vec![vmlinuz.clone(), "--config".into(), fifo.clone()],
            "is a FIFO",
        ),
        (
            "/dev/zero as --config",
            vec![vmlinuz.clone(), "--config".into(), "/dev/zero".into()],
            "is a character device",
        ),
        (
            "directory as --config",
            vec![vmlinuz.clone(), "--config".into(), dir.clone()],
            "is a directory",
        ),
        ("directory as vmlinuz", vec![dir.clone()], "is a directory"),
        ("FIFO as vmlinuz", vec![fifo.clone()], "is a FIFO"),
    ] {
        let mut c = sb.btfvm(["run", "--kernel"]);
        c.args(&args).arg("--modules").arg(&k.modules);
        sb.case(name, c, 2, &[want], FAST);
    }
}

#[test]
fn oversized_inputs_are_refused_with_the_cap_named() {
    let sb = Sandbox::new();
    let (vmlinuz, k) = disk_kernel(&sb, None);
    let big = sb.work().join("big-config");
    let f = fs::File::create(&big).unwrap();
    f.set_len(17 << 20).unwrap();
    let mut c = sb.btfvm(["run", "--kernel"]);
    c.arg(&vmlinuz)
        .arg("--config")
        .arg(&big)
        .arg("--modules")
        .arg(&k.modules);
    sb.case(
        "17 MiB config",
        c,
        2,
        &["over 16777216 bytes, the limit for a kernel .config"],
        FAST,
    );
}

/// A modules tree of bookworm's release holding one module of our making.
fn one_module_tree(sb: &Sandbox, k: &DiskKernel, name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let tree = sb.work().join("lib/modules").join(&k.release);
    let dir = tree.join("kernel/drivers/net");
    fs::create_dir_all(&dir).unwrap();
    make(&dir.join(name));
    tree
}

#[test]
fn modules_that_are_not_modules_are_named_for_what_they_are() {
    let cases: [FakeModule; 4] = [
        ("FIFO as a module", "dummy.ko", |p| mkfifo(p), "is a FIFO"),
        (
            "/dev/zero as a module",
            "dummy.ko",
            |p| symlink("/dev/zero", p).unwrap(),
            "is a character device",
        ),
        (
            "a 65 MiB module",
            "dummy.ko",
            |p| fs::File::create(p).unwrap().set_len(65 << 20).unwrap(),
            "over 67108864 bytes, the limit for a kernel module",
        ),
        (
            "an xz bomb as a module",
            "dummy.ko.xz",
            |p| {
                // 600 MiB of zeros, a few hundred KB compressed.
                let st = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "head -c 629145600 /dev/zero | xz -0 -T1 --check=crc32 > '{}'",
                        p.display()
                    ))
                    .status()
                    .unwrap();
                assert!(st.success());
            },
            "decompresses to over 536870912 bytes",
        ),
    ];
    for (name, file, make, want) in cases {
        let sb = Sandbox::new();
        let (vmlinuz, k) = disk_kernel(&sb, None);
        let tree = one_module_tree(&sb, &k, file, make);
        let c = run_on(
            &sb,
            &vmlinuz,
            &tree,
            &[
                "--exact",
                &format!(
                    "{}::module-load",
                    vmlinuz.file_name().unwrap().to_string_lossy()
                ),
            ],
        );
        sb.case(name, c, 1, &["preparing module dummy", want], FAST * 4);
    }
}

#[test]
fn replaying_what_is_not_a_kept_boot_is_bad_input() {
    let sb = Sandbox::new();
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/boots/hang");
    let fifo_boot = sb.work().join("fifo-boot");
    fs::create_dir(&fifo_boot).unwrap();
    fs::copy(fx.join("boot.json"), fifo_boot.join("boot.json")).unwrap();
    mkfifo(&fifo_boot.join("transcript.bin"));
    let cut = sb.work().join("cut-boot");
    fs::create_dir(&cut).unwrap();
    fs::copy(fx.join("boot.json"), cut.join("boot.json")).unwrap();
    let t = fs::read(fx.join("transcript.bin")).unwrap();
    fs::write(cut.join("transcript.bin"), &t[..t.len() - 3]).unwrap();
    for (name, dir, want) in [
        (
            "replay of a folder that is no kept boot",
            sb.work(),
            "not a kept boot",
        ),
        ("replay with a FIFO transcript", fifo_boot, "is a FIFO"),
        ("replay of a cut transcript", cut, "cut short"),
    ] {
        let mut c = sb.btfvm(["replay"]);
        c.arg(&dir);
        sb.case(name, c, 2, &[want], FAST);
    }
    let mut c = sb.btfvm(["replay"]);
    c.arg(&fx);
    sb.case(
        "replay of a fixture",
        c,
        1,
        &["scenario hang still running after 3 s"],
        FAST,
    );
}

// ---- Numbers are bounded ----------------------------------------------

#[test]
fn numbers_out_of_range_are_usage_errors() {
    let sb = Sandbox::new();
    for (name, args, want) in [
        ("--memory 0", vec!["--memory", "0"], "below the 128 MiB"),
        ("--memory 16", vec!["--memory", "16"], "below the 128 MiB"),
        ("--memory 64", vec!["--memory", "64"], "72-104 MiB"),
        (
            "--memory 99999999",
            vec!["--memory", "99999999"],
            "more than this machine's",
        ),
        (
            "--memory -5",
            vec!["--memory=-5"],
            "not a whole number of MiB",
        ),
        ("--timeout 0", vec!["--timeout", "0"], "give at least 1"),
        (
            "--hello-timeout 0",
            vec!["--hello-timeout", "0"],
            "give at least 1",
        ),
        (
            "--scenario-timeout abc",
            vec!["--scenario-timeout", "abc"],
            "not a whole number of seconds",
        ),
        (
            "--run-timeout -1",
            vec!["--run-timeout=-1"],
            "not a whole number of seconds",
        ),
    ] {
        let mut c = sb.btfvm(["run", "--kernel", "bookworm"]);
        c.args(&args);
        sb.case(name, c, 2, &[want], FAST);
    }
}

#[test]
fn huge_limits_are_just_far_away() {
    let sb = Sandbox::new();
    for opt in [
        "--run-timeout",
        "--timeout",
        "--hello-timeout",
        "--scenario-timeout",
    ] {
        let mut c = sb.btfvm([
            "run",
            "--kernel",
            "bookworm",
            "--exact",
            "bookworm::user-btf",
            opt,
            "18446744073709551615",
        ]);
        c.arg("--logs").arg(sb.logs());
        sb.case(&format!("{opt} u64::MAX"), c, 0, &["1 passed"], BOOT);
    }
}

// ---- Failure messages carry the kernel's own reason --------------------

fn scenario(dir: &Path, name: &str, text: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
}

#[test]
fn a_module_of_another_kernel_is_bad_input_before_booting() {
    let sb = Sandbox::new();
    let (vmlinuz, k) = disk_kernel(&sb, None);
    let old = fetched("debian:bullseye");
    let tree = one_module_tree(&sb, &k, "dummy.ko", |p| {
        fs::copy(find(&old.modules, "dummy.ko"), p).unwrap();
    });
    let c = run_on(&sb, &vmlinuz, &tree, &[]);
    let r = sb.case(
        "bullseye's dummy.ko for bookworm",
        c,
        2,
        &[
            "is a module of kernel 5.10.0",
            "but the kernel is 6.1.0",
            "modules tree is another kernel's",
        ],
        FAST,
    );
    assert!(!r.stderr.contains("booting"), "{}", r.stderr);
}

#[test]
fn a_refused_load_quotes_the_kernels_own_reason() {
    let sb = Sandbox::new();
    let dir = sb.work().join("scenarios");
    scenario(
        &dir,
        "corrupt-load",
        "about: a damaged .BTF loaded as if it were fine, where the kernel refuses it\n\
         steps:\n  - load: {module: dummy, variant: corrupt-btf}\n",
    );
    let mut c = sb.btfvm(["run", "--kernel", "sid", "--scenarios"]);
    c.arg(&dir).arg("--logs").arg(sb.logs());
    sb.case(
        "sid refuses a damaged .BTF",
        c,
        1,
        &["failed with EINVAL", "kernel log of this scenario", "BPF:"],
        BOOT,
    );
}

#[test]
fn a_missing_btf_object_says_the_file_has_no_btf() {
    let sb = Sandbox::new();
    let dir = sb.work().join("scenarios");
    scenario(
        &dir,
        "stripped-expected",
        "about: BTF expected from a module whose .BTF was removed\n\
         steps:\n  - load: {module: dummy, variant: no-btf}\n  - expect_module_btf: dummy\n",
    );
    let mut c = sb.btfvm(["run", "--kernel", "bookworm", "--scenarios"]);
    c.arg(&dir).arg("--logs").arg(sb.logs());
    sb.case(
        "stripped module",
        c,
        1,
        &["no BTF object named \"dummy\"", "has no .BTF section"],
        BOOT,
    );
}

#[test]
fn the_no_btf_hint_follows_the_kernels_config() {
    let sb = Sandbox::new();
    let (vmlinuz, k) = disk_kernel(&sb, None);
    let stripped = sb.work().join("stripped.ko");
    let st = std::process::Command::new("objcopy")
        .args(["--remove-section=.BTF"])
        .arg(find(&k.modules, "dummy.ko"))
        .arg(&stripped)
        .status()
        .unwrap();
    assert!(st.success());
    let tree = one_module_tree(&sb, &k, "dummy.ko", |p| {
        fs::copy(&stripped, p).unwrap();
    });
    let name = vmlinuz.file_name().unwrap().to_string_lossy().into_owned();
    let c = run_on(
        &sb,
        &vmlinuz,
        &tree,
        &["--exact", &format!("{name}::corrupt-btf")],
    );
    let r = sb.case(
        "no .BTF on a kernel with module BTF",
        c,
        1,
        &[
            "no .BTF section",
            "although this kernel has CONFIG_DEBUG_INFO_BTF_MODULES=y",
        ],
        FAST,
    );
    assert!(!r.text().contains("older than 5.11"), "{}", r.text());
}

// ---- No misreports of the environment ----------------------------------

#[test]
fn a_read_only_cache_is_named_not_reported_as_kvm() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let ro = sb.work().join("ro-cache");
    fs::create_dir_all(ro.join("tmp")).unwrap();
    for d in [ro.join("tmp"), ro.clone()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o555)).unwrap();
    }
    // Permissions do not stop root, and a read-only mount needs a
    // privilege containers often lack: as root, btfvm runs as nobody.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = if root {
        for d in [sb.dir.path().to_path_buf(), sb.work()] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(sb.tmp(), fs::Permissions::from_mode(0o777)).unwrap();
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_btfvm")])
            .env("TMPDIR", sb.tmp())
            .current_dir(sb.work());
        c
    } else {
        sb.btfvm(std::iter::empty::<&str>())
    };
    c.args([
        "run",
        "--kernel",
        "bookworm",
        "--exact",
        "bookworm::user-btf",
    ])
    .env("BTFVM_CACHE_DIR", &ro)
    .env("HOME", sb.work());
    let r = sb.case(
        "read-only cache",
        c,
        3,
        &[
            "cannot write into",
            "ro-cache/tmp",
            "the cache must be writable",
        ],
        FAST,
    );
    assert!(!r.text().contains("KVM unusable"), "{}", r.text());
}

// ---- A failure is never hidden by a name collision; YAML meaning -------

fn yaml_case(sb: &Sandbox, name: &str, files: &[(&[u8], &str)], status: i32, wants: &[&str]) {
    let dir = sb.work().join(name.replace(' ', "-"));
    fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        use std::os::unix::ffi::OsStrExt;
        fs::write(dir.join(std::ffi::OsStr::from_bytes(file)), text).unwrap();
    }
    let mut c = sb.btfvm(["run", "--kernel", "bookworm", "--list", "--scenarios"]);
    c.arg(&dir);
    sb.case(name, c, status, wants, FAST);
}

const OK: &str = "about: x\nsteps: [expect_user_btf]\n";

#[test]
fn scenario_names_and_meanings_are_checked_like_syntax() {
    let sb = Sandbox::new();
    yaml_case(
        &sb,
        "x.yaml next to x.yml",
        &[(b"x.yaml", OK), (b"x.yml", OK)],
        2,
        &["x.yaml", "x.yml"],
    );
    yaml_case(
        &sb,
        "two names that are not UTF-8",
        &[(b"\xff.yaml", OK), (b"\xfe.yaml", OK)],
        2,
        &["not UTF-8"],
    );
    yaml_case(
        &sb,
        "a module name with a dash",
        &[(b"s.yaml", "about: x\nsteps:\n  - load: ip6-udp-tunnel\n")],
        2,
        &["s.yaml:3:", "ip6_udp_tunnel"],
    );
    yaml_case(
        &sb,
        "a config key without CONFIG_",
        &[(
            b"s.yaml",
            "about: x\nrequires: {config: {DEBUG_INFO_BTF: y}}\nsteps: [expect_user_btf]\n",
        )],
        2,
        &["s.yaml:2:", "CONFIG_DEBUG_INFO_BTF"],
    );
    yaml_case(
        &sb,
        "a when without branches",
        &[(
            b"s.yaml",
            "about: x\nsteps:\n  - expect_user_btf\n  - when: {kernel: \">=5.11\"}\n",
        )],
        2,
        &["s.yaml:4:"],
    );
    yaml_case(
        &sb,
        "an empty expect_kmsg",
        &[(b"s.yaml", "about: x\nsteps:\n  - expect_kmsg: \"\"\n")],
        2,
        &["s.yaml:3:"],
    );
    yaml_case(
        &sb,
        "a scenario of 2 MiB",
        &[(b"s.yaml", &"# padding\n".repeat(210_000))],
        2,
        &["over 1048576 bytes"],
    );
    let fifo_dir = sb.work().join("fifo-scenarios");
    fs::create_dir(&fifo_dir).unwrap();
    mkfifo(&fifo_dir.join("s.yaml"));
    let mut c = sb.btfvm(["run", "--kernel", "bookworm", "--list", "--scenarios"]);
    c.arg(&fifo_dir);
    sb.case("a FIFO as a scenario", c, 2, &["is a FIFO"], FAST);
    let file = sb.work().join("not-a-dir");
    fs::write(&file, OK).unwrap();
    let mut c = sb.btfvm(["run", "--kernel", "bookworm", "--list", "--scenarios"]);
    c.arg(&file);
    sb.case("a file as the scenarios folder", c, 2, &["not-a-dir"], FAST);
}

fn kernels_case(sb: &Sandbox, name: &str, files: &[(&str, &str)], wants: &[&str]) {
    let dir = sb.work().join(name.replace(' ', "-"));
    fs::create_dir_all(dir.join("fragments")).unwrap();
    for (file, text) in files {
        fs::write(dir.join(file), text).unwrap();
    }
    let mut c = sb.btfvm(["run", "--list", "--kernels-dir"]);
    c.arg(&dir);
    sb.case(name, c, 2, wants, FAST);
}

#[test]
fn kernel_specs_are_checked_and_unique() {
    let sb = Sandbox::new();
    let spec = "about: x\nsource: debian:bookworm\n";
    kernels_case(
        &sb,
        "sid.yaml next to sid.yml",
        &[("sid.yaml", spec), ("sid.yml", spec)],
        &["sid.yaml", "sid.yml"],
    );
    kernels_case(
        &sb,
        "two default specs",
        &[
            (
                "a.yaml",
                "about: x\nsource: debian:bookworm\ndefault: true\n",
            ),
            ("b.yaml", "about: x\nsource: debian:sid\ndefault: true\n"),
        ],
        &["a.yaml", "b.yaml", "default: true"],
    );
    kernels_case(
        &sb,
        "a bad expect.config value",
        &[(
            "k.yaml",
            "about: x\nsource: debian:sid\nexpect:\n  config:\n    CONFIG_X: yes\n",
        )],
        &["k.yaml:5:"],
    );
    kernels_case(
        &sb,
        "a spec whose vmlinuz does not exist",
        &[(
            "k.yaml",
            "about: x\nsource: ./no-such-vmlinuz\ndefault: true\n",
        )],
        &["no-such-vmlinuz", "no such file"],
    );
    kernels_case(
        &sb,
        "a spec with a bad fragment name",
        &[(
            "k.yaml",
            "about: x\nbuild: {tree: debian:bookworm, fragments: [\"a b\"]}\n",
        )],
        &["k.yaml:2:"],
    );
}

#[test]
fn a_scenarios_folder_in_the_working_directory_is_named() {
    let sb = Sandbox::new();
    let here = sb.work().join("scenarios");
    fs::create_dir(&here).unwrap();
    fs::write(here.join("mine.yaml"), OK).unwrap();
    let c = sb.btfvm(["run", "--kernel", "bookworm", "--list"]);
    let r = sb.case(
        "./scenarios replaces the repository's",
        c,
        0,
        &[
            "found in the working directory, not the repository's",
            "bookworm::mine",
        ],
        FAST,
    );
    assert!(!r.stdout.contains("bookworm::module-load"), "{}", r.stdout);
}
