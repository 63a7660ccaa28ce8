//! The boot watcher as a state machine: the agent's channel bytes, the
//! console's bytes, clock ticks and QEMU's exit go in, each with the time
//! since QEMU started; events and, once, the end of the boot come out. No
//! I/O and no clock of its own, so the driver (`vm::driver`) and the replay
//! of a recorded boot (`vm::transcript`) run exactly the same logic, and
//! every fault the fault tests provoke can be replayed in a unit test.

use std::time::Duration;

use btfvm_proto::{Decoder, Message};

use super::console::{ConsoleLines, Tag};
use super::phases::KernelMarks;
use super::splat::{self, classify, message, Splat, SplatKind};
use super::{BootEnd, Timeouts, VmEvent};

/// After "Kernel panic" QEMU exits within milliseconds (panic=-1 and
/// -no-reboot); if it does not, the panic is reported anyway.
pub const PANIC_GRACE: Duration = Duration::from_secs(2);

/// An Oops or BUG before the agent's hello, then this long without it:
/// the boot is over (NoHello) instead of waiting out the hello limit (60 s
/// under TCG). Why: bookworm-backports' 6.12 sometimes oopses in
/// `trace_event_eval_update` at 1 s of uptime under TCG and never reaches
/// /init; each such boot cost a minute of `cargo test` before its retry.
/// A healthy boot goes from such an early point to the hello in 1-3 s.
pub const EARLY_OOPS_GRACE: Duration = Duration::from_secs(15);

/// One thing that happened, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes from the agent's channel (ttyS1).
    Channel(Vec<u8>),
    /// Bytes appended to the console log (ttyS0).
    Console(Vec<u8>),
    /// Time passed: the moment to check the limits.
    Tick,
    /// QEMU exited (None: killed by a signal). The driver has fed the
    /// last console and channel bytes first.
    Exited { status: Option<i32> },
    /// QEMU closed the channel but did not exit.
    Hung,
    /// SIGINT or SIGTERM reached btfvm.
    Interrupted { signal: i32 },
    /// The connection to a target broke (another way in than QEMU).
    Lost(String),
}

/// What the watcher knows once the boot is over.
#[derive(Debug, Clone)]
pub struct Watched {
    pub end: BootEnd,
    pub messages: Vec<Message>,
    pub splats: Vec<Splat>,
    pub console_tail: String,
    pub console_dropped: u64,
    /// Time of the last input: the boot's length as the watcher saw it.
    pub elapsed: Duration,
    /// When the agent said hello.
    pub hello_at: Option<Duration>,
    /// The kernel's own stamps of the lines that end boot phases.
    pub marks: KernelMarks,
}

pub struct Watch {
    timeouts: Timeouts,
    decoder: Decoder,
    console: ConsoleLines,
    hello_at: Option<Duration>,
    current: Option<(String, Duration)>,
    finished: usize,
    panic_at: Option<Duration>,
    /// The first Oops or BUG before the hello.
    early_oops_at: Option<Duration>,
    messages: Vec<Message>,
    end: Option<BootEnd>,
    last: Duration,
}

impl Watch {
    pub fn new(timeouts: Timeouts) -> Watch {
        Watch {
            timeouts,
            decoder: Decoder::new(),
            console: ConsoleLines::new(),
            hello_at: None,
            current: None,
            finished: 0,
            panic_at: None,
            early_oops_at: None,
            messages: Vec::new(),
            end: None,
            last: Duration::ZERO,
        }
    }

    /// Where the agent is, for tagging console lines.
    fn tag(&self) -> Tag {
        Tag {
            scenario: self.current.as_ref().map(|(n, _)| n.clone()),
            finished: self.finished,
        }
    }

    pub fn ended(&self) -> Option<&BootEnd> {
        self.end.as_ref()
    }

