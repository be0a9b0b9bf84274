//! Raw mode and window size of the terminal on stdin.

use std::io::Stdin;

use rustix::termios::{self, Termios};

/// Restores the terminal's settings when dropped.
pub(super) struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub(super) fn enter(stdin: &Stdin) -> Result<RawMode, String> {
        let saved =
            termios::tcgetattr(stdin).map_err(|_| "inappropriate ioctl for device".to_owned())?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin, termios::OptionalActions::Now, &raw)
            .map_err(|e| e.to_string())?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), termios::OptionalActions::Now, &self.saved);
    }
}

/// (columns, rows) of the terminal on stdin; (0, 0) when unknown.
pub(super) fn size() -> (u16, u16) {
    termios::tcgetwinsize(std::io::stdin()).map_or((0, 0), |w| (w.ws_col, w.ws_row))
}
