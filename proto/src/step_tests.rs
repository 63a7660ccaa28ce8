//! The checks made while deserializing steps, as the guest meets them in
//! the plan's JSON: every valid step passes, every step that cannot fail
//! or names no module is refused with its message.

use super::*;

fn steps(json: &str) -> Result<Vec<Step>, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[test]
fn valid_steps_survive_a_json_round_trip() {
    let all = steps(
        r#"[{"load": "ip6_udp_tunnel"}, {"load": {"module": "dummy", "variant": "corrupt-btf", "expect": "EINVAL"}},
            {"unload": "dummy"}, {"unload": {"module": "dummy", "expect": "ENOENT"}},
            {"expect_module_btf": "dummy"}, {"expect_btf_struct": {"module": "btfvm_test", "name": "p", "members": {"x": "int"}}},
            {"expect_kmsg": "BPF: Invalid magic"},
            {"when": {"kernel": "<5.11", "then": ["expect_pre_feature_btf_info"]}},
            {"when": {"config": {"CONFIG_DEBUG_INFO_BTF": "set"}, "else": ["expect_user_btf"]}},
            "expect_vmlinux_btf"]"#,
    )
    .unwrap();
    let json = serde_json::to_string(&all).unwrap();
    assert_eq!(steps(&json).unwrap(), all);
}

#[test]
fn a_module_name_is_checked_in_every_form() {
    let want = "\"ip6-udp-tunnel\" is not a module name: letters, digits and _, at most 56 (the kernel spells it ip6_udp_tunnel)";
    for json in [
        r#"[{"load": "ip6-udp-tunnel"}]"#,
        r#"[{"load": {"module": "ip6-udp-tunnel"}}]"#,
        r#"[{"unload": "ip6-udp-tunnel"}]"#,
        r#"[{"unload": {"module": "ip6-udp-tunnel"}}]"#,
        r#"[{"expect_split_btf": "ip6-udp-tunnel"}]"#,
        r#"[{"expect_btf_struct": {"module": "ip6-udp-tunnel", "name": "s"}}]"#,
        r#"[{"when": {"then": [{"hold_btf_fd": "ip6-udp-tunnel"}]}}]"#,
    ] {
        let e = steps(json).unwrap_err();
        assert!(e.starts_with(want), "{json}: {e}");
    }
    let long = format!(r#"[{{"load": "{}"}}]"#, "m".repeat(57));
    let e = steps(&long).unwrap_err();
    assert!(
        e.contains("is not a module name: letters, digits and _, at most 56 at"),
        "{e}"
    );
    let e = steps(r#"[{"load": "../../etc/passwd"}]"#).unwrap_err();
    assert!(
        e.starts_with("\"../../etc/passwd\" is not a module name: letters, digits and _, at most 56 at line 1"),
        "{e}"
    );
    assert!(steps(r#"[{"load": ""}]"#).is_err());
}

#[test]
fn an_empty_kmsg_text_is_refused() {
    let want = "expect_kmsg: the text is blank, and (nearly) every kernel log line contains it, so the check cannot fail; give the text to look for";
    for json in [r#"[{"expect_kmsg": ""}]"#, r#"[{"expect_kmsg": " \t "}]"#] {
        let e = steps(json).unwrap_err();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn a_when_without_steps_is_refused() {
    let want = "`when` has no step in `then` or `else`, so it checks nothing; give it at least one";
    for json in [
        r#"[{"when": {"kernel": ">=5.11"}}]"#,
        r#"[{"when": {"kernel": ">=5.11", "then": [], "else": []}}]"#,
    ] {
        let e = steps(json).unwrap_err();
        assert!(e.starts_with(want), "{e}");
    }
    // One branch is enough: `else` alone runs where the condition fails.
    assert!(
        steps(r#"[{"when": {"kernel": ">=5.11", "then": [], "else": ["expect_user_btf"]}}]"#)
            .is_ok()
    );
}

#[test]
fn when_conditions_are_checked_like_requires() {
    let e =
        steps(r#"[{"when": {"config": {"DEBUG_INFO_BTF": "y"}, "then": ["expect_user_btf"]}}]"#)
            .unwrap_err();
    assert!(
        e.starts_with("config option \"DEBUG_INFO_BTF\" lacks the CONFIG_ prefix: write CONFIG_DEBUG_INFO_BTF"),
        "{e}"
    );
    let e = steps(r#"[{"when": {"kernel": "5.11", "then": ["expect_user_btf"]}}]"#).unwrap_err();
    assert!(
        e.starts_with("kernel bound \"5.11\" must start with one of >=, >, <=, <, =="),
        "{e}"
    );
}

#[test]
fn a_load_from_a_share_names_a_file_on_one_and_is_keyed_by_it() {
    let s = steps(r#"[{"load": {"module": "hello", "path": "/share/oot/sub/hello.ko"}}]"#).unwrap();
    let Step::Load(a) = &s[0] else {
        panic!("{s:?}")
    };
    assert_eq!(a.key(), "hello@/share/oot/sub/hello.ko");
    let mut tree = Vec::new();
    s[0].modules(&mut tree);
    assert!(
        tree.is_empty(),
        "not a module of the kernel's tree: {tree:?}"
    );
    let mut shared = Vec::new();
    s[0].shared_modules(&mut shared);
    assert_eq!(
        shared,
        [("hello".to_string(), "/share/oot/sub/hello.ko".to_string())]
    );
    for bad in [
        "/tmp/hello.ko",
        "/share/hello.ko",
        "/share/oot/../etc/x.ko",
        "/share/oot//x.ko",
        "share/oot/x.ko",
    ] {
        let e = steps(&format!(
            r#"[{{"load": {{"module": "hello", "path": "{bad}"}}}}]"#
        ))
        .unwrap_err();
        assert!(e.contains("/share/<tag>/<file>"), "{bad}: {e}");
    }
    let e = steps(
        r#"[{"load": {"module": "hello", "path": "/share/oot/hello.ko", "variant": "no-btf"}}]"#,
    )
    .unwrap_err();
    assert!(e.contains("loaded as it is"), "{e}");
}
