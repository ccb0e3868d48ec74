//! libpq's texts: how an ErrorResponse or NoticeResponse is shown
//! (pqBuildErrorMessage3 with its cursor display), and the messages libpq
//! itself makes for a broken connection or a misbehaving server.  Kept in
//! one place so that a transcript line and libpq's wording never drift.

/// What libpq appends when the server closed the connection under a query.
pub const CLOSED_MSG: &str = "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\n";

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerMessage {
    pub fields: Vec<(u8, String)>,
}

impl ServerMessage {
    pub fn field(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    /// Localized severity (`S`), as libpq shows it.
    pub fn severity(&self) -> Option<&str> {
        self.field(b'S')
    }

    pub fn primary(&self) -> Option<&str> {
        self.field(b'M')
    }

    pub fn sqlstate(&self) -> Option<&str> {
        self.field(b'C')
    }

    /// The text libpq builds for this message with default verbosity
    /// (pqBuildErrorMessage3): severity and primary message, the cursor
    /// display for a statement position, DETAIL, HINT, QUERY, and CONTEXT for
    /// errors only.  `query` is the statement that was running.
    pub fn format_libpq(&self, is_error: bool, query: Option<&str>) -> String {
        let mut msg = String::new();
        if let Some(sev) = self.severity() {
            msg.push_str(sev);
            msg.push_str(":  ");
        }
        if let Some(m) = self.primary() {
            msg.push_str(m);
        }
        let mut cursor: Option<(&str, i64)> = None;
        if let Some(pos) = self.field(b'P') {
            match query {
                Some(q) => cursor = Some((q, crate::c_atoi::atoi(pos))),
                None => msg.push_str(&format!(" at character {pos}")),
            }
        } else if let Some(pos) = self.field(b'p') {
            match self.field(b'q') {
                Some(q) => cursor = Some((q, crate::c_atoi::atoi(pos))),
                None => msg.push_str(&format!(" at character {pos}")),
            }
        }
        msg.push('\n');
        if let Some((q, pos)) = cursor {
            if pos > 0 {
                report_error_position(&mut msg, q, pos);
            }
        }
        if let Some(v) = self.field(b'D') {
            msg.push_str(&format!("DETAIL:  {v}\n"));
        }
        if let Some(v) = self.field(b'H') {
            msg.push_str(&format!("HINT:  {v}\n"));
        }
        if let Some(v) = self.field(b'q') {
            msg.push_str(&format!("QUERY:  {v}\n"));
        }
        if is_error {
            if let Some(v) = self.field(b'W') {
                msg.push_str(&format!("CONTEXT:  {v}\n"));
            }
        }
        msg
    }
}

fn display_width(c: char) -> usize {
    let u = c as u32;
    if u < 0x20 || u == 0x7f {
        return 1;
    }
    // East Asian wide ranges (as ucs_wcwidth treats them).
    let wide = (0x1100..=0x115f).contains(&u)
        || (0x2e80..=0xa4cf).contains(&u) && u != 0x303f
        || (0xac00..=0xd7a3).contains(&u)
        || (0xf900..=0xfaff).contains(&u)
        || (0xfe30..=0xfe6f).contains(&u)
        || (0xff00..=0xff5f).contains(&u)
        || (0xffe0..=0xffe6).contains(&u)
        || (0x20000..=0x2fffd).contains(&u)
        || (0x30000..=0x3fffd).contains(&u);
    if wide {
        2
    } else {
        1
    }
}

/// libpq's reportErrorPosition: the `LINE n:` and cursor lines.
fn report_error_position(msg: &mut String, query: &str, loc: i64) {
    const DISPLAY_SIZE: usize = 60;
    const MIN_RIGHT_CUT: usize = 10;
    let loc = loc - 1;
    if loc < 0 {
        return;
    }
    let loc = loc as usize;
    let chars: Vec<char> = query
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let orig: Vec<char> = query.chars().collect();
    let mut scr = Vec::with_capacity(chars.len() + 1);
    let mut scroffset = 0usize;
    let mut loc_line = 1;
    let mut ibeg = 0usize;
    let mut iend: Option<usize> = None;
    let mut cno = 0usize;
    while cno < chars.len() {
        let ch = orig[cno];
        scr.push(scroffset);
        if ch == '\r' || ch == '\n' {
            if cno < loc {
                if ch == '\r' || cno == 0 || orig[cno - 1] != '\r' {
                    loc_line += 1;
                }
                ibeg = cno + 1;
            } else {
                iend = Some(cno);
                break;
            }
        }
        scroffset += display_width(chars[cno]);
        cno += 1;
    }
    let mut iend = match iend {
        Some(e) => e,
        None => {
            scr.push(scroffset);
            cno
        }
    };
    if loc > cno {
        return;
    }
    let mut beg_trunc = false;
    let mut end_trunc = false;
    if scr[iend] - scr[ibeg] > DISPLAY_SIZE {
        if scr[ibeg] + DISPLAY_SIZE >= scr[loc] + MIN_RIGHT_CUT {
            while scr[iend] - scr[ibeg] > DISPLAY_SIZE {
                iend -= 1;
            }
            end_trunc = true;
        } else {
            while scr[loc] + MIN_RIGHT_CUT < scr[iend] {
                iend -= 1;
                end_trunc = true;
            }
            while scr[iend] - scr[ibeg] > DISPLAY_SIZE {
                ibeg += 1;
                beg_trunc = true;
            }
        }
    }
    let mut prefix = format!("LINE {loc_line}: ");
    if beg_trunc {
        prefix.push_str("...");
    }
    let prefix_width: usize = prefix.chars().map(display_width).sum();
    msg.push_str(&prefix);
    msg.extend(&chars[ibeg..iend]);
    if end_trunc {
        msg.push_str("...");
    }
    msg.push('\n');
    let pad = prefix_width + scr[loc] - scr[ibeg];
    msg.extend(std::iter::repeat_n(' ', pad));
    msg.push_str("^\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(fields: &[(u8, &str)]) -> ServerMessage {
        ServerMessage {
            fields: fields.iter().map(|(c, v)| (*c, v.to_string())).collect(),
        }
    }

    #[test]
    fn notice_format_like_libpq() {
        let m = msg(&[
            (b'S', "NOTICE"),
            (b'M', "hello"),
            (b'D', "some detail"),
            (b'H', "a hint"),
            (b'W', "PL/pgSQL function"),
        ]);
        assert_eq!(
            m.format_libpq(false, None),
            "NOTICE:  hello\nDETAIL:  some detail\nHINT:  a hint\n"
        );
        assert_eq!(
            m.format_libpq(true, None),
            "NOTICE:  hello\nDETAIL:  some detail\nHINT:  a hint\nCONTEXT:  PL/pgSQL function\n"
        );
    }

    #[test]
    fn error_cursor_like_libpq() {
        let m = msg(&[
            (b'S', "ERROR"),
            (b'M', "syntax error at or near \"SELEC\""),
            (b'P', "1"),
        ]);
        assert_eq!(
            m.format_libpq(true, Some("SELEC 1;")),
            "ERROR:  syntax error at or near \"SELEC\"\nLINE 1: SELEC 1;\n        ^\n"
        );
        let m = msg(&[
            (b'S', "ERROR"),
            (b'M', "column \"x\" does not exist"),
            (b'P', "19"),
        ]);
        assert_eq!(
            m.format_libpq(true, Some("SELECT 1;\n\tSELECT x;\nSELECT 2")),
            "ERROR:  column \"x\" does not exist\nLINE 2:  SELECT x;\n                ^\n"
        );
        // Without the query text, the position goes into the message.
        assert_eq!(
            m.format_libpq(true, None),
            "ERROR:  column \"x\" does not exist at character 19\n"
        );
    }

    #[test]
    fn error_cursor_truncates_long_lines() {
        let q = format!(
            "SELECT {} + nosuchcol + {}",
            "1 + ".repeat(30),
            "2 + ".repeat(30)
        );
        let pos = q.find("nosuchcol").unwrap() + 1;
        let m = msg(&[(b'S', "ERROR"), (b'M', "m"), (b'P', &pos.to_string())]);
        let out = m.format_libpq(true, Some(&q));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].starts_with("LINE 1: ..."), "{out}");
        assert!(lines[1].ends_with("..."), "{out}");
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][caret..caret + 9], "nosuchcol");
    }
}
