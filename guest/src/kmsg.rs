//! The kernel log, read from /dev/kmsg: one record per read(2), so every line
//! arrives whole and in order, without scraping the console.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

pub struct Kmsg {
    file: Option<File>,
}

impl Kmsg {
    pub fn open() -> Kmsg {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok();
        Kmsg { file }
    }

    /// Reads what the kernel logged since the last call.
    pub fn drain(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let Some(file) = self.file.as_mut() else {
            return lines;
        };
        let mut buf = vec![0u8; 8192];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    // "prio,seq,usec,flags;text\n continuation lines"
                    let text = rec.split_once(';').map(|(_, t)| t).unwrap_or(&rec);
                    let first = text.lines().next().unwrap_or("");
                    lines.push(first.to_string());
                }
                // EPIPE: records were overwritten before we read them; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        lines
    }

    pub fn available(&self) -> bool {
        self.file.is_some()
    }
}
