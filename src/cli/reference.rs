//! The command-line and environment references in docs/ (`cli.md`,
//! `environment.md`), rendered from clap's definitions and
//! `environment::VARIABLES`, so that what the docs list is what the binary
//! takes: a test compares the committed files with what this renders
//! (`ISOSPEC_BLESS=1 cargo test --lib reference` rewrites them), and
//! another fails when the code reads a variable the table does not list.

use crate::environment::VARIABLES;
use clap::CommandFactory;
use std::fmt::Write;

const GENERATED: &str = "<!-- Generated from isospec's own definitions: `ISOSPEC_BLESS=1 cargo test --lib reference` rewrites this file, and `cargo test` fails when it differs. Do not edit it by hand. -->";

/// One table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// How an argument is written: `--jobs N`, `-j`, or `SPEC…`.
fn spelling(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|v| {
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
    let takes_value = arg.get_action().takes_values();
    if arg.is_positional() {
        let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        return format!("`{value}{}`", if many { "…" } else { "" });
    }
    let mut names = Vec::new();
    if let Some(l) = arg.get_long() {
        names.push(if takes_value {
            format!("`--{l} {value}`")
        } else {
            format!("`--{l}`")
        });
    }
    if let Some(s) = arg.get_short() {
        names.push(format!("`-{s}`"));
    }
    names.join(", ")
}

/// The section of one command (and of its subcommands after it).
fn command(out: &mut String, path: &str, cmd: &mut clap::Command) {
    let _ = writeln!(out, "\n## `{path}`\n");
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{}\n", about.to_string().trim());
    }
    if path == "isospec pg_isolation_regress" {
        // pg_regress's own options, parsed as pg_regress parses them.
        let _ = writeln!(
            out,
            "```text\n{}```",
            super::pg_regress::help("isospec pg_isolation_regress")
        );
        return;
    }
    let usage = cmd.render_usage().to_string();
    let _ = writeln!(out, "```text\n{}\n```", usage.trim());
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
        .collect();
    if !args.is_empty() {
        let _ = writeln!(
            out,
            "\n| argument | default | meaning |\n| --- | --- | --- |"
        );
        for arg in args {
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let mut meaning = cell(&help);
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| format!("`{}`", v.get_name()))
                .collect();
            if !values.is_empty() && arg.get_action().takes_values() {
                let _ = write!(meaning, " One of {}.", values.join(", "));
            }
            if let Some(var) = arg.get_env() {
                let _ = write!(meaning, " Variable: `{}`.", var.to_string_lossy());
            }
            let default: Vec<String> = (if arg.get_action().takes_values() {
                arg.get_default_values()
            } else {
                &[]
            })
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                spelling(arg),
                default.join(" "),
                meaning
            );
        }
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subs {
        if let Some(sub) = cmd.find_subcommand_mut(&name) {
            command(out, &format!("{path} {name}"), sub);
        }
    }
}

/// docs/cli.md: every command, its usage, and every argument.
pub(crate) fn cli_markdown() -> String {
    let mut cli = super::Cli::command();
    cli.build();
    let mut out = format!("{GENERATED}\n\n# Command-line reference\n\n");
    out.push_str(
        "Every command and argument of `isospec`, as `isospec COMMAND --help` prints them. \
Flags beat [environment variables](environment.md), which beat the \
[project's settings](running.md#project-settings).\n\n",
    );
    for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "- [`isospec {name}`](#isospec-{name}): {}",
            cell(&about)
        );
    }
    let names: Vec<String> = cli
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        if let Some(sub) = cli.find_subcommand_mut(&name) {
            command(&mut out, &format!("isospec {name}"), sub);
        }
    }
    out
}

/// docs/environment.md: every variable isospec (or its Python layer) reads.
pub(crate) fn environment_markdown() -> String {
    let mut out = format!("{GENERATED}\n\n# Environment variables\n\n");
    out.push_str(
        "isospec reads these once, when it starts. A flag beats its variable, a \
variable beats the [project's settings](running.md#project-settings), and a variable \
set to the empty string counts as unset. A variable with a value isospec cannot use \
is an error that names it, for example `isospec: error: ISOSPEC_JOBS: \"x\" is not a number`.\n\n\
| variable | meaning |\n| --- | --- |\n",
    );
    for v in VARIABLES {
        let names: Vec<String> = v.names.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(out, "| {} | {} |", names.join(", "), cell(v.meaning));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// The committed file equals `rendered`, or is rewritten under
    /// ISOSPEC_BLESS=1.
    fn matches(file: &str, rendered: &str) {
        let path = root().join(file);
        if crate::cli::env::snapshot().get("ISOSPEC_BLESS") == Some("1") {
            std::fs::write(&path, rendered).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != rendered {
            let diff = similar::TextDiff::from_lines(committed.as_str(), rendered)
                .unified_diff()
                .header(file, "rendered")
                .to_string();
            panic!("{file} is not what the code says (ISOSPEC_BLESS=1 cargo test --lib reference rewrites it):\n{diff}");
        }
    }

    #[test]
    fn the_cli_reference_is_what_clap_says() {
        matches("docs/cli.md", &cli_markdown());
    }

    #[test]
    fn the_environment_reference_is_the_table() {
        matches("docs/environment.md", &environment_markdown());
    }

    /// The string literals `"PREFIX…"` in `text` (names of variables).
    fn literals(text: &str, prefix: &str) -> Vec<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.starts_with(prefix)
                    && s.len() > prefix.len()
                    && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_variable_the_code_reads_is_in_the_table() {
        let listed: Vec<&str> = VARIABLES
            .iter()
            .flat_map(|v| v.names.iter().copied())
            .collect();
        let mut missing = Vec::new();
        for (dir, ext) in [("src", "rs"), ("python/isospec", "py")] {
            for entry in walkdir::WalkDir::new(root().join(dir)) {
                let entry = entry.unwrap();
                let path = entry.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                // Test files and this one may make up names.
                if path.extension().is_none_or(|e| e != ext)
                    || name == "tests.rs"
                    || name.ends_with("_tests.rs")
                    || path.ends_with("cli/reference.rs")
                {
                    continue;
                }
                let text = std::fs::read_to_string(path).unwrap();
                // Test code (a module's tail) may make up names.
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for name in literals(code, "ISOSPEC_") {
                    if !listed.contains(&name.as_str()) {
                        missing.push(format!("{}: {name}", path.display()));
                    }
                }
            }
        }
        for key in crate::settings::KEYS {
            if let Some(var) = key.var {
                if !listed.contains(&var) {
                    missing.push(format!("settings key {}: {var}", key.name));
                }
            }
        }
        for name in &listed {
            if !crate::environment::is_used(name) && !name.starts_with("ISOSPEC_") {
                missing.push(format!("{name} is listed but the snapshot drops it"));
            }
        }
        assert!(
            missing.is_empty(),
            "add them to environment::VARIABLES: {missing:?}"
        );
    }
}
