//! Compares a transcript with its expected file and its variants
//! (`NAME.out`, `NAME_0.out` … `NAME_9.out`), and makes unified diffs.

use similar::TextDiff;
use std::path::{Path, PathBuf};

/// The outcome of comparing one result with the expected files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Equal to this expected file.
    Match(PathBuf),
    /// Different from all; `closest` is the variant with the smallest diff.
    Differs {
        closest: PathBuf,
        diff: String,
        changed_lines: usize,
        /// Where the closest variant and the result first differ.
        first: FirstChange,
    },
    /// No expected file exists.
    NoExpected,
}

/// The expected files for test `name` in `expected_dir`, the main one first.
pub fn expected_variants(expected_dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let main = expected_dir.join(format!("{name}.out"));
    if main.is_file() {
        v.push(main);
    }
    for i in 0..10 {
        let p = expected_dir.join(format!("{name}_{i}.out"));
        if p.is_file() {
            v.push(p);
        }
    }
    v
}

/// A unified diff (3 lines of context) labelled with both paths.
pub fn unified_diff(
    expected: &str,
    actual: &str,
    expected_label: &str,
    actual_label: &str,
) -> String {
    let diff = TextDiff::from_lines(expected, actual);
    let mut out = format!("diff -U3 {expected_label} {actual_label}\n");
    out.push_str(
        &diff
            .unified_diff()
            .context_radius(3)
            .header(expected_label, actual_label)
            .to_string(),
    );
    out
}

/// `unified_diff` of two files, each header line carrying the file's
/// modification time as `diff -U3` prints it (pg_regress runs that diff):
/// `--- expected/x.out\t2026-12-07 11:48:40.957838166 +0000`.
pub fn unified_diff_files(expected: &str, actual: &str, exp: &Path, act: &Path) -> String {
    let label = |p: &Path| match mtime(p) {
        Some(t) => format!("{}\t{t}", p.display()),
        None => p.display().to_string(),
    };
    let diff = TextDiff::from_lines(expected, actual);
    let mut out = format!("diff -U3 {} {}\n", exp.display(), act.display());
    out.push_str(
        &diff
            .unified_diff()
            .context_radius(3)
            .header(&label(exp), &label(act))
            .to_string(),
    );
    out
}

/// A file's modification time in the local time zone, as GNU diff prints
/// it (`%Y-%m-%d %H:%M:%S.%N %z`).
fn mtime(path: &Path) -> Option<String> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    let secs = since.as_secs() as _;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return None;
    }
    let off = tm.tm_gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:09} {sign}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        since.subsec_nanos(),
        off / 3600,
        (off % 3600) / 60
    ))
}

/// The first place two texts differ: 0-based line numbers on each side
/// and the lines there (None where that side has ended).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstChange {
    pub expected_line: usize,
    pub actual_line: usize,
    pub expected: Option<String>,
    pub actual: Option<String>,
    /// The result lacks lines the expected file has there (and has
    /// nothing in their place).
    pub missing: bool,
}

/// Where `expected` and `actual` first differ, line by line (None when
/// they are equal).
pub fn first_change(expected: &str, actual: &str) -> Option<FirstChange> {
    let diff = TextDiff::from_lines(expected, actual);
    let op = diff
        .ops()
        .iter()
        .find(|op| op.tag() != similar::DiffTag::Equal)?;
    let (old, new) = (op.old_range(), op.new_range());
    // The line at the change on each side: for a line only one side has,
    // the other side's line there (the one it comes before), if any.
    let line = |slices: &[&str], r: &std::ops::Range<usize>| {
        slices
            .get(r.start)
            .map(|l| l.trim_end_matches('\n').to_string())
    };
    Some(FirstChange {
        expected_line: old.start,
        actual_line: new.start,
        expected: line(diff.old_slices(), &old),
        actual: line(diff.new_slices(), &new),
        missing: new.is_empty(),
    })
}

fn changed_lines(expected: &str, actual: &str) -> usize {
    let diff = TextDiff::from_lines(expected, actual);
    diff.iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .count()
}