    /// Takes one input at `at` (time since QEMU started). Returns the end
    /// of the boot when this input ended it. Once ended, console bytes are
    /// still taken (the last lines arrive as QEMU goes) and the rest is
    /// ignored.
    pub fn feed(
        &mut self,
        at: Duration,
        input: &Input,
        on_event: &mut dyn FnMut(&VmEvent),
    ) -> Option<BootEnd> {
        self.last = self.last.max(at);
        if self.end.is_some() {
            if let Input::Console(bytes) = input {
                self.console_bytes(at, bytes, on_event);
            }
            return None;
        }
        let end = match input {
            Input::Channel(bytes) => self.channel_bytes(at, bytes, on_event),
            Input::Console(bytes) => {
                self.console_bytes(at, bytes, on_event);
                None
            }
            Input::Tick => self.limits(at),
            Input::Interrupted { signal } => Some(BootEnd::Interrupted { signal: *signal }),
            Input::Hung => Some(BootEnd::TimedOut { after: at }),
            Input::Lost(why) => {
                let tag = self.tag();
                self.console.finish(&tag);
                Some(BootEnd::Lost { why: why.clone() })
            }
            Input::Exited { status } => Some(self.exited(*status)),
        };
        if let Some(e) = &end {
            self.end = Some(e.clone());
        }
        end
    }

    fn limits(&self, at: Duration) -> Option<BootEnd> {
        if at >= self.timeouts.wall {
            return Some(BootEnd::TimedOut { after: at });
        }
        if self.hello_at.is_none() {
            let oops_silence = self
                .early_oops_at
                .is_some_and(|o| at.saturating_sub(o) >= EARLY_OOPS_GRACE);
            if at >= self.timeouts.hello || oops_silence {
                return Some(BootEnd::NoHello { after: at });
            }
        }
        if let Some((name, since)) = &self.current {
            let ran = at.saturating_sub(*since);
            if ran >= self.timeouts.scenario {
                return Some(BootEnd::ScenarioTimedOut {
                    scenario: name.clone(),
                    after: ran,
                });
            }
        }
        match self.panic_at {
            Some(p) if at.saturating_sub(p) >= PANIC_GRACE => Some(BootEnd::Panicked),
            _ => None,
        }
    }

    fn console_bytes(&mut self, at: Duration, bytes: &[u8], on_event: &mut dyn FnMut(&VmEvent)) {
        let tag = self.tag();
        let first = self.console.push(bytes, &tag);
        let new: Vec<(SplatKind, String)> = self.console.lines()[first..]
            .iter()
            .filter_map(|(l, _)| classify(l).map(|k| (k, message(l).to_string())))
            .collect();
        for (kind, line) in new {
            if kind == SplatKind::Panic && self.panic_at.is_none() {
                self.panic_at = Some(at);
            }
            if matches!(kind, SplatKind::Oops | SplatKind::Bug) && self.hello_at.is_none() {
                self.early_oops_at.get_or_insert(at);
            }
            on_event(&VmEvent::Splat {
                kind,
                line,
                scenario: tag.scenario.clone(),
            });
        }
    }

    fn channel_bytes(
        &mut self,
        at: Duration,
        bytes: &[u8],
        on_event: &mut dyn FnMut(&VmEvent),
    ) -> Option<BootEnd> {
        self.decoder.push(bytes);
        loop {
            match self.decoder.next_message() {
                Ok(Some(m)) => self.message(at, m, on_event),
                Ok(None) => return None,
                Err(e) => return Some(BootEnd::Channel(e)),
            }
        }
    }

    fn message(&mut self, at: Duration, m: Message, on_event: &mut dyn FnMut(&VmEvent)) {
        match &m {
            Message::Hello { .. } => self.hello_at = Some(at),
            Message::ScenarioStarted { name } => self.current = Some((name.clone(), at)),
            Message::ScenarioFinished { .. } => {
                self.current = None;
                self.finished += 1;
            }
            _ => {}
        }
        on_event(&VmEvent::Message(m.clone()));
        self.messages.push(m);
    }

