//! What a CI matrix and `git bisect run` get from btfvm, for real: JUnit
//! that validates against the JUnit schema with one testcase per trial,
//! flaky results, the bisect exit statuses, shards whose merged report is
//! the unsharded run's, and GitHub's step summary.

mod sandbox;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sandbox::{Sandbox, BOOT, FAST};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The JUnit schema pytest validates its own JUnit output against
/// (testing/example_scripts/junit-10.xsd of its source distribution, from
/// PyPI), kept in the cache after the first download.
fn junit_xsd() -> PathBuf {
    let dir = sandbox::shared_cache().join("fixtures");
    let xsd = dir.join("junit-10.xsd");
    if xsd.is_file() {
        return xsd;
    }
    fs::create_dir_all(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new("pip")
        .args([
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            "pytest",
            "pytest==8.3.4",
            "-d",
        ])
        .arg(tmp.path())
        .status()
        .expect("pip, to fetch the JUnit schema from PyPI (pytest's sdist)");
    assert!(st.success(), "pip download pytest==8.3.4 failed");
    let st = Command::new("tar")
        .arg("xzf")
        .arg(tmp.path().join("pytest-8.3.4.tar.gz"))
        .arg("-C")
        .arg(tmp.path())
        .arg("pytest-8.3.4/testing/example_scripts/junit-10.xsd")
        .status()
        .unwrap();
    assert!(st.success());
    fs::copy(
        tmp.path()
            .join("pytest-8.3.4/testing/example_scripts/junit-10.xsd"),
        &xsd,
    )
    .unwrap();
    xsd
}

fn scenarios_with(sb: &Sandbox, dirs: &[PathBuf], extra: &[(&str, &str)]) -> PathBuf {
    // Not `scenarios`: btfvm would take that folder in the working
    // directory for the repository's.
    let out = sb
        .work()
        .join(format!("scenarios-{}", extra.len() + dirs.len()));
    fs::create_dir_all(&out).unwrap();
    for d in dirs {
        for e in fs::read_dir(d).unwrap().flatten() {
            fs::copy(e.path(), out.join(e.file_name())).unwrap();
        }
    }
    for (name, text) in extra {
        fs::write(out.join(format!("{name}.yaml")), text).unwrap();
    }
    out
}

const FLAKY: &str = "about: fails on the first boot and passes on a retry\nsteps:\n  - selftest: fail_first_attempt\n";

#[test]
fn junit_validates_against_the_schema_with_one_testcase_per_trial_and_flaky_results() {
    let sb = Sandbox::new();
    let dir = scenarios_with(
        &sb,
        &[
            repo().join("scenarios"),
            repo().join("harness/tests/must-fail"),
        ],
        &[("flaky", FLAKY)],
    );
    let (json, xml) = (sb.work().join("r.json"), sb.work().join("j.xml"));
    let mut c = sb.btfvm([
        "run",
        "--kernel",
        "bookworm",
        "--retries",
        "1",
        "--scenarios",
    ]);
    c.arg(&dir)
        .arg("--report")
        .arg(&json)
        .arg("--junit")
        .arg(&xml)
        .arg("--logs")
        .arg(sb.logs());
    sb.case(
        "suite with failures, ignored and flaky",
        c,
        1,
        &["flaky passed on retry 1 after failing: it is reported as flaky"],
        BOOT * 2,
    );
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    let trials = report["trials"].as_array().unwrap();
    // Counted from the folders, so a scenario added later keeps this test
    // true instead of stale: every file is a trial, the flaky one too.
    let files = |d: &str| fs::read_dir(repo().join(d)).unwrap().count();
    let must_fail = files("harness/tests/must-fail");
    assert_eq!(trials.len(), files("scenarios") + must_fail + 1);
    let flaky = trials.iter().find(|t| t["scenario"] == "flaky").unwrap();
    assert_eq!(flaky["outcome"], "flaky", "{flaky}");
    assert_eq!(flaky["attempts"], 2);
    assert_eq!(report["summary"]["flaky"], 1);
    let outcome = |o: &str| trials.iter().filter(|t| t["outcome"] == o).count();
    // Every must-fail scenario fails on bookworm (none is ignored there),
    // and nothing else does.
    assert_eq!(outcome("failed"), must_fail, "{trials:?}");
    let skipped = outcome("ignored");
    assert!(skipped > 0, "bookworm ignores the built kernels' scenarios");
    let text = fs::read_to_string(&xml).unwrap();
    assert_eq!(text.matches("<testcase ").count(), trials.len(), "{text}");
    assert_eq!(text.matches("<failure ").count(), must_fail, "{text}");
    assert_eq!(text.matches("<skipped ").count(), skipped, "{text}");
    assert_eq!(text.matches("<flakyFailure ").count(), 1, "{text}");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(junit_xsd())
        .arg(&xml)
        .output()
        .expect("xmllint (apt-get install libxml2-utils)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tree whose build fails at once for a reason of its own.
fn broken_tree(sb: &Sandbox) -> PathBuf {
    let t = sb.work().join("broken-linux");
    fs::create_dir_all(&t).unwrap();
    fs::write(t.join("Kconfig"), "config X\n\tbool\n").unwrap();
    fs::write(
        t.join("Makefile"),
        "tinyconfig:\n\t@echo 'this tree does not configure'; false\n",
    )
    .unwrap();
    t
}

#[test]
fn bisect_mode_speaks_git_bisect_run() {
    let sb = Sandbox::new();
    let must_fail = repo().join("harness/tests/must-fail");
    let faults = repo().join("harness/tests/faults");
    let flaky = scenarios_with(&sb, &[], &[("flaky", FLAKY)]);
    let broken = broken_tree(&sb);
    let bad_yaml = sb.work().join("bad-yaml");
    fs::create_dir(&bad_yaml).unwrap();
    fs::write(
        bad_yaml.join("x.yaml"),
        "about: x\nsteps: [expect_modul_btf]\n",
    )
    .unwrap();
    let never_hello: Vec<String> = vec![
        "--scenarios".into(),
        faults.display().to_string(),
        "--exact".into(),
        "bookworm::before-panic".into(),
        "--hello-timeout".into(),
        "1".into(),
    ];
    let cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "a check fails on a kernel that booted: bad",
            vec![
                "--scenarios".into(),
                must_fail.display().to_string(),
                "--exact".into(),
                "bookworm::wrong-errno".into(),
            ],
            1,
            "succeeded, expected ENOEXEC",
        ),
        (
            "a retry never turns bad into good",
            vec![
                "--scenarios".into(),
                flaky.display().to_string(),
                "--retries".into(),
                "1".into(),
            ],
            1,
            "reported as flaky",
        ),
        (
            "the kernel never reaches the agent: skip",
            never_hello.clone(),
            125,
            "no hello from the agent within 1 s",
        ),
        (
            "--boot-failure bad",
            [
                never_hello.clone(),
                vec!["--boot-failure".into(), "bad".into()],
            ]
            .concat(),
            1,
            "no hello from the agent within 1 s",
        ),
        (
            "bad YAML aborts the bisection",
            vec!["--scenarios".into(), bad_yaml.display().to_string()],
            128,
            "x.yaml:2:",
        ),
        (
            "no QEMU aborts the bisection",
            vec![
                "--qemu".into(),
                "/nonexistent/qemu".into(),
                "--exact".into(),
                "bookworm::user-btf".into(),
            ],
            200,
            "/nonexistent/qemu",
        ),
    ];
    for (name, args, status, want) in cases {
        let mut c = sb.btfvm(["run", "--bisect", "--kernel", "bookworm", "--logs"]);
        c.arg(sb.logs()).args(&args);
        sb.case(name, c, status, &[want], BOOT);
    }
    let mut c = sb.btfvm(["run", "--bisect", "--kernel"]);
    c.arg(format!("build:{}", broken.display())).arg("user-btf");
    c.args(["--logs"]).arg(sb.logs());
    let mut typo = sb.btfvm(["run", "--bisect", "--kernel", "bookworm", "usr-btf"]);
    typo.arg("--logs").arg(sb.logs());
    sb.case(
        "a filter that selects nothing aborts the bisection",
        typo,
        128,
        &["nothing to run"],
        FAST,
    );
    sb.case(
        "the kernel does not build: skip",
        c,
        125,
        &["kernel build failed at the config stage"],
        FAST * 6,
    );
}

fn trials_of(report: &Path) -> Vec<(String, String)> {
    let r: serde_json::Value = serde_json::from_slice(&fs::read(report).unwrap()).unwrap();
    let mut v: Vec<(String, String)> = r["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_shards_merged_are_the_unsharded_run() {
    let sb = Sandbox::new();
    let kernels = ["bookworm", "bullseye", "sid", "built-6.1-btf-off"];
    let run = |name: &str, extra: &[&str], report: &Path, junit: &Path| {
        let mut c = sb.btfvm(["run", "user-btf", "--logs"]);
        c.arg(sb.logs());
        for k in kernels {
            c.args(["--kernel", k]);
        }
        c.args(extra)
            .arg("--report")
            .arg(report)
            .arg("--junit")
            .arg(junit);
        sb.case(name, c, 0, &[], BOOT * 4)
    };
    let w = sb.work();
    run("unsharded", &[], &w.join("all.json"), &w.join("all.xml"));
    let mut booted = Vec::new();
    for m in 1..=2 {
        let r = run(
            &format!("shard {m}/2"),
            &["--partition", &format!("hash:{m}/2")],
            &w.join(format!("s{m}.json")),
            &w.join(format!("s{m}.xml")),
        );
        booted.extend(
            r.stderr
                .lines()
                .filter(|l| l.contains(": booting for"))
                .map(String::from),
        );
    }
    let mut c = sb.btfvm(["report", "merge", "--out"]);
    c.arg(w.join("merged.json"))
        .arg(w.join("s1.json"))
        .arg(w.join("s2.json"));
    sb.case("merge reports", c, 0, &["merged 2 file(s)"], FAST);
    assert_eq!(
        trials_of(&w.join("merged.json")),
        trials_of(&w.join("all.json"))
    );
    let mut c = sb.btfvm(["report", "merge", "--out"]);
    c.arg(w.join("merged.xml"))
        .arg(w.join("s1.xml"))
        .arg(w.join("s2.xml"));
    sb.case("merge JUnit", c, 0, &["merged 2 file(s)"], FAST);
    let count = |p: PathBuf| fs::read_to_string(p).unwrap().matches("<testcase ").count();
    assert_eq!(count(w.join("merged.xml")), count(w.join("all.xml")));
    // Each kernel that boots does so in exactly one shard.
    let mut names: Vec<&str> = booted.iter().filter_map(|l| l.split(':').nth(1)).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "{booted:?}");
    let mut c = sb.btfvm(["report", "merge", "--out"]);
    c.arg(w.join("twice.json"))
        .arg(w.join("s1.json"))
        .arg(w.join("s1.json"));
    sb.case("a shard twice", c, 2, &["not shards of one run"], FAST);
}

#[test]
fn github_gets_a_step_summary() {
    let sb = Sandbox::new();
    let summary = sb.work().join("summary.md");
    let mut c = sb.btfvm([
        "run",
        "--kernel",
        "bookworm",
        "--exact",
        "bookworm::user-btf",
        "--logs",
    ]);
    c.arg(sb.logs()).env("GITHUB_STEP_SUMMARY", &summary);
    sb.case("step summary", c, 0, &["1 passed"], BOOT);
    let md = fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| kernel | origin | passed | failed | ignored | flaky |"),
        "{md}"
    );
    assert!(
        md.contains("| bookworm | debian:bookworm linux-image-6.1"),
        "{md}"
    );
}

