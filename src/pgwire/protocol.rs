//! The backend protocol as libpq parses it, without I/O: bytes go in
//! (`feed`), results, notices and notifications come out.  Every message
//! is checked before it is read in full, as libpq checks it: the type must
//! be one the current state allows, and the length sane for the type, so a
//! broken or hostile peer ends the connection at once with libpq's wording
//! and never makes isospec wait for, or allocate, what a bogus length
//! claims.  Nothing is allocated by a length the peer sent: the input
//! buffer grows only with bytes actually received.

use super::messages::ServerMessage;
use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend;
use std::collections::VecDeque;

/// libpq's limit for messages that are never long (fe-protocol3.c).
pub(crate) const MAX_SHORT_MESSAGE: i32 = 30_000;
/// The limit for the types that may be long (rows, row descriptions,
/// errors, notices, notifications, COPY data): PostgreSQL's own bound on
/// any allocation (MaxAllocSize), which no server message exceeds.
pub(crate) const MAX_LONG_MESSAGE: i32 = 0x3fff_ffff;
/// libpq's limit for an authentication request during startup.
pub(crate) const MAX_AUTH_MESSAGE: i32 = 2000;

/// libpq's VALID_LONG_MESSAGE_TYPE.
fn is_long_type(tag: u8) -> bool {
    matches!(tag, b'T' | b'D' | b'd' | b'V' | b'E' | b'N' | b'A')
}

/// The message types a connection ever handles after startup.
fn is_known_type(tag: u8) -> bool {
    matches!(
        tag,
        b'C' | b'D'
            | b'E'
            | b'I'
            | b'N'
            | b'A'
            | b'S'
            | b'T'
            | b'Z'
            | b'1'
            | b'2'
            | b'3'
            | b'n'
            | b't'
            | b's'
            | b'G'
            | b'H'
            | b'W'
            | b'd'
            | b'c'
            | b'K'
            | b'V'
    )
}

/// A message type as libpq's `%c` would show it, readable when it is not
/// a printable character.
pub(crate) fn shown_type(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        (tag as char).to_string()
    } else {
        format!("\\x{tag:02x}")
    }
}

/// The header of the message at the front of `buf`, if 5 bytes are there.
pub fn header(buf: &[u8]) -> Option<(u8, i32)> {
    if buf.len() < 5 {
        return None;
    }
    Some((buf[0], i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]])))
}

/// A message header that breaks the protocol, with libpq's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// During startup, a message that is neither an authentication
    /// request nor an error.
    #[error("expected authentication request from server, but received {}", shown_type(*tag))]
    NotAuthentication { tag: u8 },
    /// An error message of an impossible length.
    #[error("received invalid error message")]
    InvalidError,
    /// A length below 4 or above the type's limit.
    #[error("lost synchronization with server: got message type \"{}\", length {len}", shown_type(*tag))]
    LostSync { tag: u8, len: i32 },
}

/// During startup, before AuthenticationOk: only an authentication request
/// or an error may come (libpq 15's CONNECTION_AWAITING_RESPONSE checks).
pub fn check_auth_header(tag: u8, len: i32) -> Result<(), ProtocolViolation> {
    match tag {
        b'R' if (8..=MAX_AUTH_MESSAGE).contains(&len) => Ok(()),
        b'E' if (8..=MAX_SHORT_MESSAGE).contains(&len) => Ok(()),
        b'E' => Err(ProtocolViolation::InvalidError),
        _ => Err(ProtocolViolation::NotAuthentication { tag }),
    }
}

/// pqParseInput3's length check: a length below 4, or above the limit for
/// the type, means the stream is not PostgreSQL's protocol any more.
pub fn check_header(tag: u8, len: i32) -> Result<(), ProtocolViolation> {
    let limit = if is_long_type(tag) {
        MAX_LONG_MESSAGE
    } else {
        MAX_SHORT_MESSAGE
    };
    if len < 4 || len > limit {
        return Err(ProtocolViolation::LostSync { tag, len });
    }
    Ok(())
}

