//! COPY through the proxy as steps the executor can run.  A spec's step
//! cannot feed COPY FROM STDIN (isolationtester has no data stream), so
//! the rows the client sent are parsed here, as the server parses them
//! (text format: delimiters, `\N`, backslash escapes; CSV: quotes,
//! escapes, the unquoted null string, HEADER), and the step becomes an
//! `INSERT … VALUES` of those rows with untyped literals that the server
//! casts to the columns' types, as COPY does.  COPY TO STDOUT becomes the
//! SELECT whose rows it printed.  Binary COPY, COPY … WHERE and the
//! FORCE_* options are left out with the reason.

use super::literal::quote_string;

/// How much COPY FROM STDIN data one statement may carry into the spec.
pub const COPY_LIMIT: usize = 64 << 20;

/// The COPY data a statement moved, as traced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyData {
    /// COPY TO STDOUT (the server sent the rows), else FROM STDIN.
    pub out: bool,
    /// The overall format was binary.
    pub binary: bool,
    /// The client's CopyData bytes (FROM STDIN), in order.
    pub data: Vec<u8>,
    /// More than `COPY_LIMIT` bytes came: `data` was not kept.
    pub over: bool,
    /// The client ended the copy with CopyFail.
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Csv,
    Binary,
}

/// A COPY statement's parts, as written.
#[derive(Debug)]
struct Copy {
    /// COPY (query) TO: the query.
    query: Option<String>,
    table: String,
    columns: Option<String>,
    from: bool,
    format: Format,
    delimiter: Option<char>,
    null: Option<String>,
    header: bool,
    quote: char,
    escape: Option<char>,
}

/// The statement that replaces a traced COPY, or why there is none.
pub fn step(sql: &str, copy: &CopyData) -> Result<String, String> {
    let c = parse(sql)?;
    if copy.binary || c.format == Format::Binary {
        return Err("a binary COPY cannot be replayed as a step".into());
    }
    if copy.out {
        if c.from {
            return Err("a COPY whose direction is unclear cannot be replayed as a step".into());
        }
        return Ok(match &c.query {
            Some(q) => q.clone(),
            // COPY t TO reads t's own rows, not its children's.
            None => format!(
                "SELECT {} FROM ONLY {}",
                c.columns
                    .as_deref()
                    .map(|s| s.trim_start_matches('(').trim_end_matches(')').trim())
                    .unwrap_or("*"),
                c.table
            ),
        });
    }
    if copy.failed {
        return Err("the client ended this COPY with CopyFail".into());
    }
    if copy.over {
        return Err(format!(
            "its COPY data is over {} MiB, more than a step holds",
            COPY_LIMIT >> 20
        ));
    }
    if !c.from || c.query.is_some() {
        return Err("a COPY whose direction is unclear cannot be replayed as a step".into());
    }
    let text =
        std::str::from_utf8(&copy.data).map_err(|_| "its COPY data is not UTF-8".to_string())?;
    let rows = match c.format {
        Format::Csv => csv_rows(text, &c)?,
        _ => text_rows(text, &c)?,
    };
    if rows.is_empty() {
        return Err("its COPY FROM STDIN sent no row".into());
    }
    // COPY writes identity columns' values as given: OVERRIDING SYSTEM
    // VALUE does the same for an INSERT (and nothing for other tables).
    let mut out = format!(
        "INSERT INTO {}{} OVERRIDING SYSTEM VALUE VALUES",
        c.table,
        c.columns
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default()
    );
    for (i, row) in rows.iter().enumerate() {
        out.push_str(if i == 0 { "\n(" } else { ",\n(" });
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            match v {
                Some(v) => out.push_str(&quote_string(v)),
                None => out.push_str("NULL"),
            }
        }
        out.push(')');
    }
    Ok(out)
}

/// SQL's tokens, enough for a COPY statement's head and options.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A name as written (quoted or not), for table and column names.
    Name(String),
    Str(String),
    Open,
    Close,
    Comma,
    Dot,
    Other(char),
}

