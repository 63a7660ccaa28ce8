//! Shows a build's progress on stderr: on a terminal a live tail of make
//! (one line, redrawn) and a bar for downloads and unpacking; elsewhere (CI
//! logs, cargo test) a line per step and a summary of make every 30 s.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use btfvm::kbuild::BuildEvent;

const QUIET_INTERVAL: Duration = Duration::from_secs(30);

pub struct Printer {
    label: String,
    tty: bool,
    bar: Option<ProgressBar>,
    step_started: Instant,
    make_lines: u64,
    last_line: String,
    last_report: Instant,
    last_pct: u64,
}

impl Printer {
    pub fn new(label: &str) -> Printer {
        Printer {
            label: label.to_string(),
            tty: std::io::stderr().is_terminal(),
            bar: None,
            step_started: Instant::now(),
            make_lines: 0,
            last_line: String::new(),
            last_report: Instant::now(),
            last_pct: 0,
        }
    }

    fn finish_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn elapsed(&self) -> String {
        let s = self.step_started.elapsed().as_secs();
        format!("{}:{:02}", s / 60, s % 60)
    }

    pub fn event(&mut self, e: BuildEvent) {
        match e {
            BuildEvent::Step { what } => {
                self.finish_bar();
                self.step_started = Instant::now();
                self.make_lines = 0;
                self.last_pct = 0;
                say!("btfvm: {}: {what}", self.label);
            }
            BuildEvent::Progress { done, total } => self.progress(done, total),
            BuildEvent::Make { line } => self.make_line(line),
            BuildEvent::Cached { entry } => {
                self.finish_bar();
                say!(
                    "btfvm: {}: cached build, nothing to do ({})",
                    self.label,
                    entry.display()
                );
            }
            BuildEvent::Finished { seconds, ok } => {
                self.finish_bar();
                say!(
                    "btfvm: {}: build {} after {}:{:02}",
                    self.label,
                    if ok { "done" } else { "failed" },
                    seconds as u64 / 60,
                    seconds as u64 % 60
                );
            }
        }
    }

    /// A bar on a terminal; elsewhere a line at each quarter.
    fn progress(&mut self, done: u64, total: u64) {
        if self.tty {
            let bar = self.bar.get_or_insert_with(|| {
                let b = ProgressBar::new(total);
                b.set_style(
                    ProgressStyle::with_template(
                        "  [{elapsed_precise}] {bar:40} {bytes}/{total_bytes}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            bar.set_position(done);
        } else {
            let pct = done * 100 / total.max(1);
            if pct / 25 != self.last_pct / 25 {
                say!("btfvm: {}: {pct}% after {}", self.label, self.elapsed());
            }
            self.last_pct = pct;
        }
    }

    /// On a terminal, make's latest line in place; elsewhere a summary
    /// every `QUIET_INTERVAL`.
    fn make_line(&mut self, line: String) {
        self.make_lines += 1;
        if self.tty {
            let bar = self.bar.get_or_insert_with(|| {
                let b = ProgressBar::new_spinner();
                b.enable_steady_tick(Duration::from_millis(250));
                b.set_style(
                    ProgressStyle::with_template("  {spinner} [{elapsed}] {wide_msg:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            });
            let shown: String = line.chars().take(100).collect();
            bar.set_message(format!("{} lines | {shown}", self.make_lines));
        } else if self.last_report.elapsed() >= QUIET_INTERVAL {
            self.last_report = Instant::now();
            say!(
                "btfvm: {}: make {}, {} lines, last: {}",
                self.label,
                self.elapsed(),
                self.make_lines,
                line.trim()
            );
        }
        self.last_line = line;
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.finish_bar();
    }
}