/// A result, as libpq's PGresult would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgResult {
    /// PGRES_COMMAND_OK, with the command tag.
    Command(String),
    /// PGRES_EMPTY_QUERY
    Empty,
    /// PGRES_TUPLES_OK
    Tuples(Tuples),
    /// PGRES_FATAL_ERROR from the server.
    Error(ServerMessage),
    /// PGRES_FATAL_ERROR made by the client (no fields), with libpq's text.
    ClientError(String),
    /// A COPY result, which spec steps cannot use.
    Copy(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuples {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// An asynchronous notification (NOTIFY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncState {
    Idle,
    Busy,
    Ready,
}

/// libpq's per-connection parse state: input not yet parsed, the query's
/// state, the result being built, and queued notices and notifications.
pub struct Inbox {
    pub inbuf: BytesMut,
    pub state: AsyncState,
    building: Option<Tuples>,
    ready: Option<PgResult>,
    notices: VecDeque<ServerMessage>,
    notifies: VecDeque<Notification>,
    /// The stream is gone (end of file, or abandoned after a sync loss).
    pub broken: bool,
    abandoned: bool,
    pub query: String,
    /// Formatted errors since the last query was sent (PQerrorMessage).
    pub error_message: String,
    /// ParameterStatus values the connection tracks.
    pub parameters: Vec<(String, String)>,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::new()
    }
}

impl Inbox {
    pub fn new() -> Inbox {
        Inbox {
            inbuf: BytesMut::with_capacity(8192),
            state: AsyncState::Idle,
            building: None,
            ready: None,
            notices: VecDeque::new(),
            notifies: VecDeque::new(),
            broken: false,
            abandoned: false,
            query: String::new(),
            error_message: String::new(),
            parameters: Vec::new(),
        }
    }

    /// Appends bytes read from the server (none once the stream was
    /// abandoned after a sync loss).
    pub fn feed(&mut self, data: &[u8]) {
        if !self.abandoned {
            self.inbuf.extend_from_slice(data);
        }
    }

    /// The lost connection's result for the query in progress (libpq's
    /// "server closed the connection unexpectedly"); the query is over.
    pub(crate) fn closed_result(&mut self, text: &str) -> PgResult {
        self.error_message.push_str(text);
        self.building = None;
        self.state = AsyncState::Idle;
        PgResult::ClientError(text.to_string())
    }

    /// A query was sent: a fresh result and error message.
    pub fn begin_query(&mut self, sql: &str) {
        self.query.clear();
        self.query.push_str(sql);
        self.error_message.clear();
        self.state = AsyncState::Busy;
        self.ready = None;
        self.building = None;
    }

    pub fn take_notice(&mut self) -> Option<ServerMessage> {
        self.notices.pop_front()
    }

    pub fn take_notify(&mut self) -> Option<Notification> {
        self.notifies.pop_front()
    }

    /// The value of a ParameterStatus the server reported.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Takes the result ready to be collected (PQgetResult's step from
    /// READY back to BUSY).
    pub fn take_ready(&mut self) -> Option<PgResult> {
        self.state = AsyncState::Busy;
        self.ready.take()
    }

    /// A result made by the client, as pqSaveErrorResult: the query is
    /// ready with it.
    fn client_error(&mut self, text: String) {
        let mut text = text;
        text.push('\n');
        self.error_message.push_str(&text);
        self.building = None;
        self.ready = Some(PgResult::ClientError(text));
        self.state = AsyncState::Ready;
    }

    /// libpq's handleSyncLoss: the error result, and the connection is
    /// abandoned (nothing more is parsed from it).
    fn sync_loss(&mut self, text: String) {
        self.client_error(text);
        self.inbuf.clear();
        self.broken = true;
        self.abandoned = true;
    }

    /// An internal notice (pqInternalNotice), as libpq shows it.
    fn internal_notice(&mut self, text: String) {
        self.notices.push_back(ServerMessage {
            fields: vec![(b'S', "NOTICE".into()), (b'M', text)],
        });
    }

