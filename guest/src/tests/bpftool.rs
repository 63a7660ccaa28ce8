//! `expect_bpftool_btf_show` through the agent, with the fake's bpftool.

use btfvm_proto::GuestProgram;

use super::{boot_with, kernel, plan, CONFIG_6_1};

fn with_bpftool(steps: &str) -> btfvm_proto::Plan {
    let mut p = plan(&[("s", steps)]);
    p.bpftool = Some(GuestProgram {
        loader: "/bpftool/lib64/ld-linux-x86-64.so.2".into(),
        library_path: "/bpftool/usr/lib/x86_64-linux-gnu".into(),
        binary: "/bpftool/usr/sbin/bpftool".into(),
        origin: "bpftool 7.1.0+6.1.176-1".into(),
    });
    p
}

#[test]
fn bpftool_lists_what_the_agent_sees() {
    let steps = r#"[{"load": "dummy"}, "expect_bpftool_btf_show"]"#;
    let b = boot_with(kernel(), CONFIG_6_1, &with_bpftool(steps));
    b.passed("s");
    let notes = b.obs("s").notes.join("\n");
    assert!(notes.contains("bpftool: 2: name [dummy]  size"), "{notes}");
    let mut k = kernel();
    k.faults.bpftool_sizes_off = true;
    let b = boot_with(k, CONFIG_6_1, &with_bpftool(steps));
    b.fails_with("s", "bpftool says BTF object 1 is name \"vmlinux\"");
    // Without the program in the plan the step cannot pass.
    let b = boot_with(kernel(), CONFIG_6_1, &plan(&[("s", steps)]));
    b.fails_with("s", "the plan has no bpftool");
}

#[test]
fn a_distilled_base_needs_the_file_to_carry_one() {
    let steps = r#"[{"load": "btfvm_test"}, {"expect_distilled_base": "btfvm_test"}]"#;
    let b = boot_with(kernel(), CONFIG_6_1, &plan(&[("s", steps)]));
    b.fails_with(
        "s",
        "which has no .BTF.base: nothing for the kernel to relocate",
    );
    let mut p = plan(&[("s", steps)]);
    if let Some(e) = p.modules.get_mut("btfvm_test") {
        e.btf_base_types = Some(6);
    }
    let b = boot_with(kernel(), CONFIG_6_1, &p);
    b.passed("s");
    assert!(b
        .obs("s")
        .notes
        .iter()
        .any(|n| n.contains("split over a distilled base of 6 types")));
}
