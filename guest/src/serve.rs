//! PID 1 of a guest that serves a way in rather than running a plan: the
//! SSH server guest btfvm's own SSH tests run the suite against. It loads
//! the network driver, brings the interface up with a fixed address (no
//! DHCP client in the initramfs; QEMU's user-mode network always hands out
//! 10.0.2.15/24), starts the server, reaps what the server leaves, and
//! powers off when the server exits.

use std::process::Command;

use btfvm_proto::ServePlan;

use crate::sys;

pub const SERVE_PLAN: &str = "/serve.json";

pub fn serve() -> ! {
    let plan: ServePlan = match std::fs::read(SERVE_PLAN)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_slice(&t).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            println!("btfvm-guest: {SERVE_PLAN}: {e}");
            sys::power_off();
        }
    };
    // The server's sessions want pseudo-terminals and a writable /tmp.
    for (src, target, fs) in [("devpts", "/dev/pts", "devpts"), ("tmpfs", "/tmp", "tmpfs")] {
        if let Err(e) = sys::mount(src, target, fs) {
            println!("btfvm-guest: mount {target}: {}", sys::errno_text(e));
        }
    }
    for m in &plan.modules {
        match sys::finit_module(m, "") {
            Ok(()) | Err(libc::EEXIST) => {}
            Err(e) => println!("btfvm-guest: loading {m}: {}", sys::errno_text(e)),
        }
    }
    if let Err(e) = sys::interface_up("lo", [127, 0, 0, 1], 8) {
        println!("btfvm-guest: lo: {}", sys::errno_text(e));
    }
    if let Err(e) = sys::interface_up(&plan.interface, plan.address, plan.prefix) {
        println!("btfvm-guest: {}: {}", plan.interface, sys::errno_text(e));
    }
    for cmd in &plan.setup {
        if let Some((program, args)) = cmd.split_first() {
            match Command::new(program).args(args).status() {
                Ok(s) if s.success() => {}
                Ok(s) => println!("btfvm-guest: {}: {s}", cmd.join(" ")),
                Err(e) => println!("btfvm-guest: {}: {e}", cmd.join(" ")),
            }
        }
    }
    let Some((program, args)) = plan.command.split_first() else {
        println!("btfvm-guest: {SERVE_PLAN} names no server");
        sys::power_off();
    };
    let server = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
        .env("HOME", "/root")
        .spawn();
    let server = match server {
        Ok(c) => c.id() as i32,
        Err(e) => {
            println!("btfvm-guest: starting {program}: {e}");
            sys::power_off();
        }
    };
    println!("btfvm-guest: serving: {}", plan.command.join(" "));
    // As PID 1 every orphan comes here: reap them all, and end with the
    // server.
    loop {
        let mut status = 0;
        // SAFETY: plain wait for any child.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == server
            || (pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
        {
            println!("btfvm-guest: the server exited (status {status:#x}), powering off");
            sys::power_off();
        }
    }
}
