//! Waiting on the world without ignoring Ctrl-C. Every wait on something
//! outside btfvm (a child, a lock, a pipe, a long decompression) also asks
//! a stop check, `interrupt::requested` in a real run and a fake in tests,
//! and gives up with [`Interrupted`] when it answers.

use std::io::{self, Read};
use std::time::Duration;

use super::interrupt::signal_name;
use super::ErrorClass;

/// Asked while waiting: the signal that asks the run to stop, if any. It
/// never clears once set, so asking again after a failure tells whether
/// the stop caused it.
pub type StopCheck<'a> = &'a dyn Fn() -> Option<i32>;

/// Never asks to stop.
pub fn never() -> Option<i32> {
    None
}

/// How long a wait sleeps between two looks at the stop check: well
/// inside the one second a signal may take to end btfvm, and a cheap
/// wake-up (a lock retry, a `waitid`) 20 times a second.
pub const POLL: Duration = Duration::from_millis(50);

/// A wait given up because a signal asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {}", signal_name(*signal))]
pub struct Interrupted {
    pub signal: i32,
}

impl Interrupted {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Interrupted(self.signal)
    }
}

/// `Err` as soon as a stop is requested.
pub fn check(stop: StopCheck<'_>) -> Result<(), Interrupted> {
    match stop() {
        Some(signal) => Err(Interrupted { signal }),
        None => Ok(()),
    }
}

/// One turn of a polling wait: `Err` if a stop is requested, else a sleep
/// of `POLL`.
pub fn pause(stop: StopCheck<'_>) -> Result<(), Interrupted> {
    check(stop)?;
    std::thread::sleep(POLL);
    check(stop)
}

/// A reader that fails once a stop is requested, so that a long stream
/// (a 139 MB tarball unpacking for minutes) notices the request between
/// two reads, each a few milliseconds of decompression.
pub struct StopReader<'a, R> {
    inner: R,
    stop: StopCheck<'a>,
}

impl<'a, R> StopReader<'a, R> {
    pub fn new(inner: R, stop: StopCheck<'a>) -> StopReader<'a, R> {
        StopReader { inner, stop }
    }
}

impl<R: Read> Read for StopReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Not ErrorKind::Interrupted: read_exact and io::copy retry that.
        check(self.stop).map_err(io::Error::other)?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_stop_reader_fails_once_asked_and_not_before() {
        let calls = Cell::new(0);
        let stop = || {
            calls.set(calls.get() + 1);
            (calls.get() > 2).then_some(libc::SIGINT)
        };
        let mut r = StopReader::new(&b"abcdef"[..], &stop);
        let mut buf = [0u8; 2];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        let e = r.read(&mut buf).unwrap_err();
        assert_ne!(e.kind(), io::ErrorKind::Interrupted, "would be retried");
        assert!(e.to_string().contains("interrupted by SIGINT"), "{e}");
    }

    #[test]
    fn pause_gives_up_on_a_stop() {
        assert_eq!(
            pause(&|| Some(libc::SIGTERM)),
            Err(Interrupted {
                signal: libc::SIGTERM
            })
        );
        assert_eq!(pause(&never), Ok(()));
        assert_eq!(
            Interrupted { signal: 2 }.class(),
            ErrorClass::Interrupted(2)
        );
    }
}
