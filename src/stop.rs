//! Stopping on SIGINT/SIGTERM, the same way for `run` and `explore`.
//!
//! CI runners and Kubernetes send one SIGTERM and kill a few seconds later,
//! so the first signal starts a grace period (default 10 s, `--grace`):
//! nothing new starts, running steps are cancelled, the sessions'
//! transactions are ended (so a teardown never waits for a lock a session
//! holds), and the teardowns run, each bounded by the grace's deadline; a
//! temporary instance is then stopped within what is left.  The second
//! signal, or the end of the grace, stops at once.
//!
//! The deadline travels to the executors as a `StopSignal` (a watch
//! channel: `None` while running, the cleanup deadline once stopping).

use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The grace period when none is given.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Seen by the executors: whether to stop, and by when their cleanup must
/// be done.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<Option<Instant>>);

impl StopSignal {
    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// When the cleanup (cancels, rollbacks, teardowns) must be done.
    pub fn deadline(&self) -> Option<Instant> {
        *self.0.borrow()
    }

    /// A signal and the sender that raises it (tests, and callers that
    /// stop for reasons of their own).
    pub fn channel() -> (watch::Sender<Option<Instant>>, StopSignal) {
        let (tx, rx) = watch::channel(None);
        (tx, StopSignal(rx))
    }
}

/// How the work ended under supervision.
pub struct Supervised<T> {
    /// The work's own result; None when it was stopped at once.
    pub output: Option<T>,
    /// The signal caught (2 or 15), if any.
    pub signal: Option<i32>,
    /// When the grace ends, if a signal came: what is left is for the
    /// temporary instance's shutdown.
    pub hard_deadline: Option<Instant>,
}

/// SIGINT and SIGTERM, caught for the whole run (installed before any work
/// so that an early signal is not lost).
pub struct Stopper {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    tx: watch::Sender<Option<Instant>>,
    rx: StopSignal,
    grace: Duration,
}

impl Stopper {
    /// Must be called inside a tokio runtime.
    pub fn install(grace: Duration) -> std::io::Result<Stopper> {
        use tokio::signal::unix::{signal, SignalKind};
        let (tx, rx) = StopSignal::channel();
        Ok(Stopper {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            tx,
            rx,
            grace,
        })
    }

    pub fn signal(&self) -> StopSignal {
        self.rx.clone()
    }

    /// Runs `work` to its end.  On a first signal, tells the work to stop
    /// (with the cleanup deadline) and waits for it until the grace ends;
    /// on a second signal, or at the end of the grace, returns at once
    /// (dropping the work, and with it its connections).  `note` tells the
    /// user what happens.
    pub async fn supervise<F: Future>(
        &mut self,
        work: F,
        note: impl Fn(String),
    ) -> Supervised<F::Output> {
        tokio::pin!(work);
        let sig = tokio::select! {
            r = &mut work => return Supervised { output: Some(r), signal: None, hard_deadline: None },
            _ = self.int.recv() => 2,
            _ = self.term.recv() => 15,
        };
        let start = Instant::now();
        let (cleanup, hard) = deadlines(start, self.grace);
        let _ = self.tx.send(Some(cleanup));
        note(format!(
            "interrupted by signal {sig}: nothing more starts; canceling the running steps, ending the sessions' transactions and running the teardowns within the grace period of {} s (interrupt again to stop at once)",
            self.grace.as_secs_f64()
        ));
        let output = tokio::select! {
            r = &mut work => Some(r),
            _ = self.int.recv() => {
                note("interrupted again: stopping at once".into());
                None
            }
            _ = self.term.recv() => {
                note("interrupted again: stopping at once".into());
                None
            }
            _ = tokio::time::sleep_until(hard.into()) => {
                note(format!(
                    "the grace period of {} s ended before the running specs finished their cleanup: stopping at once",
                    self.grace.as_secs_f64()
                ));
                None
            }
        };
        Supervised {
            output,
            signal: Some(sig),
            hard_deadline: Some(start + self.grace),
        }
    }
}

/// The cleanup deadline (three quarters of the grace) and when waiting for
/// the work ends (seven eighths): the rest is for stopping a temporary
/// instance and reporting.
fn deadlines(start: Instant, grace: Duration) -> (Instant, Instant) {
    (start + grace * 3 / 4, start + grace * 7 / 8)
}

/// What is left until `deadline` (zero when past).
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cleanup_ends_before_the_grace() {
        let t = Instant::now();
        let (cleanup, hard) = deadlines(t, Duration::from_secs(10));
        assert_eq!(cleanup - t, Duration::from_millis(7500));
        assert_eq!(hard - t, Duration::from_millis(8750));
    }

    #[test]
    fn a_signal_carries_its_deadline() {
        let (tx, rx) = StopSignal::channel();
        assert!(!rx.requested());
        let d = Instant::now() + Duration::from_secs(1);
        tx.send(Some(d)).unwrap();
        assert!(rx.requested());
        assert_eq!(rx.deadline(), Some(d));
    }
}
