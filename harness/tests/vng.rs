//! `--runner vng` for real: the suite booted by virtme-ng on Debian's
//! kernels gives the same verdicts as btfvm's own boot, and the faults end
//! clearly with nothing left running: vng exiting early, and a scenario
//! past its limit (vng itself has no limit; btfvm's apply).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Output};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod ways;
use ways::{running_with, same_verdicts, text};

fn btfvm(args: &[&str]) -> Output {
    ways::btfvm(args, &[])
}

fn vng() -> Result<PathBuf, String> {
    let mut c: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("vng")).collect())
        .unwrap_or_default();
    if let Some(h) = std::env::var_os("HOME") {
        c.push(Path::new(&h).join(".local/vng/bin/vng"));
    }
    c.into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| "virtme-ng is not installed (python3 -m venv ~/.local/vng && ~/.local/vng/bin/pip install virtme-ng; .ci/run does)".into())
}

fn same_verdicts_as_qemu(kernel: &str, vng: &Path) -> Result<(), Failed> {
    let d = tempfile::tempdir().unwrap();
    let (under_vng, own) = (d.path().join("vng.json"), d.path().join("qemu.json"));
    let v = btfvm(&[
        "run",
        "--kernel",
        kernel,
        "--runner",
        "vng",
        "--vng",
        vng.to_str().unwrap(),
        "--report",
        under_vng.to_str().unwrap(),
    ]);
    let q = btfvm(&["run", "--kernel", kernel, "--report", own.to_str().unwrap()]);
    if !v.status.success() {
        return Err(format!("the run under vng failed:\n{}", text(&v)).into());
    }
    if !q.status.success() {
        return Err(format!("btfvm's own boot failed:\n{}", text(&q)).into());
    }
    Ok(same_verdicts(&under_vng, "vng ", &own, "qemu")?)
}

fn vng_exiting_early_is_a_clear_failure(_: &Path) -> Result<(), Failed> {
    let d = tempfile::tempdir().unwrap();
    let fake = d.path().join("vng");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'vng: cannot find a QEMU (fake)' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = btfvm(&[
        "run",
        "--kernel",
        "bookworm",
        "--exact",
        "bookworm::module-load",
        "--runner",
        "vng",
        "--vng",
        fake.to_str().unwrap(),
    ]);
    let t = text(&o);
    if o.status.success()
        || !t.contains("vng exited with status 3")
        || !t.contains("cannot find a QEMU (fake)")
    {
        return Err(format!(
            "({}) vng's early exit is not reported with what it said:\n{t}",
            o.status
        )
        .into());
    }
    Ok(())
}

fn a_hung_scenario_is_killed_with_vngs_whole_group(vng: &Path) -> Result<(), Failed> {
    let faults = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults");
    let o = btfvm(&[
        "run",
        "--kernel",
        "bookworm",
        "--scenarios",
        faults.to_str().unwrap(),
        "--exact",
        "bookworm::hang",
        "--scenario-timeout",
        "5",
        "--runner",
        "vng",
        "--vng",
        vng.to_str().unwrap(),
    ]);
    let t = text(&o);
    if o.status.success() || !t.contains("scenario hang still running after 5 s; vng killed") {
        return Err(format!("({}) no scenario timeout under vng:\n{t}", o.status).into());
    }
    // vng's QEMU and virtiofsd name the run's folder (under btfvm-*).
    let left: Vec<String> = running_with("results.bin")
        .into_iter()
        .chain(running_with("virtme"))
        .collect();
    if !left.is_empty() {
        return Err(format!("left running: {left:?}").into());
    }
    Ok(())
}

type Case = fn(&Path) -> Result<(), Failed>;

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // Boots one at a time: two TCG guests on 2 cores only slow each other.
    args.test_threads = Some(1);
    let cases: [(&str, Case); 4] = [
        ("vng::bookworm_same_verdicts_as_qemu", |v| {
            same_verdicts_as_qemu("bookworm", v)
        }),
        ("vng::trixie_same_verdicts_as_qemu", |v| {
            same_verdicts_as_qemu("trixie", v)
        }),
        (
            "vng::vng_exiting_early_is_a_clear_failure",
            vng_exiting_early_is_a_clear_failure,
        ),
        (
            "vng::a_hung_scenario_is_killed_with_vngs_whole_group",
            a_hung_scenario_is_killed_with_vngs_whole_group,
        ),
    ];
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            Trial::ignorable_test(name, move || match vng() {
                Ok(v) => case(&v).map(|()| Completion::Completed),
                Err(why) => Ok(Completion::ignored_with(why)),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
