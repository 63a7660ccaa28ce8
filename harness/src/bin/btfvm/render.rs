//! Everything btfvm prints about a run, on stderr (stdout belongs to
//! libtest's lines): one line per event, and a build's live progress.

use btfvm::boot::pvh::BootImage;
use std::collections::HashMap;
use std::sync::Mutex;

use btfvm::kernel::debian::FetchEvent;
use btfvm::run::events::RunEvent;
use btfvm::vm::{VmEvent, Way};
use btfvm_proto::Message;

use crate::progress::Printer;

/// Turns run events into lines; keeps a build printer per kernel.
#[derive(Default)]
pub struct Renderer {
    builds: Mutex<HashMap<String, Printer>>,
}

impl Renderer {
    pub fn event(&self, e: &RunEvent) {
        match e {
            RunEvent::Accel(d) => say!("btfvm: accelerator {} ({})", d.accel, d.reason),
            RunEvent::Fetch { kernel, event } => fetch(kernel, event),
            RunEvent::Build { kernel, event } => {
                if let Ok(mut b) = self.builds.lock() {
                    b.entry(kernel.clone())
                        .or_insert_with(|| Printer::new(kernel))
                        .event(event.clone());
                }
            }
            RunEvent::Resolved { kernel, origin } => say!("btfvm: {kernel}: kernel {origin}"),
            RunEvent::Booting {
                kernel,
                way,
                target,
                scenarios,
                initramfs_bytes,
                image,
            } => match (way, target) {
                (Way::Qemu, _) => say!(
                    "btfvm: {kernel}: booting for {scenarios} scenario(s), initramfs {} KiB{}",
                    initramfs_bytes / 1024,
                    match image {
                        Some(BootImage::Pvh(_)) => ", its ELF vmlinux through PVH".to_string(),
                        Some(BootImage::BzImage { why, .. }) => format!(", the bzImage: {why}"),
                        None => String::new(),
                    }
                ),
                (_, t) => say!(
                    "btfvm: {kernel}: running {scenarios} scenario(s) on {}",
                    t.as_deref().unwrap_or(way.what())
                ),
            },
            RunEvent::Vm { kernel, event } => vm(kernel, event),
            RunEvent::Booted {
                kernel,
                way,
                wall,
                summary,
                ..
            } => say!(
                "btfvm: {kernel}: {} {summary} after {:.1} s",
                if *way == Way::Ssh { "run" } else { "boot" },
                wall.as_secs_f64()
            ),
            RunEvent::Warning { kernel, message } => match kernel {
                Some(k) => say!("btfvm: {k}: warning: {message}"),
                None => say!("btfvm: warning: {message}"),
            },
        }
    }
}

fn fetch(kernel: &str, event: &FetchEvent) {
    match event {
        FetchEvent::UpdatingIndex { suite } => {
            say!("btfvm: {kernel}: updating apt index for {suite}")
        }
        FetchEvent::Resolved { package, version } => say!("btfvm: {kernel}: {package} {version}"),
        FetchEvent::Downloading { package } => say!("btfvm: {kernel}: downloading {package}"),
        FetchEvent::Extracting { package } => say!("btfvm: {kernel}: extracting {package}"),
        FetchEvent::Cached { .. } => {}
        FetchEvent::Damaged { damage } => {
            say!("btfvm: {kernel}: the cached kernel is damaged ({damage}): fetching it again")
        }
    }
}

fn vm(kernel: &str, event: &VmEvent) {
    match event {
        VmEvent::Message(Message::Hello {
            release, uptime_ms, ..
        }) => say!(
            "btfvm: {kernel}: agent running on {release} at guest uptime {:.2} s",
            *uptime_ms as f64 / 1000.0
        ),
        VmEvent::Splat {
            kind,
            line,
            scenario,
        } => say!(
            "btfvm: {kernel}: {} during {}: {line}",
            kind.as_str(),
            scenario
                .as_deref()
                .unwrap_or("no scenario (boot or between two)")
        ),
        _ => {}
    }
}
