//! Loading kernel specs, hostile ones included.

use super::*;

#[test]
fn repo_specs_load_with_one_default() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels");
    let specs = load_dir(&dir).unwrap();
    let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
    for n in ["bookworm", "trixie", "sid", "bullseye"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert_eq!(specs.iter().filter(|s| s.default).count(), 1);
}

#[test]
fn a_flaky_boot_needs_a_bounded_count_and_a_reason() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("k.yaml");
    let base = "about: x\nsource: debian:sid\n";
    std::fs::write(
        &p,
        format!("{base}flaky_boot: {{retries: 2, reason: \"crashes 1 in 5\"}}\n"),
    )
    .unwrap();
    assert_eq!(load(&p).unwrap().flaky_boot.map(|f| f.retries), Some(2));
    std::fs::write(&p, format!("{base}flaky_boot: {{retries: 9, reason: r}}\n")).unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("k.yaml:3:") && e.contains("give 1 to 5"), "{e}");
    std::fs::write(
        &p,
        format!("{base}flaky_boot: {{retries: 1, reason: \" \"}}\n"),
    )
    .unwrap();
    assert!(load(&p).unwrap_err().to_string().contains("say what fails"));
    std::fs::write(&p, format!("{base}flaky_boot: {{retries: 1}}\n")).unwrap();
    assert!(load(&p)
        .unwrap_err()
        .to_string()
        .contains("missing field `reason`"));
}

#[test]
fn unknown_key_is_located() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("k.yaml");
    std::fs::write(&p, "about: x\nsource: debian:sid\nexpekt: {}\n").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("k.yaml:3:1: unknown field `expekt`"), "{e}");
}

#[test]
fn a_path_spec_says_where_its_modules_and_config_are() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("mine.yaml");
    std::fs::write(
        &p,
        "about: x\nsource: out/bzImage\nmodules: out/lib/modules/6.1.0\nconfig: /abs/config\n",
    )
    .unwrap();
    let spec = load(&p).unwrap();
    let KernelSource::Local(l) = &spec.source else {
        panic!("{:?}", spec.source)
    };
    assert_eq!(l.vmlinuz, d.path().join("out/bzImage"));
    assert_eq!(
        l.modules.as_deref(),
        Some(d.path().join("out/lib/modules/6.1.0").as_path())
    );
    assert_eq!(l.config.as_deref(), Some(Path::new("/abs/config")));

    std::fs::write(&p, "about: x\nsource: debian:sid\nmodules: x\n").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("belong to a `source:` that is a path"), "{e}");
}

#[test]
fn kernel_specs_take_a_build_map() {
    use crate::inputs::build_spec::PaholeChoice;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("k.yaml");
    std::fs::write(
        &p,
        "about: x\nbuild:\n  tree: debian:bookworm\n  fragments: [btf-modules-off]\n  pahole: debian:sid\n",
    )
    .unwrap();
    let spec = load(&p).unwrap();
    let KernelSource::Build(b) = &spec.source else {
        panic!("{:?}", spec.source)
    };
    assert_eq!(b.fragments, ["btf-modules-off"]);
    assert_eq!(b.pahole, PaholeChoice::Debian("sid".into()));
    assert_eq!(b.fragments_dir, d.path().join("fragments"));
    // The same build on the command line is the same source.
    let word = "build:debian:bookworm,fragments=btf-modules-off,pahole=debian:sid";
    let cli = KernelSource::parse(word, &d.path().join("fragments"), Path::new("")).unwrap();
    assert_eq!(cli, spec.source);

    std::fs::write(
        &p,
        "about: x\nsource: debian:sid\nbuild: {tree: debian:sid}\n",
    )
    .unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("exactly one of `source`"), "{e}");
    std::fs::write(&p, "about: x\nbuild: {tree: debian:sid, pahole: pahole}\n").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("build: pahole"), "{e}");
}

