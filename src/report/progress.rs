//! The one progress display: a bar of specs for `run`, of interleavings
//! for `explore`, and a spinner for a server fetch (`--postgres`).  Shown
//! on stderr only when it is a terminal; lines printed meanwhile go
//! through `suspend` or `println` so that it never tears them.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on a terminal's stderr.
pub(crate) struct Progress(ProgressBar);

impl Progress {
    fn new(len: u64, template: &str, prefix: Option<String>) -> Option<Self> {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return None;
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        if let Some(p) = prefix {
            pb.set_prefix(p);
        }
        Some(Progress(pb))
    }

    /// `run`: `total` spec runs, the last one finished named.
    pub(crate) fn specs(total: u64) -> Option<Self> {
        Self::new(
            total,
            "{bar:30} {pos}/{len} specs  {elapsed_precise}  {msg}",
            None,
        )
    }

    /// `explore`: the interleavings of spec `name`, as many as are known.
    pub(crate) fn interleavings(name: &str) -> Option<Self> {
        Self::new(
            0,
            "{prefix} [{bar:30}] {pos}/{len} interleavings, {per_sec}, ETA {eta}",
            Some(name.to_string()),
        )
    }

    /// `--postgres`: a spinner with the fetch's current step and its time.
    pub(crate) fn fetch() -> Option<Self> {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return None;
        }
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("isospec: {spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(Progress(pb))
    }

    /// A line above the display, which then shows `message`.
    pub(crate) fn println(&self, line: String, message: String) {
        self.0.println(line);
        self.0.set_message(message);
    }

    /// One more done, `message` naming it.
    pub(crate) fn inc(&self, message: &str) {
        self.0.inc(1);
        self.0.set_message(message.to_string());
    }

    /// `done` of `planned` (when known).
    pub(crate) fn set(&self, done: u64, planned: Option<u128>) {
        if let Some(p) = planned {
            self.0.set_length(u64::try_from(p).unwrap_or(u64::MAX));
        }
        self.0.set_position(done);
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }

    pub(crate) fn finish(self) {
        self.0.finish_and_clear();
    }
}
