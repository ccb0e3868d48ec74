//! Connection strings as libpq reads them: `key=value` lists
//! (conninfo_parse) and `postgresql://` URIs (conninfo_uri_parse), with
//! libpq's messages, and never a password in one.

use super::{is_option, ResolveError, Values};

/// libpq's conninfo_parse, or conninfo_uri_parse for a URI.
pub fn parse_conninfo(s: &str) -> Result<Values, ResolveError> {
    parse(s).map_err(ResolveError::Syntax)
}

fn parse(s: &str) -> Result<Values, String> {
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        return parse_uri(s);
    }
    let mut vals = Values::new();
    let mut last_key = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut name = String::new();
        while i < b.len() && b[i] != '=' && !b[i].is_whitespace() {
            name.push(b[i]);
            i += 1;
        }
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != '=' {
            // A word after an unquoted password may be part of it.
            let shown = if last_key == "password" {
                "***"
            } else {
                name.as_str()
            };
            return Err(format!(
                "missing \"=\" after \"{shown}\" in connection info string"
            ));
        }
        i += 1;
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < b.len() && b[i] == '\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err("unterminated quoted string in connection info string".into());
                }
                match b[i] {
                    '\\' => {
                        i += 1;
                        if i < b.len() {
                            val.push(b[i]);
                            i += 1;
                        }
                    }
                    '\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        val.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_whitespace() {
                if b[i] == '\\' {
                    i += 1;
                    if i < b.len() {
                        val.push(b[i]);
                        i += 1;
                    }
                } else {
                    val.push(b[i]);
                    i += 1;
                }
            }
        }
        if last_key == "password" && !is_option(&name) && name != "requiressl" {
            return Err("invalid connection option \"***\" (after the password: quote a password with spaces)".into());
        }
        store(&mut vals, &name, val)?;
        last_key = name;
    }
    Ok(vals)
}

fn store(vals: &mut Values, key: &str, val: String) -> Result<(), String> {
    // libpq still accepts requiressl=1 as sslmode=require.
    if key == "requiressl" {
        if val.starts_with('1') {
            vals.insert("sslmode".into(), "require".into());
        }
        return Ok(());
    }
    if !is_option(key) {
        return Err(format!("invalid connection option \"{key}\""));
    }
    vals.insert(key.to_string(), val);
    Ok(())
}

/// The URI with its password replaced by `***`, for messages.
fn redact_uri(uri: &str) -> String {
    let Some(start) = uri.find("://").map(|i| i + 3) else {
        return uri.to_string();
    };
    let rest = &uri[start..];
    let slash = rest.find('/').unwrap_or(rest.len());
    match rest[..slash].find('@') {
        Some(at) => match rest[..at].find(':') {
            Some(c) => format!("{}{}:***{}", &uri[..start], &rest[..c], &rest[at..]),
            None => uri.to_string(),
        },
        None => uri.to_string(),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) else {
                return Err(format!("invalid percent-encoded token: \"{s}\""));
            };
            let v = (h * 16 + l) as u8;
            if v == 0 {
                return Err(format!(
                    "forbidden value %00 in percent-encoded value: \"{s}\""
                ));
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("invalid percent-encoded token: \"{s}\""))
}

