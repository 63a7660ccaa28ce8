//! Wire framing of guest messages on the serial channel: a magic, the
//! protocol version, a length, then JSON. A serial port has no message
//! boundaries of its own and may deliver anything (a guest bug, line noise
//! from firmware), so the decoder is strict and bounded.

use crate::message::Message;

pub const PROTOCOL_VERSION: u16 = 1;
const MAGIC: &[u8; 4] = b"BTFV";
const HEADER_LEN: usize = 10;
/// Observations of one scenario are a few KiB; anything near this is a bug.
pub const MAX_FRAME_LEN: usize = 4 << 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("guest channel: expected frame magic \"BTFV\", got {got:02x?} at byte {offset}")]
    BadMagic { got: Vec<u8>, offset: u64 },
    #[error("guest channel: protocol version {got}, this host speaks {PROTOCOL_VERSION} (rebuild so host and agent match)")]
    Version { got: u16 },
    #[error("guest channel: frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLong { len: usize },
    #[error("guest channel: undecodable message at byte {offset}: {error}")]
    BadJson { offset: u64, error: String },
    #[error("guest channel: stream ended inside a frame ({have} of {want} bytes)")]
    Truncated { have: usize, want: usize },
    /// One of the above as a report wrote it down, read back for merging
    /// reports; never produced by the decoder.
    #[error("{0}")]
    Reported(String),
}

pub fn encode(msg: &Message) -> Vec<u8> {
    // Serializing our own enum cannot fail: no maps with non-string keys.
    let body = serde_json::to_vec(msg).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Incremental decoder: feed bytes as they arrive, take messages out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`, for error messages.
    offset: u64,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. After
    /// an error the stream is unusable: there is no reliable resync point.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        let have = self.buf.len().min(MAGIC.len());
        if self.buf[..have] != MAGIC[..have] {
            return Err(FrameError::BadMagic {
                got: self.buf[..have].to_vec(),
                offset: self.offset,
            });
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let version = u16::from_le_bytes([self.buf[4], self.buf[5]]);
        if version != PROTOCOL_VERSION {
            return Err(FrameError::Version { got: version });
        }
        let len = u32::from_le_bytes([self.buf[6], self.buf[7], self.buf[8], self.buf[9]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong { len });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&self.buf[HEADER_LEN..HEADER_LEN + len]).map_err(|e| {
            FrameError::BadJson {
                offset: self.offset,
                error: e.to_string(),
            }
        })?;
        self.buf.drain(..HEADER_LEN + len);
        self.offset += (HEADER_LEN + len) as u64;
        Ok(Some(msg))
    }

    /// Call at end of stream: leftover bytes mean a message was cut off.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let want = if self.buf.len() >= HEADER_LEN {
            HEADER_LEN
                + u32::from_le_bytes([self.buf[6], self.buf[7], self.buf[8], self.buf[9]]) as usize
        } else {
            HEADER_LEN
        };
        Err(FrameError::Truncated {
            have: self.buf.len(),
            want,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Message {
        Message::Hello {
            agent: "t".into(),
            release: "6.1.0".into(),
            uptime_ms: 5,
            scenarios: 2,
        }
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut bytes = encode(&hello());
        bytes.extend(encode(&Message::Done { uptime_ms: 9 }));
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in bytes {
            d.push(&[b]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![hello(), Message::Done { uptime_ms: 9 }]);
        d.finish().unwrap();
    }

    #[test]
    fn garbage_oversize_version_truncation() {
        let mut d = Decoder::new();
        d.push(b"\x1b[2Jhello");
        assert!(matches!(d.next_message(), Err(FrameError::BadMagic { .. })));

        let mut d = Decoder::new();
        let mut b = encode(&hello());
        b[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        d.push(&b);
        assert!(matches!(d.next_message(), Err(FrameError::TooLong { .. })));

        let mut d = Decoder::new();
        let mut b = encode(&hello());
        b[4] = 9;
        d.push(&b);
        assert_eq!(d.next_message(), Err(FrameError::Version { got: 9 }));

        let mut d = Decoder::new();
        let b = encode(&hello());
        d.push(&b[..b.len() - 3]);
        assert_eq!(d.next_message(), Ok(None));
        assert!(matches!(d.finish(), Err(FrameError::Truncated { .. })));

        let mut d = Decoder::new();
        let mut b = encode(&hello());
        let n = b.len();
        b[n - 2] = b'!';
        d.push(&b);
        assert!(matches!(d.next_message(), Err(FrameError::BadJson { .. })));
    }
}
