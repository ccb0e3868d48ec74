//! `isospec accept` and `--accept`: copy a run's transcripts into the
//! expected files they were compared with (the closest variant).

use super::RunError;
use crate::differ::{closest_variant, compare, Comparison};
use std::path::{Path, PathBuf};

/// Copies `actual` over the expected file it is closest to (the main file
/// when there is none).  Returns the path written.
pub fn accept_transcript(
    expected_dir: &Path,
    name: &str,
    actual: &str,
) -> std::io::Result<PathBuf> {
    let target = closest_variant(expected_dir, name, actual)?
        .unwrap_or_else(|| expected_dir.join(format!("{name}.out")));
    std::fs::create_dir_all(expected_dir)?;
    std::fs::write(&target, actual)?;
    Ok(target)
}

pub(super) const MANIFEST: &str = ".isospec-manifest";

/// `isospec accept`: copies results/NAME.out of the last run into the
/// expected directory the run compared it with, for the named tests or for
/// every test whose transcript differs or is new.  Returns what was written.
pub fn accept(
    outputdir: &Path,
    inputdir: Option<&Path>,
    names: &[String],
) -> Result<Vec<PathBuf>, RunError> {
    let results = outputdir.join("results");
    let manifest = std::fs::read_to_string(results.join(MANIFEST)).unwrap_or_default();
    let mut known: Vec<(String, PathBuf)> = manifest
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, d)| (n.to_string(), PathBuf::from(d)))
        .collect();
    known.dedup();
    let expected_of = |name: &str| -> PathBuf {
        if let Some(d) = inputdir {
            return d.join("expected");
        }
        known
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| PathBuf::from("expected"))
    };
    let selected: Vec<String> = if names.is_empty() {
        let mut v: Vec<String> = known.iter().map(|(n, _)| n.clone()).collect();
        v.sort();
        v.dedup();
        v
    } else {
        names.to_vec()
    };
    if selected.is_empty() {
        return Err(RunError::NothingToAccept(results.display().to_string()));
    }
    let mut written = Vec::new();
    for name in selected {
        let result = results.join(format!("{name}.out"));
        let actual = std::fs::read_to_string(&result).map_err(|source| RunError::NoResult {
            name: name.clone(),
            path: result.display().to_string(),
            source,
        })?;
        let dir = expected_of(&name);
        if let Ok(Comparison::Match(_)) = compare(&dir, &name, &actual, &result) {
            continue;
        }
        let path = accept_transcript(&dir, &name, &actual).map_err(|source| RunError::Output {
            path: dir.display().to_string(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}
