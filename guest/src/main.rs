//! btfvm-guest: PID 1 of the test initramfs. It mounts what the checks need,
//! runs the plan the host wrote, sends framed results on /dev/ttyS1 (the
//! console on ttyS0 stays free for the kernel) and powers off.
//!
//! Also runs as an ordinary process: `btfvm-guest --plan FILE [--out FILE]`
//! (results go to the file, or stdout), for other ways of booting.

mod agent;
mod bpfprog;
mod bpftool;
mod btfobj;
mod checks;
#[cfg(test)]
mod fake;
mod kernel;
mod kmsg;
mod linux;
mod runner;
mod selftest;
mod serve;
mod sys;
#[cfg(test)]
mod tests;
mod tracing;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;

use btfvm_proto::{encode, KernelConfig, Message, Plan, PROTOCOL_VERSION};

const CHANNEL: &str = "/dev/ttyS1";

fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(0)
}

fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pid1 = std::process::id() == 1;
    if pid1 {
        std::process::exit(init_main());
    }
    std::process::exit(process_main(&args));
}

fn arg_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn process_main(args: &[String]) -> i32 {
    let Some(plan_path) = arg_value(args, "--plan") else {
        eprintln!("usage: btfvm-guest --plan FILE [--out FILE]\n(as PID 1 it reads /plan.json and reports on {CHANNEL})");
        return 2;
    };
    let mut out: Box<dyn Write> = match arg_value(args, "--out") {
        Some(p) => match File::create(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("btfvm-guest: cannot create {p}: {e}");
                return 2;
            }
        },
        None => Box::new(std::io::stdout()),
    };
    let mut send = |m: &Message| {
        let _ = out.write_all(&encode(m));
        let _ = out.flush();
    };
    match execute(plan_path, None, &mut send) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("btfvm-guest: {e}");
            send(&Message::Fatal { message: e });
            1
        }
    }
}

fn execute(
    plan_path: &str,
    channel: Option<i32>,
    send: &mut dyn FnMut(&Message),
) -> Result<(), String> {
    let text = std::fs::read(plan_path).map_err(|e| format!("reading plan {plan_path}: {e}"))?;
    let plan: Plan = serde_json::from_slice(&text).map_err(|e| format!("plan {plan_path}: {e}"))?;
    if plan.protocol != PROTOCOL_VERSION {
        return Err(format!(
            "plan protocol {} but agent speaks {PROTOCOL_VERSION}",
            plan.protocol
        ));
    }
    let config_text = std::fs::read_to_string(&plan.config_path)
        .map_err(|e| format!("reading kernel config {}: {e}", plan.config_path))?;
    let config = KernelConfig::parse(&config_text);
    send(&Message::Hello {
        agent: env!("CARGO_PKG_VERSION").into(),
        release: release(),
        uptime_ms: uptime_ms(),
        scenarios: plan.scenarios.len() as u32,
    });
    mount_shares(&plan)?;
    let mut agent = agent::Agent::new(&plan, config, linux::Linux::new());
    agent.channel = channel;
    runner::run(&plan, &mut agent, send);
    send(&Message::Done {
        uptime_ms: uptime_ms(),
    });
    Ok(())
}

/// The host's virtiofs shares, at their mount points, after the modules
/// they need: before any scenario, so a module on a share can be loaded.
fn mount_shares(plan: &Plan) -> Result<(), String> {
    for s in &plan.shares {
        for m in &s.modules {
            match sys::finit_module(m, "") {
                Ok(()) | Err(libc::EEXIST) => {}
                Err(e) => {
                    return Err(format!(
                        "share {}: loading {m}: {}",
                        s.tag,
                        sys::errno_text(e)
                    ))
                }
            }
        }
        sys::mount(&s.tag, &s.at, "virtiofs").map_err(|e| {
            format!(
                "share {}: mounting it at {} (virtiofs): {}",
                s.tag,
                s.at,
                sys::errno_text(e)
            )
        })?;
    }
    Ok(())
}

fn init_main() -> i32 {
    for (src, target, fs) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
    ] {
        // Debian kernels lack DEVTMPFS_MOUNT: the agent mounts /dev itself.
        if let Err(e) = sys::mount(src, target, fs) {
            println!("btfvm-guest: mount {target}: {}", sys::errno_text(e));
        }
    }
    if std::path::Path::new(serve::SERVE_PLAN).exists() {
        serve::serve();
    }
    if !std::path::Path::new("/plan.json").exists() {
        // The bare-boot baseline of the benchmark: no plan, power off at once.
        println!("btfvm-guest: no /plan.json, powering off");
        sys::power_off();
    }
    let chan = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CHANNEL);
    let mut chan = match chan {
        Ok(f) => f,
        Err(e) => {
            println!("btfvm-guest: cannot open {CHANNEL}: {e}");
            sys::power_off();
        }
    };
    if let Err(e) = sys::make_raw(chan.as_raw_fd()) {
        println!("btfvm-guest: raw mode on {CHANNEL}: {}", sys::errno_text(e));
    }
    let fd = chan.as_raw_fd();
    let mut send = |m: &Message| {
        let _ = chan.write_all(&encode(m));
    };
    if let Err(e) = execute("/plan.json", Some(fd), &mut send) {
        println!("btfvm-guest: {e}");
        send(&Message::Fatal { message: e });
    }
    sys::drain(fd);
    sys::power_off();
}