fn tokens(sql: &str) -> Result<Vec<(Tok, usize, usize)>, String> {
    let b: Vec<char> = sql.chars().collect();
    let byte = |i: usize| b[..i].iter().map(|c| c.len_utf8()).sum::<usize>();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && b.get(i + 1) == Some(&'-') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            continue;
        }
        let tok = if c == '\'' || ((c == 'E' || c == 'e') && b.get(i + 1) == Some(&'\'')) {
            let escapes = c != '\'';
            if escapes {
                i += 1;
            }
            i += 1;
            let mut s = String::new();
            loop {
                match b.get(i) {
                    None => return Err("an unterminated string in the COPY statement".into()),
                    Some('\'') if b.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if escapes => {
                        let n = b.get(i + 1).copied().unwrap_or('\\');
                        s.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            Tok::Str(s)
        } else if c == '"' {
            i += 1;
            while i < b.len() {
                if b[i] == '"' {
                    if b.get(i + 1) == Some(&'"') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            Tok::Name(b[start..i.min(b.len())].iter().collect())
        } else if c.is_alphanumeric() || c == '_' {
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            Tok::Word(b[start..i].iter().collect())
        } else {
            i += 1;
            match c {
                '(' => Tok::Open,
                ')' => Tok::Close,
                ',' => Tok::Comma,
                '.' => Tok::Dot,
                c => Tok::Other(c),
            }
        };
        out.push((tok, byte(start), byte(i.min(b.len()))));
    }
    Ok(out)
}

fn word(t: Option<&(Tok, usize, usize)>) -> Option<String> {
    match t {
        Some((Tok::Word(w), _, _)) => Some(w.to_ascii_uppercase()),
        _ => None,
    }
}

/// The index just past the parenthesis that closes the one at `open`.
fn closing(toks: &[(Tok, usize, usize)], open: usize) -> Result<usize, String> {
    let mut depth = 0;
    for (k, (t, _, _)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(k + 1);
                }
            }
            _ => {}
        }
    }
    Err("an unbalanced parenthesis in the COPY statement".into())
}

fn one_char(s: &str, what: &str) -> Result<char, String> {
    let mut it = s.chars();
    match (it.next(), it.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!("COPY's {what} must be one character")),
    }
}

fn parse(sql: &str) -> Result<Copy, String> {
    let toks = tokens(sql)?;
    if word(toks.first()).as_deref() != Some("COPY") {
        return Err("not a COPY statement".into());
    }
    let mut k = 1;
    let mut c = Copy {
        query: None,
        table: String::new(),
        columns: None,
        from: false,
        format: Format::Text,
        delimiter: None,
        null: None,
        header: false,
        quote: '"',
        escape: None,
    };
    if matches!(toks.get(k), Some((Tok::Open, _, _))) {
        let end = closing(&toks, k)?;
        c.query = Some(sql[toks[k].2..toks[end - 1].1].trim().to_string());
        k = end;
    } else {
        let start = toks.get(k).ok_or("COPY names no table")?.1;
        let mut end = start;
        while let Some((Tok::Word(_) | Tok::Name(_) | Tok::Dot, _, e)) = toks.get(k) {
            let kw = word(toks.get(k));
            if matches!(kw.as_deref(), Some("FROM" | "TO")) {
                break;
            }
            end = *e;
            k += 1;
        }
        c.table = sql[start..end].to_string();
        if matches!(toks.get(k), Some((Tok::Open, _, _))) {
            let close = closing(&toks, k)?;
            c.columns = Some(sql[toks[k].1..toks[close - 1].2].to_string());
            k = close;
        }
    }
    match word(toks.get(k)).as_deref() {
        Some("FROM") => c.from = true,
        Some("TO") => c.from = false,
        _ => return Err("a COPY statement without FROM or TO".into()),
    }
    k += 1;
    match word(toks.get(k)).as_deref() {
        Some("STDIN" | "STDOUT") => k += 1,
        _ => return Err("a COPY that is not FROM STDIN or TO STDOUT".into()),
    }
    if word(toks.get(k)).as_deref() == Some("WITH") {
        k += 1;
    }
    let string_at = |k: usize| match toks.get(k) {
        Some((Tok::Str(s), _, _)) => Some(s.clone()),
        _ => None,
    };
    if matches!(toks.get(k), Some((Tok::Open, _, _))) {
        // ( option [value] [, ...] )
        let end = closing(&toks, k)?;
        let mut j = k + 1;
        while j < end - 1 {
            let name = word(toks.get(j)).ok_or("an unreadable COPY option")?;
            j += 1;
            let value = match toks.get(j) {
                Some((Tok::Str(s), _, _)) => Some(s.clone()),
                Some((Tok::Word(w), _, _)) => Some(w.clone()),
                Some((Tok::Open, _, _)) => {
                    j = closing(&toks, j)? - 1;
                    Some(String::new())
                }
                _ => None,
            };
            if value.is_some() {
                j += 1;
            }
            option(&mut c, &name, value)?;
            if matches!(toks.get(j), Some((Tok::Comma, _, _))) {
                j += 1;
            }
        }
        k = end;
    } else {
        // The older form: BINARY, DELIMITER [AS] 'x', NULL [AS] 'x', CSV,
        // HEADER, QUOTE [AS] 'x', ESCAPE [AS] 'x', FORCE ..., ENCODING 'x'.
        while let Some(w) = word(toks.get(k)) {
            if w == "WHERE" {
                break;
            }
            k += 1;
            let mut value = || {
                if word(toks.get(k)).as_deref() == Some("AS") {
                    k += 1;
                }
                let v = string_at(k);
                k += 1;
                v
            };
            match w.as_str() {
                "BINARY" => c.format = Format::Binary,
                "CSV" => c.format = Format::Csv,
                "HEADER" => c.header = true,
                "DELIMITER" | "NULL" | "QUOTE" | "ESCAPE" | "ENCODING" => {
                    let v = value();
                    option(&mut c, &w, v)?
                }
                other => option(&mut c, other, None)?,
            }
        }
    }
    if word(toks.get(k)).as_deref() == Some("WHERE") {
        return Err("a COPY … WHERE cannot be replayed as a step".into());
    }
    Ok(c)
}