    /// libpq's pqParseInput3: NOTICE/NOTIFY are handled whenever read;
    /// everything else only while busy.  Never fails: what libpq reports
    /// as an error result is an error result here.
    pub fn parse_input(&mut self) {
        loop {
            let Some((tag, len)) = header(&self.inbuf) else {
                return;
            };
            if let Err(v) = check_header(tag, len) {
                self.sync_loss(v.to_string());
                return;
            }
            let total = len as usize + 1;
            if self.inbuf.len() < total {
                return;
            }
            let handle_now = matches!(tag, b'N' | b'A')
                || self.state == AsyncState::Busy
                || (self.state == AsyncState::Idle && tag == b'S');
            if !handle_now {
                if self.state == AsyncState::Idle && tag == b'E' {
                    // A backend's last words before it closes an idle
                    // connection: the loss shows at the next query.
                    self.inbuf.advance(total);
                    continue;
                }
                if self.state == AsyncState::Idle {
                    // Unexpected message while idle: complain, then drop it.
                    self.internal_notice(format!(
                        "message type 0x{tag:02x} arrived from server while idle"
                    ));
                    self.inbuf.advance(total);
                    continue;
                }
                return;
            }
            if !is_known_type(tag) {
                self.inbuf.advance(total);
                if self.state == AsyncState::Busy {
                    self.client_error(format!(
                        "unexpected response from server; first received character was \"{}\"",
                        shown_type(tag)
                    ));
                } else {
                    self.internal_notice(format!(
                        "message type 0x{tag:02x} arrived from server while idle"
                    ));
                }
                continue;
            }
            let mut one = self.inbuf.split_to(total);
            let handled = match backend::Message::parse(&mut one) {
                Ok(Some(msg)) => self.handle(msg),
                _ => Err(()),
            };
            if handled.is_err() {
                self.client_error(format!(
                    "message contents do not agree with length in message type \"{}\"",
                    shown_type(tag)
                ));
            }
        }
    }

