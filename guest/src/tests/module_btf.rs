//! expect_module_btf, expect_chain_btf, expect_no_module_btf, hold_btf_fd
//! and expect_btf_gone: passing on a kernel that behaves, failing on one
//! that does not.

use super::{boot, boot_with, kernel, module_btf, one, plan, vmlinux, with_files, Fault};
use crate::fake::FakeKernel;

const LOAD_AND_CHECK: &str = r#"[{"load": "dummy"}, {"expect_module_btf": "dummy"}]"#;

#[test]
fn module_btf_passes_on_a_kernel_that_behaves() {
    let b = one(kernel(), LOAD_AND_CHECK);
    b.passed("s");
    let size = module_btf("dummy").len();
    assert_eq!(
        b.obs("s").notes,
        [format!("dummy: BTF object 2, {size} bytes, vmlinux is 1")]
    );
    // The snapshot is taken before cleanup.
    let objs: Vec<(u32, &str)> = b
        .obs("s")
        .btf_objects
        .iter()
        .map(|o| (o.id, o.name.as_str()))
        .collect();
    assert_eq!(objs, [(1, "vmlinux"), (2, "dummy")]);
    let sysfs: Vec<(&str, u32)> = b
        .obs("s")
        .sysfs_btf
        .iter()
        .map(|e| (e.name.as_str(), e.mode))
        .collect();
    assert_eq!(sysfs, [("dummy", 0o444), ("vmlinux", 0o444)]);
}

#[test]
fn a_stray_object_with_the_load_fails_exactly_one_new_object() {
    let mut k = kernel();
    k.faults.stray_on_load = Some(("dummy".into(), "ghost".into()));
    let b = one(k, LOAD_AND_CHECK);
    assert_eq!(
        b.failure("s"),
        "step 2 (expect_module_btf dummy): BTF object 3 (\"ghost\") appeared with the load of dummy but belongs to no module this scenario loaded"
    );
}

#[test]
fn objects_of_dependencies_loaded_with_the_module_are_not_strays() {
    let b = one(
        kernel(),
        r#"[{"load": "vxlan"}, {"expect_module_btf": "vxlan"}, {"expect_module_btf": "udp_tunnel"}]"#,
    );
    b.passed("s");
}

#[test]
fn ids_rise_across_scenarios_and_a_reused_id_fails() {
    let scenarios = [("first", LOAD_AND_CHECK), ("again", LOAD_AND_CHECK)];
    let b = boot(kernel(), &scenarios);
    b.passed("first");
    b.passed("again");
    assert!(b.obs("again").notes[0].starts_with("dummy: BTF object 3,"));

    let mut k = kernel();
    k.faults.reuse_ids = true;
    let b = boot(k, &scenarios);
    b.passed("first");
    b.fails_with(
        "again",
        "BTF object 2 (dummy) reuses an ID seen earlier in this boot",
    );
}

#[test]
fn module_btf_fails_on_each_misbehaviour() {
    let cases: [(Fault, &str); 3] = [
        (
            |k| k.faults.module_not_kernel_btf = true,
            "BTF object 2 (dummy): kernel_btf=0",
        ),
        (
            |k| k.faults.sysfs_mode = Some(0o644),
            "/sys/kernel/btf/dummy has mode 0644, expected 0444",
        ),
        (
            |k| k.faults.sysfs_bytes_differ = true,
            "/sys/kernel/btf/dummy and BTF object 2 hold different bytes",
        ),
    ];
    for (fault, want) in cases {
        let mut k = kernel();
        fault(&mut k);
        one(k, LOAD_AND_CHECK).fails_with("s", want);
    }
}