fn option(c: &mut Copy, name: &str, value: Option<String>) -> Result<(), String> {
    let v = || value.clone().unwrap_or_default();
    match name.to_ascii_uppercase().as_str() {
        "FORMAT" => {
            c.format = match v().to_ascii_lowercase().as_str() {
                "text" => Format::Text,
                "csv" => Format::Csv,
                "binary" => Format::Binary,
                f => return Err(format!("COPY format {f} is unknown")),
            }
        }
        "DELIMITER" => c.delimiter = Some(one_char(&v(), "DELIMITER")?),
        "NULL" => c.null = Some(v()),
        "QUOTE" => c.quote = one_char(&v(), "QUOTE")?,
        "ESCAPE" => c.escape = Some(one_char(&v(), "ESCAPE")?),
        "HEADER" => {
            let v = value.unwrap_or_else(|| "true".into()).to_ascii_lowercase();
            c.header = match v.as_str() {
                "true" | "on" | "1" => true,
                "false" | "off" | "0" => false,
                _ => return Err("COPY … HEADER MATCH cannot be replayed as a step".into()),
            }
        }
        "ENCODING" => {
            let e = v().to_ascii_lowercase().replace(['-', '_'], "");
            if e != "utf8" && e != "unicode" {
                return Err(format!("COPY data in encoding {} is not replayed", v()));
            }
        }
        "FREEZE" => {}
        other => {
            return Err(format!(
                "COPY's {other} option cannot be replayed as a step"
            ))
        }
    }
    Ok(())
}

