//! What a step's SQL text says, read without a server: the words of each
//! statement (outside literals, quoted identifiers, dollar quotes and
//! comments), and whether the step only reads.  explore's shrinking keeps
//! the reading steps as observers, its serial orders read transaction
//! control from the words, and record marks a read-only statement: one
//! judgement for all three, beside the spec it judges.

/// Whether `sql` only reads: every statement is a query (SELECT, TABLE,
/// VALUES, SHOW, or a WITH without a data-modifying part) with no
/// locking clause and no call of the sequence functions.  A judgement on
/// the text, conservative where it cannot tell: dollar quotes, and any
/// word that writes or locks, make the step count as writing.
pub fn read_only(sql: &str) -> bool {
    let Some(statements) = statement_words(sql) else {
        return false;
    };
    let mut any = false;
    for words in statements {
        let Some(first) = words.first() else {
            continue;
        };
        any = true;
        if !matches!(
            first.as_str(),
            "select" | "table" | "values" | "show" | "with"
        ) {
            return false;
        }
        const WRITES: [&str; 12] = [
            "insert",
            "update",
            "delete",
            "merge",
            "into",
            "share",
            "lock",
            "nextval",
            "setval",
            "pg_advisory_lock",
            "pg_advisory_xact_lock",
            "txid_current",
        ];
        if words.iter().any(|w| WRITES.contains(&w.as_str())) {
            return false;
        }
    }
    any
}

/// The lower-cased words of each statement of `sql`, outside string
/// literals, quoted identifiers and comments; None where the text has a
/// dollar quote (a function body may do anything: `read_only` cannot
/// tell).
fn statement_words(sql: &str) -> Option<Vec<Vec<String>>> {
    let (statements, dollar) = words_of(sql);
    (!dollar).then_some(statements)
}

/// The lower-cased words of each statement of `sql`, outside string
/// literals, quoted identifiers, dollar quotes and comments (what
/// `serial` reads transaction control from).
pub fn statements(sql: &str) -> Vec<Vec<String>> {
    words_of(sql).0
}

/// The words of each statement, and whether the text has a dollar quote.
fn words_of(sql: &str) -> (Vec<Vec<String>>, bool) {
    let chars: Vec<char> = sql.chars().collect();
    let mut statements = vec![Vec::new()];
    let mut word = String::new();
    let mut dollar = false;
    let flush = |word: &mut String, statements: &mut Vec<Vec<String>>| {
        if !word.is_empty() {
            statements
                .last_mut()
                .expect("one statement at least")
                .push(std::mem::take(word).to_lowercase());
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\'' | '"' => {
                flush(&mut word, &mut statements);
                while i < chars.len() {
                    i += 1;
                    if chars[i - 1] == c {
                        break;
                    }
                }
            }
            '-' if chars.get(i) == Some(&'-') => {
                flush(&mut word, &mut statements);
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i) == Some(&'*') => {
                flush(&mut word, &mut statements);
                i += 1;
                while i < chars.len() && !(chars[i - 1] == '*' && chars[i] == '/') {
                    i += 1;
                }
                i += 1;
            }
            '$' if !word.is_empty() => word.push(c),
            '$' => {
                // `$tag$ … $tag$` (a parameter such as `$1` is no quote).
                let tag_end = (i..chars.len())
                    .find(|&j| !(chars[j].is_alphanumeric() || chars[j] == '_'))
                    .unwrap_or(chars.len());
                if chars.get(tag_end) != Some(&'$')
                    || chars.get(i).is_some_and(char::is_ascii_digit)
                {
                    continue;
                }
                flush(&mut word, &mut statements);
                dollar = true;
                let tag: Vec<char> = chars[i - 1..=tag_end].to_vec();
                i = tag_end + 1;
                while i < chars.len() && !chars[i..].starts_with(&tag) {
                    i += 1;
                }
                i = (i + tag.len()).min(chars.len());
            }
            ';' => {
                flush(&mut word, &mut statements);
                statements.push(Vec::new());
            }
            c if c.is_alphanumeric() || c == '_' => word.push(c),
            _ => flush(&mut word, &mut statements),
        }
    }
    flush(&mut word, &mut statements);
    (statements, dollar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_and_writes_or_locks_do_not() {
        for sql in [
            "SELECT * FROM ids",
            "select id, who from t order by id; -- the duplicate\n",
            "TABLE t",
            "SHOW transaction_isolation; SELECT 'insert into' AS x",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "SELECT \"update\" FROM t /* ; DELETE */",
        ] {
            assert!(read_only(sql), "{sql}");
        }
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t FOR NO KEY UPDATE",
            "SELECT * FROM t FOR KEY SHARE",
            "SELECT nextval('s')",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT 1 INTO x",
            "SELECT 1; COMMIT",
            "BEGIN; SELECT 1",
            "SELECT $$x$$",
            "",
            "-- nothing",
        ] {
            assert!(!read_only(sql), "{sql}");
        }
    }

    #[test]
    fn statements_skip_dollar_quotes_and_comments() {
        let got =
            statements("BEGIN; DO $f$ BEGIN COMMIT; END $f$; -- commit\nSELECT $1, $$;$$; COMMIT");
        assert_eq!(
            got,
            vec![
                vec!["begin".to_string()],
                vec!["do".into()],
                vec!["select".into(), "1".into()],
                vec!["commit".into()]
            ]
        );
    }
}
