//! A broken or hostile server: a scripted fake server on 127.0.0.1 answers
//! the startup packet with garbage, a huge length, a truncated message, an
//! error, or legal messages at odd moments.  isospec must end each with
//! one clear line naming the server, at once (or at the connect timeout
//! when stalling is the point), without allocating what a bogus length
//! claims.

use crate::util::{isospec, text, workdir, write_suite};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant};

const SPEC: &str = "session s1\nstep s1a { SELECT 1; }\npermutation s1a\n";

/// What the fake server does once it has read the startup packet.
type Script = fn(&mut TcpStream);

/// Reads one length-prefixed packet (the SSLRequest or the startup packet).
fn read_packet(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let n = u32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; n.saturating_sub(4).min(1 << 20)];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// A fake server for one connection: answers an SSLRequest with 'N',
/// reads the startup packet, then runs `script`; keeps the socket open
/// until the client goes.
fn fake_server(script: Script) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            let Some(mut p) = read_packet(&mut s) else {
                continue;
            };
            if p.len() == 4 && p == [0x04, 0xd2, 0x16, 0x2f] {
                s.write_all(b"N").unwrap();
                let Some(q) = read_packet(&mut s) else {
                    continue;
                };
                p = q;
            }
            let _ = p;
            script(&mut s);
            // Hold the connection until the client closes it.
            let mut sink = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    port
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// What runs isospec and reports its own peak RSS: a small python3 that
/// forks it.  (A process exec'd straight from the test binary would
/// inherit the test binary's peak RSS in its rusage, as Linux keeps the
/// high-water mark across exec.)
const MEASURE: &str = "import os, sys\n\
pid = os.fork()\n\
if pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n\
_, status, ru = os.wait4(pid, 0)\n\
sys.stderr.write('MAXRSS %d\\n' % ru.ru_maxrss)\n\
sys.exit(os.waitstatus_to_exitcode(status))\n";

/// `isospec run` against the fake server; its output, exit code, how long
/// it took and its own peak RSS in KiB.
fn run_against(port: u16, connect_timeout: &str) -> (Output, Duration, i64) {
    let dir = workdir();
    let specs = write_suite(dir.path(), &[("one", SPEC, "")]);
    let start = Instant::now();
    let mut cmd = isospec();
    let out = std::process::Command::new("python3")
        .args(["-c", MEASURE])
        .arg(cmd.get_program())
        .args(["run", "--outputdir"])
        .arg(dir.path())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--user",
            "u",
        ])
        .arg(specs.join("one.spec"))
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env_clear_removed(&mut cmd)
        .env("PGCONNECT_TIMEOUT", connect_timeout)
        .env("PGPASSWORD", "x")
        .output()
        .expect("python3 is needed to measure isospec's memory");
    let took = start.elapsed();
    let stderr = text(&out.stderr);
    let rss = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("MAXRSS "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(i64::MAX);
    (out, took, rss)
}

/// Removes from a command the variables `isospec()` removes.
trait EnvClearRemoved {
    fn env_clear_removed(&mut self, from: &mut std::process::Command) -> &mut Self;
}

impl EnvClearRemoved for std::process::Command {
    fn env_clear_removed(&mut self, from: &mut std::process::Command) -> &mut Self {
        for (k, v) in from.get_envs() {
            if v.is_none() {
                self.env_remove(k);
            }
        }
        self
    }
}

