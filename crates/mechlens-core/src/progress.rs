//! Progress lines for long work, in a notebook or a terminal.
//!
//! A notebook's stdout is line-buffered, so a progress bar redrawn with `\r` never shows:
//! [`Progress`] prints whole lines instead, at most one per interval, each with the count,
//! the rate and the time left.

use std::time::{Duration, Instant};

/// Counts work done towards a total and prints a line now and then.
///
/// ```
/// use mechlens_core::progress::Progress;
///
/// let mut p = Progress::new("windows", 1000).every(std::time::Duration::ZERO).quiet();
/// p.advance(250);
/// assert_eq!(p.done(), 250);
/// assert!(p.line().starts_with("windows: 250/1000 (25%)"));
/// ```
#[derive(Clone, Debug)]
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    unit: String,
    started: Instant,
    last_print: Option<Instant>,
    every: Duration,
    quiet: bool,
    lines: Vec<String>,
    /// Units already done when this report started (a resumed run): not in the rate.
    base: u64,
    /// Appended to each line (a loss, a count).
    note: String,
}

impl Progress {
    /// `total` units of work called `label` (0 when the total is not known).
    pub fn new(label: &str, total: u64) -> Self {
        Self {
            label: label.to_string(),
            total,
            done: 0,
            unit: "it".into(),
            started: Instant::now(),
            last_print: None,
            every: Duration::from_secs(2),
            quiet: false,
            lines: Vec::new(),
            base: 0,
            note: String::new(),
        }
    }

    /// The unit the rate is given in (default "it": "1234 tok/s" with "tok").
    pub fn unit(mut self, unit: &str) -> Self {
        self.unit = unit.to_string();
        self
    }

    /// Prints at most one line per `interval` (default 2 s), and always the last one.
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = interval;
        self
    }

    /// Starts at `done` units (work a resumed run did before); the rate counts only new work.
    pub fn starting_at(mut self, done: u64) -> Self {
        self.done = done;
        self.base = done;
        self
    }

    /// Text appended to the next lines (e.g. the latest loss), replacing the previous note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.note = note.into();
    }

    /// Keeps the lines (see [`Progress::lines`]) instead of printing them.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// The lines shown so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Records `n` more units and prints a line when the interval has passed or the work
    /// is finished.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        let now = Instant::now();
        let due = self
            .last_print
            .is_none_or(|t| now.duration_since(t) >= self.every);
        let finished = self.total > 0 && self.done >= self.total;
        if due || finished {
            self.last_print = Some(now);
            let line = self.line();
            if !self.quiet {
                println!("{line}");
            }
            self.lines.push(line);
        }
    }

    /// The line as it would print now: `label: done/total (pct%)  rate unit/s  ETA 12s`.
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (self.done - self.base) as f64 / secs
        } else {
            0.0
        };
        let mut line = if self.total > 0 {
            format!(
                "{}: {}/{} ({:.0}%)",
                self.label,
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total as f64
            )
        } else {
            format!("{}: {}", self.label, self.done)
        };
        line.push_str(&format!("  {} {}/s", format_rate(rate), self.unit));
        if self.total > self.done && rate > 0.0 {
            line.push_str(&format!(
                "  ETA {}",
                format_duration((self.total - self.done) as f64 / rate)
            ));
        } else if self.total > 0 && self.done >= self.total {
            line.push_str(&format!("  done in {}", format_duration(secs)));
        }
        if !self.note.is_empty() {
            line.push_str("  ");
            line.push_str(&self.note);
        }
        line
    }
}

fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}

/// Seconds as `42s`, `3m05s` or `1h02m`.
pub fn format_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_at_most_once_per_interval_and_always_at_the_end() {
        let mut p = Progress::new("steps", 10)
            .every(Duration::from_secs(3600))
            .quiet();
        for _ in 0..10 {
            p.advance(1);
        }
        // The first line, then nothing within the hour, then the last.
        assert_eq!(p.lines().len(), 2, "{:?}", p.lines());
        assert!(p.lines()[0].starts_with("steps: 1/10 (10%)"));
        assert!(
            p.lines()[1].starts_with("steps: 10/10 (100%)") && p.lines()[1].contains("done in")
        );
    }

    #[test]
    fn unknown_total_has_no_percentage() {
        let mut p = Progress::new("rows", 0).unit("tok").quiet();
        p.advance(5);
        assert!(
            p.lines()[0].starts_with("rows: 5  ") && p.lines()[0].contains("tok/s"),
            "{:?}",
            p.lines()
        );
    }

    #[test]
    fn a_resumed_report_counts_from_its_start_and_carries_a_note() {
        let mut p = Progress::new("steps", 100)
            .starting_at(40)
            .every(Duration::ZERO)
            .quiet();
        p.note("loss 0.5");
        p.advance(10);
        let line = &p.lines()[0];
        assert!(line.starts_with("steps: 50/100 (50%)"), "{line}");
        assert!(line.ends_with("  loss 0.5"), "{line}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(42.4), "42s");
        assert_eq!(format_duration(185.0), "3m05s");
        assert_eq!(format_duration(3720.0), "1h02m");
    }
}
