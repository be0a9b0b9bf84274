//! All output of the CLI: data on stdout, everything else (progress, notes, errors) on stderr.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Where output goes and how much of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    quiet: bool,
    progress: bool,
}

impl Printer {
    pub(crate) fn new(quiet: bool, progress: bool) -> Self {
        Printer { quiet, progress }
    }

    /// Writes a line of data to stdout.
    pub(crate) fn data(&self, line: impl AsRef<str>) {
        let mut out = io::stdout().lock();
        // A closed pipe (`sandbox list | head -1`) is not an error of this tool.
        let _ = writeln!(out, "{}", line.as_ref());
    }

    /// Writes raw bytes to stdout and flushes them.
    pub(crate) fn data_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()
    }

    /// Writes raw bytes to stderr and flushes them (a remote command's stderr).
    pub(crate) fn err_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        let mut err = io::stderr().lock();
        err.write_all(bytes)?;
        err.flush()
    }

    /// Writes a value as pretty JSON to stdout.
    pub(crate) fn json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.data(text);
        Ok(())
    }

    /// A note for humans on stderr (hidden by `--quiet`).
    pub(crate) fn info(&self, line: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(io::stderr().lock(), "{}", line.as_ref());
        }
    }

    /// A warning on stderr (always shown).
    pub(crate) fn warn(&self, line: impl AsRef<str>) {
        let _ = writeln!(io::stderr().lock(), "warning: {}", line.as_ref());
    }

    /// An error on stderr (always shown): the message, then each cause.
    pub(crate) fn error(&self, error: &anyhow::Error) {
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "error: {error}");
        for cause in error.chain().skip(1) {
            let _ = writeln!(err, "  caused by: {cause}");
        }
    }

    /// Asks a yes/no question on stderr and reads the answer from stdin; `false` when stdin
    /// is not a terminal.
    pub(crate) fn confirm(&self, question: &str) -> bool {
        if !io::stdin().is_terminal() {
            return false;
        }
        let _ = write!(io::stderr().lock(), "{question} [y/N]: ");
        let _ = io::stderr().flush();
        let mut answer = String::new();
        if io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
    }

    /// A progress reporter: a spinner on a terminal, plain lines otherwise, nothing when quiet.
    pub(crate) fn progress(&self) -> Progress {
        let mode = if self.quiet {
            ProgressMode::Silent
        } else if self.progress && io::stderr().is_terminal() {
            ProgressMode::Spinner
        } else {
            ProgressMode::Lines
        };
        Progress {
            mode,
            started: Instant::now(),
            last: String::new(),
            frame: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProgressMode {
    Silent,
    Lines,
    Spinner,
}

/// Reports the phases of a long operation on stderr.
#[derive(Debug)]
pub(crate) struct Progress {
    mode: ProgressMode,
    started: Instant,
    last: String,
    frame: usize,
}

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

impl Progress {
    /// Reports the current state: a new line when it changed (or redraws the spinner).
    pub(crate) fn update(&mut self, state: &str) {
        match self.mode {
            ProgressMode::Silent => {}
            ProgressMode::Lines => {
                if state != self.last {
                    let _ = writeln!(
                        io::stderr().lock(),
                        "  {state} ({})",
                        format_elapsed(self.started.elapsed())
                    );
                }
            }
            ProgressMode::Spinner => {
                self.frame = (self.frame + 1) % FRAMES.len();
                let _ = write!(
                    io::stderr().lock(),
                    "\r\x1b[2K{} {state} ({})",
                    FRAMES[self.frame],
                    format_elapsed(self.started.elapsed())
                );
                let _ = io::stderr().flush();
            }
        }
        state.clone_into(&mut self.last);
    }

    /// Turns the spinner on the last state (nothing in plain lines, or after a clear).
    pub(crate) fn redraw(&mut self) {
        if self.mode == ProgressMode::Spinner && !self.last.is_empty() {
            let last = std::mem::take(&mut self.last);
            self.update(&last);
        }
    }

    /// How often [`Progress::redraw`] should be called to animate.
    pub(crate) fn tick(&self) -> Duration {
        if self.mode == ProgressMode::Spinner {
            Duration::from_millis(120)
        } else {
            Duration::from_millis(500)
        }
    }

    /// Ends the report with a final line.
    pub(crate) fn finish(&mut self, line: &str) {
        match self.mode {
            ProgressMode::Silent => {}
            ProgressMode::Lines => {
                let _ = writeln!(
                    io::stderr().lock(),
                    "  {line} ({})",
                    format_elapsed(self.started.elapsed())
                );
            }
            ProgressMode::Spinner => {
                let _ = writeln!(
                    io::stderr().lock(),
                    "\r\x1b[2K✓ {line} ({})",
                    format_elapsed(self.started.elapsed())
                );
            }
        }
    }

    /// Clears the spinner line (before an error is printed); it stays off until the next
    /// update.
    pub(crate) fn clear(&mut self) {
        if self.mode == ProgressMode::Spinner {
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
        }
        self.last.clear();
    }
}

/// `0.4s`, `12.3s`, `4m05s`.
pub(crate) fn format_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = elapsed.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// A plain text table: columns padded to their widest cell, two spaces apart.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.trim_end().to_owned()
    };
    let mut lines = vec![line(headers.to_vec())];
    for row in rows {
        lines.push(line(row.iter().map(String::as_str).collect()));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let text = table(
            &["NAME", "ID"],
            &[
                vec!["a".into(), "1".into()],
                vec!["longer-name".into(), "22".into()],
            ],
        );
        assert_eq!(text, "NAME         ID\na            1\nlonger-name  22");
    }

    #[test]
    fn elapsed_is_short() {
        assert_eq!(format_elapsed(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_elapsed(Duration::from_secs(245)), "4m05s");
    }
}
