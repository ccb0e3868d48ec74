//! Which specs a run runs: spec files, directories, test names and
//! pg_regress schedules resolved to test cases in order and groups, and the
//! `--partition` split.

use super::RunError;
use crate::schedule;
use std::path::{Path, PathBuf};

/// One spec to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub spec_path: PathBuf,
    pub expected_dir: PathBuf,
    /// Tests of one group may run concurrently (a schedule line, or all
    /// named targets); groups run in order.
    pub group: usize,
}

/// Keeps the tests of partition `k` of `n` (1-based): a stable round-robin
/// split of the selection, so parallel CI machines share the work.
pub fn partition(tests: Vec<TestCase>, k: usize, n: usize) -> Vec<TestCase> {
    tests
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % n == k - 1)
        .map(|(_, t)| t)
        .collect()
}

/// The expected/ directory for a spec file: `--inputdir`/expected when
/// given, else the `expected` beside a `specs` directory holding the spec,
/// else ./expected.
fn expected_dir_for(spec_path: &Path, inputdir: Option<&Path>) -> PathBuf {
    if let Some(d) = inputdir {
        return d.join("expected");
    }
    if let Some(parent) = spec_path.parent() {
        if parent.file_name().is_some_and(|n| n == "specs") {
            return parent.parent().unwrap_or(Path::new(".")).join("expected");
        }
    }
    PathBuf::from("expected")
}

/// Resolves targets (spec files, directories, test names) and schedules to
/// test cases, in order: each schedule line is a group, and all named
/// targets form one more group.
/// The tests of pg_regress schedules, in their order, a group per `test:`
/// line (numbered from 0), each located by `locate`; a line of more than
/// `max_parallel` tests is refused as pg_regress refuses it.  The one
/// place schedules become tests, for `isospec run` and the drop-in alike.
pub fn scheduled(
    schedules: &[PathBuf],
    max_parallel: Option<usize>,
    mut locate: impl FnMut(&str, usize) -> Result<TestCase, RunError>,
) -> Result<Vec<TestCase>, RunError> {
    let mut tests = Vec::new();
    let mut group = 0;
    for s in schedules {
        for g in schedule::read(s)? {
            if let Some(max) = max_parallel.filter(|m| g.tests.len() > *m) {
                return Err(RunError::TooManyParallel {
                    max,
                    schedule: s.display().to_string(),
                    line: g.line,
                    tests: g.tests.join(" "),
                });
            }
            for t in &g.tests {
                tests.push(locate(t, group)?);
            }
            group += 1;
        }
    }
    Ok(tests)
}

pub fn resolve_tests(
    targets: &[String],
    schedules: &[PathBuf],
    inputdir: Option<&Path>,
) -> Result<Vec<TestCase>, RunError> {
    let base = inputdir.unwrap_or(Path::new("."));
    let by_name = |name: &str, group: usize| -> Result<TestCase, RunError> {
        let spec_path = base.join("specs").join(format!("{name}.spec"));
        if !spec_path.is_file() {
            return Err(RunError::NoSpec {
                name: name.to_string(),
                path: spec_path.display().to_string(),
            });
        }
        Ok(TestCase {
            name: name.to_string(),
            spec_path,
            expected_dir: base.join("expected"),
            group,
        })
    };
    let mut tests = scheduled(schedules, None, by_name)?;
    let group = tests.last().map_or(0, |t| t.group + 1);
    for t in targets {
        let p = Path::new(t);
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "spec")
                })
                .map(|e| e.into_path())
                .collect();
            found.sort();
            for f in found {
                let name = f
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let expected_dir = expected_dir_for(&f, inputdir);
                tests.push(TestCase {
                    name,
                    spec_path: f,
                    expected_dir,
                    group,
                });
            }
        } else if p.is_file() {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            tests.push(TestCase {
                name,
                spec_path: p.to_path_buf(),
                expected_dir: expected_dir_for(p, inputdir),
                group,
            });
        } else if t.ends_with(".spec") || t.contains('/') {
            return Err(RunError::NoSpecFile(t.clone()));
        } else {
            tests.push(by_name(t, group)?);
        }
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_dir_rules() {
        assert_eq!(
            expected_dir_for(Path::new("specs/a.spec"), None),
            PathBuf::from("expected")
        );
        assert_eq!(
            expected_dir_for(Path::new("x/specs/a.spec"), None),
            PathBuf::from("x/expected")
        );
        assert_eq!(
            expected_dir_for(Path::new("x/a.spec"), None),
            PathBuf::from("expected")
        );
        assert_eq!(
            expected_dir_for(Path::new("x/specs/a.spec"), Some(Path::new("in"))),
            PathBuf::from("in/expected")
        );
    }
}
