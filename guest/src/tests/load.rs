//! The agent core: loads with their dependencies, unloads, and the cleanup
//! that ends every scenario.

use btfvm_proto::message::LoadOp;
use btfvm_proto::{LoadRecord, Message, Variant};

use super::{boot, kernel, one, path};
use crate::fake::Call;

fn call(op: LoadOp, module: &str, result: Result<(), i32>) -> Call {
    Call {
        op,
        module: module.into(),
        result,
    }
}

fn load(module: &str) -> Call {
    call(LoadOp::Load, module, Ok(()))
}

fn unload(module: &str) -> Call {
    call(LoadOp::Unload, module, Ok(()))
}

fn record(module: &str, variant: Option<Variant>, errno: i32) -> LoadRecord {
    LoadRecord {
        op: if variant.is_some() {
            LoadOp::Load
        } else {
            LoadOp::Unload
        },
        module: module.into(),
        variant,
        errno,
    }
}

#[test]
fn dependencies_load_leaves_first_each_once_and_unload_newest_first() {
    let b = one(
        kernel(),
        r#"[{"load": "vxlan"}, {"expect_chain_btf": "vxlan"}]"#,
    );
    b.passed("s");
    assert_eq!(
        b.kernel.calls,
        [
            load("udp_tunnel"),
            load("ip6_udp_tunnel"),
            load("vxlan"),
            unload("vxlan"),
            unload("ip6_udp_tunnel"),
            unload("udp_tunnel"),
        ]
    );
    let plain = Some(Variant::Plain);
    assert_eq!(
        b.obs("s").loads,
        [
            record("udp_tunnel", plain, 0),
            record("ip6_udp_tunnel", plain, 0),
            record("vxlan", plain, 0),
        ]
    );
    assert!(b.kernel.loaded().is_empty());
    let notes = &b.obs("s").notes;
    assert!(
        notes
            .iter()
            .any(|n| n == "chain udp_tunnel <- ip6_udp_tunnel <- vxlan: IDs {2, 3, 4}"),
        "{notes:?}"
    );
}

