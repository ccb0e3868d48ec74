//! `isospec explore`: command-line arguments and the glue around
//! `explore::walk`.  It stands on `run`'s footing: the same server options
//! and resolution (a temporary instance when no server is named), the step
//! timeout of the server version's isolationtester, the same database
//! preparation and session settings, and the same stop on SIGINT/SIGTERM
//! (`stop`); then its progress bar and output files.

use crate::environment::Environment;
use crate::executor::ExecOptions;
use crate::exit::Exit;
use crate::explore::{bound, report, walk};
use crate::outcome::RunEvent;
use crate::run::{self, DatabasePlan, Events, Footing};
use crate::spec;
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
    /// made it); with -j, lane K > 1 uses NAME_K.
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

/// "30s", "5m", "1h", "250ms" or plain seconds.
/// `--preemptions`: a bound, or rising from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preemptions {
    AtMost(usize),
    Rising,
}

fn parse_preemptions(s: &str) -> Result<Preemptions, String> {
    if s == "auto" {
        return Ok(Preemptions::Rising);
    }
    s.parse()
        .map(Preemptions::AtMost)
        .map_err(|_| format!("expected a number of preemptions or auto, not \"{s}\""))
}

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
/// was violated, Error on errors.
pub fn main(a: ExploreArgs, env: &Environment) -> Exit {
    match run(a, env) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("isospec: error: {e}");
            Exit::Error
        }
    }
}

fn run(a: ExploreArgs, env: &Environment) -> Result<Exit, String> {
    if !a.merge.is_empty() {
        return merge(&a);
    }
    if a.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let server = a
        .instance
        .choice(&a.server, std::path::PathBuf::from("tmp_check"), env)?;
    let waiting = a.wait.resolve(env)?;
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
    let mut stopper = {
        let _in_runtime = rt.enter();
        crate::stop::Stopper::install(waiting.grace)
            .map_err(|e| format!("could not install the SIGINT/SIGTERM handlers: {e}"))?
    };
    // What the run's set-up says: notes on stderr, as `isospec run` shows them.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let events = Events::new(tx);
    let printer = rt.spawn(async move {
        while let Some(e) = rx.recv().await {
            if let RunEvent::Note(n) = e {
                eprintln!("isospec: {n}");
            }
        }
    });
    let footing = rt.block_on(run::footing(
        &server,
        if a.use_existing {
            &a.dbname
        } else {
            "postgres"
        },
        waiting.timeout,
        &crate::timeouts::TimeoutEnv::of(env),
        &events,
    ));
    let footing = footing.map_err(|e| e.to_string())?;
    let result = explore_all(&a, &waiting, &rt, &mut stopper, &footing, &events, seed);
    let Footing { instance, .. } = footing;
    if let Some(mut inst) = instance {
        // Outside the runtime: stopping the server blocks.
        inst.stop();
    }
    drop(events);
    let _ = rt.block_on(printer);
    result
}

