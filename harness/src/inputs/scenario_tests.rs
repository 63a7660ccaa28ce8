//! Loading scenarios, hostile ones included.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn loads_the_repo_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let all = load_dir(&dir).unwrap();
    assert!(all.len() >= 9, "{}", all.len());
    assert!(all
        .iter()
        .any(|s| s.modules().contains(&("dummy".into(), Variant::CorruptBtf))));
}

#[test]
fn bad_module_names_and_empty_steps_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "x.yaml",
        "about: x\nsteps:\n  - load: ../../etc/passwd\n",
    );
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("is not a module name"), "{e}");
    let p = write(d.path(), "y.yaml", "about: x\nsteps: []\n");
    assert!(load(&p).unwrap_err().to_string().contains("cannot fail"));
}

#[test]
fn unknown_step_names_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "z.yaml",
        "about: x\nsteps:\n  - load: dummy\n  - expect_modul_btf: dummy\n",
    );
    let e = load(&p).unwrap_err().to_string();
    assert!(
        e.contains("z.yaml:4:5: unknown variant `expect_modul_btf`"),
        "{e}"
    );
}

#[test]
fn load_takes_a_map_with_variant_and_errno() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "w.yaml",
        "about: x\nsteps:\n  - load: {module: dummy, variant: corrupt-btf, expect: EINVAL}\n  - load: {module: dummy, expect: EWHAT}\n",
    );
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("w.yaml:4:"), "{e}");
    assert!(e.contains("EWHAT"), "{e}");
}

/// The error `load` gives for a scenario with this text, as the user sees
/// its first line.
fn first_line(text: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "s.yaml", text);
    let e = load(&p).unwrap_err().to_string();
    let rel = e.replace(&format!("{}/", d.path().display()), "");
    rel.lines().next().unwrap_or_default().to_string()
}

#[test]
fn hostile_a_module_name_with_a_dash_is_located_with_the_hint() {
    assert_eq!(
        first_line("about: x\nsteps:\n  - load: ip6-udp-tunnel\n"),
        "s.yaml:3:11: \"ip6-udp-tunnel\" is not a module name: letters, digits and _, at most 56 (the kernel spells it ip6_udp_tunnel)"
    );
    assert_eq!(
        first_line("about: x\nsteps:\n  - load: {module: ip6-udp-tunnel, expect: ok}\n"),
        "s.yaml:3:20: \"ip6-udp-tunnel\" is not a module name: letters, digits and _, at most 56 (the kernel spells it ip6_udp_tunnel)"
    );
    assert_eq!(
        first_line("about: x\nsteps:\n  - load: dummy\n  - expect_module_btf: a/b\n"),
        "s.yaml:4:24: \"a/b\" is not a module name: letters, digits and _, at most 56"
    );
}

#[test]
fn hostile_a_bad_config_value_is_located() {
    assert_eq!(
        first_line("about: x\nrequires:\n  config:\n    CONFIG_DUMMY: yes\nsteps: [expect_user_btf]\n"),
        "s.yaml:4:19: config option CONFIG_DUMMY: \"yes\" is not one of y, m, n, set (set means y or m)"
    );
}

#[test]
fn hostile_a_config_key_without_its_prefix_is_located() {
    assert_eq!(
        first_line("about: x\nrequires:\n  config: {DEBUG_INFO_BTF: y}\nsteps: [expect_user_btf]\n"),
        "s.yaml:3:12: config option \"DEBUG_INFO_BTF\" lacks the CONFIG_ prefix: write CONFIG_DEBUG_INFO_BTF"
    );
    assert_eq!(
        first_line("about: x\nsteps:\n  - when:\n      config: {CONFIG_debug: y}\n      then: [expect_user_btf]\n"),
        "s.yaml:4:16: config option \"CONFIG_debug\" is not a Kconfig option: CONFIG_ followed by A-Z, 0-9 and _"
    );
}

#[test]
fn hostile_a_bad_kernel_bound_is_located() {
    assert_eq!(
        first_line("about: x\nrequires:\n  kernel: \"5.11\"\nsteps: [expect_user_btf]\n"),
        "s.yaml:3:11: kernel bound \"5.11\" must start with one of >=, >, <=, <, =="
    );
    assert_eq!(
        first_line("about: x\nsteps:\n  - when: {kernel: \">=5.x\", then: [expect_user_btf]}\n"),
        "s.yaml:3:20: kernel bound \">=5.x\": \"5.x\" is not a version like 5.11"
    );
}

#[test]
fn hostile_a_missing_field_is_located() {
    assert_eq!(
        first_line("steps: [expect_user_btf]\n"),
        "s.yaml:1:1: missing field `about`"
    );
    assert_eq!(
        first_line("about: x\nsteps:\n  - load: {variant: no-btf}\n"),
        "s.yaml:3:12: missing field `module`"
    );
}

