//! isospec's exit codes, named once: every command returns one of these,
//! and docs/running.md#exit-codes lists them for the scripts and CI jobs
//! that read them.

/// How a command ended, as the process's exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// 0: every spec passed (`explore`: every invariant held).
    Success,
    /// 1: a spec did not pass: its transcript differed, an invariant was
    /// violated, it was new, flaky, or failed at run time (`explore`: an
    /// invariant was violated; `pg_isolation_regress`: any failure).
    Failed,
    /// 2: nothing could be judged: bad usage, a spec that does not parse
    /// or check, no server, a setup that failed (`explore`: an
    /// interleaving that could not run).
    Error,
    /// 128 + the signal: interrupted by SIGINT (130) or SIGTERM (143).
    Signal(i32),
    /// `record`: the recorded command's own exit status (not 0).
    Command(i32),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Error => 2,
            Exit::Signal(sig) => 128 + sig,
            Exit::Command(code) => code,
        }
    }

    /// The graver of two: a signal over an error over a failure over
    /// success.
    pub fn worst(self, other: Exit) -> Exit {
        self.max(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_their_order() {
        assert_eq!(
            [
                Exit::Success,
                Exit::Failed,
                Exit::Error,
                Exit::Signal(2),
                Exit::Signal(15)
            ]
            .map(Exit::code),
            [0, 1, 2, 130, 143]
        );
        assert_eq!(Exit::Failed.worst(Exit::Success), Exit::Failed);
        assert_eq!(Exit::Failed.worst(Exit::Error), Exit::Error);
        assert_eq!(Exit::Signal(2).worst(Exit::Error), Exit::Signal(2));
    }
}
