//! The console log as a person wants to read it: firmware escape sequences
//! and CRs removed, only the last lines.

use std::path::Path;

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

/// The last `n` non-empty lines of the console log, cleaned.
pub fn tail(path: &Path, n: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = clean(&String::from_utf8_lossy(&bytes));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Where the agent was when a console line arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tag {
    /// The scenario running, if one was.
    pub scenario: Option<String>,
    /// How many scenarios had finished.
    pub finished: usize,
}

/// Follows the console log while QEMU writes it: new complete lines, each
/// tagged with where the agent was when it was read.
pub struct ConsoleWatch {
    path: std::path::PathBuf,
    offset: u64,
    partial: Vec<u8>,
    lines: Vec<(String, Tag)>,
    dropped: u64,
}

/// A boot's console is a few hundred lines; a flood (a splat loop) is capped
/// so the host never grows without bound.
const MAX_LINES: usize = 20_000;

impl ConsoleWatch {
    pub fn new(path: &Path) -> Self {
        ConsoleWatch {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            lines: Vec::new(),
            dropped: 0,
        }
    }

    /// Reads what was appended since the last call; returns the index of
    /// the first new line.
    pub fn poll(&mut self, tag: &Tag) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let first_new = self.lines.len();
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return first_new;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return first_new;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.by_ref().take(4 << 20).read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        self.partial.extend_from_slice(&buf);
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = clean(&String::from_utf8_lossy(&raw)).trim_end().to_string();
            if line.is_empty() {
                continue;
            }
            if self.lines.len() < MAX_LINES {
                self.lines.push((line, tag.clone()));
            } else {
                self.dropped += 1;
            }
        }
        first_new
    }

    /// Takes a last line that never got its newline (QEMU killed, or a
    /// panic message cut short).
    pub fn finish(&mut self, tag: &Tag) {
        self.poll(tag);
        if !self.partial.is_empty() && self.lines.len() < MAX_LINES {
            let line = clean(&String::from_utf8_lossy(&self.partial))
                .trim_end()
                .to_string();
            if !line.is_empty() {
                self.lines.push((line, tag.clone()));
            }
        }
        self.partial.clear();
    }

    pub fn lines(&self) -> &[(String, Tag)] {
        &self.lines
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
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
}
