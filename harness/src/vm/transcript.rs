//! A boot's inputs to the watcher, recorded as they were fed, so a kept
//! boot can be judged again (`btfvm replay`) and every provoked fault
//! becomes a fixture that a unit test replays in milliseconds, as
//! kunit_tool replays its recorded logs.
//!
//! Format: the magic `BTFVTR01`, then records of a kind byte, the time
//! since QEMU started in microseconds (u64 LE), a payload length (u32 LE)
//! and the payload. Ticks are recorded only when they ended the boot: the
//! limits are checked on ticks alone, so the others change nothing.

use std::io::{self, Write};
use std::time::Duration;

use super::watch::{Input, Watch, Watched};
use super::{Timeouts, VmEvent};

const MAGIC: &[u8; 8] = b"BTFVTR01";
/// No recorded boot comes near this; a bigger file is not a transcript.
pub const MAX_TRANSCRIPT_BYTES: u64 = 256 << 20;

const CHANNEL: u8 = 1;
const CONSOLE: u8 = 2;
const TICK: u8 = 3;
const EXITED: u8 = 4;
const KILLED: u8 = 5;
const HUNG: u8 = 6;
const INTERRUPTED: u8 = 7;
const LOST: u8 = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranscriptError {
    #[error(
        "not a btfvm boot transcript (no {:?} magic)",
        String::from_utf8_lossy(MAGIC)
    )]
    Magic,
    #[error("record {index} at byte {offset}: {problem}")]
    Record {
        index: usize,
        offset: usize,
        problem: &'static str,
    },
}

/// Writes records as the driver feeds the watcher.
pub struct Recorder<W: Write> {
    out: W,
}

impl<W: Write> Recorder<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Recorder { out })
    }

    pub fn record(&mut self, at: Duration, input: &Input) -> io::Result<()> {
        let (kind, payload): (u8, &[u8]) = match input {
            Input::Channel(b) => (CHANNEL, b),
            Input::Console(b) => (CONSOLE, b),
            Input::Tick => (TICK, &[]),
            Input::Exited { status: None } => (KILLED, &[]),
            Input::Exited { status: Some(c) } => {
                return self.write(EXITED, at, &c.to_le_bytes());
            }
            Input::Hung => (HUNG, &[]),
            Input::Lost(why) => (LOST, why.as_bytes()),
            Input::Interrupted { signal } => {
                return self.write(INTERRUPTED, at, &signal.to_le_bytes());
            }
        };
        self.write(kind, at, payload)
    }

    fn write(&mut self, kind: u8, at: Duration, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
        self.out.write_all(&[kind])?;
        self.out
            .write_all(&(at.as_micros().min(u64::MAX as u128) as u64).to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(payload)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The recorded inputs, in order.
pub fn parse(bytes: &[u8]) -> Result<Vec<(Duration, Input)>, TranscriptError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(TranscriptError::Magic)?;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < rest.len() {
        let bad = |problem| TranscriptError::Record {
            index: out.len(),
            offset: MAGIC.len() + pos,
            problem,
        };
        let head = rest.get(pos..pos + 13).ok_or_else(|| bad("cut short"))?;
        let kind = head[0];
        let at = u64::from_le_bytes(head[1..9].try_into().map_err(|_| bad("bad time"))?);
        let len = u32::from_le_bytes(head[9..13].try_into().map_err(|_| bad("bad length"))?);
        let start = pos + 13;
        let payload = start
            .checked_add(len as usize)
            .and_then(|end| rest.get(start..end))
            .ok_or_else(|| bad("payload runs past the end"))?;
        let int = || -> Result<i32, TranscriptError> {
            Ok(i32::from_le_bytes(
                payload.try_into().map_err(|_| bad("expected 4 bytes"))?,
            ))
        };
        let input = match kind {
            CHANNEL => Input::Channel(payload.to_vec()),
            CONSOLE => Input::Console(payload.to_vec()),
            TICK => Input::Tick,
            EXITED => Input::Exited {
                status: Some(int()?),
            },
            KILLED => Input::Exited { status: None },
            HUNG => Input::Hung,
            LOST => Input::Lost(String::from_utf8_lossy(payload).into_owned()),
            INTERRUPTED => Input::Interrupted { signal: int()? },
            _ => return Err(bad("unknown record kind")),
        };
        out.push((Duration::from_micros(at), input));
        pos = start + len as usize;
    }
    Ok(out)
}

/// Feeds a recorded boot through a fresh watcher with the limits it ran
/// with: the same inputs give the same end, messages and splats.
pub fn replay(
    bytes: &[u8],
    timeouts: Timeouts,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<Watched, TranscriptError> {
    let mut w = Watch::new(timeouts);
    for (at, input) in parse(bytes)? {
        w.feed(at, &input, on_event);
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::BootEnd;

    #[test]
    fn records_round_trip_and_replay_to_the_same_end() {
        let inputs = vec![
            (
                Duration::from_millis(10),
                Input::Console(b"hello\n".to_vec()),
            ),
            (Duration::from_millis(20), Input::Channel(b"BTFV".to_vec())),
            (Duration::from_millis(30), Input::Tick),
            (Duration::from_millis(40), Input::Exited { status: Some(3) }),
            (Duration::from_millis(41), Input::Exited { status: None }),
            (Duration::from_millis(42), Input::Hung),
            (Duration::from_millis(43), Input::Interrupted { signal: 15 }),
            (
                Duration::from_millis(44),
                Input::Lost("connection reset by peer".into()),
            ),
        ];
        let mut r = Recorder::new(Vec::new()).unwrap();
        for (at, i) in &inputs {
            r.record(*at, i).unwrap();
        }
        let bytes = r.into_inner();
        assert_eq!(parse(&bytes).unwrap(), inputs);
        let t = Timeouts {
            hello: Duration::from_secs(1),
            scenario: Duration::from_secs(1),
            wall: Duration::from_secs(1),
        };
        let w = replay(&bytes, t, &mut |_| {}).unwrap();
        // "BTFV" then the exit: a frame cut off.
        assert!(matches!(w.end, BootEnd::Channel(_)), "{:?}", w.end);
    }

    #[test]
    fn a_lost_connection_replays_as_lost() {
        let mut r = Recorder::new(Vec::new()).unwrap();
        r.record(
            Duration::from_millis(5),
            &Input::Console(b"[    1.0] x\n".to_vec()),
        )
        .unwrap();
        r.record(Duration::from_millis(9), &Input::Lost("EOF".into()))
            .unwrap();
        let t = Timeouts {
            hello: Duration::from_secs(1),
            scenario: Duration::from_secs(1),
            wall: Duration::from_secs(1),
        };
        let w = replay(&r.into_inner(), t, &mut |_| {}).unwrap();
        assert_eq!(w.end, BootEnd::Lost { why: "EOF".into() });
    }

    #[test]
    fn damaged_transcripts_are_refused_not_misread() {
        assert_eq!(parse(b"nope"), Err(TranscriptError::Magic));
        let mut r = Recorder::new(Vec::new()).unwrap();
        r.record(Duration::ZERO, &Input::Console(b"abc".to_vec()))
            .unwrap();
        let bytes = r.into_inner();
        for cut in MAGIC.len() + 1..bytes.len() {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[MAGIC.len() + 9..MAGIC.len() + 13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge).is_err());
        let mut kind = bytes;
        kind[MAGIC.len()] = 99;
        assert!(parse(&kind).is_err());
    }
}
