//! Faults provoked on purpose, so each way a boot can go wrong is tested
//! against a real kernel and a real QEMU.

use btfvm_proto::step::Selftest;

fn write_raw(fd: Option<i32>, bytes: &[u8]) {
    if let Some(fd) = fd {
        // SAFETY: fd is the agent's open channel; bytes is a live buffer.
        unsafe {
            libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        }
        crate::sys::drain(fd);
    }
}

pub fn run(what: Selftest, channel: Option<i32>, attempt: u32) -> Result<(), String> {
    match what {
        Selftest::AgentPanic => panic!("selftest: a check panicked"),
        Selftest::AgentExit => std::process::exit(7),
        Selftest::Hang => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Selftest::KernelPanic => {
            std::fs::write("/proc/sysrq-trigger", b"c")
                .map_err(|e| format!("writing /proc/sysrq-trigger: {e}"))?;
            Err("the kernel survived sysrq 'c'".into())
        }
        Selftest::Garbage => {
            write_raw(channel, b"\x1b[2J not a frame \xff\xfe\n");
            Ok(())
        }
        Selftest::Oversize => {
            let mut hdr = b"BTFV".to_vec();
            hdr.extend_from_slice(&btfvm_proto::PROTOCOL_VERSION.to_le_bytes());
            hdr.extend_from_slice(&(1u32 << 30).to_le_bytes());
            write_raw(channel, &hdr);
            Ok(())
        }
        Selftest::FailFirstAttempt if attempt == 0 => {
            Err("selftest: failing on the first attempt, as asked".into())
        }
        Selftest::FailFirstAttempt => Ok(()),
        Selftest::Truncated => {
            let frame = btfvm_proto::encode(&btfvm_proto::Message::Fatal {
                message: "this frame is cut in half".into(),
            });
            write_raw(channel, &frame[..frame.len() / 2]);
            crate::sys::power_off();
        }
    }
}
