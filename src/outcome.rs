//! What a run produces, as data: the status of each spec and the run-level
//! events.  The run (`run`) emits these events and the reporter (`report`)
//! alone turns them into text and files; both depend on this module and
//! not on each other.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The transcript differs from every expected variant.
    Failed,
    /// No expected file: the transcript is new.
    New,
    /// The transcript differed or was new and was copied to this expected file.
    Accepted(String),
    /// The spec file could not be read, parsed or checked.
    BadSpec(String),
    /// The transcript matched (or was accepted), but an invariant did not
    /// hold after a permutation: what was violated, where.
    Violated(String),
    /// The spec stopped early (timeout, lost connection, setup failure…).
    RunError(String),
    /// The spec was not started, for this reason (e.g. "interrupted"); its
    /// earlier results file was left as it was.
    NotRun(String),
}

impl Status {
    pub fn passed(&self) -> bool {
        matches!(self, Status::Ok | Status::Accepted(_))
    }

    /// One word for machine-readable reports.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::New => "new",
            Status::Accepted(_) => "accepted",
            Status::Violated(_) => "invariant-violated",
            Status::BadSpec(_) => "spec-error",
            Status::RunError(_) => "run-error",
            Status::NotRun(_) => "not-run",
        }
    }

    /// The text that goes with the status, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Status::BadSpec(e)
            | Status::RunError(e)
            | Status::Accepted(e)
            | Status::NotRun(e)
            | Status::Violated(e) => Some(e),
            Status::Ok | Status::Failed | Status::New => None,
        }
    }
}

/// One step's time from launch to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTiming {
    pub step: String,
    pub micros: u64,
}

#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    pub status: Status,
    pub duration: Duration,
    pub permutations: u128,
    /// In completion order.
    pub steps: Vec<StepTiming>,
    /// The spec file, as the run named it.
    pub spec: Option<PathBuf>,
    /// `results/NAME.out`, when it was written.
    pub result_file: Option<PathBuf>,
    /// Where a spec that did not pass departs from its expected output,
    /// failed to parse, or stopped.
    pub departure: Option<Box<Departure>>,
    /// What happened when, per permutation (kept only when a report draws
    /// it: `--html`).
    pub trace: Option<std::sync::Arc<SpecTrace>>,
    /// Invariants that did not hold, in the order seen.
    pub violations: Vec<Violation>,
    /// `--accept` copied its transcript to this expected file (its status
    /// may still be a failure: a violated invariant).
    pub accepted: Option<String>,
}

/// An invariant that did not return true after a permutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Its SQL.
    pub invariant: String,
    /// Its `# isospec: invariant` line in the spec (None: `--invariant`).
    pub line: Option<u32>,
    /// 1-based, of `permutations`, with its steps.
    pub permutation: usize,
    pub permutations: u128,
    pub steps: Vec<String>,
    /// What it returned instead of true: "false", "NULL", "no rows",
    /// "2 rows", or the error.
    pub got: String,
    /// The spec says its violations are shown on purpose
    /// (`# isospec: known-violations`): reported, not failed.
    pub known: bool,
    /// `# isospec: anomalies`: no serial order of the permutation's
    /// committed transactions gives its outcome (`got` says how it differs).
    pub anomaly: bool,
}

impl Violation {
    /// One line: which invariant, after which permutation, what it gave.
    pub fn describe(&self) -> String {
        if self.anomaly {
            return format!(
                "{}permutation {} of {} ({}) is {}",
                if self.known {
                    "known anomaly (# isospec: known-violations): "
                } else {
                    ""
                },
                self.permutation,
                self.permutations,
                self.steps.join(" "),
                self.got
            );
        }
        format!(
            "{}invariant {} returned {} after permutation {} of {} ({})",
            if self.known {
                "known violation (# isospec: known-violations): "
            } else {
                ""
            },
            self.invariant,
            self.got,
            self.permutation,
            self.permutations,
            self.steps.join(" ")
        )
    }
}

impl TestOutcome {
    pub fn new(name: &str, status: Status, duration: Duration, permutations: u128) -> Self {
        TestOutcome {
            name: name.to_string(),
            status,
            duration,
            permutations,
            steps: Vec::new(),
            spec: None,
            result_file: None,
            departure: None,
            trace: None,
            violations: Vec::new(),
            accepted: None,
        }
    }
}

