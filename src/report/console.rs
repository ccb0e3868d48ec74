//! What the commands other than `run` and `explore` print (`list`,
//! `check`, `accept`, `config`, `init`, `postgres`, the drop-in's and
//! record's notes): one place that writes to the terminal, so that only
//! `report/` prints, and so that a reader that goes away (`isospec list |
//! head`) ends the printing quietly instead of panicking the command half
//! way, as `println!` does on a closed pipe.  The command goes on to its
//! end (a temporary instance is still stopped) and exits as it would have.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout would not take a write: later output is dropped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

fn write_stdout(text: &str) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    if std::io::stdout().lock().write_all(text.as_bytes()).is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// `text` on stdout, as it is.
pub fn out(text: impl Display) {
    write_stdout(&text.to_string());
}

/// `text` and a newline on stdout: a command's result.
pub fn outln(text: impl Display) {
    write_stdout(&format!("{text}\n"));
}

/// `text` and a newline on stderr: a note or an error, never the result.
pub fn note(text: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Flushes stdout (before a command's exit code is returned; a closed
/// pipe is ignored, as above).
pub fn flush() {
    if std::io::stdout().lock().flush().is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// `text` and a newline on stdout, flushed at once: whether the reader
/// took it (`temp-instance`'s one line, which a program waits for).
pub fn outln_flushed(text: impl Display) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}

/// Whether stdout is a terminal (for `--color auto`).
pub fn stdout_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}
