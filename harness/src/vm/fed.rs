//! The watcher, its recorder and its clock: the one place where a driver's
//! inputs go in, whichever way in drives it (QEMU here, an SSH target,
//! virtme-ng), so every boot is judged and recorded the same way.

use std::fs::File;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use super::transcript::Recorder;
use super::watch::{Input, Watch, Watched};
use super::{BootEnd, Timeouts, VmEvent};

pub struct Fed {
    pub watch: Watch,
    recorder: Recorder<BufWriter<File>>,
    start: Instant,
}

impl Fed {
    /// The clock starts now: the limits count from here.
    pub fn new(timeouts: Timeouts, recorder: Recorder<BufWriter<File>>) -> Fed {
        Fed {
            watch: Watch::new(timeouts),
            recorder,
            start: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn feed(&mut self, input: Input, on_event: &mut dyn FnMut(&VmEvent)) -> Option<BootEnd> {
        let at = self.start.elapsed();
        let end = self.watch.feed(at, &input, on_event);
        // Ticks change nothing unless they end the boot; recording only
        // those keeps a 5-minute hang's transcript small.
        if !matches!(input, Input::Tick) || end.is_some() {
            let _ = self.recorder.record(at, &input);
        }
        end
    }

    /// The transcript flushed, and what the watcher saw.
    pub fn finish(mut self) -> Watched {
        let _ = self.recorder.flush();
        self.watch.finish()
    }
}
