//! The JUnit XML report (`--junit FILE`): one testcase per spec; failures
//! carry the diff, specs not run are skipped.

use super::{io_error, Diffs, ReportError};
use crate::outcome::{Status, TestOutcome};
use std::path::Path;

pub(super) fn write(
    path: &Path,
    outcomes: &[TestOutcome],
    diffs: &Diffs,
) -> Result<(), ReportError> {
    let mut report = quick_junit::Report::new("isospec");
    let mut suite = quick_junit::TestSuite::new("isolation");
    for o in outcomes {
        let status = match &o.status {
            Status::Ok | Status::Accepted(_) => quick_junit::TestCaseStatus::success(),
            Status::Failed | Status::New => {
                let mut s =
                    quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Failure);
                s.set_message(if o.status == Status::New {
                    "no expected output"
                } else {
                    "transcript differs from expected output"
                });
                let violations: Vec<String> = o.violations.iter().map(|v| v.describe()).collect();
                s.set_description(format!("{}{}", diffs.of(&o.name), violations.join("\n")));
                s
            }
            Status::Violated(e) => {
                let mut s =
                    quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Failure);
                s.set_message(e.lines().next().unwrap_or("invariant violated").to_string());
                s.set_description(e.clone());
                s
            }
            Status::NotRun(why) => {
                let mut s = quick_junit::TestCaseStatus::skipped();
                s.set_message(format!("not run ({why})"));
                s
            }
            Status::BadSpec(e) | Status::RunError(e) => {
                let mut s =
                    quick_junit::TestCaseStatus::non_success(quick_junit::NonSuccessKind::Error);
                s.set_message(e.lines().next().unwrap_or("error").to_string());
                s.set_description(format!("{e}\n{}", diffs.of(&o.name)));
                s
            }
        };
        let mut tc = quick_junit::TestCase::new(o.name.clone(), status);
        tc.set_time(o.duration);
        suite.add_test_case(tc);
    }
    report.add_test_suite(suite);
    let xml = report.to_string()?;
    std::fs::write(path, xml).map_err(io_error(path))
}
