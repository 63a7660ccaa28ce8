//! /dev/kmsg records, as a target streams them, turned into the console
//! lines the boot watcher knows (`[    1.234567] text`), so splat
//! detection is the same whichever way in ran the suite.

/// Splits the stream into records and keeps those from `since_us` on
/// (the log before the run belongs to whoever used the machine before).
pub struct KmsgLines {
    pending: Vec<u8>,
    since_us: u64,
}

impl KmsgLines {
    pub fn new(since_us: u64) -> KmsgLines {
        KmsgLines {
            pending: Vec::new(),
            since_us,
        }
    }

    /// Console bytes for the records complete in `bytes` and before.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            // Continuation lines (" SUBSYSTEM=...") carry no text.
            if line.first() == Some(&b' ') {
                continue;
            }
            if let Some((ts, text)) = record(&line[..line.len() - 1]) {
                if ts >= self.since_us {
                    out.extend_from_slice(
                        format!("[{:5}.{:06}] ", ts / 1_000_000, ts % 1_000_000).as_bytes(),
                    );
                    out.extend_from_slice(&unescape(text));
                    out.push(b'\n');
                }
            }
        }
        // A kmsg record is at most 8 KiB (PRINTK_MESSAGE_MAX); a stream
        // without newlines is not /dev/kmsg and is not kept.
        if self.pending.len() > PENDING_CAP {
            self.pending.clear();
        }
        out
    }
}

const PENDING_CAP: usize = 64 * 1024;

/// `prio,seq,ts_us,flags[,...];text` -> (ts_us, text).
fn record(line: &[u8]) -> Option<(u64, &[u8])> {
    let semi = line.iter().position(|&b| b == b';')?;
    let head = std::str::from_utf8(&line[..semi]).ok()?;
    let ts = head.split(',').nth(2)?.parse().ok()?;
    Some((ts, &line[semi + 1..]))
}

/// The kernel escapes non-printable bytes as `\xNN`.
fn unescape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' && text.get(i + 1) == Some(&b'x') && i + 3 < text.len() {
            if let Some(b) = std::str::from_utf8(&text[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(if b == b'\n' { b' ' } else { b });
                i += 4;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// Seconds of /proc/uptime as microseconds.
pub fn uptime_us(proc_uptime: &str) -> Option<u64> {
    let secs: f64 = proc_uptime.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some((secs * 1e6) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_console_lines_from_the_run_on() {
        let mut k = KmsgLines::new(2_000_000);
        let out = k.feed(b"6,1,1500000,-;old news\n4,2,2500001,-;BUG: kernel NULL pointer dereference, address: 0000000000000008\n SUBSYSTEM=x\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[    2.500001] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
        );
    }

    #[test]
    fn a_record_split_across_reads_waits_for_its_end() {
        let mut k = KmsgLines::new(0);
        assert!(k.feed(b"6,1,10,-;WARN").is_empty());
        assert_eq!(k.feed(b"ING: at x\n"), b"[    0.000010] WARNING: at x\n");
        assert_eq!(
            k.feed(b"6,2,11,-;tab\\x09in\n"),
            b"[    0.000011] tab\tin\n"
        );
        assert!(k.feed(b"garbage\n").is_empty());
    }

    #[test]
    fn a_stream_without_newlines_is_not_kept() {
        let mut k = KmsgLines::new(0);
        assert!(k.feed(&vec![b'x'; PENDING_CAP + 1]).is_empty());
        assert!(k.pending.is_empty());
        assert_eq!(k.feed(b"6,1,1,-;after\n"), b"[    0.000001] after\n");
    }

    #[test]
    fn uptime() {
        assert_eq!(uptime_us("12.34 5.00\n"), Some(12_340_000));
        assert_eq!(uptime_us("x"), None);
    }
}