/// Where a spec went wrong, pointing into the spec file: the permutation
/// line whose part of the transcript first differs (or, for a spec without
/// permutation lines, the definition of the step whose output first
/// differs), the position of a syntax error, or the step a run error
/// happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub kind: DepartureKind,
    /// 1-based line and column in the spec file.
    pub line: u32,
    pub col: u32,
    /// The permutation (1-based) of `permutations`, with its steps.
    pub permutation: Option<usize>,
    pub permutations: u128,
    pub permutation_steps: Vec<String>,
    pub step: Option<String>,
    /// The session of `step`.
    pub session: Option<String>,
    /// The first differing lines: the expected file's and the result's
    /// (None where one side has no line there), or the error's text.
    pub expected: Option<String>,
    pub actual: Option<String>,
    /// 0-based line numbers of those lines in the expected file and in
    /// the result.
    pub expected_line: usize,
    pub actual_line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepartureKind {
    /// The transcript differs from the expected output.
    Differs,
    /// The spec does not parse or check.
    BadSpec,
    /// The run stopped early (timeout, lost connection, setup failure).
    RunError,
    /// An invariant did not hold (at its `# isospec: invariant` line).
    Invariant,
    /// `# isospec: anomalies`: no serial order explains a permutation (at
    /// its permutation line).
    Anomaly,
}

/// Everything a timeline drawing needs of one spec run: its sessions, each
/// permutation's steps with their times, and both transcripts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecTrace {
    /// The sessions, in the spec's order: one lane each.
    pub sessions: Vec<String>,
    pub permutations: Vec<PermTrace>,
    /// The result's transcript and the closest expected file's text (None
    /// when there is none).
    pub actual: String,
    pub expected: Option<String>,
    pub expected_file: Option<PathBuf>,
}

/// One permutation as it ran.  Times are microseconds since the spec's
/// first event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PermTrace {
    /// 0-based, as in "starting permutation" order.
    pub index: usize,
    pub steps: Vec<String>,
    pub start_us: u64,
    pub end_us: u64,
    /// 0-based transcript lines [first, end) of this permutation.
    pub lines: (usize, usize),
    pub boxes: Vec<StepBox>,
    /// Things that happened outside any step (setup or teardown failures,
    /// a stop), with their time.
    pub marks: Vec<(u64, String)>,
}

/// One step on its session's lane: sent at `start_us`, completed at
/// `end_us` (None: it never completed), seen waiting from `waited_us`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepBox {
    /// Index into `SpecTrace::sessions`.
    pub session: usize,
    pub step: String,
    pub sql: String,
    pub start_us: u64,
    pub end_us: Option<u64>,
    pub waited_us: Option<u64>,
    /// Sessions (or `PID n`, `prepared transaction`) that blocked it when
    /// it was first seen waiting.
    pub blocked_by: Vec<String>,
    pub errors: Vec<String>,
    pub notices: Vec<String>,
    /// Result rows, as the transcript prints them.
    pub rows: Vec<String>,
    pub canceled: bool,
    pub timed_out: bool,
    /// 0-based transcript lines this step printed.
    pub lines: Vec<usize>,
}

/// How often one distinct transcript of a spec was seen over repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakyReport {
    pub name: String,
    /// Runs that gave each distinct transcript, in order of first sight.
    pub counts: Vec<usize>,
    /// Unified diffs of each later transcript against the first.
    pub diffs: Vec<String>,
}

/// The running temp instance, as pg_regress reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempServer {
    pub port: u16,
    pub pid: u32,
}

/// The phases of a run around its specs, in the order pg_regress goes
/// through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// A temp instance directory from an earlier run is replaced.
    RemovingOldInstance(PathBuf),
    CreatingInstance(PathBuf),
    InitializingCluster,
    StartingServer,
    /// The server answers: its version (e.g. 150018), and the temp
    /// instance's port and postmaster pid when isospec started it.
    ServerReady {
        version_num: u32,
        temp: Option<TempServer>,
    },
    DroppingDatabase(String),
    CreatingDatabase(String),
    Installing(String),
    DroppingRole(String),
    CreatingRole(String),
    /// A setup command finished with this tag (as psql prints it).
    Command(String),
    RunningTests,
    StoppingServer,
    /// Every spec passed: the temp instance directory is removed.
    RemovingInstance(PathBuf),
}

/// What happens during a run, in order.  Emitted by the run, printed and
/// written to files by the reporter only.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A phase of the run's setup or end (pg_regress's
    /// `============== … ==============` lines).
    Phase(Phase),
    /// Something the user should know about the run (stderr).
    Note(String),
    /// Something about one spec while it runs (stderr): a slow step, its
    /// wait graph, cleanup done after it.
    Diagnostic { spec: String, text: String },
    /// The specs are about to run: `total` spec runs when known.
    Started { total: Option<u64> },
    /// A spec finished (or was not run), with its diff against the
    /// expected output and, for a new spec, its transcript.
    SpecFinished {
        number: usize,
        outcome: Box<TestOutcome>,
        diff: Option<String>,
        new_transcript: Option<String>,
    },
    /// `--until-fail`: a pass had a failure, no more passes.
    StoppedAfterPass(usize),
    /// Over repeats, a spec gave more than one transcript.
    Flaky(FlakyReport),
    /// Over repeats, a spec gave one transcript every time.
    Stable { name: String, runs: usize },
    /// The end: every outcome, the wall time, and regression.diffs if written.
    Finished {
        outcomes: Vec<TestOutcome>,
        wall: Duration,
        diffs_file: Option<PathBuf>,
    },
}