/// The first line of the error `load` gives for a spec `k.yaml` with this
/// text, with the temporary folder cut from its paths.
fn first_line(text: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("k.yaml");
    std::fs::write(&p, text).unwrap();
    let e = load(&p).unwrap_err().to_string();
    let rel = e.replace(&format!("{}/", d.path().display()), "");
    rel.lines().next().unwrap_or_default().to_string()
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

#[test]
fn hostile_expect_config_is_checked_like_requires() {
    assert_eq!(
        first_line("about: x\nsource: debian:sid\nexpect:\n  config:\n    DEBUG_INFO_BTF: y\n"),
        "k.yaml:5:5: config option \"DEBUG_INFO_BTF\" lacks the CONFIG_ prefix: write CONFIG_DEBUG_INFO_BTF"
    );
    assert_eq!(
        first_line("about: x\nsource: debian:sid\nexpect:\n  config:\n    CONFIG_DEBUG_INFO_BTF: yes\n"),
        "k.yaml:5:28: config option CONFIG_DEBUG_INFO_BTF: \"yes\" is not one of y, m, n, set (set means y or m)"
    );
}

#[test]
fn hostile_an_empty_allow_splats_entry_is_located() {
    assert_eq!(
        first_line("about: x\nsource: debian:sid\nallow_splats:\n  - matches: \"\"\n    reason: r\n"),
        "k.yaml:4:14: allow_splats: `matches` is empty; both `matches` (text of the splat's first line) and `reason` must be non-empty"
    );
    assert_eq!(
        first_line("about: x\nsource: debian:sid\nallow_splats:\n  - matches: WARNING\n    reason: \" \"\n"),
        "k.yaml:5:13: allow_splats: `reason` is empty; both `matches` (text of the splat's first line) and `reason` must be non-empty"
    );
    assert_eq!(
        first_line("about: x\nsource: debian:sid\nallow_splats:\n  - matches: WARNING\n"),
        "k.yaml:4:5: missing field `reason`"
    );
}

#[test]
fn hostile_a_bad_source_or_build_map_is_located() {
    assert_eq!(
        first_line("about: x\nsource: fedora:40\n"),
        "k.yaml:2:9: source: \"fedora:40\": unknown kernel source; use debian:<suite>, build:<tree>[,fragments=..][,pahole=..], a spec name from kernels/, or a path to a vmlinuz"
    );
    assert_eq!(
        first_line("about: x\nbuild:\n  tree: debian:Sid\n"),
        "k.yaml:3:9: build: tree \"debian:Sid\": expected debian:<suite>[:<package>], e.g. debian:bookworm"
    );
    assert_eq!(
        first_line("about: x\nbuild:\n  tree: debian:sid\n  fragments: [btf-modules-on, \"a b\"]\n"),
        "k.yaml:4:31: build: fragment \"a b\": a name in kernels/fragments (letters, digits, - _ .) or a path with a /"
    );
    assert_eq!(
        first_line("about: x\nbuild:\n  tree: debian:sid\n  fragments: [base]\n"),
        "k.yaml:4:15: build: fragment base is always applied first; do not list it"
    );
    assert_eq!(
        first_line("about: x\nbuild: {tree: debian:sid, pahole: pahole}\n"),
        "k.yaml:2:35: build: pahole \"pahole\": expected host, none, debian:<suite> or a path (with a /)"
    );
}

#[test]
fn hostile_fields_that_contradict_each_other_are_located() {
    assert_eq!(
        first_line("about: x\nsource: debian:sid\nbuild:\n  tree: debian:sid\n"),
        "k.yaml:4:3: give exactly one of `source` (debian:<suite>, a path) and `build` (a kernel built from source), not both"
    );
    assert_eq!(
        first_line("about: x\nsource: debian:sid\nconfig: ./config\n"),
        "k.yaml:3:9: `modules` and `config` belong to a `source:` that is a path to a vmlinuz"
    );
    assert_eq!(
        first_line("about: x\n"),
        "k.yaml: give exactly one of `source` (debian:<suite>, a path) and `build` (a kernel built from source)"
    );
}

#[test]
fn hostile_relative_build_paths_are_the_specs_folder() {
    use crate::inputs::build_spec::{PaholeChoice, TreeSource};
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("mine.yaml");
    std::fs::write(
        &p,
        "about: x\nbuild:\n  tree: ./linux\n  fragments: [btf-modules-on, ../my.config, /abs/x.config]\n  pahole: ./bin/pahole\n",
    )
    .unwrap();
    let spec = load(&p).unwrap();
    let KernelSource::Build(b) = &spec.source else {
        panic!("{:?}", spec.source)
    };
    assert_eq!(b.tree, TreeSource::Path(d.path().join("linux")));
    assert_eq!(b.pahole, PaholeChoice::Path(d.path().join("bin/pahole")));
    let mine = d.path().join("../my.config");
    assert_eq!(
        b.fragments,
        ["btf-modules-on", mine.to_str().unwrap(), "/abs/x.config"]
    );
    // `source: build:...` in a spec is the spec's too.
    std::fs::write(&p, "about: x\nsource: build:./linux,pahole=./bin/pahole\n").unwrap();
    let KernelSource::Build(b) = load(&p).unwrap().source else {
        panic!()
    };
    assert_eq!(b.tree, TreeSource::Path(d.path().join("linux")));
    assert_eq!(b.pahole, PaholeChoice::Path(d.path().join("bin/pahole")));
    // On the command line they stay the working directory's.
    let word = "build:./linux,fragments=../my.config,pahole=./bin/pahole";
    let KernelSource::Build(cli) =
        KernelSource::parse(word, Path::new("/k/fragments"), Path::new("")).unwrap()
    else {
        panic!()
    };
    assert_eq!(cli.tree, TreeSource::Path("./linux".into()));
    assert_eq!(cli.fragments, ["../my.config"]);
    assert_eq!(cli.pahole, PaholeChoice::Path("./bin/pahole".into()));
}

#[test]
fn hostile_two_defaults_are_an_error_naming_both_files() {
    let d = dir_with(&[
        ("a.yaml", "about: a\nsource: debian:sid\ndefault: true\n"),
        ("b.yaml", "about: b\nsource: debian:trixie\n"),
        (
            "c.yaml",
            "about: c\nsource: debian:bookworm\ndefault: true\n",
        ),
    ]);
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{0}/a.yaml and {0}/c.yaml: both say `default: true`; only one kernel spec can be the default",
            d.path().display()
        )
    );
}

