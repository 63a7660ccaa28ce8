//! `btfvm bisect` on real kernels, run as a user runs it:
//! - commits: a git repository made from Debian's linux-source-6.1
//!   (tests/bisect/make-repo.sh: the tree, then a commit that does not
//!   build and one that breaks module BTF in btf_module_notify), bisected
//!   to the breaking commit with the unbuildable one skipped, then asked
//!   again to show that the record resumes without testing anything;
//! - configs: the option-on and option-off configs of built-6.1-btf-on/off,
//!   which must name CONFIG_DEBUG_INFO_BTF_MODULES;
//! - kernels: bookworm, trixie, sid, with a scenario that holds while
//!   CONFIG_MODULE_ALLOW_BTF_MISMATCH=y: the flip is at sid.
//!
//! The three run one after another (each boots kernels and may build
//! them; two at once only slow each other down on two cores).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn btfvm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_btfvm"));
    c.current_dir(repo());
    c
}

fn run(c: &mut Command) -> Output {
    eprintln!("running {c:?}");
    let out = c.output().expect("btfvm runs");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// btfvm's own rule (support::cache): BTFVM_CACHE_DIR, else an absolute
/// XDG_CACHE_HOME, else ~/.cache.
fn cache() -> PathBuf {
    let var = |n: &str| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("BTFVM_CACHE_DIR") {
        return d;
    }
    if let Some(x) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return x.join("btfvm");
    }
    var("HOME").unwrap().join(".cache/btfvm")
}

/// The cache entry of a built spec (built now if need be): `btfvm kernel
/// build` prints its files, the config first.
fn built_entry(spec: &str) -> PathBuf {
    let out = run(btfvm().args(["kernel", "build", spec]));
    assert!(out.status.success(), "kernel build {spec} failed");
    let text = stdout(&out);
    let config = text
        .lines()
        .find_map(|l| l.strip_prefix("config"))
        .map(|p| PathBuf::from(p.trim()))
        .expect("kernel build prints the config's path");
    config.parent().unwrap().to_path_buf()
}

/// The test repository, made once per tree and kept in the cache (the
/// commit hashes are fixed, so the build cache serves later runs).
fn test_repo() -> PathBuf {
    let entry = built_entry("built-6.1-btf-on");
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(entry.join("meta.json")).unwrap()).unwrap();
    let tree = PathBuf::from(meta["tree_dir"].as_str().expect("meta.json has tree_dir"));
    let label = tree
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap();
    let dest = cache()
        .join("fixtures")
        .join(format!("bisect-repo-{label}-r1"));
    if !dest.join(".git").is_dir() {
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let st = Command::new("bash")
            .arg(repo().join("harness/tests/bisect/make-repo.sh"))
            .arg(&tree)
            .arg(&dest)
            .status()
            .unwrap();
        assert!(st.success(), "make-repo.sh failed");
    }
    dest
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn commits_the_breaking_commit_with_the_unbuildable_one_skipped() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let repo_dir = test_repo();
    let breaking = git(&repo_dir, &["rev-parse", "HEAD~1"]);
    let unbuildable = git(&repo_dir, &["rev-parse", "HEAD~3"]);
    let head_before = git(&repo_dir, &["rev-parse", "HEAD"]);
    let out_dir = tempfile::tempdir().unwrap();
    let ask = || {
        let mut c = btfvm();
        c.args(["bisect", "--tree"])
            .arg(&repo_dir)
            .args(["--good", "HEAD~5", "--bad", "HEAD", "testmod-btf", "--out"])
            .arg(out_dir.path());
        c
    };
    let out = run(&mut ask());
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "first bad commit: {breaking} bpf: btf_module_notify"
        )),
        "{text}"
    );
    assert!(text.contains("git-"), "the failing trial is named: {text}");
    let journal: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.path().join("journal.json")).unwrap()).unwrap();
    let steps = journal["steps"].as_array().unwrap();
    let skipped = steps
        .iter()
        .find(|s| s["item"] == unbuildable.as_str())
        .expect("the unbuildable commit was tested");
    assert_eq!(skipped["verdict"], "skip", "{skipped}");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("does not build"),
        "{skipped}"
    );
    let log = fs::read_to_string(out_dir.path().join("bisect.log")).unwrap();
    assert!(
        log.contains(&format!("git bisect skip {unbuildable}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("first bad commit: [{breaking}]")),
        "{log}"
    );
    // The user's checkout is as it was: no bisect of theirs was touched.
    assert_eq!(git(&repo_dir, &["rev-parse", "HEAD"]), head_before);
    assert!(!repo_dir.join(".git/BISECT_START").exists());

    // Asked again: the same answer from the record, nothing built or booted.
    let again = run(&mut ask());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success());
    assert!(stdout(&again).contains(&format!("first bad commit: {breaking}")));
    assert!(err.contains("resuming:"), "{err}");
    assert!(!err.contains("btfvm: bisect: testing"), "{err}");
}

#[test]
fn configs_name_the_option_that_kills_module_btf() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let on = built_entry("built-6.1-btf-on").join("dot-config");
    let off = built_entry("built-6.1-btf-off").join("dot-config");
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(btfvm()
        .args(["bisect", "--tree", "debian:bookworm", "--good-config"])
        .arg(&on)
        .arg("--bad-config")
        .arg(&off)
        .args(["testmod-btf", "--out"])
        .arg(out_dir.path()));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let set = text
        .split("smallest set of options that breaks it")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let first = set.lines().nth(1).unwrap_or_default().trim();
    assert_eq!(first, "CONFIG_DEBUG_INFO_BTF_MODULES: y -> n", "{text}");
    assert!(set.starts_with(" (1 of the "), "{text}");
}

#[test]
fn kernels_the_first_debian_kernel_that_refuses_damaged_btf() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(btfvm()
        .args(["bisect", "--kernels", "bookworm,trixie,sid", "--scenarios"])
        .arg(repo().join("harness/tests/bisect/scenarios"))
        .args(["corrupt-btf-loads", "--out"])
        .arg(out_dir.path()));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("first flip: sid (BAD) after trixie (GOOD)"),
        "{text}"
    );
    assert!(
        text.contains("EINVAL") || text.contains("expected"),
        "{text}"
    );
}
