//! Lexer (nom) and recursive-descent parser for `.spec` files.
//!
//! The token rules are those of isolationtester's flex scanner; the grammar is
//! its bison grammar.  Unlike isolationtester, which stops at the first
//! problem with "syntax error at line N", this parser recovers and reports
//! every error of a file with `file:line:col` and what was expected.

use super::directives::directive;
use super::{Blocker, Permutation, PermutationStep, Pos, Session, SpecOptions, Step, TestSpec};
use nom::bytes::complete::{take_while, take_while1, take_while_m_n};
use nom::IResult;
use std::fmt;

/// One syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

/// All syntax errors of one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseErrors {
    pub file: String,
    pub errors: Vec<ParseError>,
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: error: {}", self.file, e.pos, e.message)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Notices,
    Permutation,
    Session,
    Setup,
    Step,
    Teardown,
    Ident(String),
    Sql(String),
    Int(i64),
    Punct(u8),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Notices => write!(f, "keyword `notices`"),
            Tok::Permutation => write!(f, "keyword `permutation`"),
            Tok::Session => write!(f, "keyword `session`"),
            Tok::Setup => write!(f, "keyword `setup`"),
            Tok::Step => write!(f, "keyword `step`"),
            Tok::Teardown => write!(f, "keyword `teardown`"),
            Tok::Ident(s) => write!(f, "name `{s}`"),
            Tok::Sql(_) => write!(f, "SQL block"),
            Tok::Int(n) => write!(f, "number {n}"),
            Tok::Punct(c) => write!(f, "`{}`", *c as char),
            Tok::Eof => write!(f, "end of file"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
}

/// Maps byte offsets to line/column positions.
struct Lines<'a> {
    src: &'a [u8],
    starts: Vec<usize>,
    /// The last position asked (offset, column), so that the columns of
    /// one long line (a recorded permutation of 20,000 steps) are counted
    /// once, not once per step.
    last: std::cell::Cell<(usize, usize)>,
}

impl<'a> Lines<'a> {
    fn new(src: &'a [u8]) -> Self {
        let mut starts = vec![0];
        for (i, &b) in src.iter().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        Lines {
            src,
            starts,
            last: std::cell::Cell::new((0, 0)),
        }
    }

    fn pos(&self, offset: usize) -> Pos {
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.starts[line];
        let end = offset.min(self.src.len());
        // Column in characters: count bytes that are not UTF-8 continuation
        // bytes, from the last position asked when it is earlier on this line.
        let (from, base) = match self.last.get() {
            (o, c) if o >= start && o <= end => (o, c),
            _ => (start, 0),
        };
        let col = base
            + self.src[from..end]
                .iter()
                .filter(|&&b| (b & 0xC0) != 0x80)
                .count();
        self.last.set((end, col));
        Pos {
            line: line as u32 + 1,
            col: col as u32 + 1,
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0c)
}

fn ident(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (rest, _) = take_while_m_n(1, 1, super::is_ident_start)(input)?;
    let (rest, _) = take_while(super::is_ident_cont)(rest)?;
    Ok((rest, &input[..input.len() - rest.len()]))
}

fn digits(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b.is_ascii_digit())(input)
}

fn comment(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (rest, _) = nom::bytes::complete::tag("#")(input)?;
    take_while(|b| b != b'\n' && b != b'\r')(rest)
}

