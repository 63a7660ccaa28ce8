//! A mistake in a kernel spec or a scenario file is the input's: exit
//! status 2, the same as that mistake on the command line.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use btfvm::support::ErrorClass;
use clap::Parser;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    opts: RunOptions,
}

const GOOD_SCENARIO: &str = "about: x\nsteps: [expect_user_btf]\n";
const GOOD_SPEC: &str = "about: x\nsource: debian:sid\ndefault: true\n";

/// Loads a scenarios folder with one good scenario and a kernels folder
/// with these specs; returns the exit status and the error's first line,
/// with the temporary folder cut from its paths.
fn load_with_specs(specs: &[(&str, &str)], fifo: Option<&str>) -> (u8, String) {
    let d = tempfile::tempdir().unwrap();
    let (s, k) = (d.path().join("scenarios"), d.path().join("kernels"));
    std::fs::create_dir(&s).unwrap();
    std::fs::create_dir(&k).unwrap();
    std::fs::write(s.join("ok.yaml"), GOOD_SCENARIO).unwrap();
    for (name, text) in specs {
        std::fs::write(k.join(name), text).unwrap();
    }
    if let Some(name) = fifo {
        let c = std::ffi::CString::new(k.join(name).as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo on a path in a temporary folder we own, with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let cli = Cli::try_parse_from([
        Path::new("btfvm"),
        Path::new("--scenarios"),
        &s,
        Path::new("--kernels-dir"),
        &k,
    ])
    .unwrap();
    match load_inputs(&cli.opts) {
        Ok(_) => (0, String::new()),
        Err(c) => {
            assert_eq!(c.class, ErrorClass::Input, "{:#}", c.error);
            let text = format!("{:#}", c.error).replace(&format!("{}/", k.display()), "");
            let first = text.lines().next().unwrap_or_default().to_string();
            (exit::for_class(exit::Mode::Normal, c.class), first)
        }
    }
}

#[test]
fn good_inputs_load() {
    assert_eq!(
        load_with_specs(&[("sid.yaml", GOOD_SPEC)], None),
        (0, String::new())
    );
}

#[test]
fn hostile_spec_file_errors_exit_2() {
    let cases: &[(&str, &str)] = &[
        ("about: [x\n", "bad.yaml:1:8: expected string scalar"),
        (
            "about: x\nsource: fedora:40\n",
            "bad.yaml:2:9: source: \"fedora:40\": unknown kernel source; use debian:<suite>, build:<tree>[,fragments=..][,pahole=..], a spec name from kernels/, or a path to a vmlinuz",
        ),
        (
            "about: x\nbuild: {tree: debian:sid, colour: red}\n",
            "bad.yaml:2:27: unknown field `colour`, expected one of tree, fragments, pahole",
        ),
        (
            "about: x\nbuild: {tree: debian:sid, pahole: pahole}\n",
            "bad.yaml:2:35: build: pahole \"pahole\": expected host, none, debian:<suite> or a path (with a /)",
        ),
        (
            "about: x\nbuild: {tree: debian:sid, fragments: [\"a b\"]}\n",
            "bad.yaml:2:39: build: fragment \"a b\": a name in kernels/fragments (letters, digits, - _ .) or a path with a /",
        ),
        // Found when the kernels are selected, before anything boots.
        (
            "about: x\nsource: ./no-such-vmlinuz\ndefault: true\n",
            "kernel spec bad.yaml: ./no-such-vmlinuz: no such file: ./no-such-vmlinuz: no such file",
        ),
    ];
    for (text, want) in cases {
        let sid = "about: x\nsource: debian:sid\n";
        let (status, first) = load_with_specs(&[("sid.yaml", sid), ("bad.yaml", text)], None);
        assert_eq!((status, first.as_str()), (2, *want), "{text}");
    }
}

#[test]
fn hostile_spec_folder_errors_exit_2() {
    let (status, first) = load_with_specs(&[("sid.yaml", GOOD_SPEC)], Some("hang.yaml"));
    assert_eq!(
        (status, first.as_str()),
        (
            2,
            "hang.yaml: is a FIFO, not a regular file (a YAML file expected)"
        )
    );
    let other = "about: y\nsource: debian:trixie\ndefault: true\n";
    let (status, first) = load_with_specs(&[("sid.yaml", GOOD_SPEC), ("trixie.yaml", other)], None);
    assert_eq!(
        (status, first.as_str()),
        (2, "sid.yaml and trixie.yaml: both say `default: true`; only one kernel spec can be the default")
    );
    let (status, first) = load_with_specs(&[("sid.yaml", GOOD_SPEC), ("sid.yml", GOOD_SPEC)], None);
    assert_eq!(
        (status, first.as_str()),
        (2, "sid.yaml and sid.yml: both give the kernel name \"sid\", and one would hide the other's results; rename one")
    );
}
