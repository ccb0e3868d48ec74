//! libpq's two configuration files, read as libpq reads them: the password
//! file (`~/.pgpass`, `PGPASSFILE`: passwordFromFile and
//! pwdfMatchesString in fe-connect.c) and the connection service file
//! (`pg_service.conf`: parseServiceFile).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// libpq's DEFAULT_PGSOCKET_DIR as Debian builds it: a host of that
/// socket directory matches `localhost` in the password file.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The password for `host`/`port`/`dbname`/`user` in the password file at
/// `path`, if any.  A file that is not a plain file, or that group or
/// others may access, is ignored with libpq's warning (returned in the
/// second value, for the caller to print on stderr).
pub fn password_from_file(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> (Option<Vec<u8>>, Option<String>) {
    if dbname.is_empty() || user.is_empty() {
        return (None, None);
    }
    let host = if host.is_empty() || host == DEFAULT_SOCKET_DIR {
        "localhost"
    } else {
        host
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return (None, None);
    };
    if !meta.is_file() {
        return (
            None,
            Some(format!(
                "WARNING: password file \"{}\" is not a plain file",
                path.display()
            )),
        );
    }
    if meta.mode() & 0o077 != 0 {
        return (
            None,
            Some(format!(
                "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            )),
        );
    }
    let Ok(bytes) = std::fs::read(path) else {
        return (None, None);
    };
    (
        match_password_lines(&bytes, host, &port.to_string(), dbname, user),
        None,
    )
}

/// The first matching line's password (fields `host:port:db:user:pw`).
pub fn match_password_lines(
    file: &[u8],
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<Vec<u8>> {
    for line in file.split(|b| *b == b'\n') {
        let mut line = line;
        while let [rest @ .., b'\r' | b'\n'] = line {
            line = rest;
        }
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let mut t = line;
        let mut ok = true;
        for token in [host, port, dbname, user] {
            match field_matches(t, token.as_bytes()) {
                Some(rest) => t = rest,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        // De-escape the password, which ends at an unescaped ':'.
        let mut pw = Vec::new();
        let mut i = 0;
        while i < t.len() && t[i] != b':' {
            if t[i] == b'\\' && i + 1 < t.len() {
                i += 1;
            }
            pw.push(t[i]);
            i += 1;
        }
        return Some(pw);
    }
    None
}

/// pwdfMatchesString: the rest of the line after the field when it
/// matches `token` (`*` matches anything; `\` escapes `:` and `\`).
fn field_matches<'a>(buf: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if buf.len() >= 2 && buf[0] == b'*' && buf[1] == b':' {
        return Some(&buf[2..]);
    }
    let mut i = 0;
    let mut j = 0;
    let mut bslash = false;
    while i < buf.len() {
        if buf[i] == b'\\' && !bslash {
            i += 1;
            bslash = true;
            if i >= buf.len() {
                return None;
            }
        }
        if buf[i] == b':' && j == token.len() && !bslash {
            return Some(&buf[i + 1..]);
        }
        bslash = false;
        if j == token.len() {
            return None;
        }
        if buf[i] == token[j] {
            i += 1;
            j += 1;
        } else {
            return None;
        }
    }
    None
}

/// What looking a service up in one file found.
#[derive(Debug, PartialEq, Eq)]
pub enum ServiceLookup {
    /// The group exists; its `key=value` settings in file order.
    Found(Vec<(String, String)>),
    NotFound,
}

/// parseServiceFile: the settings of group `[service]` in `text` (the
/// file at `path`, named in errors).  `known` says whether a key is a
/// connection option.
pub fn parse_service_file(
    text: &str,
    path: &Path,
    service: &str,
    known: impl Fn(&str) -> bool,
) -> Result<ServiceLookup, String> {
    let mut found = false;
    let mut settings = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let linenr = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if found {
                break;
            }
            found = rest
                .strip_prefix(service)
                .is_some_and(|r| r.starts_with(']'));
            continue;
        }
        if !found {
            continue;
        }
        let syntax = || {
            format!(
                "syntax error in service file \"{}\", line {linenr}",
                path.display()
            )
        };
        let Some((key, val)) = line.split_once('=') else {
            return Err(syntax());
        };
        if key == "service" {
            return Err(format!(
                "nested service specifications not supported in service file \"{}\", line {linenr}",
                path.display()
            ));
        }
        if !known(key) {
            return Err(syntax());
        }
        settings.push((key.to_string(), val.to_string()));
    }
    Ok(if found {
        ServiceLookup::Found(settings)
    } else {
        ServiceLookup::NotFound
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGPASS: &str = "\
# comment: hostname:port:database:username:password
db.example.com:5432:*:alice:secret1
*:*:app:bob:pa\\:ss\\\\word
localhost:5433:*:carol:local
h\\:x:*:*:*:colon-host
*:*:*:*:fallback
";

    fn pw(host: &str, port: &str, db: &str, user: &str) -> Option<String> {
        match_password_lines(PGPASS.as_bytes(), host, port, db, user)
            .map(|p| String::from_utf8(p).unwrap())
    }

    #[test]
    fn password_file_matching_like_libpq() {
        assert_eq!(
            pw("db.example.com", "5432", "x", "alice").as_deref(),
            Some("secret1")
        );
        // A different port falls through to the catch-all line.
        assert_eq!(
            pw("db.example.com", "5433", "x", "alice").as_deref(),
            Some("fallback")
        );
        // Escaped ':' and '\' in the password.
        assert_eq!(pw("any", "1", "app", "bob").as_deref(), Some("pa:ss\\word"));
        assert_eq!(
            pw("localhost", "5433", "d", "carol").as_deref(),
            Some("local")
        );
        // An escaped ':' in a field matches a literal ':'.
        assert_eq!(pw("h:x", "1", "d", "u").as_deref(), Some("colon-host"));
        // The first match wins; '*' only as a whole field.
        assert_eq!(
            match_password_lines(b"a*:*:*:*:no\n*:*:*:*:yes\n", "ab", "1", "d", "u"),
            Some(b"yes".to_vec())
        );
        // The user field must end at a ':'; an empty password is one.
        assert_eq!(match_password_lines(b"h:1:d:u\n", "h", "1", "d", "u"), None);
        assert_eq!(
            match_password_lines(b"h:1:d:u:\n", "h", "1", "d", "u"),
            Some(vec![])
        );
        assert_eq!(match_password_lines(b"h:1:d\n", "h", "1", "d", "u"), None);
    }

    #[test]
    fn password_file_defaults_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "localhost:5432:db:u:sockpw\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        // An empty host and the default socket directory match "localhost".
        assert_eq!(
            password_from_file(&f, "", 5432, "db", "u").0,
            Some(b"sockpw".to_vec())
        );
        assert_eq!(
            password_from_file(&f, DEFAULT_SOCKET_DIR, 5432, "db", "u").0,
            Some(b"sockpw".to_vec())
        );
        assert_eq!(password_from_file(&f, "/tmp", 5432, "db", "u").0, None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (p, warning) = password_from_file(&f, "", 5432, "db", "u");
        assert_eq!(p, None);
        assert_eq!(
            warning.unwrap(),
            format!(
                "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                f.display()
            )
        );
        let (p, warning) = password_from_file(dir.path(), "", 5432, "db", "u");
        assert_eq!(p, None);
        assert!(warning.unwrap().contains("is not a plain file"));
        assert_eq!(
            password_from_file(&dir.path().join("none"), "", 5432, "db", "u"),
            (None, None)
        );
    }

    #[test]
    fn service_file_like_libpq() {
        // The example of libpq's documentation, and more groups.
        let text = "\
# comment
[mydb]
host=somehost
port=5433
user=admin

[other]
host=elsewhere
[mydb2]
dbname=x
";
        let known = |k: &str| ["host", "port", "user", "dbname"].contains(&k);
        let p = Path::new("/s.conf");
        assert_eq!(
            parse_service_file(text, p, "mydb", known).unwrap(),
            ServiceLookup::Found(vec![
                ("host".into(), "somehost".into()),
                ("port".into(), "5433".into()),
                ("user".into(), "admin".into()),
            ])
        );
        // "[mydb]" is not "[mydb2]".
        assert_eq!(
            parse_service_file(text, p, "mydb2", known).unwrap(),
            ServiceLookup::Found(vec![("dbname".into(), "x".into())])
        );
        assert_eq!(
            parse_service_file(text, p, "none", known).unwrap(),
            ServiceLookup::NotFound
        );
        assert_eq!(
            parse_service_file("[a]\nhost\n", p, "a", known).unwrap_err(),
            "syntax error in service file \"/s.conf\", line 2"
        );
        assert_eq!(
            parse_service_file("[a]\nbogus=1\n", p, "a", known).unwrap_err(),
            "syntax error in service file \"/s.conf\", line 2"
        );
        assert_eq!(
            parse_service_file("[a]\nservice=b\n", p, "a", known).unwrap_err(),
            "nested service specifications not supported in service file \"/s.conf\", line 2"
        );
        // Errors in other groups do not matter.
        assert!(parse_service_file("[b]\nbogus\n[a]\nhost=h\n", p, "a", known).is_ok());
    }
}