    fn handle(&mut self, msg: backend::Message) -> Result<(), ()> {
        let e = |_| ();
        match msg {
            backend::Message::NoticeResponse(body) => {
                let m = parse_fields(body.fields()).map_err(e)?;
                self.notices.push_back(m);
            }
            backend::Message::NotificationResponse(body) => self.notifies.push_back(Notification {
                pid: body.process_id(),
                channel: body.channel().map_err(e)?.to_string(),
                payload: body.message().map_err(e)?.to_string(),
            }),
            backend::Message::ParameterStatus(body) => {
                let (k, v) = (body.name().map_err(e)?, body.value().map_err(e)?);
                self.parameters.retain(|(n, _)| n != k);
                self.parameters.push((k.to_string(), v.to_string()));
            }
            backend::Message::RowDescription(body) => {
                let mut cols = Vec::new();
                let mut it = body.fields();
                while let Some(f) = it.next().map_err(e)? {
                    cols.push(f.name().to_string());
                }
                self.building = Some(Tuples {
                    columns: cols,
                    rows: Vec::new(),
                });
            }
            backend::Message::DataRow(body) => {
                let buf = body.buffer();
                let mut row = Vec::new();
                let mut it = body.ranges();
                while let Some(r) = it.next().map_err(e)? {
                    row.push(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
                }
                self.building
                    .get_or_insert_with(Tuples::default)
                    .rows
                    .push(row);
            }
            backend::Message::CommandComplete(body) => {
                let tag = body.tag().map_err(e)?.to_string();
                self.ready = Some(match self.building.take() {
                    Some(t) => PgResult::Tuples(t),
                    None => PgResult::Command(tag),
                });
                self.state = AsyncState::Ready;
            }
            backend::Message::EmptyQueryResponse => {
                self.ready = Some(PgResult::Empty);
                self.state = AsyncState::Ready;
            }
            backend::Message::ErrorResponse(body) => {
                let m = parse_fields(body.fields()).map_err(e)?;
                let q = if self.query.is_empty() {
                    None
                } else {
                    Some(self.query.as_str())
                };
                self.error_message.push_str(&m.format_libpq(true, q));
                self.building = None;
                self.ready = Some(PgResult::Error(m));
                self.state = AsyncState::Ready;
            }
            backend::Message::ReadyForQuery(_) => {
                self.state = AsyncState::Idle;
            }
            backend::Message::ParseComplete => {
                self.ready = Some(PgResult::Command(String::new()));
                self.state = AsyncState::Ready;
            }
            backend::Message::CopyInResponse(_) => {
                self.ready = Some(PgResult::Copy("PGRES_COPY_IN"));
                self.state = AsyncState::Ready;
            }
            backend::Message::CopyOutResponse(_) => {
                self.ready = Some(PgResult::Copy("PGRES_COPY_OUT"));
                self.state = AsyncState::Ready;
            }
            _ => {}
        }
        Ok(())
    }
}

pub(crate) fn parse_fields(mut fields: backend::ErrorFields<'_>) -> std::io::Result<ServerMessage> {
    let mut m = ServerMessage::default();
    while let Some(f) = fields.next()? {
        m.fields.push((
            f.type_(),
            String::from_utf8_lossy(f.value_bytes()).into_owned(),
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn busy() -> Inbox {
        let mut i = Inbox::new();
        i.begin_query("SELECT 1");
        i
    }

    #[test]
    fn authentication_phase_accepts_only_requests_and_errors() {
        assert!(check_auth_header(b'R', 8).is_ok());
        assert_eq!(
            check_auth_header(b'R', 2_147_483_632)
                .unwrap_err()
                .to_string(),
            "expected authentication request from server, but received R"
        );
        assert_eq!(
            check_auth_header(b'Z', 5).unwrap_err().to_string(),
            "expected authentication request from server, but received Z"
        );
        assert_eq!(
            check_auth_header(0x9c, 5).unwrap_err().to_string(),
            "expected authentication request from server, but received \\x9c"
        );
        assert_eq!(
            check_auth_header(b'E', 40_000).unwrap_err().to_string(),
            "received invalid error message"
        );
    }

    #[test]
    fn a_short_type_with_a_long_length_is_a_sync_loss() {
        let mut i = busy();
        i.feed(&[b'C', 0, 0, 0x80, 0]);
        i.parse_input();
        assert!(i.broken);
        assert_eq!(
            i.take_ready(),
            Some(PgResult::ClientError(
                "lost synchronization with server: got message type \"C\", length 32768\n".into()
            ))
        );
        // Nothing more is read from an abandoned connection.
        assert!(i.inbuf.is_empty());
    }

    #[test]
    fn a_negative_or_tiny_length_is_a_sync_loss() {
        for len in [-1i32, 0, 3] {
            let mut i = busy();
            let mut b = vec![b'D'];
            b.extend_from_slice(&len.to_be_bytes());
            i.feed(&b);
            i.parse_input();
            assert!(i.broken, "{len}");
        }
    }

    #[test]
    fn a_long_type_waits_for_its_bytes_without_allocating_for_them() {
        let mut i = busy();
        i.feed(&[b'D', 0x3f, 0, 0, 0, 0, 1]);
        i.parse_input();
        assert!(!i.broken);
        assert_eq!(i.state, AsyncState::Busy);
        assert!(i.inbuf.capacity() < 1 << 20);
    }

    #[test]
    fn an_unknown_type_while_busy_is_an_error_result() {
        let mut i = busy();
        i.feed(&msg(b'x', b"abc"));
        i.parse_input();
        assert_eq!(
            i.take_ready(),
            Some(PgResult::ClientError(
                "unexpected response from server; first received character was \"x\"\n".into()
            ))
        );
        assert!(!i.broken);
    }

    #[test]
    fn an_unexpected_message_while_idle_is_a_notice_and_dropped() {
        let mut i = Inbox::new();
        i.feed(&msg(b'C', b"SELECT 1\0"));
        i.feed(&msg(b'S', b"application_name\0x\0"));
        i.feed(&msg(b'A', &[0, 0, 0, 7, b'c', 0, b'p', 0]));
        i.parse_input();
        let n = i.take_notice().unwrap();
        assert_eq!(
            n.primary(),
            Some("message type 0x43 arrived from server while idle")
        );
        // ParameterStatus and NOTIFY at odd moments are legal.
        assert_eq!(i.parameter("application_name"), Some("x"));
        assert_eq!(i.take_notify().unwrap().channel, "c");
        assert!(i.inbuf.is_empty());
    }

    #[test]
    fn contents_that_disagree_with_the_length_are_an_error_result() {
        let mut i = busy();
        // A CommandComplete whose tag is not terminated.
        i.feed(&msg(b'C', b"SELECT"));
        i.parse_input();
        assert_eq!(
            i.take_ready(),
            Some(PgResult::ClientError(
                "message contents do not agree with length in message type \"C\"\n".into()
            ))
        );
    }

    #[test]
    fn a_whole_query_parses() {
        let mut i = busy();
        let mut b = msg(
            b'T',
            &[
                0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 255, 255, 255, 255, 0, 0,
            ],
        );
        b.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'1']));
        b.extend(msg(b'C', b"SELECT 1\0"));
        b.extend(msg(b'Z', b"I"));
        // Fed a byte at a time, as a slow peer sends it.
        for byte in b {
            i.feed(&[byte]);
            i.parse_input();
            if i.state == AsyncState::Ready {
                let r = i.take_ready().unwrap();
                assert_eq!(
                    r,
                    PgResult::Tuples(Tuples {
                        columns: vec!["a".into()],
                        rows: vec![vec![Some("1".into())]],
                    })
                );
            }
        }
        assert_eq!(i.state, AsyncState::Idle);
    }
}