#[test]
fn module_btf_fails_without_module_btf() {
    let want = "step 2 (expect_module_btf dummy): no BTF object named \"dummy\"";
    let off = with_files(FakeKernel::new(&vmlinux()).module_btf(false));
    assert_eq!(one(off, LOAD_AND_CHECK).failure("s"), want);
    // harness/tests/must-fail/btf-on-stripped.yaml
    // The file itself says why: it has no .BTF section.
    let stripped =
        r#"[{"load": {"module": "dummy", "variant": "no-btf"}}, {"expect_module_btf": "dummy"}]"#;
    assert_eq!(
        one(kernel(), stripped).failure("s"),
        format!(
            "{want}; the module file loaded (/lib/modules/dummy.no-btf.ko) has no .BTF section"
        )
    );
    one(kernel(), r#"[{"expect_module_btf": "dummy"}]"#)
        .fails_with("s", "dummy was not loaded by this scenario");
}

#[test]
fn chain_btf_needs_dependencies_and_distinct_objects() {
    one(
        kernel(),
        r#"[{"load": "dummy"}, {"expect_chain_btf": "dummy"}]"#,
    )
    .fails_with(
        "s",
        "dummy has no dependencies on this kernel: no chain to check",
    );
    let mut k = kernel();
    k.faults.stray_on_load = Some(("ip6_udp_tunnel".into(), "ghost".into()));
    one(k, r#"[{"load": "vxlan"}, {"expect_chain_btf": "vxlan"}]"#).fails_with(
        "s",
        "BTF object 4 (\"ghost\") appeared with the load of udp_tunnel",
    );
}

#[test]
fn no_module_btf_passes_for_a_module_without_btf() {
    // scenarios/stripped-btf.yaml, and a kernel without module BTF.
    let stripped = r#"[{"load": {"module": "dummy", "variant": "no-btf"}}, {"expect_no_module_btf": "dummy"}]"#;
    one(kernel(), stripped).passed("s");
    let off = with_files(FakeKernel::new(&vmlinux()).module_btf(false));
    let steps = r#"[{"load": "dummy"}, {"expect_no_module_btf": "dummy"}, "expect_vmlinux_btf"]"#;
    one(off, steps).passed("s");
}

#[test]
fn no_module_btf_fails_when_there_is_some() {
    // harness/tests/must-fail/none-while-present.yaml
    let steps = r#"[{"load": "dummy"}, {"expect_no_module_btf": "dummy"}]"#;
    one(kernel(), steps).fails_with("s", "BTF object 2 is named \"dummy\"; expected none");
    // An old kernel's answers carry no names: the new object still counts.
    let old = with_files(FakeKernel::v5_10(&vmlinux()).module_btf(true));
    one(old, steps).fails_with(
        "s",
        "BTF object 1 (no name: pre-5.11 answer) appeared with the load of dummy; expected none",
    );
}

const UNLOAD: &str = r#"[{"load": "dummy"}, {"expect_module_btf": "dummy"}, {"hold_btf_fd": "dummy"}, {"unload": "dummy"}, {"expect_btf_gone": "dummy"}]"#;

#[test]
fn unload_removes_file_and_id_and_a_held_fd_answers_id_0() {
    let b = one(kernel(), UNLOAD);
    b.passed("s");
    let size = module_btf("dummy").len();
    assert_eq!(
        b.obs("s").notes.last().map(String::as_str),
        Some(
            format!("held fd after unload of dummy: id 0 name \"dummy\" btf_size {size}").as_str()
        )
    );
    assert_eq!(b.kernel.live_ids(), [1]);
}

#[test]
fn btf_gone_fails_on_each_misbehaviour() {
    let mut k = kernel();
    k.faults.sysfs_survives_unload = true;
    one(k, UNLOAD).fails_with("s", "/sys/kernel/btf/dummy still exists after unload");
    let mut k = kernel();
    k.faults.object_survives_unload = true;
    one(k, UNLOAD).fails_with(
        "s",
        "BTF_GET_FD_BY_ID(2) still opens dummy's BTF after unload",
    );
    // harness/tests/must-fail/gone-while-loaded.yaml
    one(
        kernel(),
        r#"[{"load": "dummy"}, {"expect_module_btf": "dummy"}, {"expect_btf_gone": "dummy"}]"#,
    )
    .fails_with("s", "/sys/kernel/btf/dummy still exists after unload");
    one(
        kernel(),
        r#"[{"load": "dummy"}, {"unload": "dummy"}, {"expect_btf_gone": "dummy"}]"#,
    )
    .fails_with("s", "no BTF ID known for dummy");
}

#[test]
fn corrupt_btf_is_refused_or_dropped_as_the_config_says() {
    // scenarios/corrupt-btf.yaml
    let steps = r#"[{"when": {
        "config": {"CONFIG_MODULE_ALLOW_BTF_MISMATCH": "y"},
        "then": [
            {"load": {"module": "dummy", "variant": "corrupt-btf"}},
            {"expect_no_module_btf": "dummy"},
            {"expect_kmsg": "BPF: Invalid magic"}],
        "else": [
            {"load": {"module": "dummy", "variant": "corrupt-btf", "expect": "EINVAL"}},
            {"expect_no_module_btf": "dummy"},
            {"expect_kmsg": "BPF: Invalid magic"}]}}]"#;
    let p = plan(&[("s", steps)]);
    boot_with(kernel(), super::CONFIG_6_1, &p).passed("s");
    let allow = with_files(FakeKernel::new(&vmlinux()).allow_btf_mismatch());
    let config = super::CONFIG_6_1.replace(
        "# CONFIG_MODULE_ALLOW_BTF_MISMATCH is not set",
        "CONFIG_MODULE_ALLOW_BTF_MISMATCH=y",
    );
    let b = boot_with(allow, &config, &p);
    b.passed("s");
    // The config says refused, the kernel loads it: the when-branch fails.
    let allow = with_files(FakeKernel::new(&vmlinux()).allow_btf_mismatch());
    boot_with(allow, super::CONFIG_6_1, &p).fails_with(
        "s",
        "when-branch step 1: finit_module(dummy [corrupt-btf]) succeeded, expected EINVAL",
    );
}