fn all(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Ends with exit 2 and `expected`, naming the server, within a second.
fn assert_clear_error(port: u16, expected: &str, out: &Output, took: Duration) {
    let all = all(out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains(expected), "expected {expected:?} in:\n{all}");
    let named = format!("connection to server at \"127.0.0.1\", port {port} failed: ");
    assert!(all.contains(&named), "the server is not named:\n{all}");
    assert!(!all.contains("panicked"), "{all}");
    // Only what was connected to is named: database postgres, not the
    // test database, which was never reached.
    assert!(all.contains("connecting to database \"postgres\""), "{all}");
    assert!(!all.contains("isolation_regression"), "{all}");
    assert!(took < Duration::from_secs(10), "took {took:?}:\n{all}");
}

#[test]
fn a_huge_length_in_authentication_fails_at_once() {
    let port = fake_server(|s| {
        s.write_all(&[b'R', 0x7f, 0xff, 0xff, 0xf0, 0, 0, 0, 0])
            .unwrap();
    });
    let (out, took, rss) = run_against(port, "30");
    assert_clear_error(
        port,
        "expected authentication request from server, but received R",
        &out,
        took,
    );
    // Nothing was allocated for the 2 GB the message claimed.
    assert!(rss < 32 * 1024, "peak RSS {rss} KiB");
}

#[test]
fn garbage_fails_at_once() {
    let port = fake_server(|s| {
        let bytes: Vec<u8> = (0..1024u32).map(|i| (i * 37 % 256) as u8).collect();
        s.write_all(&bytes).unwrap();
    });
    let (out, took, _) = run_against(port, "30");
    assert_clear_error(
        port,
        "expected authentication request from server, but received \\x00",
        &out,
        took,
    );
}

#[test]
fn a_truncated_message_then_close_is_a_closed_connection() {
    let port = fake_server(|s| {
        s.write_all(&[b'R', 0, 0, 0, 12, 0, 0]).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let (out, took, _) = run_against(port, "30");
    assert_clear_error(
        port,
        "server closed the connection unexpectedly",
        &out,
        took,
    );
}

#[test]
fn an_error_during_startup_is_the_servers_message() {
    let port = fake_server(|s| {
        s.write_all(&message(
            b'E',
            b"SFATAL\0VFATAL\0C53300\0Msorry, too many clients already\0\0",
        ))
        .unwrap();
    });
    let (out, took, _) = run_against(port, "30");
    assert_clear_error(port, "FATAL:  sorry, too many clients already", &out, took);
}

#[test]
fn notices_notifications_and_parameters_at_odd_moments_are_accepted() {
    let port = fake_server(|s| {
        let mut b = message(b'R', &[0, 0, 0, 0]);
        b.extend(message(b'S', b"server_version\x0015.0\0"));
        b.extend(message(b'N', b"SNOTICE\0VNOTICE\0C00000\0Mhello\0\0"));
        b.extend(message(b'A', b"\0\0\0\x07chan\0payload\0"));
        b.extend(message(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
        b.extend(message(b'S', b"in_hot_standby\0off\0"));
        b.extend(message(b'Z', b"I"));
        s.write_all(&b).unwrap();
        // The first query gets the fake server's own last words.
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let mut b = message(b'S', b"application_name\0x\0");
        b.extend(message(
            b'E',
            b"SFATAL\0VFATAL\0C57P01\0Mfake server ends here\0\0",
        ));
        s.write_all(&b).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let (out, took, _) = run_against(port, "30");
    let all = all(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    // The connection was made: what ended it is the server's message, not
    // a complaint about the legal messages before it.
    assert!(all.contains("fake server ends here"), "{all}");
    assert!(!all.contains("unexpected message"), "{all}");
    assert!(!all.contains("lost synchronization"), "{all}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_server_that_stops_mid_message_is_ended_by_the_connect_timeout() {
    let port = fake_server(|s| {
        s.write_all(&[b'R', 0, 0, 0, 8, 0]).unwrap();
    });
    let (out, took, _) = run_against(port, "2");
    assert_clear_error(
        port,
        "timeout expired: no complete answer within 2 s",
        &out,
        took,
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_short_message_with_a_long_length_after_authentication_is_a_sync_loss() {
    let port = fake_server(|s| {
        let mut b = message(b'R', &[0, 0, 0, 0]);
        b.extend([b'K', 0, 0, 0x80, 0]);
        s.write_all(&b).unwrap();
    });
    let (out, took, _) = run_against(port, "30");
    assert_clear_error(
        port,
        "lost synchronization with server: got message type \"K\", length 32768",
        &out,
        took,
    );
}

/// A TLS server that completes the handshake, then sends close_notify and
/// 5 KB more in one burst: the client must end the connection, not spin.
#[test]
fn tls_close_notify_followed_by_more_bytes_ends_the_connection() {
    use std::sync::Arc;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut tcp) = conn else { return };
            if read_packet(&mut tcp).is_none() {
                continue;
            }
            tcp.write_all(b"S").unwrap();
            let mut tls = rustls::ServerConnection::new(config.clone()).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            tls.send_close_notify();
            let mut burst = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut burst).unwrap();
            }
            burst.extend(std::iter::repeat_n(0x17u8, 5000));
            let _ = tcp.write_all(&burst);
            let mut sink = [0u8; 1024];
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(120)));
            while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    let dir = workdir();
    let specs = write_suite(dir.path(), &[("one", SPEC, "")]);
    let start = Instant::now();
    let mut child = isospec()
        .env("PGPASSWORD", "x")
        .env("PGCONNECT_TIMEOUT", "60")
        .args(["run", "--outputdir"])
        .arg(dir.path())
        .args([
            "-d",
            &format!("host=127.0.0.1 port={port} user=u sslmode=require"),
        ])
        .arg(specs.join("one.spec"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A hang guard far above what ending the connection takes.
    let ended = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(50) {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let all = all(&out);
    assert!(ended, "isospec did not end after close_notify: {all}");
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("server closed the connection unexpectedly"),
        "{all}"
    );
}