/// COPY's text format: one row a line, fields split at the delimiter, the
/// null string (compared before de-escaping) NULL, backslash escapes.
fn text_rows(text: &str, c: &Copy) -> Result<Vec<Vec<Option<String>>>, String> {
    let delim = c.delimiter.unwrap_or('\t');
    let null = c.null.clone().unwrap_or_else(|| "\\N".into());
    let mut rows = Vec::new();
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    for (n, line) in lines.into_iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "\\." {
            break;
        }
        if n == 0 && c.header {
            continue;
        }
        let mut fields = Vec::new();
        let mut raw = String::new();
        let mut chars = line.chars().peekable();
        loop {
            match chars.next() {
                Some('\\') => {
                    raw.push('\\');
                    if let Some(n) = chars.next() {
                        raw.push(n);
                    }
                }
                Some(ch) if ch == delim => {
                    fields.push(std::mem::take(&mut raw));
                }
                Some(ch) => raw.push(ch),
                None => {
                    fields.push(std::mem::take(&mut raw));
                    break;
                }
            }
        }
        let mut row = Vec::with_capacity(fields.len());
        for f in fields {
            row.push(if f == null {
                None
            } else {
                Some(unescape(&f).ok_or("its COPY data's escapes are not UTF-8")?)
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The text format's backslash escapes; octal and hex escapes are bytes
/// (`\303\251` is "é" in UTF-8), as the server reads them.  None when the
/// bytes are not UTF-8.
fn unescape(f: &str) -> Option<String> {
    let mut out: Vec<u8> = Vec::with_capacity(f.len());
    let b = f.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let n = b[i + 1];
        i += 2;
        match n {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(n - b'0');
                for _ in 0..2 {
                    match b.get(i).filter(|c| (b'0'..=b'7').contains(c)) {
                        Some(d) => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push((v & 0o377) as u8);
            }
            b'x' if b.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match b.get(i).and_then(|c| (*c as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

/// COPY's CSV format: quoted fields (which may span lines), the escape
/// character before a quote, the unquoted null string NULL.
fn csv_rows(text: &str, c: &Copy) -> Result<Vec<Vec<Option<String>>>, String> {
    let delim = c.delimiter.unwrap_or(',');
    let null = c.null.clone().unwrap_or_default();
    let quote = c.quote;
    let escape = c.escape.unwrap_or(quote);
    let b: Vec<char> = text.chars().collect();
    let mut rows = Vec::new();
    let mut i = 0;
    let mut first = true;
    while i < b.len() {
        // The end-of-data marker alone on its line.
        if b[i] == '\\'
            && b.get(i + 1) == Some(&'.')
            && matches!(b.get(i + 2), None | Some('\n' | '\r'))
        {
            break;
        }
        let mut row = Vec::new();
        loop {
            let mut value = String::new();
            let mut quoted = false;
            loop {
                match b.get(i) {
                    Some(&ch) if ch == quote => {
                        quoted = true;
                        i += 1;
                        loop {
                            match b.get(i) {
                                None => return Err("unterminated CSV quoted field".into()),
                                Some(&e)
                                    if e == escape
                                        && matches!(b.get(i + 1), Some(&n) if n == quote || n == escape) =>
                                {
                                    value.push(b[i + 1]);
                                    i += 2;
                                }
                                Some(&q) if q == quote => {
                                    i += 1;
                                    break;
                                }
                                Some(&ch) => {
                                    value.push(ch);
                                    i += 1;
                                }
                            }
                        }
                    }
                    Some(&ch) if ch == delim || ch == '\n' || ch == '\r' => break,
                    None => break,
                    Some(&ch) => {
                        value.push(ch);
                        i += 1;
                    }
                }
            }
            row.push((quoted || value != null).then_some(value));
            match b.get(i) {
                Some(&ch) if ch == delim => i += 1,
                _ => break,
            }
        }
        if b.get(i) == Some(&'\r') {
            i += 1;
        }
        if b.get(i) == Some(&'\n') {
            i += 1;
        }
        if first && c.header {
            first = false;
            continue;
        }
        first = false;
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> CopyData {
        CopyData {
            data: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn text_format_rows_become_an_insert() {
        let got = step(
            "COPY t (a, \"B\") FROM STDIN",
            &data("1\tx}y\n\\N\ta\\tb\\\\c\n3\t\\N\n\\.\n"),
        )
        .unwrap();
        assert_eq!(
            got,
            "INSERT INTO t (a, \"B\") OVERRIDING SYSTEM VALUE VALUES\n('1', E'x\\x7dy'),\n(NULL, 'a\tb\\c'),\n('3', NULL)"
        );
        // psycopg2's copy_from: the older option syntax.
        let got = step(
            "COPY \"t\" (\"a\",\"b\") FROM stdin WITH DELIMITER AS '|' NULL AS 'nil'",
            &data("1|nil\n"),
        )
        .unwrap();
        assert_eq!(
            got,
            "INSERT INTO \"t\" (\"a\",\"b\") OVERRIDING SYSTEM VALUE VALUES\n('1', NULL)"
        );
        // Octal and hex escapes are bytes: UTF-8 for é.
        let got = step("COPY t FROM STDIN", &data("\\303\\251\t\\xc3\\xa9\n")).unwrap();
        assert_eq!(
            got,
            "INSERT INTO t OVERRIDING SYSTEM VALUE VALUES\n('é', 'é')"
        );
    }

    #[test]
    fn csv_rows_with_quotes_header_and_nulls() {
        let got = step(
            "COPY s.t FROM STDIN WITH (FORMAT csv, HEADER true)",
            &data("a,b,c\n1,\"x,\"\"y\"\"\n z\",\n2,\"\",w\n"),
        )
        .unwrap();
        assert_eq!(
            got,
            "INSERT INTO s.t OVERRIDING SYSTEM VALUE VALUES\n('1', 'x,\"y\"\n z', NULL),\n('2', '', 'w')"
        );
        let got = step("COPY t FROM STDIN CSV", &data("1,2\r\n")).unwrap();
        assert_eq!(
            got,
            "INSERT INTO t OVERRIDING SYSTEM VALUE VALUES\n('1', '2')"
        );
    }

    #[test]
    fn copy_to_stdout_is_its_select() {
        let out = CopyData {
            out: true,
            ..Default::default()
        };
        assert_eq!(
            step("COPY (SELECT a FROM t ORDER BY a) TO STDOUT WITH CSV", &out).unwrap(),
            "SELECT a FROM t ORDER BY a"
        );
        assert_eq!(
            step("copy t (a, b) to stdout", &out).unwrap(),
            "SELECT a, b FROM ONLY t"
        );
    }

    #[test]
    fn what_cannot_be_a_step_says_why() {
        let e = step("COPY t FROM STDIN WHERE a > 1", &data("1\n")).unwrap_err();
        assert!(e.contains("WHERE"), "{e}");
        let e = step("COPY t FROM STDIN (FORMAT binary)", &data("x")).unwrap_err();
        assert!(e.contains("binary"), "{e}");
        let e = step(
            "COPY t FROM STDIN",
            &CopyData {
                over: true,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("64 MiB"), "{e}");
        let e = step("COPY t FROM STDIN (FORCE_NULL (a))", &data("1\n")).unwrap_err();
        assert!(e.contains("FORCE_NULL"), "{e}");
    }
}
