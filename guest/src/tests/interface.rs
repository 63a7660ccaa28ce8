//! Checks of the bpf(2) interface itself: vmlinux BTF, user BTF, the GET_INFO
//! name buffer, pre-5.11 answers; and of the kernel log and config.

use std::collections::BTreeMap;

use super::{boot, boot_with, kernel, one, plan, vmlinux, with_files, Fault};
use crate::fake::FakeKernel;

#[test]
fn vmlinux_btf_passes_on_a_kernel_that_behaves() {
    let b = one(kernel(), r#"["expect_vmlinux_btf"]"#);
    b.passed("s");
    assert_eq!(
        b.obs("s").notes,
        [format!("vmlinux: BTF object 1, {} bytes", vmlinux().len())]
    );
}

#[test]
fn vmlinux_btf_fails_on_other_bytes_or_no_object() {
    let mut k = kernel();
    k.faults.sysfs_bytes_differ = true;
    one(k, r#"["expect_vmlinux_btf"]"#).fails_with(
        "s",
        &format!(
            "vmlinux BTF object 1 and /sys/kernel/btf/vmlinux differ first at byte {}",
            vmlinux().len() - 1
        ),
    );
    let old = with_files(FakeKernel::v5_10(&vmlinux()));
    one(old, r#"["expect_vmlinux_btf"]"#).fails_with("s", "no kernel BTF object named \"vmlinux\"");
}

#[test]
fn user_btf_passes_and_goes_with_its_fd() {
    let b = one(kernel(), r#"["expect_user_btf"]"#);
    b.passed("s");
    let blob = btfvm_btf::minimal_blob();
    assert_eq!(
        b.obs("s").notes,
        [format!("user BTF: object 2, {} bytes", blob.len())]
    );
    let ids: Vec<u32> = b.obs("s").btf_objects.iter().map(|o| o.id).collect();
    assert_eq!(ids, [1], "the fd was closed before the snapshot");
    assert_eq!(b.kernel.open_fds(), 0);
}

#[test]
fn user_btf_fails_on_each_misbehaviour() {
    let cases: [(Fault, &str); 3] = [
        (
            |k| k.faults.user_btf_kernel = true,
            "user BTF 2: kernel_btf=1",
        ),
        (
            |k| k.faults.user_btf_name = Some("x".into()),
            "user BTF 2: name \"x\" (name_len 1), expected empty",
        ),
        (
            |k| k.faults.user_btf_sysfs = true,
            "/sys/kernel/btf changed after BPF_BTF_LOAD",
        ),
    ];
    for (fault, want) in cases {
        let mut k = kernel();
        fault(&mut k);
        one(k, r#"["expect_user_btf"]"#).fails_with("s", want);
    }
}

#[test]
fn name_buffer_passes_on_a_kernel_that_behaves() {
    one(kernel(), r#"["expect_name_buffer"]"#).passed("s");
}

#[test]
fn name_buffer_fails_on_each_misbehaviour() {
    let cases: [(Fault, &str); 5] = [
        (
            |k| k.faults.short_name_ok = true,
            "3-byte name buffer for \"vmlinux\": GET_INFO succeeded, expected ENOSPC",
        ),
        (
            |k| k.faults.short_name_no_nul = true,
            "3-byte name buffer holds [118, 109, 108], expected \"vm\\0\"",
        ),
        (
            |k| k.faults.short_name_len_copied = true,
            "3-byte name buffer: name_len 2 , expected the full 7",
        ),
        (
            |k| k.faults.name_ptr_without_len_ok = true,
            "a name pointer with name_len 0: GET_INFO succeeded, expected EINVAL",
        ),
        (
            |k| k.faults.null_name_with_len_ok = true,
            "name_len 8 with a NULL pointer: GET_INFO succeeded, expected EINVAL",
        ),
    ];
    for (fault, want) in cases {
        let mut k = kernel();
        fault(&mut k);
        let b = one(k, r#"["expect_name_buffer"]"#);
        assert_eq!(
            b.failure("s"),
            format!("step 1 (expect_name_buffer): {want}")
        );
    }
}

const CONFIG_5_10: &str =
    "# Linux/x86 5.10.209 Kernel Configuration\nCONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\n";

/// scenarios/feature-absent.yaml
const FEATURE_ABSENT: &str = r#"[
    {"load": "dummy"},
    {"expect_no_module_btf": "dummy"},
    {"when": {"kernel": "<5.11", "then": ["expect_pre_feature_btf_info"]}},
    {"when": {"kernel": ">=5.11", "config": {"CONFIG_DEBUG_INFO_BTF": "y"},
              "then": ["expect_vmlinux_btf"]}}]"#;

#[test]
fn a_5_10_kernel_answers_like_one() {
    let old = with_files(FakeKernel::v5_10(&vmlinux()));
    let b = boot_with(old, CONFIG_5_10, &plan(&[("s", FEATURE_ABSENT)]));
    b.passed("s");
    // No vmlinux object on 5.10, and the check's user BTF went with its fd.
    assert!(b.obs("s").btf_objects.is_empty());
    let off = with_files(FakeKernel::new(&vmlinux()).module_btf(false));
    one(off, FEATURE_ABSENT).passed("s");
}

#[test]
fn pre_feature_fails_where_the_feature_is() {
    // harness/tests/must-fail/pre-feature-on-new.yaml
    one(kernel(), r#"["expect_pre_feature_btf_info"]"#).fails_with(
        "s",
        "the kernel answers the 5.11 bpf_btf_info (id 2, name \"\", kernel_btf 0): the feature is there",
    );
    let broken = with_files(FakeKernel::v5_10(&vmlinux()).module_btf(true));
    let steps = r#"[{"load": "dummy"}, "expect_pre_feature_btf_info"]"#;
    boot_with(broken, CONFIG_5_10, &plan(&[("s", steps)]))
        .fails_with("s", "/sys/kernel/btf lists modules on a pre-feature kernel");
}

#[test]
fn kmsg_sees_this_scenarios_lines_only() {
    let b = boot(
        kernel(),
        &[
            (
                "logs",
                r#"[{"load": "btfvm_test"}, {"expect_kmsg": "btfvm_test: loaded, sum 21"}]"#,
            ),
            ("later", r#"[{"expect_kmsg": "btfvm_test: loaded"}]"#),
        ],
    );
    b.passed("logs");
    assert_eq!(b.obs("logs").kmsg, ["btfvm_test: loaded, sum 21"]);
    // harness/tests/must-fail/kmsg-missing.yaml, in effect.
    b.fails_with(
        "later",
        "no kernel log line contains \"btfvm_test: loaded\"; last lines of this scenario: []",
    );
    one(kernel().without_kmsg(), r#"[{"expect_kmsg": "x"}]"#)
        .fails_with("s", "/dev/kmsg could not be opened");
}

#[test]
fn spec_config_compares_the_spec_with_the_config() {
    let mut p = plan(&[("s", r#"["expect_spec_config"]"#)]);
    p.spec_config = BTreeMap::from([("CONFIG_DEBUG_INFO_BTF".into(), "y".into())]);
    boot_with(kernel(), super::CONFIG_6_1, &p).passed("s");
    p.spec_config = BTreeMap::from([("CONFIG_DEBUG_INFO_BTF_MODULES".into(), "n".into())]);
    boot_with(kernel(), super::CONFIG_6_1, &p)
        .fails_with("s", "kernel spec fake does not match the kernel: ");
}

/// Under TCG a read of /sys/kernel/btf/vmlinux costs about 70 ms (a page
/// per read(2)): every scenario that needs vmlinux's BTF shares one.
#[test]
fn vmlinux_btf_is_read_once_per_boot() {
    let split = r#"[{"load": "dummy"}, {"expect_split_btf": "dummy"}, "expect_vmlinux_btf"]"#;
    let b = boot(kernel(), &[("a", split), ("b", split)]);
    b.passed("a");
    b.passed("b");
    let vmlinux_reads = b.kernel.sysfs_reads.iter().filter(|n| *n == "vmlinux");
    assert_eq!(vmlinux_reads.count(), 1, "{:?}", b.kernel.sysfs_reads);
}
