//! The module structure ARCHITECTURE.md describes, checked: no import
//! cycles between the crate's modules nor the Python package's, and the
//! reporter knows only the outcome types.  Test code (`tests.rs`, `#[cfg(test)]` blocks)
//! is left out: tests may look anywhere.

use crate::util::manifest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the crate (by path: `run::passes`, `pgwire`, …) and
/// the modules each one uses, through `crate::`, `super::` and `self::`
/// paths.  A module's uses of its own descendants (declaring them,
/// re-exporting from them) are structure, not dependencies, and are left
/// out; a child's uses of its parent's items are in.
fn file_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = manifest().join("src");
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts == ["lib"] || parts == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap().to_string();
        files.push((parts.join("::"), code));
    }
    let known: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    // The longest known module a path names.
    let resolve = |segments: &[String]| -> Option<String> {
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| known.contains(m))
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &files {
        let deps = graph.entry(module.clone()).or_default();
        let here: Vec<String> = module.split("::").map(str::to_string).collect();
        for path in paths_in(code) {
            let mut segs: Vec<String> = path.split("::").map(str::to_string).collect();
            let base: Vec<String> = match segs[0].as_str() {
                "crate" => {
                    segs.remove(0);
                    Vec::new()
                }
                "self" => {
                    segs.remove(0);
                    here.clone()
                }
                "super" => {
                    let mut b = here.clone();
                    while segs.first().is_some_and(|s| s == "super") {
                        segs.remove(0);
                        b.pop();
                    }
                    b
                }
                _ => continue,
            };
            let full: Vec<String> = base.into_iter().chain(segs).collect();
            let Some(target) = resolve(&full) else {
                continue;
            };
            let descendant = target == *module || target.starts_with(&format!("{module}::"));
            if !descendant {
                deps.insert(target);
            }
        }
    }
    graph
}

/// The `crate::`/`super::`/`self::` paths of some code, with `use` groups
/// (`use super::{a, b::c}`) expanded one level.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        for (i, _) in code.match_indices(start) {
            // Not the tail of a longer identifier (`mycrate::`).
            if i > 0
                && (bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':')
            {
                continue;
            }
            let rest = &code[i..];
            let head: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let head = head.trim_end_matches(':').to_string();
            let after = &rest[head.len()..];
            if let Some(group) = after.strip_prefix("::{") {
                let inner: String = group.chars().take_while(|c| *c != '}').collect();
                for item in inner.split(',') {
                    let item = item.split_whitespace().next().unwrap_or("");
                    let item = item.trim_end_matches(':');
                    if !item.is_empty() && item.chars().next().unwrap().is_ascii_lowercase() {
                        out.push(format!("{head}::{item}"));
                    } else {
                        out.push(head.clone());
                    }
                }
            } else {
                out.push(head);
            }
        }
    }
    out
}

/// The crate's top-level modules and the top-level modules each one uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, deps) in file_graph() {
        let top = module.split("::").next().unwrap().to_string();
        let entry = graph.entry(top.clone()).or_default();
        for d in deps {
            let dtop = d.split("::").next().unwrap().to_string();
            if dtop != top {
                entry.insert(dtop);
            }
        }
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn modules_have_no_import_cycles() {
    let graph = module_graph();
    assert!(graph.contains_key("run") && graph.contains_key("executor"));
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn submodules_have_no_import_cycles_either() {
    let graph = file_graph();
    // The resolution sees inside the folders (super:: paths included).
    assert!(
        graph["run::passes"].contains("run::lanes"),
        "{:?}",
        graph["run::passes"]
    );
    assert!(
        graph["run::lanes"].contains("run::sink"),
        "{:?}",
        graph["run::lanes"]
    );
    assert!(graph["pgwire::connect"].contains("pgwire::transport"));
    assert_eq!(find_cycle(&graph), None);
}

/// The Python package's modules (`_batch`, `_api`, …) and the sibling
/// modules each imports (`from ._x import …`, `from . import _x`), type
/// checking imports included: a cycle there is one too.
fn python_graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = manifest().join("python/isospec");
    let modules: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".py").map(str::to_string)
        })
        .collect();
    let mut graph = BTreeMap::new();
    for m in &modules {
        let code = std::fs::read_to_string(dir.join(format!("{m}.py"))).unwrap();
        let mut uses = BTreeSet::new();
        for line in code.lines().map(str::trim_start) {
            if let Some(rest) = line.strip_prefix("from .") {
                let (module, names) = rest.split_once(" import ").unwrap_or((rest, ""));
                let candidates: Vec<&str> = if module.is_empty() {
                    names.split(',').map(|n| n.trim()).collect()
                } else {
                    vec![module.trim()]
                };
                uses.extend(
                    candidates
                        .into_iter()
                        .filter(|c| modules.contains(*c) && *c != m)
                        .map(str::to_string),
                );
            }
        }
        graph.insert(m.clone(), uses);
    }
    graph
}

