//! One configuration path for a run, as ripgrep separates raw flags from
//! validated settings: each front end (`isospec run`'s clap flags,
//! `pg_isolation_regress`'s getopt options) fills one `RunRequest` with
//! what the user said (the shared flag groups already resolved by
//! `flags`), and `resolve` applies the rest of the environment snapshot
//! (`ISOSPEC_JOBS`, `GITHUB_STEP_SUMMARY`, `GITHUB_ACTIONS`,
//! `GITHUB_WORKSPACE`, `NO_COLOR`, the timeout variables) and the
//! defaults, checks the combination, and builds the run's `RunConfig` and
//! the reporter's options.

use super::flags::Waiting;
use super::{AnnotationsChoice, ColorChoice};
use crate::environment::Environment;
use crate::executor::ExecOptions;
use crate::report::{Annotations, PgRegressStyle, ReportFiles, ReporterOptions};
use crate::run::{self, DatabaseSetup, RunConfig, ServerChoice, TestCase};
use std::path::PathBuf;

/// What one run asks for, before the environment and defaults.
#[derive(Debug)]
pub(crate) struct RunRequest {
    /// The selected tests (each front end finds them its own way).
    pub tests: Vec<TestCase>,
    /// pg_regress runs (and reports) an empty selection; isospec refuses it.
    pub allow_empty: bool,
    pub partition: Option<(usize, usize)>,
    pub outputdir: PathBuf,
    pub dbname: String,
    pub use_existing: bool,
    pub drop_existing: bool,
    /// Drop the test database at the end (`--drop-database`).
    pub drop_after: bool,
    pub load_extensions: Vec<String>,
    pub server: ServerChoice,
    /// The step timeout, the grace period and the wait detector.
    pub wait: Waiting,
    pub only_permutation: Option<usize>,
    pub prepared_waits: bool,
    pub wait_graph_in_transcript: bool,
    /// Leave prepared transactions a spec left behind (the drop-in, as
    /// pg_isolation_regress).
    pub keep_prepared: bool,
    /// None: `ISOSPEC_JOBS`, else 1.
    pub jobs: Option<usize>,
    pub repeat: usize,
    pub until_fail: bool,
    pub accept: bool,
    /// The invariants to check after each permutation besides the spec's
    /// `# isospec: invariant` lines; None: check none (`--no-invariants`,
    /// and pg_isolation_regress, which prints what pg_regress prints).
    pub invariants: Option<Vec<String>>,
    pub alone: Vec<String>,
    pub pin: bool,
    pub setup: DatabaseSetup,
    pub remove_instance_on_success: bool,
    pub report: ReportRequest,
}

/// How the user asked to see the run.
#[derive(Debug)]
pub(crate) struct ReportRequest {
    pub quiet: bool,
    pub tap: bool,
    pub color: ColorChoice,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    /// None: GitHub's when `GITHUB_ACTIONS=true`.
    pub annotations: Option<AnnotationsChoice>,
    /// Append the Markdown summary to `$GITHUB_STEP_SUMMARY` when set.
    pub step_summary: bool,
    pub pg_regress: Option<PgRegressStyle>,
}

impl RunRequest {
    /// The run's configuration and the reporter's options.
    pub fn resolve(self, env: &Environment) -> Result<(RunConfig, ReporterOptions), String> {
        let mut tests = self.tests;
        if tests.is_empty() && !self.allow_empty {
            return Err(
                "nothing to run: name spec files, directories, test names or --schedule".into(),
            );
        }
        if let Some((k, n)) = self.partition {
            let selected = tests.len();
            tests = run::partition(tests, k, n);
            if tests.is_empty() {
                return Err(format!(
                    "partition {k}/{n} of {selected} selected specs is empty"
                ));
            }
        }
        let jobs = match self.jobs {
            Some(j) => j,
            None => super::env::number(env, "ISOSPEC_JOBS")?.unwrap_or(1),
        };
        if jobs == 0 {
            return Err("--jobs must be at least 1".into());
        }
        let Waiting {
            detector,
            wait_function,
            wait_query,
            timeout,
            grace,
        } = self.wait;
        let r = self.report;
        let annotations = match r.annotations {
            Some(AnnotationsChoice::Github) => true,
            Some(AnnotationsChoice::None) => false,
            None => match env.get("ISOSPEC_ANNOTATIONS") {
                Some(v) => match <AnnotationsChoice as clap::ValueEnum>::from_str(v, true) {
                    Ok(AnnotationsChoice::Github) => true,
                    Ok(AnnotationsChoice::None) => false,
                    Err(_) => {
                        return Err(format!(
                            "ISOSPEC_ANNOTATIONS: unknown kind \"{v}\" (github or none)"
                        ))
                    }
                },
                None => env.get("GITHUB_ACTIONS") == Some("true"),
            },
        };
        let workspace = env.get_os("GITHUB_WORKSPACE").map(PathBuf::from);
        let annotations = annotations.then(|| Annotations {
            workspace: workspace.clone(),
        });
        let report = ReporterOptions {
            regression_out: Some(self.outputdir.join("regression.out")),
            quiet: r.quiet,
            tap: r.tap,
            color: match r.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    crate::report::console::stdout_is_terminal() && env.get("NO_COLOR").is_none()
                }
            },
            files: ReportFiles {
                junit: r.junit,
                json: r.json,
                html: r.html,
                markdown_summary: r
                    .step_summary
                    .then(|| env.get_os("GITHUB_STEP_SUMMARY").map(PathBuf::from))
                    .flatten(),
            },
            pg_regress: r.pg_regress,
            annotations,
            workspace,
        };
        let cfg = RunConfig {
            serial_check: Some(crate::run::SerialChecker(std::sync::Arc::new(
                crate::explore::anomaly::RunCheck,
            ))),
            trace: report.files.html.is_some(),
            tests,
            outputdir: self.outputdir,
            dbname: self.dbname,
            use_existing: self.use_existing,
            drop_existing: self.drop_existing,
            drop_after: self.drop_after,
            load_extensions: self.load_extensions,
            server: self.server,
            timeout,
            grace,
            timeout_env: crate::timeouts::TimeoutEnv::of(env),
            exec: ExecOptions {
                detector,
                only_permutation: self.only_permutation,
                prepared_waits: self.prepared_waits,
                wait_graph_in_transcript: self.wait_graph_in_transcript,
                keep_prepared: self.keep_prepared,
                wait_function,
                wait_query,
                ..Default::default()
            },
            jobs,
            repeat: self.repeat,
            until_fail: self.until_fail,
            accept: self.accept,
            invariants: self.invariants,
            alone: self.alone,
            pin: self.pin,
            setup: self.setup,
            remove_instance_on_success: self.remove_instance_on_success,
        };
        Ok((cfg, report))
    }
}
