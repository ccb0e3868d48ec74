//! The step timeout, chosen the way the isolationtester of the server's
//! major version chooses it, so that a step that never ends is cancelled
//! at the same moment (and with the same line in the transcript) as under
//! PostgreSQL's own runner:
//!
//! - PostgreSQL ≤ 16: `PGISOLATIONTIMEOUT` seconds, default 300;
//! - PostgreSQL ≥ 17: twice `PG_TEST_TIMEOUT_DEFAULT` seconds, default 360.
//!
//! Each version's isolationtester reads only its own variable; so does
//! isospec, and it says so when the other one is set.  `--timeout`
//! overrides both.

use std::time::Duration;

/// The timeout variables as found in the environment (unset or empty: None).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeoutEnv {
    /// `PGISOLATIONTIMEOUT`, read by isolationtester ≤ 16.
    pub pgisolationtimeout: Option<String>,
    /// `PG_TEST_TIMEOUT_DEFAULT`, read by isolationtester ≥ 17.
    pub pg_test_timeout_default: Option<String>,
}

impl TimeoutEnv {
    /// The timeout variables of `env`.
    pub fn of(env: &crate::environment::Environment) -> Self {
        TimeoutEnv {
            pgisolationtimeout: env.string("PGISOLATIONTIMEOUT"),
            pg_test_timeout_default: env.string("PG_TEST_TIMEOUT_DEFAULT"),
        }
    }
}

/// The step timeout and, when a variable is ignored, a note saying so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTimeout {
    pub timeout: Duration,
    pub note: Option<String>,
}

/// A number of seconds as isolationtester reads it (atoi; negative: 0).
fn secs(v: &str) -> u64 {
    crate::c_atoi::atoi(v).max(0) as u64
}

/// The step timeout for a server of major version `major` (e.g. 15, 17):
/// `explicit` (`--timeout`) when given, else as that version's
/// isolationtester reads the environment.
pub fn step_timeout(major: u32, explicit: Option<Duration>, env: &TimeoutEnv) -> StepTimeout {
    if let Some(t) = explicit {
        return StepTimeout {
            timeout: t,
            note: None,
        };
    }
    let (used, ignored, timeout) = if major >= 17 {
        let t = env
            .pg_test_timeout_default
            .as_deref()
            .map_or(360, |v| secs(v).saturating_mul(2));
        (
            "PG_TEST_TIMEOUT_DEFAULT",
            env.pgisolationtimeout
                .as_ref()
                .map(|_| "PGISOLATIONTIMEOUT"),
            t,
        )
    } else {
        let t = env.pgisolationtimeout.as_deref().map_or(300, secs);
        (
            "PGISOLATIONTIMEOUT",
            env.pg_test_timeout_default
                .as_ref()
                .map(|_| "PG_TEST_TIMEOUT_DEFAULT"),
            t,
        )
    };
    StepTimeout {
        timeout: Duration::from_secs(timeout),
        note: ignored.map(|var| {
            format!(
                "{var} is ignored with a PostgreSQL {major} server, as isolationtester {major} ignores it \
(it reads {used}); step timeout {timeout} s (--timeout SECS to choose)"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(iso: Option<&str>, def: Option<&str>) -> TimeoutEnv {
        TimeoutEnv {
            pgisolationtimeout: iso.map(String::from),
            pg_test_timeout_default: def.map(String::from),
        }
    }

    fn secs(major: u32, e: &TimeoutEnv) -> u64 {
        step_timeout(major, None, e).timeout.as_secs()
    }

    #[test]
    fn defaults_follow_the_server_version() {
        let none = env(None, None);
        for major in [12, 13, 14, 15, 16] {
            assert_eq!(secs(major, &none), 300, "PostgreSQL {major}");
        }
        for major in [17, 18, 19] {
            assert_eq!(secs(major, &none), 360, "PostgreSQL {major}");
        }
        assert_eq!(step_timeout(15, None, &none).note, None);
        assert_eq!(step_timeout(17, None, &none).note, None);
    }

    #[test]
    fn each_version_reads_only_its_own_variable() {
        assert_eq!(secs(15, &env(Some("2"), None)), 2);
        assert_eq!(secs(17, &env(None, Some("1"))), 2);
        // The other version's variable is ignored, and a note says so.
        let t = step_timeout(15, None, &env(None, Some("1")));
        assert_eq!(t.timeout.as_secs(), 300);
        assert!(t
            .note
            .unwrap()
            .starts_with("PG_TEST_TIMEOUT_DEFAULT is ignored with a PostgreSQL 15 server"));
        let t = step_timeout(17, None, &env(Some("2"), None));
        assert_eq!(t.timeout.as_secs(), 360);
        assert!(t
            .note
            .unwrap()
            .starts_with("PGISOLATIONTIMEOUT is ignored with a PostgreSQL 17 server"));
        assert_eq!(secs(16, &env(Some("7"), Some("100"))), 7);
        assert_eq!(secs(18, &env(Some("7"), Some("100"))), 200);
    }

    #[test]
    fn explicit_timeout_overrides_both() {
        let e = env(Some("2"), Some("1"));
        let t = step_timeout(17, Some(Duration::from_secs(9)), &e);
        assert_eq!(t.timeout.as_secs(), 9);
        assert_eq!(t.note, None);
    }

    #[test]
    fn values_are_read_like_atoi() {
        assert_eq!(secs(15, &env(Some(" 12abc"), None)), 12);
        assert_eq!(secs(15, &env(Some("abc"), None)), 0);
        assert_eq!(secs(15, &env(Some("-5"), None)), 0);
        assert_eq!(secs(17, &env(None, Some("+4"))), 8);
    }
}
