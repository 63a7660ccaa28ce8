//! The loop that watches one boot: the agent's channel, the console log,
//! QEMU's exit, and every limit, until one of them ends the boot.

use std::io::{ErrorKind, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use btfvm_proto::{Decoder, FrameError, Message};

use super::console::{ConsoleWatch, Tag};
use super::process::{wait_timeout, KillOnDrop};
use super::run::{BootEnd, VmEvent};
use super::splat::{classify, message, SplatKind};

/// The limits of one boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From QEMU's start to the agent's hello.
    pub hello: Duration,
    /// For each scenario, from its start message to its end message.
    pub scenario: Duration,
    /// For the whole boot.
    pub wall: Duration,
}

/// After "Kernel panic" QEMU exits within milliseconds (panic=-1 and
/// -no-reboot); if it does not, the panic is reported anyway.
const PANIC_GRACE: Duration = Duration::from_secs(2);
const CONSOLE_POLL: Duration = Duration::from_millis(50);

pub struct Pump<'a> {
    listener: &'a UnixListener,
    stream: Option<UnixStream>,
    decoder: Decoder,
    pub console: ConsoleWatch,
    start: Instant,
    timeouts: Timeouts,
    hello_at: Option<Instant>,
    current: Option<(String, Instant)>,
    finished: usize,
    panic_at: Option<Instant>,
    last_console_poll: Option<Instant>,
    pub messages: Vec<Message>,
    on_event: &'a mut dyn FnMut(&VmEvent),
}

impl<'a> Pump<'a> {
    pub fn new(
        listener: &'a UnixListener,
        console: ConsoleWatch,
        start: Instant,
        timeouts: Timeouts,
        on_event: &'a mut dyn FnMut(&VmEvent),
    ) -> Self {
        Pump {
            listener,
            stream: None,
            decoder: Decoder::new(),
            console,
            start,
            timeouts,
            hello_at: None,
            current: None,
            finished: 0,
            panic_at: None,
            last_console_poll: None,
            messages: Vec::new(),
            on_event,
        }
    }

    /// Where the agent is, for tagging console lines.
    pub fn tag(&self) -> Tag {
        Tag {
            scenario: self.current.as_ref().map(|(n, _)| n.clone()),
            finished: self.finished,
        }
    }

    fn limits(&self, now: Instant) -> Option<BootEnd> {
        if let Some(signal) = crate::interrupt::requested() {
            return Some(BootEnd::Interrupted { signal });
        }
        let after = now.duration_since(self.start);
        if after >= self.timeouts.wall {
            return Some(BootEnd::TimedOut { after });
        }
        if self.hello_at.is_none() && after >= self.timeouts.hello {
            return Some(BootEnd::NoHello { after });
        }
        if let Some((name, since)) = &self.current {
            let ran = now.duration_since(*since);
            if ran >= self.timeouts.scenario {
                return Some(BootEnd::ScenarioTimedOut {
                    scenario: name.clone(),
                    after: ran,
                });
            }
        }
        if let Some(p) = self.panic_at {
            if now.duration_since(p) >= PANIC_GRACE {
                return Some(BootEnd::Panicked);
            }
        }
        None
    }

    fn poll_console(&mut self, now: Instant, force: bool) {
        if !force
            && self
                .last_console_poll
                .is_some_and(|t| now.duration_since(t) < CONSOLE_POLL)
        {
            return;
        }
        self.last_console_poll = Some(now);
        let tag = self.tag();
        let first = self.console.poll(&tag);
        let new: Vec<(SplatKind, String)> = self.console.lines()[first..]
            .iter()
            .filter_map(|(l, _)| classify(l).map(|k| (k, message(l).to_string())))
            .collect();
        for (kind, line) in new {
            if kind == SplatKind::Panic && self.panic_at.is_none() {
                self.panic_at = Some(now);
            }
            (self.on_event)(&VmEvent::Splat {
                kind,
                line,
                scenario: tag.scenario.clone(),
            });
        }
    }

    fn take_messages(&mut self) -> Result<(), FrameError> {
        while let Some(m) = self.decoder.next_message()? {
            let now = Instant::now();
            match &m {
                Message::Hello { .. } => self.hello_at = Some(now),
                Message::ScenarioStarted { name } => self.current = Some((name.clone(), now)),
                Message::ScenarioFinished { .. } => {
                    self.current = None;
                    self.finished += 1;
                }
                _ => {}
            }
            (self.on_event)(&VmEvent::Message(m.clone()));
            self.messages.push(m);
        }
        Ok(())
    }

    /// Reads what is left on the channel once QEMU is gone.
    fn drain(&mut self, buf: &mut [u8]) -> Result<(), FrameError> {
        if let Some(s) = self.stream.as_mut() {
            let _ = s.set_nonblocking(true);
            while let Ok(n) = s.read(buf) {
                if n == 0 {
                    break;
                }
                self.decoder.push(&buf[..n]);
            }
        }
        self.take_messages()?;
        self.decoder.finish()
    }

    fn exited(&mut self, child: &mut KillOnDrop, buf: &mut [u8]) -> BootEnd {
        let status = wait_timeout(&mut child.0, Duration::from_secs(5));
        // The last lines (a panic, typically) arrive as QEMU exits.
        self.poll_console(Instant::now(), true);
        let tag = self.tag();
        self.console.finish(&tag);
        if let Err(e) = self.drain(buf) {
            return BootEnd::Channel(e);
        }
        match status {
            Some(st) => BootEnd::Exited { status: st.code() },
            None => BootEnd::TimedOut {
                after: self.start.elapsed(),
            },
        }
    }

    pub fn run(&mut self, child: &mut KillOnDrop) -> BootEnd {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            self.poll_console(now, false);
            if let Some(end) = self.limits(now) {
                self.poll_console(now, true);
                let tag = self.tag();
                self.console.finish(&tag);
                return end;
            }
            let Some(s) = self.stream.as_mut() else {
                match self.listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                        (self.on_event)(&VmEvent::Connected {
                            after: self.start.elapsed(),
                        });
                        self.stream = Some(s);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if let Ok(Some(_)) = child.0.try_wait() {
                            return self.exited(child, &mut buf);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
                continue;
            };
            match s.read(&mut buf) {
                // QEMU closes the socket when it exits.
                Ok(0) => return self.exited(child, &mut buf),
                Ok(n) => {
                    self.decoder.push(&buf[..n]);
                    if let Err(e) = self.take_messages() {
                        return BootEnd::Channel(e);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if let Ok(Some(_)) = child.0.try_wait() {
                        return self.exited(child, &mut buf);
                    }
                }
                Err(_) => return self.exited(child, &mut buf),
            }
        }
    }
}
