//! The console as a person wants to read it: firmware escape sequences
//! and CRs removed, split into lines as the bytes arrive.

/// Strips ANSI CSI/OSC sequences and carriage returns (SeaBIOS and iPXE
/// write both, glued to the first line the guest prints).
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Where the agent was when a console line arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tag {
    /// The scenario running, if one was.
    pub scenario: Option<String>,
    /// How many scenarios had finished.
    pub finished: usize,
}

/// A boot's console is a few hundred lines; a flood (a splat loop) is capped
/// so the host never grows without bound.
const MAX_LINES: usize = 20_000;
/// A "line" that never ends (binary noise, a stuck printk) is cut here.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Lines kept for the tail that failure messages quote.
pub const TAIL_LINES: usize = 30;

/// The console's bytes as they arrive, made into clean, complete lines,
/// each tagged with where the agent was when it arrived. No I/O: the VM
/// driver and the replay of a recorded boot feed it alike.
#[derive(Debug, Default)]
pub struct ConsoleLines {
    partial: Vec<u8>,
    lines: Vec<(String, Tag)>,
    dropped: u64,
    tail: std::collections::VecDeque<String>,
}

impl ConsoleLines {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes new bytes; returns the index of the first new line.
    pub fn push(&mut self, bytes: &[u8], tag: &Tag) -> usize {
        let first_new = self.lines.len();
        self.partial.extend_from_slice(bytes);
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=pos).collect();
            self.add(&raw, tag);
        }
        if self.partial.len() > MAX_LINE_BYTES {
            let raw = std::mem::take(&mut self.partial);
            self.add(&raw, tag);
        }
        first_new
    }

    fn add(&mut self, raw: &[u8], tag: &Tag) {
        let line = clean(&String::from_utf8_lossy(raw)).trim_end().to_string();
        if line.is_empty() {
            return;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        if self.lines.len() < MAX_LINES {
            self.lines.push((line, tag.clone()));
        } else {
            self.dropped += 1;
        }
    }

    /// Takes a last line that never got its newline (QEMU killed, or a
    /// panic message cut short).
    pub fn finish(&mut self, tag: &Tag) {
        let raw = std::mem::take(&mut self.partial);
        self.add(&raw, tag);
    }

    pub fn lines(&self) -> &[(String, Tag)] {
        &self.lines
    }

    /// Lines past the cap that were not kept (the tail still has them).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The last non-empty lines, for failure messages.
    pub fn tail(&self) -> String {
        self.tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_firmware_noise() {
        let raw =
            "\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS (version 1.16)\r\nbtfvm-guest: hi\r\n";
        assert_eq!(clean(raw), "SeaBIOS (version 1.16)\nbtfvm-guest: hi\n");
    }

    #[test]
    fn lines_come_whole_tagged_and_capped() {
        let mut c = ConsoleLines::new();
        let a = Tag {
            scenario: Some("a".into()),
            finished: 0,
        };
        assert_eq!(c.push(b"\x1b[2JSeaBIOS\r\nfirst ha", &a), 0);
        assert_eq!(c.lines().len(), 1);
        let b = Tag {
            scenario: None,
            finished: 1,
        };
        // A line belongs to where the agent was when its end arrived.
        c.push(b"lf\r\n\r\nunterminated", &b);
        assert_eq!(c.lines()[1], ("first half".to_string(), b.clone()));
        c.finish(&b);
        assert_eq!(c.lines()[2].0, "unterminated");
        assert_eq!(c.tail(), "SeaBIOS\nfirst half\nunterminated");
        // A line without end is cut, never kept growing.
        c.push(&vec![b'x'; MAX_LINE_BYTES + 1], &b);
        assert_eq!(c.lines().len(), 4);
    }

    #[test]
    fn a_flood_is_counted_not_kept_and_the_tail_stays_current() {
        let mut c = ConsoleLines::new();
        let t = Tag::default();
        for i in 0..MAX_LINES + 5 {
            c.push(format!("line {i}\n").as_bytes(), &t);
        }
        assert_eq!(c.lines().len(), MAX_LINES);
        assert_eq!(c.dropped(), 5);
        assert!(c.tail().ends_with(&format!("line {}", MAX_LINES + 4)));
    }
}
