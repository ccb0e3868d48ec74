//! A project as a new user makes one: `isospec init`, settings in
//! `[tool.isospec]` or isospec.toml, `isospec run` with no argument, and a
//! working tree left clean by runs.

use crate::util::{isospec, text, workdir};
use std::path::Path;
use std::process::Output;

/// `isospec ARGS` in `cwd` with its own $TMPDIR (for the throwaway server).
fn isospec_in(cwd: &Path, tmp: &Path, args: &[&str]) -> Output {
    isospec()
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .args(args)
        .output()
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn init_makes_a_project_that_runs_and_runs_leave_the_tree_clean() {
    crate::require_server!();
    let dir = workdir();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = isospec_in(dir.path(), &tmp, &["init", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let demo = dir.path().join("demo");
    assert_eq!(
        files_in(&demo),
        [".gitignore", "expected", "isospec.toml", "specs"]
    );
    assert!(text(&out.stdout).contains("next: cd demo && isospec run"));
    let ignore = std::fs::read_to_string(demo.join(".gitignore")).unwrap();
    for l in ["/results/", "/regression.diffs", "/regression.out"] {
        assert!(ignore.lines().any(|x| x == l), "{ignore}");
    }
    // From the project and from a directory inside it.
    for cwd in [demo.clone(), demo.join("specs")] {
        let out = isospec_in(&cwd, &tmp, &["run"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("test counter"),
            "{}",
            text(&out.stdout)
        );
    }
    // Results at the project's top, nothing else new there; no instance left.
    assert_eq!(
        files_in(&demo),
        [
            ".gitignore",
            "expected",
            "isospec.toml",
            "regression.out",
            "results",
            "specs"
        ]
    );
    assert_eq!(files_in(&demo.join("specs")), ["counter.spec"]);
    assert!(files_in(&tmp).is_empty(), "{:?}", files_in(&tmp));
    // init again keeps what is there.
    let out = isospec_in(dir.path(), &tmp, &["init", "demo"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("kept     demo/specs/counter.spec"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn pyproject_settings_name_the_spec_directories_and_yield_to_the_environment() {
    crate::require_server!();
    let dir = workdir();
    let root = dir.path();
    let tmp = root.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(
        root.join("pyproject.toml"),
        "[project]\nname = \"app\"\n\n[tool.isospec]\nspecs = [\"checks\"]\njobs = 2\ntimeout = 30\n",
    )
    .unwrap();
    // isospec init puts nothing in a pyproject.toml that has the table.
    let out = isospec_in(root, &tmp, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!root.join("isospec.toml").exists());
    std::fs::create_dir(root.join("checks")).unwrap();
    std::fs::rename(
        root.join("specs/counter.spec"),
        root.join("checks/counter.spec"),
    )
    .unwrap();
    std::fs::remove_dir(root.join("specs")).unwrap();
    let out = isospec_in(root, &tmp, &["run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(root.join("results/counter.out").is_file());
    // Where each value comes from.
    let out = isospec()
        .current_dir(root)
        .env("ISOSPEC_JOBS", "3")
        .arg("config")
        .output()
        .unwrap();
    let said = text(&out.stdout);
    let line = |k: &str| {
        said.lines()
            .find(|l| l.starts_with(&format!("{k} ")))
            .unwrap_or_else(|| panic!("no {k} in {said}"))
            .to_string()
    };
    assert!(
        line("jobs").contains("= 3  # environment: ISOSPEC_JOBS"),
        "{said}"
    );
    assert!(line("timeout").contains("= 30  # file: "), "{said}");
    assert!(line("specs").contains("/checks\"]"), "{said}");
    assert!(line("grace").ends_with("# default"), "{said}");
    // An unknown key is an error naming the file, line and key.
    std::fs::write(
        root.join("pyproject.toml"),
        "[tool.isospec]\nspecs = [\"checks\"]\njbos = 2\n",
    )
    .unwrap();
    let out = isospec_in(root, &tmp, &["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("pyproject.toml:3:1: unknown key \"jbos\" in [tool.isospec]"),
        "{err}"
    );
}
