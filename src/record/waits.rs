//! Which recorded statements wait for another recorded session, asked of
//! the server with run's own wait detector on a control connection: every
//! few milliseconds while something is in flight, and right before a
//! statement is forwarded (the statement that ends a wait is then seen
//! after the wait was).

use super::trace::Log;
use crate::pgwire::Conn;
use crate::wait::{Detector, Probe};
use std::sync::Mutex;

pub struct Waits {
    control: Conn,
    probe: Probe,
    /// The session pids the detector's statements were prepared for.
    prepared_for: Vec<i32>,
    detector: Option<Detector>,
}

impl Waits {
    pub fn new(control: Conn, probe: Probe) -> Waits {
        Waits {
            control,
            probe,
            prepared_for: Vec::new(),
            detector: None,
        }
    }

    pub fn into_control(self) -> Conn {
        self.control
    }

    /// Marks the statements in flight whose backends wait for another
    /// recorded session.
    pub async fn check(&mut self, log: &Mutex<Log>) {
        let (ids, pids, all, epoch) = {
            let log = log.lock().unwrap();
            let mut seen = std::collections::HashSet::new();
            let (mut ids, mut pids) = (Vec::new(), Vec::new());
            for (i, pid) in log.in_flight() {
                // A session's first statement in flight is the one running.
                if seen.insert(log.stmts[i].session) && pid != 0 {
                    ids.push(i);
                    pids.push(pid);
                }
            }
            let all: Vec<i32> = log
                .sessions
                .iter()
                .filter(|s| !s.gone)
                .map(|s| s.pid)
                .filter(|&p| p != 0)
                .collect();
            (ids, pids, all, log.epoch())
        };
        if ids.is_empty() || all.len() < 2 {
            return;
        }
        if all != self.prepared_for {
            let _ = self.control.exec("DEALLOCATE ALL").await;
            self.detector = Detector::prepare(&mut self.control, &self.probe, &all, false)
                .await
                .ok();
            self.prepared_for = all;
        }
        let Some(d) = &self.detector else { return };
        if let Ok(blocked) = d.are_blocked(&mut self.control, &pids).await {
            let mut log = log.lock().unwrap();
            for (i, b) in ids.iter().zip(blocked) {
                if b {
                    log.waits(*i, epoch);
                }
            }
        }
    }
}
