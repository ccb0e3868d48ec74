//! `isospec init [DIR]` and `isospec config`: starting a project and
//! showing its settings.
//!
//! Why it exists: the first thing a new user needs is a project that runs
//! (a spec, its reviewed transcript, what to ignore, where settings go),
//! not a page of reading; and once settings can come from three places,
//! a way to see which one won.

use crate::report::console;
use crate::settings::{Settings, Source};
use clap::Args;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's directory (made if missing; default: .).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The example spec: two sessions, one waits for the other's row lock.
const EXAMPLE_SPEC: &str = "\
# An example: two sessions change the same row, and the second waits for
# the first.  `isospec run` checks that the transcript below stays exactly
# as reviewed in expected/counter.out; `isospec explore specs/counter.spec`
# runs every other order of these steps too.
# isospec: outcome SELECT v FROM t

setup    { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
teardown { DROP TABLE t; }

session s1
setup       { BEGIN; }
step s1upd  { UPDATE t SET v = v + 1 WHERE id = 1; }
step s1c    { COMMIT; }

session s2
step s2upd  { UPDATE t SET v = v * 10 WHERE id = 1 RETURNING v; }

permutation s1upd s2upd s1c
";

/// Its transcript, as isolationtester prints it (a test runs `isospec run`
/// in a project `init` made and requires it to pass).
const EXAMPLE_OUT: &str = "\
Parsed test spec with 2 sessions

starting permutation: s1upd s2upd s1c
step s1upd: UPDATE t SET v = v + 1 WHERE id = 1;
step s2upd: UPDATE t SET v = v * 10 WHERE id = 1 RETURNING v; <waiting ...>
step s1c: COMMIT;
step s2upd: <... completed>
 v
--
10
(1 row)

";

/// What runs write, for .gitignore.
const IGNORED: &[&str] = &[
    "/results/",
    "/regression.diffs",
    "/regression.out",
    "/tmp_check/",
];

const TABLE: &str = "\
[tool.isospec]
# Where `isospec run` finds specs when given none (expected/ is beside them).
specs = [\"specs\"]
# Server binaries for the throwaway server, when none is installed:
# postgres = \"18\"
# Or a running server instead of a throwaway one:
# conninfo = \"host=localhost dbname=postgres\"
# Specs run at once, each in its own database:
# jobs = 2
";

/// `isospec init`: the project's files, never overwriting one; what was
/// made is said on stdout.
pub fn main(a: InitArgs) -> anyhow::Result<crate::exit::Exit> {
    use anyhow::Context;
    let dir = a.dir.unwrap_or_else(|| PathBuf::from("."));
    fs::create_dir_all(dir.join("specs"))
        .and_then(|()| fs::create_dir_all(dir.join("expected")))
        .with_context(|| format!("could not create {}", dir.display()))?;
    let mut said = Vec::new();
    for (rel, text) in [
        ("specs/counter.spec", EXAMPLE_SPEC),
        ("expected/counter.out", EXAMPLE_OUT),
    ] {
        let path = dir.join(rel);
        if path.exists() {
            said.push(format!("kept     {} (it exists)", path.display()));
            continue;
        }
        fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))?;
        said.push(format!("created  {}", path.display()));
    }
    said.push(gitignore(&dir)?);
    said.push(settings_table(&dir)?);
    for line in said {
        console::outln(line);
    }
    let cd = if dir == Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", dir.display())
    };
    console::outln(format_args!("\nnext: {cd}isospec run"));
    Ok(crate::exit::Exit::Success)
}

/// Adds the lines of `IGNORED` that .gitignore lacks.
fn gitignore(dir: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let path = dir.join(".gitignore");
    let old = fs::read_to_string(&path).unwrap_or_default();
    let have: Vec<&str> = old.lines().map(str::trim).collect();
    let missing: Vec<&str> = IGNORED
        .iter()
        .copied()
        .filter(|l| !have.contains(l))
        .collect();
    if missing.is_empty() {
        return Ok(format!(
            "kept     {} (it ignores what runs write)",
            path.display()
        ));
    }
    let mut add = String::new();
    if !old.is_empty() && !old.ends_with('\n') {
        add.push('\n');
    }
    add.push_str("# written by isospec runs\n");
    for l in &missing {
        add.push_str(l);
        add.push('\n');
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(add.as_bytes()))
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(format!(
        "{}  {} ({})",
        if old.is_empty() { "created" } else { "updated" },
        path.display(),
        missing.join(" ")
    ))
}

/// The `[tool.isospec]` table: in pyproject.toml when there is one, else
/// isospec.toml.
fn settings_table(dir: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let py = dir.join("pyproject.toml");
    let own = dir.join("isospec.toml");
    if own.exists() {
        return Ok(format!("kept     {}", own.display()));
    }
    if py.is_file() {
        let text =
            fs::read_to_string(&py).with_context(|| format!("could not read {}", py.display()))?;
        let settings = crate::settings::load(&py, &text, true)?;
        if settings.file.is_some() {
            return Ok(format!("kept     {} (it has [tool.isospec])", py.display()));
        }
        let sep = if text.ends_with("\n\n") || text.is_empty() {
            ""
        } else if text.ends_with('\n') {
            "\n"
        } else {
            "\n\n"
        };
        fs::OpenOptions::new()
            .append(true)
            .open(&py)
            .and_then(|mut f| f.write_all(format!("{sep}{TABLE}").as_bytes()))
            .with_context(|| format!("could not write {}", py.display()))?;
        return Ok(format!("updated  {} ([tool.isospec])", py.display()));
    }
    let body = TABLE.replacen(
        "[tool.isospec]\n",
        "# isospec's settings (or [tool.isospec] in pyproject.toml)\n",
        1,
    );
    fs::write(&own, body).with_context(|| format!("could not write {}", own.display()))?;
    Ok(format!("created  {}", own.display()))
}

/// `isospec config`: each setting, its effective value and its source.
pub fn print_config(settings: &Settings, env: &crate::environment::Environment, json: bool) {
    if json {
        let rows: Vec<serde_json::Value> = settings
            .effective(env)
            .into_iter()
            .map(|r| {
                let source = match &r.source {
                    Source::Environment(_) => "environment",
                    Source::File(_) => "file",
                    Source::Default => "default",
                };
                let var = match &r.source {
                    Source::Environment(v) => Some(*v),
                    _ => None,
                };
                serde_json::json!({"key": r.key, "value": r.value, "source": source, "variable": var})
            })
            .collect();
        let doc = serde_json::json!({
            "file": settings.file.as_ref().map(|(p, _)| p.display().to_string()),
            "table": settings.file.as_ref().map(|(_, t)| *t),
            "specs": settings.specs.as_ref().map(|v| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()),
            "settings": rows,
        });
        console::outln(doc);
        return;
    }
    match &settings.file {
        Some((file, table)) => console::outln(format_args!("# settings: {table} in {}", file.display())),
        None => console::outln(format_args!(
            "# settings: none found (no isospec.toml, and no pyproject.toml with [tool.isospec], here or above)"
        )),
    }
    console::outln(format_args!(
        "# flags given to a command beat every value below"
    ));
    let rows = settings.effective(env);
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for r in rows {
        let from = match &r.source {
            Source::Environment(var) => format!("environment: {var}"),
            Source::File(p) => format!("file: {}", p.display()),
            Source::Default => "default".to_string(),
        };
        console::outln(format_args!("{:width$} = {}  # {from}", r.key, r.value));
    }
}
