//! isospec's directives: `# isospec: …` comments in a spec, which
//! isolationtester reads as comments (so a spec stays PostgreSQL's) and
//! isospec as options: outcome queries, invariants, commuting steps and
//! switches such as `prepared-waits` or `known-violations`.

use super::{Pos, SpecOptions};

/// Reads `# isospec: OPTION …` directives out of a comment into
/// `options`; the messages of the options it does not know, if any.
pub(super) fn directive(comment: &[u8], pos: Pos, options: &mut SpecOptions) -> Vec<String> {
    let mut errors = Vec::new();
    let text = String::from_utf8_lossy(&comment[1..]);
    let Some(rest) = text.trim_start().strip_prefix("isospec:") else {
        return errors;
    };
    // `outcome SQL` and `invariant SQL` take the rest of the line.
    let rest = rest.trim();
    for word in ["outcome", "invariant"] {
        if let Some(sql) = rest
            .strip_prefix(word)
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            let sql = sql.trim().to_string();
            if word == "outcome" {
                options.outcomes.push(sql);
            } else {
                options.invariants.push(sql);
                options.invariant_pos.push(pos);
            }
            return errors;
        }
    }
    for word in ["commutes", "volatile"] {
        if let Some(names) = rest
            .strip_prefix(word)
            .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
        {
            for name in names.split_whitespace() {
                let name = name.trim_matches('"').to_string();
                if word == "commutes" {
                    options.commutes.push((name, pos));
                } else {
                    options.volatile.push((name, pos));
                }
            }
            return errors;
        }
    }
    for word in rest.split_whitespace() {
        if !options.set(word) {
            errors.push(format!(
                "unknown isospec option \"{word}\" (known: {})",
                SpecOptions::KNOWN.join(", ")
            ));
        }
    }
    errors
}