#[test]
fn bisect_refuses_what_cannot_be_bisected() {
    let sb = Sandbox::new();
    let repo = sb.work().join("small");
    fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    for (f, branch) in [("a", None), ("b", None), ("c", Some("side"))] {
        if let Some(b) = branch {
            git(&["checkout", "-q", "-b", b, "HEAD~1"]);
        }
        fs::write(repo.join(f), f).unwrap();
        git(&["add", f]);
        git(&["commit", "-q", "-m", f]);
    }
    let tree = repo.display().to_string();
    let nothing = sb.work().join("not-a-repo");
    fs::create_dir_all(&nothing).unwrap();
    let cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        ("no kind of bisection", vec![], 2, "say what to bisect"),
        (
            "two kinds at once",
            vec![
                "--tree".into(),
                tree.clone(),
                "--good".into(),
                "main".into(),
                "--bad".into(),
                "side".into(),
                "--kernels".into(),
                "bookworm,sid".into(),
            ],
            2,
            "four different bisections: give one",
        ),
        (
            "one kernel is no list",
            vec!["--kernels".into(), "bookworm".into()],
            2,
            "at least two kernels",
        ),
        (
            "an unknown kernel in the list, before any boot",
            vec!["--kernels".into(), "bookworm,nosuch".into()],
            2,
            "nosuch",
        ),
        (
            "zero tries",
            vec![
                "--kernels".into(),
                "bookworm,sid".into(),
                "--tries".into(),
                "0".into(),
            ],
            2,
            "give at least 1",
        ),
        (
            "a folder that is no git checkout",
            vec![
                "--tree".into(),
                nothing.display().to_string(),
                "--good".into(),
                "a".into(),
                "--bad".into(),
                "b".into(),
            ],
            2,
            "not a git repository",
        ),
        (
            "a revision that does not exist",
            vec![
                "--tree".into(),
                tree.clone(),
                "--good".into(),
                "nosuch".into(),
                "--bad".into(),
                "main".into(),
            ],
            2,
            "no commit \"nosuch\"",
        ),
        (
            "a filter that selects no scenario",
            vec![
                "--kernels".into(),
                "bookworm,sid".into(),
                "no-such-scenario".into(),
            ],
            2,
            "a bisect must test something",
        ),
        (
            "good is no ancestor of bad",
            vec![
                "--tree".into(),
                tree.clone(),
                "--good".into(),
                "main".into(),
                "--bad".into(),
                "side".into(),
                "vmlinux-btf".into(),
            ],
            1,
            "is no ancestor of the bad commit",
        ),
    ];
    for (name, args, status, want) in cases {
        let mut c = sb.btfvm(["bisect", "--out"]);
        c.arg(sb.work().join(format!("out-{}", name.len())))
            .args(&args);
        sb.case(name, c, status, &[want], FAST * 3);
    }
    // The user's checkout is as it was.
    let head = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["branch", "--show-current"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), "side");
}