fn explore_all(
    a: &ExploreArgs,
    waiting: &super::flags::Waiting,
    rt: &tokio::runtime::Runtime,
    stopper: &mut crate::stop::Stopper,
    footing: &Footing,
    events: &Events,
    seed: u64,
) -> Result<Exit, String> {
    let params = &footing.params;
    let plan = DatabasePlan {
        use_existing: a.use_existing,
        drop_existing: a.drop_existing,
        fresh_server: footing.instance.is_some(),
        ..DatabasePlan::default()
    };
    let mut dbs = Vec::new();
    for k in 1..=a.jobs {
        let db = if k == 1 {
            a.dbname.clone()
        } else {
            format!("{}_{k}", a.dbname)
        };
        rt.block_on(run::prepare_database(&plan, params, &db, None))
            .map_err(|e| e.to_string())?;
        dbs.push(db);
    }
    let stop = stopper.signal();
    let exec = ExecOptions {
        step_timeout: footing.step_timeout,
        detector: waiting.detector,
        wait_function: waiting.wait_function.clone(),
        wait_query: waiting.wait_query.clone(),
        ..ExecOptions::default()
    };
    let mut code = Exit::Success;
    let mut all_json = Vec::new();
    let mut pages = Vec::new();
    for path in &a.specs {
        let name = path.display().to_string();
        let checked = spec::load(path).map_err(|e| e.to_string())?;
        // The session settings `isospec run` gives (pg_regress's).
        let test = path
            .file_stem()
            .map_or(name.clone(), |s| s.to_string_lossy().into_owned());
        let lanes: Vec<_> = dbs
            .iter()
            .map(|db| run::session_params(params, db, &test))
            .collect();
        // The command line's queries first, then the spec's own.
        let both = |cli: &[String], spec: &[String]| -> Vec<String> { [cli, spec].concat() };
        let outcomes = both(&a.outcome, &checked.spec.options.outcomes);
        let invariants = both(&a.invariant, &checked.spec.options.invariants);
        let search = match (a.preemptions, a.reduce) {
            (Some(Preemptions::AtMost(k)), _) => walk::Search::Preemptions(k),
            (Some(Preemptions::Rising), _) => walk::Search::RisingPreemptions,
            (None, true) => walk::Search::Reduced(bound::commuting(&checked)),
            (None, false) => walk::Search::Space,
        };
        // What a bounded or reduced search will run, before it runs.
        print!(
            "{}",
            report::search_preface(&name, &checked, &search, a.max)
        );
        let plan = walk::Plan {
            max: a.max,
            budget: a.budget,
            seed,
            outcomes,
            invariants: invariants.clone(),
            search,
            partition: a.partition,
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
        let supervised = rt.block_on(async {
            let work = walk::explore(
                &checked,
                &lanes,
                &exec,
                Some(&stop),
                &plan,
                |done, planned| {
                    if let Some(b) = &bar {
                        if let Some(p) = planned {
                            b.set_length(u64::try_from(p).unwrap_or(u64::MAX));
                        }
                        b.set_position(done);
                    }
                },
            );
            stopper.supervise(work, |m| events.note(m)).await
        });
        let signal = supervised.signal;
        let Some(exploration) = supervised.output else {
            // Stopped at once (a second signal, or the grace ran out).
            return Ok(Exit::Signal(signal.unwrap_or(2)));
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let mut exploration = exploration.map_err(|e| format!("{name}: {e}"))?;
        if a.shrink && !stop.requested() {
            // Classes with something to show: a violation, a failure or a
            // wait (an uneventful outcome shrinks to nothing worth pinning).
            let eventful = |o: &crate::explore::classes::Outcome| {
                !(o.violated.is_empty() && o.failures.is_empty() && o.waited.is_empty())
            };
            let space = crate::explore::space::Space::new(
                checked
                    .spec
                    .sessions
                    .iter()
                    .map(|s| s.steps.len())
                    .collect(),
            );
            // What observers are told apart from: the uneventful class
            // with the fewest preemptions.
            let baseline = exploration
                .classes
                .list()
                .into_iter()
                .filter(|c| !eventful(&c.outcome))
                .min_by_key(|c| (c.preemptions, c.first))
                .and_then(|c| space.nth(c.first));
            for c in exploration
                .classes
                .list()
                .into_iter()
                .filter(|c| eventful(&c.outcome))
            {
                let il = space.nth(c.first).expect("a class's index is in the space");
                let shrunk = rt.block_on(walk::shrink(
                    &checked,
                    &lanes[0],
                    &exec,
                    Some(&stop),
                    &plan,
                    walk::ShrinkTarget {
                        interleaving: &il,
                        baseline: baseline.as_deref(),
                        outcome: &c.outcome,
                    },
                ));
                exploration.shrunk.insert(c.first, shrunk);
            }
        }
        print!(
            "{}",
            report::text(&name, &checked, &exploration, seed, &invariants)
        );
        code = worse(code, &exploration);
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
        if a.html.is_some() {
            pages.push(html_report(
                rt,
                &name,
                &checked,
                &exploration,
                seed,
                &lanes[0],
                &exec,
                &stop,
                &plan,
                &invariants,
            ));
        }
        all_json.push(report::json(
            &name,
            &checked,
            &exploration,
            seed,
            &invariants,
        ));
        if exploration.cut_short && stop.requested() {
            println!("interrupted: the classes above are those found so far");
            code = code.worst(Exit::Signal(signal.unwrap_or(2)));
            break;
        }
    }
    write_json(a.json.as_deref(), all_json)?;
    if let Some(path) = &a.html {
        crate::report::write_explore(path, &pages).map_err(|e| e.to_string())?;
    }
    Ok(code)
}

/// The exit code after one more spec: Failed once an invariant was
/// violated, Error once an interleaving could not run (the graver wins).
fn worse(code: Exit, e: &walk::Exploration) -> Exit {
    let this = if !e.errors.is_empty() {
        Exit::Error
    } else if e
        .classes
        .list()
        .iter()
        .any(|c| !c.outcome.violated.is_empty())
    {
        Exit::Failed
    } else {
        Exit::Success
    };
    code.worst(this)
}

/// `--json FILE`: every spec's exploration.
fn write_json(path: Option<&std::path::Path>, specs: Vec<serde_json::Value>) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(&serde_json::json!({ "specs": specs }))
        .expect("JSON values serialize");
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// `--merge`: the parts' JSON files combined into what one exploration of
/// the whole reports.
fn merge(a: &ExploreArgs) -> Result<Exit, String> {
    let mut parts = Vec::new();
    for path in &a.merge {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        parts.push((path.display().to_string(), v));
    }
    let merged = report::merge(&parts)?;
    let mut code = Exit::Success;
    let mut all_json = Vec::new();
    for m in merged {
        let checked = spec::load(std::path::Path::new(&m.name)).map_err(|e| e.to_string())?;
        let mut exploration = m.exploration;
        // The lines are the spec's: it must be the spec the parts explored.
        let space = crate::explore::space::Space::new(
            checked
                .spec
                .sessions
                .iter()
                .map(|s| s.steps.len())
                .collect(),
        );
        if space.size() != exploration.space {
            return Err(format!(
                "{}: the spec has changed since its parts were explored ({} interleavings now)",
                m.name,
                space
                    .size()
                    .map_or("more than 2^128".into(), |n| n.to_string())
            ));
        }
        if let walk::Search::Reduced(_) = exploration.search {
            exploration.search = walk::Search::Reduced(bound::commuting(&checked));
        }
        print!(
            "{}",
            report::search_preface(&m.name, &checked, &exploration.search, exploration.max)
        );
        print!(
            "{}",
            report::text(&m.name, &checked, &exploration, m.seed, &m.invariants)
        );
        code = worse(code, &exploration);
        all_json.push(report::json(
            &m.name,
            &checked,
            &exploration,
            m.seed,
            &m.invariants,
        ));
    }
    write_json(a.json.as_deref(), all_json)?;
    Ok(code)
}

/// One spec's part of the HTML report: its classes, and the timelines of
/// their representatives, run once more (a failure to do so is noted on
/// the page, not fatal: the classes stand).
#[allow(clippy::too_many_arguments)]
fn html_report(
    rt: &tokio::runtime::Runtime,
    name: &str,
    checked: &spec::CheckedSpec,
    exploration: &walk::Exploration,
    seed: u64,
    params: &crate::pgwire::ConnParams,
    exec: &ExecOptions,
    stop: &crate::stop::StopSignal,
    plan: &walk::Plan,
    invariants: &[String],
) -> crate::report::ExploreReport {
    let classes = exploration.classes.list();
    let indices: Vec<u128> = classes.iter().map(|c| c.first).collect();
    let trace = rt.block_on(walk::trace(
        checked,
        params,
        exec,
        Some(stop),
        plan,
        &indices,
    ));
    let summary = report::text(name, checked, exploration, seed, invariants)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let summary = match &trace {
        Ok(_) => summary,
        Err(e) => format!("{summary} (the representatives' timelines could not be recorded: {e})"),
    };
    crate::report::ExploreReport {
        spec: name.to_string(),
        file: name.to_string(),
        summary,
        classes: classes
            .iter()
            .map(|c| crate::report::ExploreClass {
                count: c.count,
                outcome: crate::explore::classes::describe(&c.outcome),
                preemptions: c.preemptions,
                violation: !c.outcome.violated.is_empty(),
                line: report::class_line(checked, exploration, c),
            })
            .collect(),
        trace: trace.ok(),
    }
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
