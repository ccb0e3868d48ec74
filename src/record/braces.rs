//! Statement text without `}`: a step's SQL ends at the first `}` in the
//! spec language, and drivers that interpolate values on the client
//! (psycopg2, psql's variables, ORMs' literal binds) put jsonb and array
//! literals such as `'{1,2}'` in the text.  Every place a brace can stand
//! in valid SQL is a literal, a quoted identifier or a comment, and each
//! has an equivalent spelling without it: a string becomes an escape
//! string (`E'\x7b1,2\x7d'`), a dollar-quoted body too, a quoted
//! identifier a Unicode one (`U&"a\007Db"`), and a comment keeps its
//! words with parentheses instead.  The server sees the same values, so
//! the replay's rows are the recording's.

use super::lex::{block_comment_end, is_ident, line_comment_end};

/// `sql` with every `{` and `}` spelled another way, or why it cannot be.
pub fn escape_braces(sql: &str) -> Result<String, String> {
    if !sql.contains(['{', '}']) {
        return Ok(sql.to_string());
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                let kind = prefix(b, i);
                let escapes = kind == Prefix::Escape;
                // The literal and its continuations: string constants
                // separated only by whitespace that holds a newline are one
                // constant, read in the first one's mode.
                let mut segs = vec![(i, string_end(b, i, escapes))];
                let closed =
                    |(s, e): (usize, usize)| e <= b.len() && e > s + 1 && b[e - 1] == b'\'';
                while let Some(&(_, end)) = segs.last().filter(|&&seg| closed(seg)) {
                    let mut j = end;
                    let mut newline = false;
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        newline |= b[j] == b'\n';
                        j += 1;
                    }
                    if !(newline && b.get(j) == Some(&b'\'')) {
                        break;
                    }
                    segs.push((j, string_end(b, j, escapes)));
                }
                let last = segs[segs.len() - 1].1.min(b.len());
                let body = |(s, e): (usize, usize)| &sql[s + 1..e - 1];
                let all_closed = segs.iter().all(|&seg| closed(seg));
                if !all_closed || !segs.iter().any(|&seg| body(seg).contains(['{', '}'])) {
                    out.push_str(&sql[i..last]);
                    i = last;
                    continue;
                }
                if matches!(kind, Prefix::Unicode | Prefix::National) {
                    return Err("a U&'…' or N'…' string in its text holds '{' or '}'".into());
                }
                // `typename'…'`: the E must not join the name.
                if kind == Prefix::Ident {
                    out.push(' ');
                }
                for (k, &seg) in segs.iter().enumerate() {
                    if k > 0 {
                        // The whitespace (with its newline) between segments.
                        out.push_str(&sql[segs[k - 1].1..seg.0]);
                    }
                    if escapes {
                        out.push_str(&escape_escaped(body(seg)));
                    } else {
                        // The whole constant becomes an escape string: its
                        // first segment takes the E, the others follow it.
                        if k == 0 {
                            out.push('E');
                        }
                        out.push('\'');
                        out.push_str(&plain_body(body(seg), false));
                        out.push('\'');
                    }
                }
                i = last;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() {
                    if b[j] == b'"' {
                        if b.get(j + 1) == Some(&b'"') {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                let end = (j + 1).min(b.len());
                let body = &sql[i + 1..j.min(b.len())];
                if body.contains(['{', '}']) && j < b.len() {
                    if i > 1 && b[i - 1] == b'&' && matches!(b[i - 2], b'U' | b'u') {
                        return Err("a U&\"…\" identifier in its text holds '{' or '}'".into());
                    }
                    if i > 0 && is_ident(b[i - 1]) {
                        out.push(' ');
                    }
                    out.push_str("U&\"");
                    for ch in body.chars() {
                        match ch {
                            '{' => out.push_str("\\007B"),
                            '}' => out.push_str("\\007D"),
                            '\\' => out.push_str("\\\\"),
                            ch => out.push(ch),
                        }
                    }
                    out.push('"');
                } else {
                    out.push_str(&sql[i..end]);
                }
                i = end;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let j = line_comment_end(b, i);
                out.push_str(&comment(&sql[i..j]));
                i = j;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let j = block_comment_end(b, i);
                out.push_str(&comment(&sql[i..j]));
                i = j;
            }
            b'$' if i == 0 || !is_ident(b[i - 1]) => {
                // A tag does not start with a digit ($1 is a parameter).
                let tag_len = b[i + 1..]
                    .iter()
                    .take_while(|&&c| c != b'$' && is_ident(c))
                    .count();
                if b.get(i + 1).is_some_and(u8::is_ascii_digit)
                    || b.get(i + 1 + tag_len) != Some(&b'$')
                {
                    out.push('$');
                    i += 1;
                    continue;
                }
                let tag = &sql[i..i + tag_len + 2];
                let start = i + tag.len();
                match sql[start..].find(tag) {
                    Some(k) => {
                        let body = &sql[start..start + k];
                        if body.contains(['{', '}']) {
                            if i > 0 && is_ident(b[i - 1]) {
                                out.push(' ');
                            }
                            out.push_str(&escape_plain(body, true));
                        } else {
                            out.push_str(&sql[i..start + k + tag.len()]);
                        }
                        i = start + k + tag.len();
                    }
                    None => {
                        out.push_str(&sql[i..]);
                        i = b.len();
                    }
                }
            }
            b'{' | b'}' => {
                return Err(format!(
                    "its text holds '{}' outside a literal, a quoted name or a comment",
                    c as char
                ))
            }
            _ => {
                // Copy up to the next byte that can start something.
                let j = b[i..]
                    .iter()
                    .position(|&c| matches!(c, b'\'' | b'"' | b'-' | b'/' | b'$' | b'{' | b'}'))
                    .map_or(b.len(), |k| i + k.max(1));
                out.push_str(&sql[i..j]);
                i = j;
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    Plain,
    Escape,
    Unicode,
    National,
    /// Straight after an identifier (`text'…'`).
    Ident,
}

/// What stands right before the quote at `i`.
fn prefix(b: &[u8], i: usize) -> Prefix {
    if i == 0 {
        return Prefix::Plain;
    }
    let p = b[i - 1];
    let alone = i < 2 || !is_ident(b[i - 2]);
    match p {
        b'E' | b'e' if alone => Prefix::Escape,
        b'N' | b'n' if alone => Prefix::National,
        b'&' if i >= 2 && matches!(b[i - 2], b'U' | b'u') && (i < 3 || !is_ident(b[i - 3])) => {
            Prefix::Unicode
        }
        p if is_ident(p) => Prefix::Ident,
        _ => Prefix::Plain,
    }
}

/// The index just past the string literal that opens at `i`.
fn string_end(b: &[u8], i: usize, escapes: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if escapes && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == b'\'' {
            if b.get(j + 1) == Some(&b'\'') {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len() + 1
}

/// A standard string's body (its quotes already doubled) or a
/// dollar-quoted body (`dollar`: quotes as they are) as an escape string.
fn escape_plain(body: &str, dollar: bool) -> String {
    format!("E'{}'", plain_body(body, dollar))
}

/// The body of `escape_plain`'s escape string, without its quotes.
fn plain_body(body: &str, dollar: bool) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    for ch in body.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '{' => out.push_str("\\x7b"),
            '}' => out.push_str("\\x7d"),
            '\'' if dollar => out.push_str("''"),
            ch => out.push(ch),
        }
    }
    out
}

/// An escape string's body (between its quotes) with braces as hex escapes.
fn escape_escaped(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    out.push('\'');
    let mut chars = body.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some('{') => out.push_str("\\x7b"),
                Some('}') => out.push_str("\\x7d"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '{' => out.push_str("\\x7b"),
            '}' => out.push_str("\\x7d"),
            ch => out.push(ch),
        }
    }
    out.push('\'');
    out
}

/// A comment with parentheses for braces (its words kept).
fn comment(text: &str) -> String {
    text.replace('{', "(").replace('}', ")")
}

#[cfg(test)]
mod tests {
    use super::escape_braces;

    #[test]
    fn literals_quoted_names_and_comments_lose_their_braces() {
        let cases = [
            ("SELECT '{1,2}'::int[]", "SELECT E'\\x7b1,2\\x7d'::int[]"),
            (
                "INSERT INTO t VALUES ('{\"a\": \"it''s\"}', 'c:\\dir{x}')",
                "INSERT INTO t VALUES (E'\\x7b\"a\": \"it''s\"\\x7d', E'c:\\\\dir\\x7bx\\x7d')",
            ),
            ("SELECT E'\\}\\n{'", "SELECT E'\\x7d\\n\\x7b'"),
            ("SELECT jsonb'{}'", "SELECT jsonb E'\\x7b\\x7d'"),
            ("SELECT 1 AS \"a}b\"", "SELECT 1 AS U&\"a\\007Db\""),
            ("SELECT $$ {it's} $$", "SELECT E' \\x7bit''s\\x7d '"),
            ("SELECT $f$ a\\b} $f$", "SELECT E' a\\\\b\\x7d '"),
            ("SELECT 1 -- {x}\n", "SELECT 1 -- (x)\n"),
            ("SELECT /* {x} */ 1", "SELECT /* (x) */ 1"),
            ("SELECT 'none', $1, a$b", "SELECT 'none', $1, a$b"),
            // A constant continued on the next line stays one constant.
            ("SELECT '{a'\n  'b}'", "SELECT E'\\x7ba'\n  'b\\x7d'"),
            ("SELECT 'a\\'\n'{'", "SELECT E'a\\\\'\n'\\x7b'"),
            ("SELECT E'\\''\n'}'", "SELECT E'\\''\n'\\x7d'"),
            ("SELECT 'x' '{'", "SELECT 'x' E'\\x7b'"),
        ];
        for (sql, want) in cases {
            assert_eq!(escape_braces(sql).unwrap(), want, "{sql}");
        }
    }

    #[test]
    fn what_cannot_be_rewritten_is_said() {
        assert!(escape_braces("SELECT U&'{'").is_err());
        assert!(escape_braces("SELECT 1 }").is_err());
    }
}
