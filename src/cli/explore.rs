//! `isospec explore`: command-line arguments and the glue around
//! `explore::walk` (server, database, progress bar, Ctrl-C, output files).

use crate::executor::ExecOptions;
use crate::explore::{report, walk};
use crate::pgwire::{Conn, PgResult};
use crate::spec;
use crate::wait::DetectorKind;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Spec files whose interleavings to explore.
    #[arg(required = true)]
    pub specs: Vec<PathBuf>,
    /// Run at most N interleavings: every one when the space has at most N,
    /// else a uniform random sample of N [default: 10000].
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Start no interleaving after this long (30s, 5m, 1h): the classes
    /// found so far are reported.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub budget: Option<Duration>,
    /// Seed of the random sample (default: from the clock; printed, and
    /// `--seed S --max N` reproduces a sampled run exactly).
    #[arg(long)]
    pub seed: Option<u64>,
    /// SQL run after each interleaving's steps (before the teardown) whose
    /// rows are part of its outcome; also `# isospec: outcome SQL` in the spec.
    #[arg(long, value_name = "SQL")]
    pub outcome: Vec<String>,
    /// SQL that must return true after every interleaving; a violation
    /// makes the exit code 1.  Also `# isospec: invariant SQL` in the spec.
    #[arg(long, value_name = "SQL")]
    pub invariant: Vec<String>,
    /// Append each class's representative permutation line to the spec,
    /// with a comment naming its outcome (then `isospec run --accept` pins them).
    #[arg(long)]
    pub write: bool,
    /// Write the classes as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Database to explore in (created when missing); with -j, lane K > 1
    /// uses NAME_K.
    #[arg(long, value_name = "NAME", default_value = "isolation_regression")]
    pub dbname: String,
    /// Explore in N databases at once (the classes do not depend on N).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    #[command(flatten)]
    pub server: super::ServerArgs,
    /// Step timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// How to detect a blocked step.
    #[arg(long, value_enum, default_value_t = DetectorKind::Function, env = "ISOSPEC_WAIT_DETECTOR")]
    pub wait_detector: DetectorKind,
}

/// "30s", "5m", "1h", "250ms" or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration such as 30s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit \"{unit}\" in \"{s}\" (ms, s, m or h)"
            ))
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Creates the database unless it exists.
async fn ensure_database(params: &crate::pgwire::ConnParams, db: &str) -> Result<(), String> {
    let mut admin = params.clone();
    admin.dbname = "postgres".into();
    let mut c = Conn::connect(&admin)
        .await
        .map_err(|e| format!("could not connect to {}: {e}", admin.describe()))?;
    let quoted = crate::executor::quote_literal(db);
    let exists = matches!(
        c.exec(&format!("SELECT 1 FROM pg_catalog.pg_database WHERE datname = {quoted}")).await,
        Ok(Some(PgResult::Tuples(t))) if !t.rows.is_empty()
    );
    if !exists {
        let ident = format!("\"{}\"", db.replace('"', "\"\""));
        // As `isospec run` creates it: pg_regress's settings, and the
        // marker that lets a later run drop it.
        for sql in [
            format!("CREATE DATABASE {ident} TEMPLATE template0"),
            crate::run::database::database_settings(&ident),
        ] {
            match c.exec(&sql).await {
                Ok(Some(PgResult::Command(_))) => {}
                _ => {
                    return Err(format!(
                        "could not create database {db}: {}",
                        c.error_message().trim_end()
                    ))
                }
            }
        }
    }
    c.close().await;
    Ok(())
}

/// `isospec explore`: 0 when every invariant held, 1 when one was
/// violated, 2 on errors.
pub fn main(a: ExploreArgs) -> i32 {
    match run(a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("isospec: error: {e}");
            2
        }
    }
}

fn run(a: ExploreArgs) -> Result<i32, String> {
    let params = a.server.params()?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    // Installed before any work: a signal that comes early is not lost.
    let mut signals = {
        use tokio::signal::unix::{signal, SignalKind};
        let _in_runtime = rt.enter();
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        match (int, term) {
            (Ok(i), Ok(t)) => (i, t),
            _ => return Err("could not install the SIGINT/SIGTERM handlers".into()),
        }
    };
    if a.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let mut lanes = Vec::new();
    for k in 1..=a.jobs {
        let db = if k == 1 {
            a.dbname.clone()
        } else {
            format!("{}_{k}", a.dbname)
        };
        rt.block_on(ensure_database(&params, &db))?;
        let mut p = params.clone();
        p.dbname = db;
        lanes.push(p);
    }
    let (int_tx, int_rx) = tokio::sync::watch::channel(false);
    let exec = ExecOptions {
        step_timeout: Duration::from_secs(a.timeout.max(1)),
        detector: a.wait_detector,
        interrupt: Some(int_rx),
        ..ExecOptions::default()
    };
    let mut code = 0;
    let mut all_json = Vec::new();
    for path in &a.specs {
        let name = path.display().to_string();
        let checked = spec::load(path).map_err(|e| e.to_string())?;
        // The command line's queries first, then the spec's own.
        let both = |cli: &[String], spec: &[String]| -> Vec<String> { [cli, spec].concat() };
        let outcomes = both(&a.outcome, &checked.spec.options.outcomes);
        let invariants = both(&a.invariant, &checked.spec.options.invariants);
        let plan = walk::Plan {
            max: a.max,
            budget: a.budget,
            seed,
            outcomes,
            invariants: invariants.clone(),
        };
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} interleavings, {per_sec}, ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(name.clone());
            b
        });
        let exploration = rt.block_on(async {
            let work = walk::explore(&checked, &lanes, &exec, &plan, |done, planned| {
                if let Some(b) = &bar {
                    if let Some(p) = planned {
                        b.set_length(u64::try_from(p).unwrap_or(u64::MAX));
                    }
                    b.set_position(done);
                }
            });
            tokio::pin!(work);
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = signals.0.recv() => { let _ = int_tx.send(true); }
                    _ = signals.1.recv() => { let _ = int_tx.send(true); }
                }
            }
        });
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let exploration = exploration.map_err(|e| format!("{name}: {e}"))?;
        print!(
            "{}",
            report::text(&name, &checked, &exploration, seed, &invariants)
        );
        if exploration
            .classes
            .list()
            .iter()
            .any(|c| !c.outcome.violated.is_empty())
        {
            code = 1;
        }
        if !exploration.errors.is_empty() && code == 0 {
            code = 2;
        }
        if a.write {
            let existing = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
            let more = report::appendix(&checked, &exploration, &existing);
            if !more.is_empty() {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{name}: {e}"))?;
                f.write_all(more.as_bytes())
                    .map_err(|e| format!("{name}: {e}"))?;
                println!(
                    "wrote {} permutation lines to {name}",
                    more.matches("\npermutation").count()
                );
            }
        }
        all_json.push(report::json(
            &name,
            &checked,
            &exploration,
            seed,
            &invariants,
        ));
        if exploration.cut_short && *int_tx.borrow() {
            println!("interrupted: the classes above are those found so far");
            code = code.max(130);
            break;
        }
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "specs": all_json }))
            .expect("JSON values serialize");
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("x").is_err());
    }
}
