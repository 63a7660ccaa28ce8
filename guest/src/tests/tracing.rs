//! fentry and fexit on module functions against the fake: attach through
//! the module's BTF object, count runs after triggers, hold and release the
//! module, name the wrong object, and tell two functions of one name apart.

use btfvm_btf::builder::Builder;
use btfvm_btf::{Btf, INT_SIGNED};

use super::{boot, path, Boot};
use crate::fake::{FakeKernel, ModuleFile};

const TRIGGER: &str = "/sys/module/btfvm_test/parameters/trigger";
const SYSRQ: &str = "/proc/sysrq-trigger";
const STATS: &str = "/sys/class/net/dummy0/statistics/rx_packets";

/// vmlinux with [1] int, [2] struct btfvm_test_point fwd, [3] void (*)(int)
/// proto, [4] FUNC sysrq_handle_loglevel.
fn vmlinux() -> Vec<u8> {
    let mut b = Builder::new();
    let int = b.int("int", 4, INT_SIGNED, 32);
    b.int("long int", 8, INT_SIGNED, 64);
    let proto = b.func_proto(0, &[("key", int)]);
    b.func("sysrq_handle_loglevel", proto, 0);
    b.build()
}

/// The test module's split BTF: FUNC btfvm_test_func(int) -> int.
fn testmod() -> Vec<u8> {
    let base = Btf::parse(&vmlinux()).unwrap();
    let mut b = Builder::split(&base);
    let proto = b.func_proto(1, &[("p", 1)]);
    b.func("btfvm_test_func", proto, 1);
    b.build()
}

/// As pahole 1.32 emits it: the module's sysrq_handle_loglevel gets a
/// FUNC of its own too, though its prototype is vmlinux's.
fn testmod_own_sysrq() -> Vec<u8> {
    let base = Btf::parse(&vmlinux()).unwrap();
    let mut b = Builder::split(&base);
    let proto = b.func_proto(1, &[("p", 1)]);
    b.func("btfvm_test_func", proto, 1);
    b.func("sysrq_handle_loglevel", 3, 0);
    b.build()
}

fn dummy() -> Vec<u8> {
    let base = Btf::parse(&vmlinux()).unwrap();
    let mut b = Builder::split(&base);
    let proto = b.func_proto(0, &[("dev", 1)]);
    b.func("dummy_get_stats64", proto, 0);
    b.build()
}

fn kernel() -> FakeKernel {
    let mut k = FakeKernel::new(&vmlinux());
    k.add_file(
        &path("btfvm_test"),
        ModuleFile::new("btfvm_test", Some(testmod()))
            .functions(&["btfvm_test_func", "sysrq_handle_loglevel"]),
    );
    k.add_file(
        &path("dummy"),
        ModuleFile::new("dummy", Some(dummy())).functions(&["dummy_get_stats64"]),
    );
    k.add_trigger(TRIGGER, "btfvm_test", "btfvm_test_func");
    k.add_trigger(TRIGGER, "btfvm_test", "sysrq_handle_loglevel");
    k.add_trigger(SYSRQ, "vmlinux", "sysrq_handle_loglevel");
    k.add_trigger(STATS, "dummy", "dummy_get_stats64");
    k
}

fn run(k: FakeKernel, steps: &str) -> Boot {
    boot(k, &[("s", steps)])
}

fn attach(name: &str, kind: &str, module: &str, function: &str, extra: &str) -> String {
    format!(
        r#"{{"attach": {{"name": "{name}", "kind": "{kind}", "module": "{module}", "function": "{function}"{extra}}}}}"#
    )
}

