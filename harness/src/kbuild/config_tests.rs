use super::*;

fn frag(name: &str, text: &str) -> Fragment {
    let path = PathBuf::from(format!("{name}.config"));
    Fragment {
        name: name.into(),
        options: parse_fragment(&path, text).unwrap(),
        make_vars: parse_make_vars(&path, text).unwrap(),
        path,
        text: text.into(),
    }
}

fn seen(present: bool) -> PaholeSeen {
    PaholeSeen {
        description: if present {
            "pahole v1.18 (fake)".into()
        } else {
            "no pahole (pahole=none)".into()
        },
        present,
    }
}

#[test]
fn fragment_syntax() {
    let p = Path::new("f.config");
    let o = parse_fragment(
        p,
        "# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=n\n",
    )
    .unwrap();
    assert_eq!(
        o,
        [
            ("CONFIG_A".to_string(), "y".to_string()),
            ("CONFIG_B".into(), "n".into()),
            ("CONFIG_C".into(), "\"x y\"".into()),
            ("CONFIG_D".into(), "n".into()),
        ]
    );
    let e = parse_fragment(p, "CONFIG_A=y\nDUMMY=m\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("f.config:2: "), "{e}");
    assert!(parse_fragment(p, "CONFIG_A\n").is_err());
    assert!(parse_fragment(p, "CONFIG_A=\n").is_err());
}

#[test]
fn later_fragments_win_and_apply_replaces_lines() {
    let w = merge(&[
        frag("base", "CONFIG_A=y\nCONFIG_B=y\n"),
        frag("off", "# CONFIG_B is not set\n"),
    ]);
    assert_eq!(w["CONFIG_B"], ("n".to_string(), "off".to_string()));
    let out = apply("CONFIG_A=m\n# CONFIG_B is not set\nCONFIG_Z=y\n", &w);
    assert_eq!(out.matches("CONFIG_A=").count(), 1);
    assert!(out.contains("CONFIG_A=y\n") && out.contains("CONFIG_Z=y\n"));
    assert!(out.contains("# CONFIG_B is not set\n"));
    assert!(!out.contains("CONFIG_A=m"));
}

#[test]
fn dropped_btf_modules_names_option_and_pahole() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("lib")).unwrap();
    std::fs::write(
        tree.path().join("lib/Kconfig.debug"),
        "config DEBUG_INFO_BTF_MODULES\n\tdef_bool y\n\tdepends on DEBUG_INFO_BTF && MODULES && PAHOLE_HAS_SPLIT_BTF\n\
         \thelp\n\t  Generate compact split BTF type information for kernel modules.\n",
    )
    .unwrap();
    let w = merge(&[frag(
        "on",
        "CONFIG_DEBUG_INFO_BTF=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\nCONFIG_NOT_IN_TREE=y\n",
    )]);
    let final_cfg =
        parse_dot_config("CONFIG_PAHOLE_VERSION=118\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_MODULES=y\n");
    let d = check(tree.path(), &final_cfg, &w, &seen(true));
    assert_eq!(d.len(), 2, "{d:?}");
    let btf = d
        .iter()
        .find(|x| x.option == "CONFIG_DEBUG_INFO_BTF_MODULES")
        .unwrap();
    let text = btf.to_string();
    assert!(text.contains("pahole >= 1.19"), "{text}");
    assert!(text.contains("pahole v1.18 (fake)"), "{text}");
    assert!(text.contains("too old"), "{text}");
    assert_eq!(btf.short, "pahole too old for split BTF (needs >= 1.19)");
    assert!(text.contains("PAHOLE_HAS_SPLIT_BTF=n"), "{text}");
    let other = d.iter().find(|x| x.option == "CONFIG_NOT_IN_TREE").unwrap();
    assert!(
        other.cause.contains("has no CONFIG_NOT_IN_TREE"),
        "{}",
        other.cause
    );
}