#[test]
fn hostile_kernel_names_are_unique_and_never_empty() {
    let d = dir_with(&[
        ("sid.yaml", "about: a\nsource: debian:sid\n"),
        ("sid.yml", "about: b\nsource: debian:sid\n"),
    ]);
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{0}/sid.yaml and {0}/sid.yml: both give the kernel name \"sid\", and one would hide the other's results; rename one",
            d.path().display()
        )
    );
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    for raw in [&b"\xff.yaml"[..], &b"\xfe.yaml"[..]] {
        let name = std::ffi::OsStr::from_bytes(raw);
        std::fs::write(d.path().join(name), "about: a\nsource: debian:sid\n").unwrap();
    }
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}/\u{fffd}.yaml: the file name is not UTF-8; it becomes the kernel's name, the first half of its trials' names, so use letters, digits and . - _",
            d.path().display()
        )
    );
    let d = dir_with(&[("a:b.yaml", "about: a\nsource: debian:sid\n")]);
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}/a:b.yaml: file name \"a:b\": use letters, digits and . - _, starting with a letter or digit (it becomes the kernel's name, the first half of its trials' names)",
            d.path().display()
        )
    );
}

#[test]
fn hostile_a_fifo_as_a_kernel_spec_is_refused_at_once() {
    let d = dir_with(&[("sid.yaml", "about: a\nsource: debian:sid\n")]);
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
