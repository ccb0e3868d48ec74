//! Fuzzes the backend message reader and the protocol state machine
//! (`pgwire::protocol`): arbitrary bytes from a "server", fed in chunks of
//! varying sizes as a network delivers them, with queries begun whenever
//! the connection is idle.  No input may panic or hang, and nothing may be
//! buffered beyond the bytes actually fed (no allocation sized by a length
//! the peer sent).
#![no_main]
use isospec::protocol::{self, AsyncState, Inbox};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The startup phase's header checks on the first message.
    if let Some((tag, len)) = protocol::header(data) {
        let _ = protocol::check_auth_header(tag, len);
        let _ = protocol::check_header(tag, len);
    }
    let mut inbox = Inbox::new();
    inbox.begin_query("SELECT 1");
    let mut fed = 0usize;
    let mut size = 1 + data.len() % 17;
    let mut rest = data;
    while !rest.is_empty() {
        let n = size.min(rest.len());
        inbox.feed(&rest[..n]);
        fed += n;
        rest = &rest[n..];
        size = size * 7 % 61 + 1;
        inbox.parse_input();
        // Collect every result, as PQgetResult would.
        let mut guard = 0;
        while inbox.state == AsyncState::Ready {
            let _ = inbox.take_ready();
            inbox.parse_input();
            guard += 1;
            assert!(guard <= data.len() + 1, "results never end");
        }
        if inbox.state == AsyncState::Idle {
            inbox.begin_query("SELECT 2");
        }
        while inbox.take_notice().is_some() {}
        while inbox.take_notify().is_some() {}
        assert!(inbox.inbuf.len() <= fed, "buffered more than was fed");
        assert!(inbox.inbuf.capacity() <= 2 * fed + 16 * 1024, "allocated beyond the input");
    }
});
