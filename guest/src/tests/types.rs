//! expect_split_btf and expect_btf_struct on BTF made with the builder, so
//! the checks parse real split BTF over a real (small) vmlinux.

use btfvm_btf::builder::Builder;
use btfvm_btf::INT_SIGNED;

use super::{kernel, one, path, vmlinux_btf};
use crate::fake::{FakeKernel, ModuleFile};

/// The fixture kernel with dummy's .BTF replaced.
fn dummy_with(btf: Vec<u8>) -> FakeKernel {
    let mut k = kernel();
    k.add_file(&path("dummy"), ModuleFile::new("dummy", Some(btf)));
    k
}

fn testmod_with(btf: Vec<u8>) -> FakeKernel {
    let mut k = kernel();
    k.add_file(
        &path("btfvm_test"),
        ModuleFile::new("btfvm_test", Some(btf)),
    );
    k
}

const SPLIT: &str = r#"[{"load": "dummy"}, {"expect_split_btf": "dummy"}]"#;

#[test]
fn split_btf_passes_for_module_btf_over_vmlinux() {
    let b = one(kernel(), SPLIT);
    b.passed("s");
    assert_eq!(
        b.obs("s").notes,
        ["dummy: split BTF types 8..=9, 3 refs (2 into vmlinux), 3 names (0 from vmlinux)"]
    );
}

#[test]
fn split_btf_fails_for_btf_that_never_points_into_vmlinux() {
    let mut b = Builder::split(&vmlinux_btf());
    let own = b.int("myint", 4, INT_SIGNED, 32);
    b.struct_("dummy_priv", 4, &[("x", own, 0)]);
    one(dummy_with(b.build()), SPLIT).fails_with(
        "s",
        "/sys/kernel/btf/dummy: none of its 1 type references lands in vmlinux: not split BTF",
    );
}

#[test]
fn split_btf_fails_when_the_file_is_not_valid_split_btf() {
    let mut k = kernel();
    k.faults.sysfs_bytes_differ = true;
    let b = one(k, SPLIT);
    let msg = b.failure("s");
    // vmlinux is read through sysfs too: whichever breaks first is named.
    assert!(
        msg.starts_with("step 2 (expect_split_btf dummy): /sys/kernel/btf/"),
        "{msg}"
    );
}

const STRUCT: &str = r#"[{"load": "btfvm_test"}, {"expect_btf_struct": {"module": "btfvm_test", "name": "btfvm_test_point", "members": {"x": "int", "y": "long int", "flags": "unsigned int"}}}]"#;

#[test]
fn the_test_module_scenario_passes() {
    // scenarios/testmod-btf.yaml
    let steps = r#"[
        {"load": "btfvm_test"},
        {"expect_kmsg": "btfvm_test: loaded, sum 21"},
        {"expect_module_btf": "btfvm_test"},
        {"expect_split_btf": "btfvm_test"},
        {"expect_btf_struct": {"module": "btfvm_test", "name": "btfvm_test_point",
            "members": {"x": "int", "y": "long int", "flags": "unsigned int"}}}]"#;
    let b = one(kernel(), steps);
    b.passed("s");
    assert_eq!(
        b.obs("s").notes.last().map(String::as_str),
        Some("btfvm_test: struct btfvm_test_point is type 8 with 3 members, 3 checked against vmlinux")
    );
}

#[test]
fn btf_struct_fails_when_the_module_carries_its_own_int() {
    let mut b = Builder::split(&vmlinux_btf());
    let own = b.int("int", 4, INT_SIGNED, 32);
    b.struct_(
        "btfvm_test_point",
        24,
        &[("x", own, 0), ("y", 2, 64), ("flags", 3, 128)],
    );
    one(testmod_with(b.build()), STRUCT).fails_with(
        "s",
        "struct btfvm_test_point.x has type 8, which is not a vmlinux type (vmlinux ends at 7): the module carries its own copy",
    );
}

#[test]
fn btf_struct_fails_on_a_member_of_another_type() {
    let mut b = Builder::split(&vmlinux_btf());
    b.struct_(
        "btfvm_test_point",
        24,
        &[("x", 1, 0), ("y", 1, 64), ("flags", 3, 128)],
    );
    one(testmod_with(b.build()), STRUCT).fails_with(
        "s",
        "struct btfvm_test_point.y points at vmlinux type 1 \"int\"",
    );
}

#[test]
fn btf_struct_fails_on_a_missing_member_or_struct() {
    let mut b = Builder::split(&vmlinux_btf());
    b.struct_("btfvm_test_point", 16, &[("x", 1, 0), ("y", 2, 64)]);
    let st = 8;
    one(testmod_with(b.build()), STRUCT).fails_with(
        "s",
        &format!("struct btfvm_test_point (type {st}) has no member flags"),
    );
    let mut b = Builder::split(&vmlinux_btf());
    b.struct_("btfvm_other", 4, &[("x", 1, 0)]);
    one(testmod_with(b.build()), STRUCT).fails_with(
        "s",
        "/sys/kernel/btf/btfvm_test: no struct btfvm_test_point among the module's own types",
    );
}