fn runs(name: &str, count: u64) -> String {
    format!(r#"{{"expect_runs": {{"attach": "{name}", "count": {count}}}}}"#)
}

fn write(p: &str, v: &str) -> String {
    format!(r#"{{"trigger": {{"write": {{"path": "{p}", "value": "{v}"}}}}}}"#)
}

fn steps(parts: &[String]) -> String {
    format!("[{}]", parts.join(", "))
}

#[test]
fn fentry_and_fexit_count_each_call_through_the_modules_object() {
    let b = run(
        kernel(),
        &steps(&[
            r#"{"load": "btfvm_test"}"#.into(),
            attach("in", "fentry", "btfvm_test", "btfvm_test_func", ""),
            attach("out", "fexit", "btfvm_test", "btfvm_test_func", ""),
            runs("in", 0),
            write(TRIGGER, "1"),
            runs("in", 1),
            runs("out", 1),
            write(TRIGGER, "1"),
            runs("in", 2),
            runs("out", 2),
        ]),
    );
    b.passed("s");
    let notes = b.obs("s").notes.join("\n");
    assert!(
        notes.contains("fentry btfvm_test_func (btfvm_test's own type 6, naming btfvm_test's BTF object 2) with BPF_LINK_CREATE"),
        "{notes}"
    );
    // The cleanup detached both and unloaded the module.
    assert!(b.kernel.loaded().is_empty());
}

#[test]
fn a_count_that_did_not_move_fails_with_the_count() {
    let no_trigger = steps(&[
        r#"{"load": "btfvm_test"}"#.into(),
        attach("in", "fentry", "btfvm_test", "btfvm_test_func", ""),
        runs("in", 1),
    ]);
    run(kernel(), &no_trigger).fails_with("s", "fentry btfvm_test_func (btfvm_test's own type 6, naming btfvm_test's BTF object 2) ran 0 time(s), expected 1");
    let mut k = kernel();
    k.faults.runs_not_counted = true;
    let triggered = steps(&[
        r#"{"load": "btfvm_test"}"#.into(),
        attach("in", "fentry", "btfvm_test", "btfvm_test_func", ""),
        write(TRIGGER, "1"),
        runs("in", 1),
    ]);
    run(k, &triggered).fails_with("s", "ran 0 time(s), expected 1");
}

#[test]
fn a_program_holds_its_module_until_it_is_detached() {
    let held = steps(&[
        r#"{"load": "btfvm_test"}"#.into(),
        attach("in", "fentry", "btfvm_test", "btfvm_test_func", ""),
        r#"{"unload": {"module": "btfvm_test", "expect": "EAGAIN"}}"#.into(),
        r#"{"detach": "in"}"#.into(),
        r#"{"unload": "btfvm_test"}"#.into(),
        r#"{"expect_no_module_btf": "btfvm_test"}"#.into(),
    ]);
    run(kernel(), &held).passed("s");
    // An unload expected to succeed while attached fails, with the errno.
    let wrong = steps(&[
        r#"{"load": "btfvm_test"}"#.into(),
        attach("in", "fentry", "btfvm_test", "btfvm_test_func", ""),
        r#"{"unload": "btfvm_test"}"#.into(),
    ]);
    run(kernel(), &wrong).fails_with("s", "delete_module(btfvm_test) failed with EAGAIN");
    let mut k = kernel();
    k.faults.unload_while_held = true;
    run(k, &held).fails_with("s", "delete_module(btfvm_test) succeeded, expected EAGAIN");
}

#[test]
fn naming_vmlinux_for_a_module_only_function_fails_with_the_kernels_errno() {
    let via = r#", "via": "vmlinux", "expect": "EINVAL""#;
    let ok = steps(&[
        r#"{"load": "btfvm_test"}"#.into(),
        attach("x", "fentry", "btfvm_test", "btfvm_test_func", via),
    ]);
    run(kernel(), &ok).passed("s");
    let wrong = steps(&[
        r#"{"load": "btfvm_test"}"#.into(),
        attach(
            "x",
            "fentry",
            "btfvm_test",
            "btfvm_test_func",
            r#", "via": "vmlinux""#,
        ),
    ]);
    run(kernel(), &wrong).fails_with(
        "s",
        "naming vmlinux's BTF (attach_btf_obj_fd 0)): BPF_PROG_LOAD failed with EINVAL",
    );
}

#[test]
fn one_name_in_vmlinux_and_a_module_is_told_apart_by_the_object_named() {
    let both = steps(&[
        r#"{"load": "btfvm_test"}"#.into(),
        attach("mine", "fentry", "btfvm_test", "sysrq_handle_loglevel", ""),
        attach(
            "core",
            "fentry",
            "btfvm_test",
            "sysrq_handle_loglevel",
            r#", "via": "vmlinux""#,
        ),
        write(TRIGGER, "1"),
        runs("mine", 1),
        runs("core", 0),
        write(SYSRQ, "7"),
        runs("mine", 1),
        runs("core", 1),
    ]);
    let b = run(kernel(), &both);
    b.passed("s");
    let notes = b.obs("s").notes.join("\n");
    assert!(
        notes.contains(
            "type 4, vmlinux's, through btfvm_test's BTF, naming btfvm_test's BTF object 2"
        ),
        "{notes}"
    );
    let mut k = kernel();
    k.faults.attach_by_name_anywhere = true;
    run(k, &both).fails_with("s", "ran 0 time(s), expected 1");
    // With the module's own FUNC (pahole 1.32), each side still names its
    // own function: the module's type through the module, vmlinux's
    // through vmlinux.
    let mut k = kernel();
    k.add_file(
        &path("btfvm_test"),
        ModuleFile::new("btfvm_test", Some(testmod_own_sysrq()))
            .functions(&["btfvm_test_func", "sysrq_handle_loglevel"]),
    );
    let b = run(k, &both);
    b.passed("s");
    let notes = b.obs("s").notes.join("\n");
    assert!(notes.contains("btfvm_test's own type"), "{notes}");
    assert!(
        notes.contains("type 4, vmlinux's, through btfvm_test's BTF, naming vmlinux's BTF"),
        "{notes}"
    );
}

#[test]
fn a_real_modules_function_is_triggered_by_reading_a_statistics_file() {
    let s = steps(&[
        r#"{"load": "dummy"}"#.into(),
        attach("d", "fexit", "dummy", "dummy_get_stats64", ""),
        format!(r#"{{"trigger": {{"read": "{STATS}"}}}}"#),
        runs("d", 1),
    ]);
    run(kernel(), &s).passed("s");
    let missing = steps(&[
        r#"{"load": "dummy"}"#.into(),
        attach("d", "fentry", "dummy", "no_such_function", ""),
    ]);
    run(kernel(), &missing).fails_with(
        "s",
        "no FUNC named \"no_such_function\" in dummy's BTF (object 2) or in vmlinux's under it",
    );
}

#[test]
fn no_fd_of_the_agent_is_ever_0() {
    // In a child: with fd 0 closed, the next fd the kernel gives is 0.
    // SAFETY: the child only makes syscalls and exits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::close(0);
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            let owned = crate::sys::owned_fd(fd as i64);
            let ok = fd == 0 && std::os::fd::AsRawFd::as_raw_fd(&owned) >= 3;
            libc::_exit(if ok { 0 } else { 1 });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status}"
        );
    }
}
