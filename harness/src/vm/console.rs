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