#[test]
fn python_modules_have_no_import_cycles() {
    let graph = python_graph();
    assert!(graph["_batch"].contains("_api"), "{graph:#?}");
    assert!(graph["pytest_plugin"].contains("_session"), "{graph:#?}");
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn the_cycle_finder_sees_a_cycle_through_super_paths() {
    let code_a = "use super::b::Thing;";
    let code_b = "use super::a::Other;";
    assert_eq!(paths_in(code_a), ["super::b::Thing"]);
    assert_eq!(
        paths_in("use super::{b, c::D};"),
        ["super::b", "super::c::D"]
    );
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("m::a".into()).or_default().insert("m::b".into());
    g.entry("m::b".into()).or_default().insert("m::a".into());
    assert!(find_cycle(&g).is_some(), "{code_b}");
}

#[test]
fn the_reporter_knows_only_the_outcome_types() {
    let graph = module_graph();
    let report: Vec<&String> = graph["report"].iter().collect();
    // The outcome types; what explore found (its classes and documents),
    // the spec whose permutation lines explore's report writes, and the
    // one helper that counts words for every output.
    assert_eq!(report, ["explore", "outcome", "spec", "words"]);
    // The explore driver emits events; it never calls the reporter.
    assert!(
        !graph["explore"].contains("report"),
        "{:?}",
        graph["explore"]
    );
    // The run emits events; it never calls the reporter.
    assert!(!graph["run"].contains("report"), "{:?}", graph["run"]);
    assert!(!graph["executor"].contains("run"));
}

/// Where any of `needles` stands in the crate's sources outside the
/// top-level modules `allowed` ("file: needle").
fn uses_outside(allowed: &[&str], needles: &[&str]) -> Vec<String> {
    let src = manifest().join("src");
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path.strip_prefix(&src).unwrap();
        if path.extension().is_none_or(|e| e != "rs")
            || allowed.iter().any(|m| rel.starts_with(Path::new(m)))
        {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for needle in needles {
            if text.contains(needle) {
                found.push(format!("{}: {needle}", path.display()));
            }
        }
    }
    found
}

#[test]
fn only_the_reporter_prints() {
    // report/console.rs carries what the commands other than run and
    // explore print; the binary's main.rs is a call and an exit.
    let offenders = uses_outside(
        &["report"],
        &[
            "println!",
            "eprintln!",
            "print!(",
            "eprint!(",
            "stdout()",
            "stderr()",
        ],
    );
    assert!(
        offenders.is_empty(),
        "print through report (report::console for a command's lines): {offenders:?}"
    );
}

#[test]
fn one_place_builds_a_runtime() {
    // run/setup.rs: the commands' runtime and the frame explore and record
    // run in; run, explore, record and each -j lane take theirs from it.
    let offenders = uses_outside(
        &["run/setup.rs"],
        &["runtime::Builder", "Runtime::new(", "#[tokio::main"],
    );
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn only_the_cli_reads_the_process_environment() {
    let offenders = uses_outside(
        &["cli"],
        &["env::var(", "env::var_os(", "env::vars(", "env::vars_os("],
    );
    assert!(
        offenders.is_empty(),
        "read the environment::Environment snapshot instead: {offenders:?}"
    );
}

#[test]
fn no_source_file_is_too_long_to_read() {
    let mut long = Vec::new();
    for (dir, ext, max) in [("src", "rs", 800), ("python/isospec", "py", 400)] {
        for entry in walkdir::WalkDir::new(manifest().join(dir)) {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.extension().is_none_or(|e| e != ext) {
                continue;
            }
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            if lines > max {
                long.push(format!("{}: {lines} lines (at most {max})", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "split by job: {long:?}");
}

#[test]
fn only_the_provisioning_script_installs_system_packages() {
    // scripts/provision.sh installs what tests need, once, up front (.ci/run
    // calls it); a test or check script that installs would hide a missing
    // piece on a contributor's machine and slow every run.
    let root = manifest();
    let mut offenders = Vec::new();
    for dir in ["scripts", "tests", ".ci", "bench", "Makefile"] {
        for entry in walkdir::WalkDir::new(root.join(dir))
            .into_iter()
            .filter_entry(|e| e.file_name() != "node_modules")
        {
            let entry = entry.unwrap();
            let path = entry.path();
            if !entry.file_type().is_file()
                || path.ends_with("scripts/provision.sh")
                || path.ends_with("tests/it/architecture.rs")
            {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            for (n, line) in text.lines().enumerate() {
                let code = line.split('#').next().unwrap_or("");
                if [
                    "apt-get install",
                    "apt install",
                    "dnf install",
                    "yum install",
                ]
                .iter()
                .any(|c| code.contains(c))
                    && !code.contains("provision")
                {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "install through scripts/provision.sh, and check with `scripts/provision.sh --check PIECE`: {offenders:?}"
    );
}
