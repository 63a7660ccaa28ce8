//! `--share` for real: a module file from a host folder, shared over
//! virtiofs by the Rust virtiofsd, loaded by the guest with its split BTF
//! checked, on bookworm (virtiofs, fuse and virtio's PCI transport are
//! modules there) and trixie (built in). And the faults: virtiofsd dying
//! under a booting guest ends the boot at once, by name, with nothing
//! left running; a path on no share, or a file the share lacks, is named.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod ways;
use ways::{btfvm, running_with, text};

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/share")
}

/// The Rust virtiofsd, where btfvm looks for it, or why not.
fn virtiofsd() -> Result<PathBuf, String> {
    let mut c: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("virtiofsd"))
                .collect()
        })
        .unwrap_or_default();
    c.push("/usr/libexec/virtiofsd".into());
    if let Some(h) = std::env::var_os("HOME") {
        c.push(Path::new(&h).join(".cargo/bin/virtiofsd"));
    }
    c.into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--help")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--shared-dir"))
        })
        .ok_or_else(|| "no Rust virtiofsd (cargo install virtiofsd --locked; .ci/run does)".into())
}

/// `dummy.ko` of a kernel, decompressed into a fresh folder to share.
fn share_of(kernel: &str) -> Result<tempfile::TempDir, String> {
    // The specs bookworm and trixie are these packages.
    let o = btfvm(&["fetch", &format!("debian:{kernel}")], &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let modules = out
        .lines()
        .find_map(|l| l.strip_prefix("modules"))
        .map(|m| PathBuf::from(m.trim()))
        .ok_or_else(|| {
            format!(
                "btfvm fetch {kernel} named no modules folder:\n{}",
                text(&o)
            )
        })?;
    let found = Command::new("find")
        .arg(&modules)
        .args(["-name", "dummy.ko*"])
        .output()
        .map_err(|e| e.to_string())?;
    let file = String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .map(PathBuf::from)
        .ok_or("no dummy.ko in its modules")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let to = dir.path().join("dummy.ko");
    if file.extension().is_some_and(|x| x == "xz") {
        let o = Command::new("xz")
            .arg("-dc")
            .arg(&file)
            .output()
            .map_err(|e| e.to_string())?;
        std::fs::write(&to, o.stdout).map_err(|e| e.to_string())?;
    } else {
        std::fs::copy(&file, &to).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

fn a_module_from_a_share_gets_split_btf(kernel: &'static str) -> Result<(), Failed> {
    let share = share_of(kernel)?;
    let spec = format!("{}:mods", share.path().display());
    let o = btfvm(
        &[
            "run",
            "--kernel",
            kernel,
            "--scenarios",
            scenarios().to_str().unwrap(),
            "--share",
            &spec,
        ],
        &[],
    );
    let t = text(&o);
    if !o.status.success() || !t.contains(&format!("{kernel}::share-module ... ok")) {
        return Err(format!(
            "({}) the module from the share did not pass:\n{t}",
            o.status
        )
        .into());
    }
    Ok(())
}

fn virtiofsd_dying_ends_the_boot_by_name(real: PathBuf) -> Result<(), Failed> {
    let share = share_of("bookworm")?;
    let tools = tempfile::tempdir().unwrap();
    let wrapper = tools.path().join("virtiofsd");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = --help ] && exec {r} --help\n{r} \"$@\" &\nsleep 1.5\nkill -9 $!\necho 'killed by the test' >&2\nexit 9\n",
            r = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let spec = format!("{}:mods", share.path().display());
    let t0 = Instant::now();
    let o = btfvm(
        &[
            "run",
            "--kernel",
            "bookworm",
            "--scenarios",
            scenarios().to_str().unwrap(),
            "--share",
            &spec,
        ],
        &[("BTFVM_VIRTIOFSD", &wrapper)],
    );
    let took = t0.elapsed();
    let t = text(&o);
    if o.status.success()
        || !t.contains("share mods: virtiofsd exited")
        || !t.contains("killed by the test")
    {
        return Err(format!(
            "({}) virtiofsd's death was not reported by name:\n{t}",
            o.status
        )
        .into());
    }
    if took > Duration::from_secs(60) {
        return Err(format!("took {took:?}").into());
    }
    let dir = share.path().to_string_lossy().into_owned();
    let left: Vec<String> = running_with(&dir)
        .into_iter()
        .filter(|c| c.contains("qemu") || c.contains("virtiofsd"))
        .collect();
    if !left.is_empty() {
        return Err(format!("left running: {left:?}").into());
    }
    Ok(())
}

fn paths_off_the_shares_are_named() -> Result<(), Failed> {
    let sc = scenarios();
    let o = btfvm(
        &[
            "run",
            "--kernel",
            "bookworm",
            "--scenarios",
            sc.to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&o);
    if !t.contains(
        "share-module ... ignored (it loads a module from a share, and no --share was given)",
    ) {
        return Err(
            format!("without --share the scenario is not ignored with the reason:\n{t}").into(),
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let spec = format!("{}:mods", empty.path().display());
    let o = btfvm(
        &[
            "run",
            "--kernel",
            "bookworm",
            "--scenarios",
            sc.to_str().unwrap(),
            "--share",
            &spec,
        ],
        &[],
    );
    let t = text(&o);
    let want = format!(
        "{}/dummy.ko: No such file",
        empty.path().canonicalize().unwrap().display()
    );
    if o.status.success() || !t.contains(&want) {
        return Err(format!("a missing file on the share is not named ({want}):\n{t}").into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // Boots one at a time: two TCG guests on 2 cores only slow each other.
    args.test_threads = Some(1);
    let needs = |name: &'static str, f: Box<dyn FnOnce(PathBuf) -> Result<(), Failed> + Send>| {
        Trial::ignorable_test(name, move || match virtiofsd() {
            Ok(v) => f(v).map(|()| Completion::Completed),
            Err(why) => Ok(Completion::ignored_with(why)),
        })
    };
    let trials = vec![
        needs(
            "share::bookworm_module_from_a_share_gets_split_btf",
            Box::new(|_| a_module_from_a_share_gets_split_btf("bookworm")),
        ),
        needs(
            "share::trixie_module_from_a_share_gets_split_btf",
            Box::new(|_| a_module_from_a_share_gets_split_btf("trixie")),
        ),
        needs(
            "share::virtiofsd_dying_ends_the_boot_by_name",
            Box::new(virtiofsd_dying_ends_the_boot_by_name),
        ),
        needs(
            "share::paths_off_the_shares_are_named",
            Box::new(|_| paths_off_the_shares_are_named()),
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
