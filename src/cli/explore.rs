//! `isospec explore`'s command line: its flags, resolved against the
//! environment snapshot into an `ExploreRequest` (the server and wait
//! flag groups are `run`'s own, from `flags`).  It prints nothing: the
//! driver (`explore::driver`) runs on a thread of its own and emits
//! events, and `report::explore` shows them.

use crate::environment::Environment;
use crate::exit::Exit;
use crate::explore::driver::{self, ExploreRequest, Preemptions};
use crate::report::explore::{ExploreReportOptions, ExploreReporter};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Spec files whose interleavings to explore.
    #[arg(required_unless_present = "merge")]
    pub specs: Vec<PathBuf>,
    /// Only interleavings with at most K preemptions (switches away from
    /// a session that still had a step to run), every one of them, in the
    /// stable order; `auto` raises K from 0 while --budget and --max allow.
    #[arg(long, value_name = "K|auto", value_parser = parse_preemptions)]
    pub preemptions: Option<Preemptions>,
    /// Run one interleaving per class of interleavings that differ only by
    /// where commuting steps run (BEGIN, SET, … and steps named in
    /// `# isospec: commutes STEP…`), counted for the whole class.
    #[arg(long, conflicts_with = "preemptions")]
    pub reduce: bool,
    /// Shrink the representative of each class with a violation, a failure
    /// or a wait: drop the sessions and steps whose removal keeps its
    /// outcome (the shorter line is printed, and is what --write adds).
    #[arg(long)]
    pub shrink: bool,
    /// Check every class against the serial orders of its committed
    /// transactions, and name the ones no serial order produces (isolation
    /// anomalies, found with no invariant written); exit code 1 when one
    /// is found.  Also `# isospec: anomalies` in the spec.
    #[arg(long)]
    pub anomalies: bool,
    /// Run only part K of N of the interleavings (every N-th drawn, from
    /// the K-th), for N machines; --merge combines their --json files.
    #[arg(long, value_name = "K/N", value_parser = super::parse_partition)]
    pub partition: Option<(usize, usize)>,
    /// Combine the --json files of the parts of a partitioned exploration
    /// into what one exploration of the whole reports (no server needed).
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["write", "html", "shrink"])]
    pub merge: Vec<PathBuf>,
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
    /// Write a self-contained HTML report to FILE: each class with its
    /// size, outcome and the timeline of its representative interleaving
    /// (run once more, recorded).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Database to explore in, created from template0 with pg_regress's
    /// settings as `isospec run` creates it (dropped first only if isospec
    /// made it); with -j, lane K > 1 uses NAME_K (NAME shortened to keep
    /// it within PostgreSQL's 63 bytes).
    #[arg(long, value_name = "NAME", default_value = "isolation_regression")]
    pub dbname: String,
    /// Explore in the existing database(s) as they are.
    #[arg(long)]
    pub use_existing: bool,
    /// Drop the database(s) even if isospec did not create them.
    #[arg(long)]
    pub drop_existing: bool,
    /// Explore in N databases at once (the classes do not depend on N).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    #[command(flatten)]
    pub server: super::ServerArgs,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    #[command(flatten)]
    pub wait: super::WaitArgs,
}

/// `--preemptions`: a number, or `auto`.
fn parse_preemptions(s: &str) -> Result<Preemptions, String> {
    if s == "auto" {
        return Ok(Preemptions::Rising);
    }
    s.parse()
        .map(Preemptions::AtMost)
        .map_err(|_| format!("expected a number of preemptions or auto, not \"{s}\""))
}

/// `--budget`: "30s", "5m", "1h", "250ms" or plain seconds.
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

/// `isospec explore`: Success when every invariant held, Failed when one
/// was violated, Error (with the error) when it could not explore.
pub fn main(a: ExploreArgs, env: &Environment) -> anyhow::Result<Exit> {
    let report = ExploreReportOptions {
        json: a.json.clone(),
        html: a.html.clone(),
        write: a.write,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let work = if a.merge.is_empty() {
        let req = request(a, env).map_err(anyhow::Error::msg)?;
        std::thread::spawn(move || driver::explore(req, tx))
    } else {
        let files = a.merge;
        std::thread::spawn(move || driver::merge(&files, tx))
    };
    let mut reporter = ExploreReporter::new(report);
    for ev in rx {
        reporter.handle(ev);
    }
    let exit = work
        .join()
        .map_err(|_| anyhow::anyhow!("the exploration's thread panicked"))?;
    // Files only for an exploration that ran (to its end or to a signal):
    // an error leaves an earlier --json or --html file as it was.
    match exit {
        Ok(exit) => {
            reporter.finish()?;
            Ok(exit)
        }
        Err(e) => {
            reporter.abandon();
            Err(e.into())
        }
    }
}

/// The flags, resolved.
fn request(a: ExploreArgs, env: &Environment) -> Result<ExploreRequest, String> {
    let server = a.instance.choice(&a.server, env)?;
    let waiting = a.wait.resolve(env)?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    Ok(ExploreRequest {
        specs: a.specs,
        server,
        dbname: a.dbname,
        use_existing: a.use_existing,
        drop_existing: a.drop_existing,
        jobs: a.jobs,
        detector: waiting.detector,
        wait_function: waiting.wait_function,
        wait_query: waiting.wait_query,
        timeout: waiting.timeout,
        timeout_env: crate::timeouts::TimeoutEnv::of(env),
        grace: waiting.grace,
        preemptions: a.preemptions,
        reduce: a.reduce,
        max: a.max,
        budget: a.budget,
        seed,
        partition: a.partition,
        outcomes: a.outcome,
        invariants: a.invariant,
        shrink: a.shrink,
        anomalies: a.anomalies,
        trace: a.html.is_some(),
    })
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
