//! The module structure ARCHITECTURE.md describes, checked: no import
//! cycles between the crate's top-level modules, and the reporter knows
//! only the outcome types.  Test code (`tests.rs`, `#[cfg(test)]` blocks)
//! is left out: tests may look anywhere.

use crate::util::manifest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crate's top-level modules and the top-level modules each one uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = manifest().join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                deps.insert(name);
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
fn the_reporter_knows_only_the_outcome_types() {
    let graph = module_graph();
    let report: Vec<&String> = graph["report"].iter().collect();
    assert_eq!(report, ["outcome"]);
    // The run emits events; it never calls the reporter.
    assert!(!graph["run"].contains("report"), "{:?}", graph["run"]);
    assert!(!graph["executor"].contains("run"));
}

#[test]
fn only_the_reporter_and_the_cli_print() {
    let src = manifest().join("src");
    let mut offenders = Vec::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path.strip_prefix(&src).unwrap();
        if path.extension().is_none_or(|e| e != "rs")
            || [Path::new("report"), Path::new("cli")]
                .iter()
                .any(|p| rel.starts_with(p))
        {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for needle in ["println!", "eprintln!", "print!(", "eprint!("] {
            if text.contains(needle) {
                offenders.push(format!("{}: {needle}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}