#[test]
fn missing_pahole_is_caught_before_the_link() {
    let tree = tempfile::tempdir().unwrap();
    let w = merge(&[frag(
        "on",
        "CONFIG_DEBUG_INFO_BTF=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\n",
    )]);
    let final_cfg = parse_dot_config("CONFIG_PAHOLE_VERSION=0\nCONFIG_DEBUG_INFO_BTF=y\n");
    let d = check(tree.path(), &final_cfg, &w, &seen(false));
    let texts: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    assert_eq!(d.len(), 2, "{texts:?}");
    assert!(
        texts[0].contains("CONFIG_DEBUG_INFO_BTF_MODULES=y") && texts[0].contains("pahole missing")
    );
    assert!(texts[1].contains("CONFIG_DEBUG_INFO_BTF=y") && texts[1].contains("at link time"));
}

#[test]
fn nothing_dropped_means_nothing_reported() {
    let tree = tempfile::tempdir().unwrap();
    let w = merge(&[frag("off", "# CONFIG_X is not set\nCONFIG_Y=m\n")]);
    let final_cfg = parse_dot_config("CONFIG_Y=m\n");
    assert!(check(tree.path(), &final_cfg, &w, &seen(true)).is_empty());
}

#[test]
fn make_vars_ride_in_comments() {
    let p = Path::new("asm.config");
    let f = frag(
        "asm",
        "# no debug info for assembly\n# btfvm-make: AFLAGS_KERNEL=-g0\n# btfvm-make: AFLAGS_MODULE=-g0\n",
    );
    assert_eq!(f.make_vars, ["AFLAGS_KERNEL=-g0", "AFLAGS_MODULE=-g0"]);
    assert!(f.options.is_empty());
    let e = parse_make_vars(p, "# btfvm-make: PAHOLE=/bin/true\n").unwrap_err();
    assert!(e.to_string().contains("set by btfvm itself"), "{e}");
    assert!(parse_make_vars(p, "# btfvm-make: -j9\n").is_err());
}

#[test]
fn repo_build_specs_and_fragments_load() {
    use crate::inputs::build_spec::BuildSpec;
    use crate::inputs::kernelspec;
    use crate::inputs::source::KernelSource;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels");
    let specs = kernelspec::load_dir(&dir).unwrap();
    let built: Vec<_> = specs
        .iter()
        .filter_map(|s| match &s.source {
            KernelSource::Build(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(built.len(), 2);
    for b in built {
        let frags = load_fragments(b).unwrap();
        assert_eq!(frags[0].name, "base");
    }
    for extra in ["dwarf4", "asm-nodebug"] {
        let b = BuildSpec::parse(
            &format!("debian:bookworm,fragments=btf-modules-on+{extra}"),
            &dir.join("fragments"),
        )
        .unwrap();
        let frags = load_fragments(&b).unwrap();
        assert_eq!(frags.len(), 3);
    }
}

/// A spec folder with `base.config` and one fragment file `f` next to it,
/// given to the build as a path.
fn spec_with_fragment_file(d: &Path) -> BuildSpec {
    let frags = d.join("fragments");
    std::fs::create_dir(&frags).unwrap();
    std::fs::write(frags.join("base.config"), "CONFIG_64BIT=y\n").unwrap();
    let word = format!("debian:sid,fragments={}", d.join("f").display());
    BuildSpec::parse(&word, &frags).unwrap()
}

#[test]
fn hostile_a_fifo_as_a_fragment_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let spec = spec_with_fragment_file(d.path());
    crate::inputs::yaml::tests::mkfifo(&d.path().join("f"));
    let e = load_fragments(&spec).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "cannot read config fragment {}/f: is a FIFO, not a regular file (a config fragment expected) (fragments are kernels/fragments/<name>.config)",
            d.path().display()
        )
    );
}

#[test]
fn hostile_a_fragment_over_the_cap_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let spec = spec_with_fragment_file(d.path());
    let mut text = "CONFIG_X=y\n".to_string();
    text.push_str(&"#".repeat(FRAGMENT_CAP as usize));
    std::fs::write(d.path().join("f"), text).unwrap();
    let e = load_fragments(&spec).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "cannot read config fragment {}/f: over 1048576 bytes, the limit for a config fragment (fragments are kernels/fragments/<name>.config)",
            d.path().display()
        )
    );
    std::fs::remove_file(d.path().join("f")).unwrap();
    std::fs::create_dir(d.path().join("f")).unwrap();
    let e = load_fragments(&spec).unwrap_err().to_string();
    assert!(
        e.contains("/f: is a directory, not a regular file (a config fragment expected)"),
        "{e}"
    );
}