#[test]
fn dependencies_already_loaded_are_skipped_and_stay_loaded() {
    let mut k = kernel();
    k.preload(&path("udp_tunnel"));
    let b = one(k, r#"[{"load": "vxlan"}, {"expect_module_btf": "vxlan"}]"#);
    b.passed("s");
    assert_eq!(
        b.kernel.calls,
        [
            load("ip6_udp_tunnel"),
            load("vxlan"),
            unload("vxlan"),
            unload("ip6_udp_tunnel"),
        ]
    );
    assert_eq!(b.kernel.loaded(), ["udp_tunnel"]);
}

#[test]
fn a_missing_dependency_fails_the_load_with_enoent_and_unknown_symbol() {
    let mut p = super::plan(&[(
        "s",
        r#"[{"load": "vxlan"}, {"expect_kmsg": "Unknown symbol"}]"#,
    )]);
    // A host plan that forgot ip6_udp_tunnel: the kernel resolves symbols,
    // not the agent.
    p.modules
        .get_mut("vxlan")
        .expect("fixture")
        .deps
        .retain(|d| d == "udp_tunnel");
    let b = super::boot_with(kernel(), super::CONFIG_6_1, &p);
    assert_eq!(
        b.failure("s"),
        "step 1 (load vxlan): finit_module(vxlan [plain]) failed with ENOENT (No such file or directory (os error 2))"
    );
    assert!(
        b.obs("s")
            .kmsg
            .iter()
            .any(|l| l == "vxlan: Unknown symbol ip6_udp_tunnel_sym (err -2)"),
        "{:?}",
        b.obs("s").kmsg
    );
    assert_eq!(
        b.kernel.calls.last(),
        Some(&unload("udp_tunnel")),
        "the dependency that did load is unloaded"
    );
}

#[test]
fn expected_errnos_of_loads_and_unloads() {
    let b = boot(
        kernel(),
        &[
            (
                "twice",
                r#"[{"load": "dummy"}, {"load": {"module": "dummy", "expect": "EEXIST"}}]"#,
            ),
            (
                "twice-unexpected",
                r#"[{"load": "dummy"}, {"load": "dummy"}]"#,
            ),
            (
                "wrong-errno",
                r#"[{"load": {"module": "dummy", "expect": "ENOEXEC"}}]"#,
            ),
            (
                "dependency-busy",
                r#"[{"load": "vxlan"}, {"unload": {"module": "udp_tunnel", "expect": "EAGAIN"}}]"#,
            ),
            (
                "not-loaded",
                r#"[{"unload": {"module": "dummy", "expect": "ENOENT"}}]"#,
            ),
        ],
    );
    b.passed("twice");
    b.fails_with(
        "twice-unexpected",
        "finit_module(dummy [plain]) failed with EEXIST",
    );
    b.fails_with(
        "wrong-errno",
        "finit_module(dummy [plain]) succeeded, expected ENOEXEC",
    );
    b.passed("dependency-busy");
    b.passed("not-loaded");
    assert_eq!(
        b.obs("twice").loads,
        [
            record("dummy", Some(Variant::Plain), 0),
            record("dummy", Some(Variant::Plain), libc::EEXIST),
        ]
    );
    assert_eq!(
        b.obs("not-loaded").loads,
        [record("dummy", None, libc::ENOENT)]
    );
    assert!(b.kernel.loaded().is_empty());
}

#[test]
fn after_a_failed_step_the_scenario_unloads_newest_first_and_the_next_starts_clean() {
    let b = boot(
        kernel(),
        &[
            (
                "fails",
                r#"[{"load": "dummy"}, {"load": "btfvm_test"}, {"expect_kmsg": "never logged"}, {"load": "vxlan"}]"#,
            ),
            (
                "next",
                r#"[{"load": "dummy"}, {"expect_module_btf": "dummy"}]"#,
            ),
        ],
    );
    b.fails_with(
        "fails",
        "step 3 (expect_kmsg): no kernel log line contains \"never logged\"",
    );
    b.passed("next");
    assert_eq!(
        b.kernel.calls,
        [
            load("dummy"),
            load("btfvm_test"),
            unload("btfvm_test"),
            unload("dummy"),
            load("dummy"),
            unload("dummy"),
        ]
    );
    assert!(b.kernel.loaded().is_empty());
}

#[test]
fn a_module_that_will_not_unload_fails_the_scenario() {
    let mut k = kernel();
    k.faults.stuck.insert("dummy".into());
    let b = boot(
        k,
        &[
            ("passes", r#"[{"load": "dummy"}]"#),
            (
                "fails",
                r#"[{"load": "btfvm_test"}, {"expect_kmsg": "never logged"}]"#,
            ),
        ],
    );
    assert_eq!(
        b.failure("passes"),
        "cleanup: delete_module(dummy): EBUSY (Device or resource busy (os error 16))"
    );
    assert!(b.kernel.loaded().contains(&"dummy"));

    let mut k = kernel();
    k.faults.stuck.insert("btfvm_test".into());
    let b = one(
        k,
        r#"[{"load": "btfvm_test"}, {"expect_kmsg": "never logged"}]"#,
    );
    let msg = b.failure("s");
    assert!(
        msg.starts_with("step 2 (expect_kmsg): no kernel log line contains")
            && msg.ends_with("; cleanup: delete_module(btfvm_test): EBUSY (Device or resource busy (os error 16))"),
        "{msg}"
    );
}

#[test]
fn a_panicking_step_fails_its_scenario_only_and_is_cleaned_up() {
    let b = boot(
        kernel(),
        &[
            (
                "panics",
                r#"[{"load": "dummy"}, {"selftest": "agent_panic"}]"#,
            ),
            (
                "after",
                r#"[{"load": "dummy"}, {"expect_module_btf": "dummy"}]"#,
            ),
        ],
    );
    assert_eq!(
        b.failure("panics"),
        "agent panicked: selftest: a check panicked"
    );
    b.passed("after");
    assert!(b.kernel.loaded().is_empty());
    let kinds: Vec<&str> = b
        .messages
        .iter()
        .map(|m| match m {
            Message::ScenarioStarted { .. } => "started",
            Message::ScenarioFinished { .. } => "finished",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["started", "finished", "started", "finished"]);
}

#[test]
fn a_module_the_scenario_unloaded_is_not_unloaded_again() {
    let b = one(kernel(), r#"[{"load": "dummy"}, {"unload": "dummy"}]"#);
    b.passed("s");
    assert_eq!(b.kernel.calls, [load("dummy"), unload("dummy")]);
    assert_eq!(
        b.obs("s").loads,
        [
            record("dummy", Some(Variant::Plain), 0),
            record("dummy", None, 0)
        ]
    );
}

#[test]
fn a_module_missing_from_the_plan_is_a_host_plan_bug() {
    let b = one(kernel(), r#"[{"load": "e1000"}]"#);
    assert_eq!(
        b.failure("s"),
        "step 1 (load e1000): module e1000 is not in the initramfs (host plan bug)"
    );
    assert!(b.kernel.calls.is_empty());
}