    fn exited(&mut self, status: Option<i32>) -> BootEnd {
        let tag = self.tag();
        self.console.finish(&tag);
        // A frame cut off by the exit is the agent's fault, not QEMU's.
        match self.decoder.finish() {
            Err(e) => BootEnd::Channel(e),
            Ok(()) => BootEnd::Exited { status },
        }
    }

    /// The boot as the watcher saw it. A boot that never ended (the input
    /// stopped) counts as timed out where the input stopped.
    pub fn finish(mut self) -> Watched {
        let tag = self.tag();
        self.console.finish(&tag);
        let end = self
            .end
            .take()
            .unwrap_or(BootEnd::TimedOut { after: self.last });
        Watched {
            end,
            hello_at: self.hello_at,
            marks: KernelMarks::from_lines(self.console.lines().iter().map(|(l, _)| l.as_str())),
            splats: splat::find(self.console.lines()),
            console_tail: self.console.tail(),
            console_dropped: self.console.dropped(),
            messages: self.messages,
            elapsed: self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use btfvm_proto::{encode, Observations, Outcome};

    fn timeouts() -> Timeouts {
        Timeouts {
            hello: Duration::from_secs(10),
            scenario: Duration::from_secs(5),
            wall: Duration::from_secs(60),
        }
    }

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn hello() -> Vec<u8> {
        encode(&Message::Hello {
            agent: "t".into(),
            release: "6.1".into(),
            uptime_ms: 1,
            scenarios: 1,
        })
    }

    fn run(w: &mut Watch, inputs: &[(f64, Input)]) -> (Option<BootEnd>, Vec<VmEvent>) {
        let mut events = Vec::new();
        let mut end = None;
        for (at, i) in inputs {
            if let Some(e) = w.feed(s(*at), i, &mut |e| events.push(e.clone())) {
                end.get_or_insert(e);
            }
        }
        (end, events)
    }

    #[test]
    fn a_clean_boot_ends_when_qemu_exits() {
        let mut w = Watch::new(timeouts());
        let mut bytes = hello();
        bytes.extend(encode(&Message::ScenarioStarted { name: "a".into() }));
        bytes.extend(encode(&Message::ScenarioFinished {
            name: "a".into(),
            outcome: Outcome::Passed,
            duration_ms: 3,
            observations: Observations::default(),
        }));
        bytes.extend(encode(&Message::Done { uptime_ms: 9 }));
        // Frames split anywhere still decode.
        let (a, b) = bytes.split_at(7);
        let (end, events) = run(
            &mut w,
            &[
                (
                    1.0,
                    Input::Console(b"[    0.0] Linux version 6.1\n".to_vec()),
                ),
                (1.5, Input::Channel(a.to_vec())),
                (1.6, Input::Channel(b.to_vec())),
                (2.0, Input::Tick),
                (2.1, Input::Exited { status: Some(0) }),
            ],
        );
        assert_eq!(end, Some(BootEnd::Exited { status: Some(0) }));
        assert_eq!(events.len(), 4);
        let done = w.finish();
        assert_eq!(done.messages.len(), 4);
        assert_eq!(done.elapsed, s(2.1));
        assert!(done.console_tail.contains("Linux version"));
    }

    #[test]
    fn limits_fire_on_ticks_only_and_in_order() {
        let mut w = Watch::new(timeouts());
        assert_eq!(w.feed(s(9.9), &Input::Tick, &mut |_| {}), None);
        assert_eq!(
            w.feed(s(10.0), &Input::Tick, &mut |_| {}),
            Some(BootEnd::NoHello { after: s(10.0) })
        );
        // Ended: nothing more comes out.
        assert_eq!(w.feed(s(70.0), &Input::Tick, &mut |_| {}), None);

        let mut w = Watch::new(timeouts());
        let mut started = hello();
        started.extend(encode(&Message::ScenarioStarted { name: "x".into() }));
        w.feed(s(1.0), &Input::Channel(started), &mut |_| {});
        assert_eq!(w.feed(s(5.9), &Input::Tick, &mut |_| {}), None);
        assert_eq!(
            w.feed(s(6.0), &Input::Tick, &mut |_| {}),
            Some(BootEnd::ScenarioTimedOut {
                scenario: "x".into(),
                after: s(5.0)
            })
        );

        let mut w = Watch::new(timeouts());
        w.feed(s(1.0), &Input::Channel(hello()), &mut |_| {});
        assert_eq!(
            w.feed(s(60.0), &Input::Tick, &mut |_| {}),
            Some(BootEnd::TimedOut { after: s(60.0) })
        );
    }

    #[test]
    fn a_panic_that_qemu_survives_ends_the_boot_after_the_grace() {
        let mut w = Watch::new(timeouts());
        let line = b"[    3.1] Kernel panic - not syncing: sysrq triggered crash\n".to_vec();
        let (end, events) = run(
            &mut w,
            &[
                (1.0, Input::Channel(hello())),
                (3.0, Input::Console(line)),
                (4.9, Input::Tick),
                (5.0, Input::Tick),
            ],
        );
        assert_eq!(end, Some(BootEnd::Panicked));
        assert!(matches!(
            &events[1],
            VmEvent::Splat {
                kind: SplatKind::Panic,
                ..
            }
        ));
        assert_eq!(w.finish().splats.len(), 1);
    }

    #[test]
    fn an_oops_before_the_hello_ends_a_silent_boot_early_but_not_a_live_one() {
        let oops = b"[    1.04] Oops: general protection fault, probably for non-canonical address 0x5f43: 0000 [#1] PREEMPT SMP NOPTI\n".to_vec();
        let t = Timeouts {
            hello: Duration::from_secs(60),
            ..timeouts()
        };
        let mut w = Watch::new(t);
        let (end, _) = run(
            &mut w,
            &[
                (1.0, Input::Console(oops.clone())),
                (15.9, Input::Tick),
                (16.0, Input::Tick),
            ],
        );
        assert_eq!(end, Some(BootEnd::NoHello { after: s(16.0) }));
        assert_eq!(w.finish().splats.len(), 1);
        // The agent speaks within the grace: the boot goes on.
        let mut w = Watch::new(t);
        let (end, _) = run(
            &mut w,
            &[
                (1.0, Input::Console(oops.clone())),
                (3.0, Input::Channel(hello())),
                (30.0, Input::Tick),
            ],
        );
        assert_eq!(end, None);
        // A WARNING before the hello is no reason to stop waiting.
        let mut w = Watch::new(t);
        let warn = b"[    1.01] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/traps.c:1120 exc_debug_kernel+0xca/0x160\n";
        let (end, _) = run(
            &mut w,
            &[(1.0, Input::Console(warn.to_vec())), (30.0, Input::Tick)],
        );
        assert_eq!(end, None);
    }

    #[test]
    fn garbage_and_a_cut_frame_are_channel_ends() {
        let mut w = Watch::new(timeouts());
        let end = w.feed(
            s(1.0),
            &Input::Channel(b"\x1b[2J not a frame".to_vec()),
            &mut |_| {},
        );
        assert!(matches!(end, Some(BootEnd::Channel(_))), "{end:?}");

        let mut w = Watch::new(timeouts());
        let frame = hello();
        w.feed(s(1.0), &Input::Channel(frame[..5].to_vec()), &mut |_| {});
        let end = w.feed(s(1.1), &Input::Exited { status: Some(0) }, &mut |_| {});
        assert!(matches!(end, Some(BootEnd::Channel(_))), "{end:?}");
    }

    #[test]
    fn console_lines_after_the_end_still_count() {
        let mut w = Watch::new(timeouts());
        w.feed(s(1.0), &Input::Interrupted { signal: 2 }, &mut |_| {});
        w.feed(
            s(1.0),
            &Input::Console(b"WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2".to_vec()),
            &mut |_| {},
        );
        let done = w.finish();
        assert_eq!(done.end, BootEnd::Interrupted { signal: 2 });
        assert_eq!(done.splats.len(), 1, "the unterminated last line is read");
    }
}
