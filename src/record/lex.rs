//! The pieces of SQL's lexical rules that the recorder's rewriters share
//! (`write::inline_params` and `braces`): where a comment ends, and which
//! bytes continue an identifier.

/// Whether `c` continues an identifier (or a `$n` / dollar-quote tag).
pub fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 || c == b'$'
}

/// The index just past the `--` comment that starts at `i` (its newline
/// not included).
pub fn line_comment_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |k| i + k)
}

/// The index just past the `/* … */` comment that starts at `i`; such
/// comments nest.  The end of the text when it is not closed.
pub fn block_comment_end(b: &[u8], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_end_where_sql_ends_them() {
        let s = b"a -- x\nb /* 1 /* 2 */ 3 */ c /* open";
        assert_eq!(line_comment_end(s, 2), 6);
        assert_eq!(&s[9..block_comment_end(s, 9)], b"/* 1 /* 2 */ 3 */");
        assert_eq!(block_comment_end(s, 29), s.len());
    }
}