/// The expected variant closest to `actual` (fewest changed lines), if any.
pub fn closest_variant(
    expected_dir: &Path,
    name: &str,
    actual: &str,
) -> std::io::Result<Option<PathBuf>> {
    let mut best: Option<(usize, PathBuf)> = None;
    for v in expected_variants(expected_dir, name) {
        let text = String::from_utf8_lossy(&std::fs::read(&v)?).into_owned();
        let n = changed_lines(&text, actual);
        if best.as_ref().is_none_or(|(b, _)| n < *b) {
            best = Some((n, v));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// Compares `actual` (written to `result_path`) with the expected variants.
pub fn compare(
    expected_dir: &Path,
    name: &str,
    actual: &str,
    result_path: &Path,
) -> std::io::Result<Comparison> {
    let variants = expected_variants(expected_dir, name);
    if variants.is_empty() {
        return Ok(Comparison::NoExpected);
    }
    let mut best: Option<(usize, PathBuf, String)> = None;
    for v in variants {
        let text = std::fs::read(&v)?;
        let text = String::from_utf8_lossy(&text).into_owned();
        if text == actual {
            return Ok(Comparison::Match(v));
        }
        let n = changed_lines(&text, actual);
        if best.as_ref().is_none_or(|(b, _, _)| n < *b) {
            best = Some((n, v, text));
        }
    }
    let (n, path, text) = best.expect("at least one variant");
    let diff = unified_diff_files(&text, actual, &path, result_path);
    let first = first_change(&text, actual).unwrap_or_default();
    Ok(Comparison::Differs {
        closest: path,
        diff,
        changed_lines: n,
        first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_matching_variant_and_closest_diff() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.out"), "a\nb\nc\n").unwrap();
        std::fs::write(dir.path().join("t_1.out"), "a\nB\nc\n").unwrap();
        std::fs::write(dir.path().join("t_3.out"), "x\ny\nz\n").unwrap();
        let r = Path::new("results/t.out");
        assert_eq!(
            compare(dir.path(), "t", "a\nB\nc\n", r).unwrap(),
            Comparison::Match(dir.path().join("t_1.out"))
        );
        match compare(dir.path(), "t", "x\ny\nZ\n", r).unwrap() {
            Comparison::Differs {
                closest,
                diff,
                changed_lines,
                first,
            } => {
                assert_eq!(first.expected.as_deref(), Some("z"));
                assert_eq!(first.actual.as_deref(), Some("Z"));
                assert_eq!((first.expected_line, first.actual_line), (2, 2));
                assert_eq!(closest, dir.path().join("t_3.out"));
                assert_eq!(changed_lines, 2);
                assert!(diff.contains("-z\n+Z\n"), "{diff}");
                assert!(diff.starts_with("diff -U3 "), "{diff}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            compare(dir.path(), "nosuch", "", r).unwrap(),
            Comparison::NoExpected
        );
    }

    #[test]
    fn first_change_of_a_missing_and_an_added_line() {
        let f = first_change("a\nb\nc\n", "a\nc\n").unwrap();
        assert_eq!((f.expected_line, f.actual_line), (1, 1));
        assert_eq!(
            (f.expected.as_deref(), f.actual.as_deref()),
            (Some("b"), Some("c"))
        );
        let f = first_change("a\n", "a\nb\n").unwrap();
        assert_eq!((f.expected, f.actual.as_deref()), (None, Some("b")));
        assert_eq!(first_change("a\n", "a\n"), None);
    }

    #[test]
    fn file_diffs_carry_diff_s_timestamps() {
        let dir = std::env::temp_dir().join(format!("isospec-differ-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (e, r) = (dir.join("e.out"), dir.join("r.out"));
        std::fs::write(&e, "1\n2\n").unwrap();
        std::fs::write(&r, "1\n3\n").unwrap();
        let d = unified_diff_files("1\n2\n", "1\n3\n", &e, &r);
        let lines: Vec<&str> = d.lines().collect();
        let stamp = |l: &str| {
            let (_, t) = l.split_once('\t').unwrap();
            // 2026-12-07 11:48:40.957838166 +0000
            let b = t.as_bytes();
            t.len() == 35
                && b[4] == b'-'
                && b[10] == b' '
                && b[19] == b'.'
                && b[29] == b' '
                && matches!(b[30], b'+' | b'-')
        };
        assert!(
            lines[1].starts_with(&format!("--- {}\t", e.display())) && stamp(lines[1]),
            "{d}"
        );
        assert!(
            lines[2].starts_with(&format!("+++ {}\t", r.display())) && stamp(lines[2]),
            "{d}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unified_diff_format() {
        let d = unified_diff("1\n2\n3\n", "1\n3\n", "e.out", "r.out");
        assert_eq!(
            d,
            "diff -U3 e.out r.out\n--- e.out\n+++ r.out\n@@ -1,3 +1,2 @@\n 1\n-2\n 3\n"
        );
    }
}
