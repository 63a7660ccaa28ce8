//! Reading YAML files and folders of them, hostile ones included.

use std::os::unix::ffi::OsStrExt;

use super::*;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct T {
    name: String,
}

pub(crate) fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo on a path in a temporary folder we own, with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn errors_carry_file_line_column() {
    let e = parse::<T>(Path::new("scenarios/x.yaml"), "name: a\nnmae: b\n").unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("scenarios/x.yaml:2:1: unknown field `nmae`"),
        "{s}"
    );
    assert!(s.contains("--> scenarios/x.yaml:2:1"), "{s}");
    match e {
        YamlError::Syntax { line, column, .. } => assert_eq!((line, column), (2, 1)),
        _ => panic!(),
    }
}

#[test]
fn syntax_errors_too() {
    let e = parse::<T>(Path::new("k.yaml"), "name: [a\n").unwrap_err();
    assert!(matches!(e, YamlError::Syntax { line: 1.., .. }), "{e}");
}

#[test]
fn a_missing_field_is_located() {
    let e = parse::<T>(Path::new("k.yaml"), "{}\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("k.yaml:1:1: missing field `name`"), "{e}");
}

#[test]
fn a_located_error_shows_its_line_like_the_parser() {
    let text = "about: x\nsource: debian:sid\nmodules: lib\n";
    let e = located_at(Path::new("k.yaml"), text, (3, 10), "no".into()).to_string();
    assert_eq!(
        e,
        "k.yaml:3:10: no\n --> k.yaml:3:10\n  |\n3 | modules: lib\n  |          ^ no\n  |"
    );
}

#[test]
fn a_fifo_device_or_directory_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("f.yaml");
    mkfifo(&fifo);
    let e = read::<T>(&fifo).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: is a FIFO, not a regular file (a YAML file expected)",
            fifo.display()
        )
    );
    let e = read::<T>(Path::new("/dev/zero")).unwrap_err().to_string();
    assert_eq!(
        e,
        "/dev/zero: is a character device, not a regular file (a YAML file expected)"
    );
    let e = read::<T>(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: is a directory, not a regular file (a YAML file expected)",
            d.path().display()
        )
    );
}

#[test]
fn a_yaml_file_over_the_cap_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.yaml");
    let mut text = "name: a\n".to_string();
    text.push_str(&"#".repeat(YAML_CAP as usize));
    std::fs::write(&p, text).unwrap();
    let e = read::<T>(&p).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: over 1048576 bytes, the limit for a YAML file",
            p.display()
        )
    );
}

#[test]
fn files_in_takes_yaml_files_only() {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "a.yaml",
        "b.yml",
        ".hidden.yaml",
        ".#a.yaml",
        "a.yaml~",
        "a.yaml.swp",
        "a.yaml.orig",
        "#a.yaml#",
        "README.md",
        ".yaml",
        "c.YAML",
    ] {
        std::fs::write(d.path().join(f), "").unwrap();
    }
    // Kept, so that loading them names them instead of hiding them.
    std::fs::create_dir(d.path().join("dir.yaml")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"\xff.yaml");
    std::fs::write(d.path().join(odd), "").unwrap();
    let names: Vec<_> = files_in(d.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names[..3], ["a.yaml", "b.yml", "dir.yaml"]);
    assert_eq!(names[3], odd);
}

#[test]
fn files_in_a_path_that_is_not_a_directory_says_so() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("scenarios");
    std::fs::write(&f, "").unwrap();
    let e = files_in(&f).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: is a regular file, not a directory (a folder of .yaml files expected)",
            f.display()
        )
    );
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let e = files_in(&fifo).unwrap_err().to_string();
    assert!(
        e.ends_with(": is a FIFO, not a directory (a folder of .yaml files expected)"),
        "{e}"
    );
    let e = files_in(&d.path().join("none")).unwrap_err().to_string();
    assert!(
        e.ends_with("/none: No such file or directory (os error 2)"),
        "{e}"
    );
}

const RULE: NameRule = NameRule {
    punctuation: "-_",
    becomes: "a trial's name",
};

#[test]
fn a_name_must_be_utf8_and_keep_to_the_rule() {
    assert_eq!(
        name_of(Path::new("s/module-load.yaml"), &RULE).unwrap(),
        "module-load"
    );
    let odd = Path::new(std::ffi::OsStr::from_bytes(b"s/\xff\xfe.yaml"));
    let e = name_of(odd, &RULE).unwrap_err().to_string();
    assert_eq!(
        e,
        "s/\u{fffd}\u{fffd}.yaml: the file name is not UTF-8; it becomes a trial's name, so use letters, digits and - _"
    );
    for (file, stem) in [
        ("s/a b.yaml", "a b"),
        ("s/x::y.yaml", "x::y"),
        ("s/-x.yaml", "-x"),
        ("s/é.yaml", "é"),
        ("s/.yaml", ".yaml"),
    ] {
        let e = name_of(Path::new(file), &RULE).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{file}: file name {stem:?}: use letters, digits and - _, starting with a letter or digit (it becomes a trial's name)")
        );
    }
}

#[test]
fn a_name_given_twice_names_both_files() {
    let (a, b) = (Path::new("s/x.yaml"), Path::new("s/x.yml"));
    let e = check_unique(
        [("x", a), ("y", Path::new("s/y.yaml")), ("x", b)],
        "scenario",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "s/x.yaml and s/x.yml: both give the scenario name \"x\", and one would hide the other's results; rename one"
    );
}