/// conninfo_uri_parse_options:
/// `postgresql://[user[:password]@][host][:port][,...][/dbname][?k=v&...]`.
fn parse_uri(full: &str) -> Result<Values, String> {
    let rest = full
        .strip_prefix("postgresql://")
        .or_else(|| full.strip_prefix("postgres://"))
        .unwrap_or(full);
    // Messages show the URI without its password.
    let uri = redact_uri(full);
    let uri = uri.as_str();
    let mut vals = Values::new();
    // Credentials: the first '@' before the first '/' (libpq), so that a
    // password may hold '?' or ':'.
    let slash = rest.find('/').unwrap_or(rest.len());
    let after_userinfo = match rest[..slash].find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (user, pw) = match userinfo.find(':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            let secret = |_| {
                "invalid percent-encoded token in the user name or password of the URI".to_string()
            };
            if !user.is_empty() {
                vals.insert("user".into(), percent_decode(user).map_err(secret)?);
            }
            if let Some(pw) = pw.filter(|p| !p.is_empty()) {
                vals.insert("password".into(), percent_decode(pw).map_err(secret)?);
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    let netloc_end = after_userinfo
        .find(['/', '?'])
        .unwrap_or(after_userinfo.len());
    let netloc = &after_userinfo[..netloc_end];
    let tail = &after_userinfo[netloc_end..];
    let (path, query) = match tail.strip_prefix('/') {
        Some(p) => match p.find('?') {
            Some(q) => (Some(&p[..q]), Some(&p[q + 1..])),
            None => (Some(p), None),
        },
        None => (None, tail.strip_prefix('?')),
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let mut any_port = false;
    for part in netloc.split(',') {
        let (host, port) = if let Some(v6) = part.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return Err(format!(
                    "end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{uri}\""
                ));
            };
            if end == 0 {
                return Err(format!(
                    "IPv6 host address may not be empty in URI: \"{uri}\""
                ));
            }
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => {
                    let c = after.chars().next().unwrap_or(' ');
                    return Err(format!(
                        "unexpected character \"{c}\" in URI (expected \":\" or \"/\"): \"{uri}\""
                    ));
                }
            };
            (percent_decode(&v6[..end])?, port)
        } else {
            match part.rfind(':') {
                Some(c) => (percent_decode(&part[..c])?, Some(&part[c + 1..])),
                None => (percent_decode(part)?, None),
            }
        };
        any_port |= port.is_some_and(|p| !p.is_empty());
        hosts.push(host);
        ports.push(port.unwrap_or("").to_string());
    }
    if hosts.iter().any(|h| !h.is_empty()) || hosts.len() > 1 {
        vals.insert("host".into(), hosts.join(","));
    }
    if any_port {
        vals.insert("port".into(), ports.join(","));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        vals.insert("dbname".into(), percent_decode(db)?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{pair}\""
                ));
            };
            let k = percent_decode(k)?;
            let v = percent_decode(v).map_err(|e| {
                if k == "password" {
                    "invalid percent-encoded token in the password of the URI".to_string()
                } else {
                    e
                }
            })?;
            if k == "ssl" && v == "true" {
                vals.insert("sslmode".into(), "require".into());
                continue;
            }
            if !is_option(&k) && k != "requiressl" {
                return Err(format!("invalid URI query parameter: \"{k}\""));
            }
            store(&mut vals, &k, v)?;
        }
    }
    Ok(vals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_value_strings_like_libpq() {
        let v =
            parse("host=localhost port = 5433 password='it''s \\'q\\'' user=a\\ b").unwrap_err();
        // '' is not an escape in conninfo: the quoted value ends there.
        assert!(v.contains("missing \"=\""), "{v}");
        let v = parse("host=h  user = 'a b'  password='x\\'y' options='-c a=b'").unwrap();
        assert_eq!(v["host"], "h");
        assert_eq!(v["user"], "a b");
        assert_eq!(v["password"], "x'y");
        assert_eq!(v["options"], "-c a=b");
        assert_eq!(
            parse("host").unwrap_err(),
            "missing \"=\" after \"host\" in connection info string"
        );
        assert_eq!(
            parse("host='x").unwrap_err(),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            parse("hots=x").unwrap_err(),
            "invalid connection option \"hots\""
        );
        assert_eq!(parse("requiressl=1").unwrap()["sslmode"], "require");
    }

    #[test]
    fn uris_like_libpq() {
        // The examples of libpq's documentation.
        let v = parse_uri("postgresql://").unwrap();
        assert!(v.is_empty());
        let v = parse_uri("postgresql://localhost:5433").unwrap();
        assert_eq!(
            (v["host"].as_str(), v["port"].as_str()),
            ("localhost", "5433")
        );
        let v = parse_uri(
            "postgresql://user:secret@localhost/otherdb?connect_timeout=10&application_name=myapp",
        )
        .unwrap();
        assert_eq!(v["user"], "user");
        assert_eq!(v["password"], "secret");
        assert_eq!(v["dbname"], "otherdb");
        assert_eq!(v["connect_timeout"], "10");
        let v = parse_uri("postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp").unwrap();
        assert_eq!(v["host"], "host1,host2");
        assert_eq!(v["port"], "123,456");
        let v = parse_uri("postgresql://[2001:db8::1234]/database").unwrap();
        assert_eq!(v["host"], "2001:db8::1234");
        let v = parse_uri("postgresql://%2Fvar%2Flib%2Fpostgresql/dbname").unwrap();
        assert_eq!(v["host"], "/var/lib/postgresql");
        let v = parse_uri("postgresql:///dbname?host=/var/lib/postgresql").unwrap();
        assert_eq!(v["host"], "/var/lib/postgresql");
        let v = parse_uri("postgresql://localhost/db?ssl=true&sslrootcert=/ca.crt").unwrap();
        assert_eq!(v["sslmode"], "require");
        assert_eq!(v["sslrootcert"], "/ca.crt");
        assert_eq!(
            parse_uri("postgresql://h/db?bogus=1").unwrap_err(),
            "invalid URI query parameter: \"bogus\""
        );
        assert!(parse_uri("postgresql://h/d%zz")
            .unwrap_err()
            .contains("invalid percent-encoded token"));
        assert!(parse_uri("postgresql://h/d%00")
            .unwrap_err()
            .contains("forbidden value %00"));
        let v = parse_uri("postgres://u%40x:p%3Aw@h").unwrap();
        assert_eq!((v["user"].as_str(), v["password"].as_str()), ("u@x", "p:w"));
    }

    #[test]
    fn uri_edge_cases_like_libpq() {
        // A password may hold '?' and ':' (credentials end at the first '@'
        // before the first '/').
        let v = parse_uri("postgresql://u:pa?s:s@h/db?sslmode=require").unwrap();
        assert_eq!(v["password"], "pa?s:s");
        assert_eq!(v["host"], "h");
        assert_eq!(v["dbname"], "db");
        assert_eq!(v["sslmode"], "require");
        // IPv6 with a port, a zone, and a list.
        let v = parse_uri("postgresql://[::1]:5433,[fe80::1%25eth0]/db").unwrap();
        assert_eq!(v["host"], "::1,fe80::1%eth0");
        assert_eq!(v["port"], "5433,");
        assert!(parse_uri("postgresql://[]/db")
            .unwrap_err()
            .contains("IPv6 host address may not be empty"));
        // No panic on a multi-byte character after ']'.
        let e = parse_uri("postgresql://[::1]é/db").unwrap_err();
        assert!(e.contains("unexpected character \"é\""), "{e}");
        // A query without a path.
        let v = parse_uri("postgresql://h?port=7").unwrap();
        assert_eq!((v["host"].as_str(), v["port"].as_str()), ("h", "7"));
    }

    #[test]
    fn errors_never_show_a_password() {
        let e = parse("password=my secret host=h").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = parse("password=my secret=x").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = parse_uri("postgresql://u:p%zzword@h/db").unwrap_err();
        assert!(!e.contains("zzword"), "{e}");
        let e = parse_uri("postgresql://u:hunter2@[::1/db").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("u:***@"), "{e}");
        let e = parse_uri("postgresql://h/db?password=a%zz").unwrap_err();
        assert!(!e.contains("a%zz"), "{e}");
    }
}
