//! The one progress bar: specs for `run`, interleavings for `explore`.
//! Shown on stderr only when it is a terminal; lines printed meanwhile go
//! through `suspend` so that the bar never tears them.

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
