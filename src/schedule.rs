//! pg_regress schedule files: `test: a b c` lines run as one group (the
//! names of a line may run concurrently), lines in order; `#` comments and
//! blank lines are ignored.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub line: usize,
    pub tests: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("could not read schedule {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: error: {message}")]
    Syntax {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
}

pub fn parse(file: &str, text: &str) -> Result<Vec<Group>, ScheduleError> {
    let mut groups = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col = line.len() - trimmed.len() + 1;
        let Some(rest) = trimmed.strip_prefix("test:") else {
            return Err(ScheduleError::Syntax {
                file: file.to_string(),
                line: i + 1,
                col,
                message: format!(
                    "expected `test: NAME…`, found \"{}\"",
                    trimmed.chars().take(40).collect::<String>()
                ),
            });
        };
        let tests: Vec<String> = rest.split_whitespace().map(|s| s.to_string()).collect();
        if tests.is_empty() {
            return Err(ScheduleError::Syntax {
                file: file.to_string(),
                line: i + 1,
                col: col + 5,
                message: "`test:` line names no test".into(),
            });
        }
        groups.push(Group { line: i + 1, tests });
    }
    Ok(groups)
}

pub fn read(path: &Path) -> Result<Vec<Group>, ScheduleError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScheduleError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_comments() {
        let g = parse("s", "# c\n\ntest: a b\n  test:c\n").unwrap();
        assert_eq!(
            g,
            vec![
                Group {
                    line: 3,
                    tests: vec!["a".into(), "b".into()]
                },
                Group {
                    line: 4,
                    tests: vec!["c".into()]
                }
            ]
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("s", "test: a\n  ignore: b\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "s:2:3: error: expected `test: NAME…`, found \"ignore: b\""
        );
        let e = parse("s", "test:   \n").unwrap_err();
        assert_eq!(e.to_string(), "s:1:6: error: `test:` line names no test");
    }
}
