//! The tracer over hand-made message sequences.

use super::*;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(((body.len() + 4) as u32).to_be_bytes());
    v.extend(body);
    v
}

fn z(s: &[u8]) -> Vec<u8> {
    let mut v = s.to_vec();
    v.push(0);
    v
}

fn parse(sql: &str, oids: &[u32]) -> Vec<u8> {
    let mut b = z(b"");
    b.extend(z(sql.as_bytes()));
    b.extend((oids.len() as i16).to_be_bytes());
    for o in oids {
        b.extend(o.to_be_bytes());
    }
    msg(b'P', &b)
}

fn bind(params: &[&[u8]], binary: bool) -> Vec<u8> {
    let mut b = z(b"");
    b.extend(z(b""));
    b.extend(1i16.to_be_bytes());
    b.extend((binary as i16).to_be_bytes());
    b.extend((params.len() as i16).to_be_bytes());
    for p in params {
        b.extend((p.len() as i32).to_be_bytes());
        b.extend(*p);
    }
    b.extend(0i16.to_be_bytes());
    msg(b'B', &b)
}

fn execute() -> Vec<u8> {
    let mut b = z(b"");
    b.extend(0i32.to_be_bytes());
    msg(b'E', &b)
}

fn setup() -> (Tracer, Log) {
    let mut log = Log::default();
    log.sessions.push(SessionInfo::default());
    (Tracer::new(0), log)
}

#[test]
fn a_simple_query_and_its_transaction_status() {
    let (mut t, mut log) = setup();
    t.client_bytes(&msg(b'Q', &z(b"BEGIN")), &mut log);
    assert!(log.in_flight().is_empty(), "not forwarded yet");
    log.forwarded(0);
    assert_eq!(log.in_flight().len(), 1);
    // Split across reads on purpose.
    let reply = [msg(b'C', &z(b"BEGIN")), msg(b'Z', b"T")].concat();
    t.server_bytes(&reply[..3], &mut log);
    t.server_bytes(&reply[3..], &mut log);
    let s = &log.stmts[0];
    assert_eq!(
        (s.sql.as_str(), &s.outcome, s.txn_after),
        ("BEGIN", &Outcome::Done("BEGIN".into()), Some(b'T'))
    );
    assert!(log.in_flight().is_empty());
}

#[test]
fn a_pipeline_error_skips_to_sync() {
    let (mut t, mut log) = setup();
    let out = [
        parse("SELECT 1/$1", &[23]),
        bind(&[b"0"], false),
        execute(),
        parse("SELECT $1", &[0]),
        bind(&[b"x"], false),
        execute(),
        msg(b'S', b""),
        parse("SELECT 2", &[]),
        bind(&[], false),
        execute(),
        msg(b'S', b""),
    ]
    .concat();
    t.client_bytes(&out, &mut log);
    assert_eq!(log.stmts.len(), 3);
    let back = [
        msg(b'1', b""),
        msg(b'2', b""),
        msg(
            b'E',
            &[b"SERROR\0C22012\0Mdivision by zero\0".as_slice(), b"\0"].concat(),
        ),
        msg(b'Z', b"I"),
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'C', &z(b"SELECT 1")),
        msg(b'Z', b"I"),
    ]
    .concat();
    t.server_bytes(&back, &mut log);
    assert_eq!(
        log.stmts[0].outcome,
        Outcome::Failed {
            sqlstate: "22012".into(),
            message: "division by zero".into()
        }
    );
    assert!(log.stmts[1].skipped);
    assert_eq!(log.stmts[2].outcome, Outcome::Done("SELECT 1".into()));
    assert_eq!(log.stmts[0].oids, vec![23]);
    assert_eq!(
        log.stmts[1].params[0].value.as_deref(),
        Some(b"x".as_slice())
    );
}

#[test]
fn described_types_and_row_limits() {
    let (mut t, mut log) = setup();
    let mut d = vec![b'S'];
    d.extend(z(b""));
    t.client_bytes(
        &[parse("SELECT $1", &[]), msg(b'D', &d), msg(b'S', b"")].concat(),
        &mut log,
    );
    let mut pd = 1i16.to_be_bytes().to_vec();
    pd.extend(20i32.to_be_bytes());
    t.server_bytes(
        &[
            msg(b'1', b""),
            msg(b't', &pd),
            msg(b'T', &0i16.to_be_bytes()),
            msg(b'Z', b"I"),
        ]
        .concat(),
        &mut log,
    );
    let mut e = z(b"");
    e.extend(10i32.to_be_bytes());
    t.client_bytes(
        &[
            bind(&[&7i64.to_be_bytes()], true),
            msg(b'E', &e),
            msg(b'S', b""),
        ]
        .concat(),
        &mut log,
    );
    assert_eq!(log.stmts[0].oids, vec![20]);
    assert!(log.stmts[0].params[0].binary);
    assert_eq!(log.stmts[0].row_limit, Some(10));
    // Suspended, then fetched to the end by a second Execute: one statement.
    t.server_bytes(
        &[msg(b'2', b""), msg(b's', b""), msg(b'Z', b"T")].concat(),
        &mut log,
    );
    assert!(log.stmts[0].suspended);
    t.client_bytes(&[msg(b'E', &e), msg(b'S', b"")].concat(), &mut log);
    t.server_bytes(
        &[msg(b'C', &z(b"SELECT 3")), msg(b'Z', b"T")].concat(),
        &mut log,
    );
    assert_eq!(log.stmts.len(), 1);
    assert!(!log.stmts[0].suspended);
    assert_eq!(log.stmts[0].outcome, Outcome::Done("SELECT 3".into()));
}

#[test]
fn copy_from_stdin_over_the_extended_protocol_keeps_the_queue_in_step() {
    let (mut t, mut log) = setup();
    // libpq's PQexecParams: Parse/Bind/Describe/Execute/Sync, and a
    // second Sync after CopyDone; the server ignores the first.
    let mut d = vec![b'P'];
    d.extend(z(b""));
    t.client_bytes(
        &[
            parse("COPY t FROM STDIN", &[]),
            bind(&[], false),
            msg(b'D', &d),
            execute(),
            msg(b'S', b""),
        ]
        .concat(),
        &mut log,
    );
    t.server_bytes(
        &[
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'n', b""),
            msg(b'G', &[0, 0, 0]),
        ]
        .concat(),
        &mut log,
    );
    t.client_bytes(
        &[msg(b'd', b"1\n"), msg(b'c', b""), msg(b'S', b"")].concat(),
        &mut log,
    );
    t.server_bytes(
        &[msg(b'C', &z(b"COPY 1")), msg(b'Z', b"I")].concat(),
        &mut log,
    );
    assert_eq!(log.stmts[0].outcome, Outcome::Done("COPY 1".into()));
    // The rows the client sent are kept for the step.
    let copy = log.stmts[0].copy.as_deref().unwrap();
    assert_eq!(
        (copy.out, copy.binary, copy.data.as_slice()),
        (false, false, &b"1\n"[..])
    );
    // The next statement gets its own answer.
    t.client_bytes(
        &[
            parse("SELECT 1", &[]),
            bind(&[], false),
            execute(),
            msg(b'S', b""),
        ]
        .concat(),
        &mut log,
    );
    t.server_bytes(
        &[
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'C', &z(b"SELECT 1")),
            msg(b'Z', b"I"),
        ]
        .concat(),
        &mut log,
    );
    assert_eq!(log.stmts[1].outcome, Outcome::Done("SELECT 1".into()));
    assert!(!log.stmts[1].skipped);
}