#[test]
fn hostile_a_when_that_checks_nothing_is_located() {
    let want = "`when` has no step in `then` or `else`, so it checks nothing; give it at least one";
    assert_eq!(
        first_line("about: x\nsteps:\n  - load: dummy\n  - when:\n      kernel: \">=5.11\"\n"),
        format!("s.yaml:5:7: {want}")
    );
    assert_eq!(
        first_line("about: x\nsteps:\n  - load: dummy\n  - when: {kernel: \">=5.11\", then: [], else: []}\n"),
        format!("s.yaml:4:11: {want}")
    );
}

#[test]
fn hostile_an_empty_kmsg_text_is_located() {
    let want = "expect_kmsg: the text is blank, and (nearly) every kernel log line contains it, so the check cannot fail; give the text to look for";
    assert_eq!(
        first_line("about: x\nsteps:\n  - expect_kmsg: \"\"\n"),
        format!("s.yaml:3:18: {want}")
    );
    assert_eq!(
        first_line("about: x\nsteps:\n  - expect_kmsg: \"  \"\n"),
        format!("s.yaml:3:18: {want}")
    );
}

#[test]
fn hostile_empty_steps_are_located() {
    assert_eq!(
        first_line("about: x\nsteps: []\n"),
        "s.yaml:2:8: steps: empty; a scenario that does nothing cannot fail"
    );
}

#[test]
fn hostile_x_yaml_next_to_x_yml_is_a_clash() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "x.yaml", "about: a\nsteps: [expect_user_btf]\n");
    write(d.path(), "x.yml", "about: b\nsteps: [expect_user_btf]\n");
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{0}/x.yaml and {0}/x.yml: both give the scenario name \"x\", and one would hide the other's results; rename one",
            d.path().display()
        )
    );
}

#[test]
fn hostile_a_name_that_is_not_utf8_is_an_error_not_an_empty_name() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    for raw in [&b"\xff.yaml"[..], &b"\xfe.yaml"[..]] {
        let name = std::ffi::OsStr::from_bytes(raw);
        std::fs::write(d.path().join(name), "about: a\nsteps: [expect_user_btf]\n").unwrap();
    }
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}/\u{fffd}.yaml: the file name is not UTF-8; it becomes the scenario's name, the second half of its trials' names, so use letters, digits and - _",
            d.path().display()
        )
    );
}

#[test]
fn hostile_a_name_with_characters_a_trial_name_cannot_have() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "a::b.yaml",
        "about: a\nsteps: [expect_user_btf]\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}/a::b.yaml: file name \"a::b\": use letters, digits and - _, starting with a letter or digit (it becomes the scenario's name, the second half of its trials' names)",
            d.path().display()
        )
    );
}

#[test]
fn hostile_hidden_files_and_editor_backups_are_not_scenarios() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "ok.yaml", "about: a\nsteps: [expect_user_btf]\n");
    for junk in [
        ".ok.yaml",
        ".#ok.yaml",
        "ok.yaml~",
        "ok.yaml.swp",
        "#ok.yaml#",
        "notes.txt",
    ] {
        write(d.path(), junk, "not: [a scenario\n");
    }
    let all = load_dir(d.path()).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ok"]);
}

#[test]
fn hostile_a_fifo_as_a_scenario_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("hang.yaml");
    crate::inputs::yaml::tests::mkfifo(&fifo);
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: is a FIFO, not a regular file (a YAML file expected)",
            fifo.display()
        )
    );
}

#[test]
fn hostile_a_directory_as_a_scenario_says_what_it_is() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sub.yaml")).unwrap();
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}/sub.yaml: is a directory, not a regular file (a YAML file expected)",
            d.path().display()
        )
    );
}

/// The guest reads the same steps from the plan's JSON: every scenario
/// this repository ships must come back whole.
#[test]
fn the_repo_scenarios_pass_the_guests_checks_too() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for s in load_dir(&dir).unwrap() {
        let json = serde_json::to_string(&s.steps).unwrap();
        let back: Vec<Step> =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(back, s.steps, "{}", s.name);
        let json = serde_json::to_string(&s.requires).unwrap();
        let back: Condition = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s.requires, "{}", s.name);
    }
}

/// The must-fail and fault scenarios that the QEMU tests run pass the same
/// checks.
#[test]
fn the_test_scenario_folders_load() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    for sub in ["must-fail", "faults", "faults-built"] {
        let all = load_dir(&tests.join(sub)).unwrap_or_else(|e| panic!("{sub}: {e}"));
        assert!(!all.is_empty(), "{sub}");
    }
}