fn lex(
    src: &[u8],
    lines: &Lines,
    errors: &mut Vec<ParseError>,
    options: &mut SpecOptions,
) -> Vec<Token> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let rest = &src[i..];
        let b = rest[0];
        let pos = lines.pos(i);
        if b == b'\n' || is_space(b) {
            i += 1;
            continue;
        }
        if let Ok((r, _)) = comment(rest) {
            let end = src.len() - r.len();
            for message in directive(&src[i..end], pos, options) {
                errors.push(ParseError { pos, message });
            }
            i = end;
            continue;
        }
        if super::is_ident_start(b) {
            let (r, word) = ident(rest).expect("ident start checked");
            i = src.len() - r.len();
            let tok = match word {
                b"notices" => Tok::Notices,
                b"permutation" => Tok::Permutation,
                b"session" => Tok::Session,
                b"setup" => Tok::Setup,
                b"step" => Tok::Step,
                b"teardown" => Tok::Teardown,
                _ => Tok::Ident(String::from_utf8_lossy(word).into_owned()),
            };
            toks.push(Token { tok, pos });
            continue;
        }
        if let Ok((r, d)) = digits(rest) {
            i = src.len() - r.len();
            let text = std::str::from_utf8(d).unwrap_or("0");
            match text.parse::<i64>() {
                Ok(n) if n <= i32::MAX as i64 => toks.push(Token {
                    tok: Tok::Int(n),
                    pos,
                }),
                _ => {
                    errors.push(ParseError {
                        pos,
                        message: format!("number {text} is too large"),
                    });
                    toks.push(Token {
                        tok: Tok::Int(i32::MAX as i64),
                        pos,
                    });
                }
            }
            continue;
        }
        match b {
            b'"' => {
                let mut name = Vec::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < src.len() {
                    match src[j] {
                        b'"' if src.get(j + 1) == Some(&b'"') => {
                            name.push(b'"');
                            j += 2;
                        }
                        b'"' => {
                            closed = true;
                            j += 1;
                            break;
                        }
                        b'\n' => break,
                        c => {
                            name.push(c);
                            j += 1;
                        }
                    }
                }
                if !closed {
                    let message = if j < src.len() {
                        "unexpected newline in quoted identifier"
                    } else {
                        "unterminated quoted identifier"
                    };
                    errors.push(ParseError {
                        pos,
                        message: message.to_string(),
                    });
                }
                toks.push(Token {
                    tok: Tok::Ident(String::from_utf8_lossy(&name).into_owned()),
                    pos,
                });
                i = j;
            }
            b'{' => {
                let mut j = i + 1;
                while j < src.len() && is_space(src[j]) {
                    j += 1;
                }
                match src[j..].iter().position(|&c| c == b'}') {
                    Some(k) => {
                        let mut body = &src[j..j + k];
                        while let Some((&last, head)) = body.split_last() {
                            if is_space(last) {
                                body = head;
                            } else {
                                break;
                            }
                        }
                        toks.push(Token {
                            tok: Tok::Sql(String::from_utf8_lossy(body).into_owned()),
                            pos,
                        });
                        i = j + k + 1;
                    }
                    None => {
                        errors.push(ParseError {
                            pos,
                            message: "unterminated sql block: `{` has no matching `}`".to_string(),
                        });
                        toks.push(Token {
                            tok: Tok::Sql(String::from_utf8_lossy(&src[j..]).into_owned()),
                            pos,
                        });
                        i = src.len();
                    }
                }
            }
            b',' | b'(' | b')' | b'*' => {
                toks.push(Token {
                    tok: Tok::Punct(b),
                    pos,
                });
                i += 1;
            }
            _ => {
                let shown = match std::str::from_utf8(&rest[..rest.len().min(4)]) {
                    Ok(s) => s.chars().next().map(|c| c.to_string()).unwrap_or_default(),
                    Err(e) if e.valid_up_to() > 0 => std::str::from_utf8(&rest[..e.valid_up_to()])
                        .unwrap_or("")
                        .chars()
                        .next()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    Err(_) => format!("\\x{b:02x}"),
                };
                let shown = if b < 0x20 || b == 0x7f {
                    format!("\\x{b:02x}")
                } else {
                    shown
                };
                errors.push(ParseError {
                    pos,
                    message: format!("unexpected character \"{shown}\""),
                });
                // Skip one character (a whole UTF-8 sequence where there is one).
                i += 1;
                while i < src.len() && (src[i] & 0xC0) == 0x80 {
                    i += 1;
                }
            }
        }
    }
    toks.push(Token {
        tok: Tok::Eof,
        pos: lines.pos(src.len()),
    });
    toks
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    errors: Vec<ParseError>,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.at]
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    /// Records an error, unless one was already reported at this token
    /// (one mistake, one message).
    fn error(&mut self, pos: Pos, message: String) {
        if self.errors.iter().any(|e| e.pos == pos) {
            return;
        }
        self.errors.push(ParseError { pos, message });
    }

    fn expected(&mut self, what: &str) {
        let t = self.peek().clone();
        self.error(t.pos, format!("expected {what}, found {}", t.tok));
    }

    fn name(&mut self, what: &str) -> Option<(String, Pos)> {
        match self.peek().tok.clone() {
            Tok::Ident(s) => {
                let pos = self.bump().pos;
                Some((s, pos))
            }
            Tok::Notices
            | Tok::Permutation
            | Tok::Session
            | Tok::Setup
            | Tok::Step
            | Tok::Teardown
                if !matches!(
                    self.toks.get(self.at + 1).map(|t| &t.tok),
                    Some(Tok::Ident(_)) | Some(Tok::Sql(_))
                ) =>
            {
                // A keyword where a name belongs (and not the start of the
                // next item): take it as the name, and say how to write it.
                let t = self.bump();
                let word = match t.tok {
                    Tok::Notices => "notices",
                    Tok::Permutation => "permutation",
                    Tok::Session => "session",
                    Tok::Setup => "setup",
                    Tok::Step => "step",
                    _ => "teardown",
                };
                self.error(
                    t.pos,
                    format!("expected {what}, found keyword `{word}` (write \"{word}\" to use it as a name)"),
                );
                Some((word.to_string(), t.pos))
            }
            _ => {
                self.expected(what);
                None
            }
        }
    }

    /// Skips a broken marker list up to its `)` (consumed), or to the end of
    /// the permutation line.
    fn skip_markers(&mut self) {
        loop {
            match self.peek().tok {
                Tok::Punct(b')') => {
                    self.bump();
                    return;
                }
                Tok::Eof
                | Tok::Permutation
                | Tok::Session
                | Tok::Setup
                | Tok::Teardown
                | Tok::Step => return,
                _ => {
                    self.bump();
                }
            }
        }
    }

    fn sql(&mut self, what: &str) -> Option<String> {
        match self.peek().tok.clone() {
            Tok::Sql(s) => {
                self.bump();
                Some(s)
            }
            _ => {
                self.expected(&format!("`{{ SQL }}` block after {what}"));
                None
            }
        }
    }

    /// Skips tokens up to the next token that can start a top-level item.
    fn recover(&mut self) {
        while !matches!(
            self.peek().tok,
            Tok::Eof | Tok::Session | Tok::Permutation | Tok::Setup | Tok::Teardown | Tok::Step
        ) {
            self.bump();
        }
    }

    fn spec(&mut self) -> TestSpec {
        let mut spec = TestSpec::default();
        let mut teardown_pos: Option<Pos> = None;
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Eof => break,
                Tok::Setup => {
                    self.bump();
                    if let Some(s) = &spec.sessions.last() {
                        self.error(
                            t.pos,
                            format!("global `setup` must come before the first session (session {} starts at {})", s.name, s.pos),
                        );
                    } else if let Some(p) = teardown_pos {
                        self.error(
                            t.pos,
                            format!("global `setup` must come before the global `teardown` at {p}"),
                        );
                    }
                    if let Some(sql) = self.sql("`setup`") {
                        spec.setup.push(sql);
                    }
                }
                Tok::Teardown => {
                    self.bump();
                    if let Some(p) = teardown_pos {
                        self.error(
                            t.pos,
                            format!(
                                "a spec has at most one global `teardown` (the first is at {p})"
                            ),
                        );
                    } else if !spec.sessions.is_empty() {
                        self.error(
                            t.pos,
                            "global `teardown` must come before the first session".to_string(),
                        );
                    }
                    teardown_pos = Some(t.pos);
                    if let Some(sql) = self.sql("`teardown`") {
                        spec.teardown.get_or_insert(sql);
                    }
                }
                Tok::Session => {
                    self.bump();
                    if !spec.permutations.is_empty() && !spec.sessions.is_empty() {
                        self.error(
                            t.pos,
                            "sessions must come before the first `permutation`".to_string(),
                        );
                    }
                    let session = self.session(t.pos);
                    spec.sessions.push(session);
                }
                Tok::Permutation => {
                    self.bump();
                    if spec.sessions.is_empty() {
                        self.error(t.pos, "`permutation` before any session: a spec needs at least one session first".to_string());
                    }
                    let p = self.permutation(t.pos);
                    spec.permutations.push(p);
                }
                Tok::Step => {
                    self.error(
                        t.pos,
                        "`step` outside a session: steps belong after `session NAME`".to_string(),
                    );
                    self.bump();
                    self.recover();
                }
                _ => {
                    self.expected("`setup`, `teardown`, `session` or `permutation`");
                    self.bump();
                    // What follows belongs to the broken item: skip its steps too.
                    while !matches!(
                        self.peek().tok,
                        Tok::Eof | Tok::Session | Tok::Permutation | Tok::Setup | Tok::Teardown
                    ) {
                        self.bump();
                    }
                }
            }
        }
        if spec.sessions.is_empty() && self.errors.is_empty() {
            // A block missing its `}` swallows what follows up to the next
            // `}`: point at it when it swallowed a session.
            let swallowed = self.toks.iter().find(|t| match &t.tok {
                Tok::Sql(sql) => sql
                    .lines()
                    .skip(1)
                    .any(|l| l.trim_start().starts_with("session ")),
                _ => false,
            });
            match swallowed.map(|t| t.pos) {
                Some(pos) => self.error(
                    pos,
                    "this block runs on into what looks like a session (is its `}` missing?): the spec has no `session NAME`".to_string(),
                ),
                None => {
                    let pos = self.peek().pos;
                    self.error(
                        pos,
                        "a spec needs at least one `session NAME` with one or more steps".to_string(),
                    );
                }
            }
        }
        spec
    }

    fn session(&mut self, pos: Pos) -> Session {
        let errors_before = self.errors.len();
        let mut session = Session {
            pos,
            ..Default::default()
        };
        match self.name("session name") {
            Some((n, _)) => session.name = n,
            None => {
                if !matches!(self.peek().tok, Tok::Setup | Tok::Step | Tok::Teardown) {
                    self.recover();
                }
            }
        }
        let mut teardown_seen = false;
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Setup => {
                    // A `setup` after this session's steps is either a
                    // misplaced session setup or a misplaced global one.
                    self.bump();
                    if !session.steps.is_empty() || teardown_seen {
                        self.error(
                            t.pos,
                            format!(
                                "`setup` of session {} must come before its steps",
                                session.name
                            ),
                        );
                    } else if session.setup.is_some() {
                        self.error(
                            t.pos,
                            format!("session {} has more than one `setup`", session.name),
                        );
                    }
                    if let Some(sql) = self.sql("`setup`") {
                        session.setup.get_or_insert(sql);
                    }
                }
                Tok::Step => {
                    self.bump();
                    if teardown_seen {
                        self.error(
                            t.pos,
                            format!("step after the `teardown` of session {}", session.name),
                        );
                    }
                    let name = self.name("step name");
                    let sql = self.sql("the step name");
                    match (name, sql) {
                        (Some((name, pos)), Some(sql)) => {
                            session.steps.push(Step { name, pos, sql })
                        }
                        _ => self.recover(),
                    }
                }
                Tok::Teardown => {
                    self.bump();
                    if teardown_seen {
                        self.error(
                            t.pos,
                            format!("session {} has more than one `teardown`", session.name),
                        );
                    }
                    teardown_seen = true;
                    if let Some(sql) = self.sql("`teardown`") {
                        session.teardown.get_or_insert(sql);
                    }
                }
                Tok::Session | Tok::Permutation | Tok::Eof => break,
                _ => {
                    self.expected("`step`, `setup`, `teardown`, `session` or `permutation`");
                    self.bump();
                    self.recover();
                }
            }
        }
        if session.steps.is_empty() && self.errors.len() == errors_before {
            self.error(
                pos,
                format!(
                    "session {} has no steps: a session needs at least one `step NAME {{ SQL }}`",
                    session.name
                ),
            );
        }
        session
    }

    fn permutation(&mut self, pos: Pos) -> Permutation {
        let mut p = Permutation {
            pos,
            steps: Vec::new(),
        };
        while let Tok::Ident(name) = self.peek().tok.clone() {
            let spos = self.bump().pos;
            let mut pstep = PermutationStep {
                name,
                pos: spos,
                blockers: Vec::new(),
            };
            if self.peek().tok == Tok::Punct(b'(') {
                self.bump();
                loop {
                    let t = self.peek().clone();
                    match t.tok {
                        Tok::Punct(b'*') => {
                            self.bump();
                            pstep.blockers.push(Blocker::Once { pos: t.pos });
                        }
                        Tok::Ident(step) => {
                            self.bump();
                            if self.peek().tok == Tok::Notices {
                                self.bump();
                                match self.peek().tok.clone() {
                                    Tok::Int(count) => {
                                        self.bump();
                                        pstep.blockers.push(Blocker::Notices {
                                            step,
                                            count,
                                            pos: t.pos,
                                        });
                                    }
                                    _ => {
                                        self.expected("a number after `notices`");
                                        self.skip_markers();
                                        break;
                                    }
                                }
                            } else {
                                pstep.blockers.push(Blocker::OtherStep { step, pos: t.pos });
                            }
                        }
                        _ => {
                            self.expected("a marker: `*`, a step name, or `STEP notices N`");
                            self.skip_markers();
                            break;
                        }
                    }
                    match self.peek().tok {
                        Tok::Punct(b',') => {
                            self.bump();
                        }
                        Tok::Punct(b')') => {
                            self.bump();
                            break;
                        }
                        _ => {
                            self.expected("`,` or `)` in the marker list");
                            self.skip_markers();
                            break;
                        }
                    }
                }
            }
            p.steps.push(pstep);
        }
        if p.steps.is_empty() {
            self.expected("a step name after `permutation`");
        }
        // Sessions, setups and steps after a permutation are reported by the
        // top level; anything else is garbage on the permutation line.
        if !matches!(
            self.peek().tok,
            Tok::Permutation | Tok::Eof | Tok::Session | Tok::Setup | Tok::Teardown | Tok::Step
        ) {
            self.expected("a step name, `permutation` or end of file");
            self.bump();
            while !matches!(
                self.peek().tok,
                Tok::Permutation | Tok::Eof | Tok::Session | Tok::Setup | Tok::Teardown | Tok::Step
            ) {
                self.bump();
            }
        }
        p
    }
}

/// Parses spec text.  `file` is used only to label errors.
pub fn parse(file: &str, src: &[u8]) -> Result<TestSpec, ParseErrors> {
    let lines = Lines::new(src);
    let mut errors = Vec::new();
    if let Err(e) = std::str::from_utf8(src) {
        let off = e.valid_up_to();
        errors.push(ParseError {
            pos: lines.pos(off),
            message: "the file is not valid UTF-8".to_string(),
        });
        return Err(ParseErrors {
            file: file.to_string(),
            errors,
        });
    }
    let mut options = SpecOptions::default();
    let toks = lex(src, &lines, &mut errors, &mut options);
    let mut p = Parser {
        toks,
        at: 0,
        errors,
    };
    let mut spec = p.spec();
    spec.options = options;
    if p.errors.is_empty() {
        Ok(spec)
    } else {
        let mut errors = p.errors;
        errors.sort_by_key(|e| (e.pos.line, e.pos.col));
        errors.dedup();
        Err(ParseErrors {
            file: file.to_string(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests;
