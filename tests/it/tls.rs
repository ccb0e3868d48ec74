//! Connecting like libpq, against a real server that accepts only TLS:
//! certificates made at test time (a CA, a server certificate for
//! `localhost` and 127.0.0.1, a client certificate), a pg_hba with only
//! `hostssl` lines (SCRAM for one role, `cert` for another), and a blocking
//! spec that must give its expected transcript over every way of
//! connecting: sslmode require / prefer / verify-ca / verify-full,
//! channel binding, a client certificate, the password file, the service
//! file, a host list whose first host is down, a URI.  Refusals end with
//! one clear line, at once.

use crate::util::{isospec, text, workdir, write_suite, Server, BLOCKING, BLOCKING_OUT};
#[allow(unused_imports)]
use crate::{require_pgbouncer, require_server};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A step that never ends: the step timeout cancels it (over TLS).
const ENDLESS: &str = "session s1\nstep s1s { SELECT pg_sleep(600); }\npermutation s1s\n";

const PASSWORD: &str = "scram-secret-p@ss";

/// The certificates and keys of a test, in `dir`.
pub struct Certs {
    pub ca: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    pub client_crt: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: trusting only it must fail.
    pub other_ca: PathBuf,
}

fn write_private(path: &Path, data: &str) {
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A CA, a server certificate for localhost and 127.0.0.1, and a client
/// certificate for `client_cn`, all made now.
pub fn make_certs(dir: &Path, client_cn: &str) -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_p = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_p.distinguished_name
        .push(DnType::CommonName, "isospec test CA");
    ca_p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_p.self_signed(&ca_key).unwrap();

    let srv_key = KeyPair::generate().unwrap();
    let mut srv_p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    srv_p
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    srv_p
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let srv = srv_p.signed_by(&srv_key, &ca, &ca_key).unwrap();

    let cli_key = KeyPair::generate().unwrap();
    let mut cli_p = CertificateParams::new(Vec::<String>::new()).unwrap();
    cli_p.distinguished_name.push(DnType::CommonName, client_cn);
    let cli = cli_p.signed_by(&cli_key, &ca, &ca_key).unwrap();

    let other_key = KeyPair::generate().unwrap();
    let mut other_p = CertificateParams::new(Vec::<String>::new()).unwrap();
    other_p
        .distinguished_name
        .push(DnType::CommonName, "another CA");
    other_p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other = other_p.self_signed(&other_key).unwrap();

    let c = Certs {
        ca: dir.join("ca.crt"),
        server_crt: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_crt: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.crt"),
    };
    std::fs::write(&c.ca, ca.pem()).unwrap();
    std::fs::write(&c.server_crt, srv.pem()).unwrap();
    write_private(&c.server_key, &srv_key.serialize_pem());
    std::fs::write(&c.client_crt, cli.pem()).unwrap();
    write_private(&c.client_key, &cli_key.serialize_pem());
    std::fs::write(&c.other_ca, other.pem()).unwrap();
    write_private(&dir.join("ca.key"), &ca_key.serialize_pem());
    for f in [&c.ca, &c.server_crt, &c.client_crt, &c.other_ca] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // The server's key belongs to the server's OS user.
    if crate::util::is_root() {
        let pg = nix::unistd::User::from_name(&Server::user())
            .unwrap()
            .unwrap();
        nix::unistd::chown(&c.server_key, Some(pg.uid), Some(pg.gid)).unwrap();
    }
    c
}

/// The files `make_certs` wrote in `dir`.
fn certs_in(dir: &Path) -> Certs {
    Certs {
        ca: dir.join("ca.crt"),
        server_crt: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_crt: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.crt"),
    }
}

/// A server on 127.0.0.1 that accepts TCP connections only over TLS:
/// role `scramuser` by SCRAM, role `certuser` by client certificate.
pub struct TlsServer {
    pub inst: isospec::server::TempInstance,
    pub srv: Server,
    pub certs: Certs,
    pub port: u16,
}

impl TlsServer {
    pub fn start(dir: &Path) -> TlsServer {
        Self::start_with(dir, None)
    }

    /// `start` with the server binaries of `bindir`.
    pub fn start_with(dir: &Path, bindir: Option<PathBuf>) -> TlsServer {
        Self::launch(dir, bindir, true)
    }

    /// Starts the server with `dir`/certs, made here when `make` (else
    /// already there, from `make_certs` and then replaced in part).
    fn launch(dir: &Path, bindir: Option<PathBuf>, make: bool) -> TlsServer {
        let certs = if make {
            make_certs(&dir.join("certs"), "certuser")
        } else {
            certs_in(&dir.join("certs"))
        };
        let hba = dir.join("certs/pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\n\
             hostssl all scramuser 127.0.0.1/32 scram-sha-256\n\
             hostssl all certuser 127.0.0.1/32 cert\n",
        )
        .unwrap();
        std::fs::set_permissions(&hba, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut opts =
            isospec::server::TempInstanceOptions::new(dir.join("srv"), crate::util::environment());
        opts.bindir = bindir;
        opts.extra_settings = vec![
            "listen_addresses = '127.0.0.1'".into(),
            "ssl = on".into(),
            format!("ssl_cert_file = '{}'", certs.server_crt.display()),
            format!("ssl_key_file = '{}'", certs.server_key.display()),
            format!("ssl_ca_file = '{}'", certs.ca.display()),
            format!("hba_file = '{}'", hba.display()),
            "password_encryption = 'scram-sha-256'".into(),
        ];
        let inst = isospec::server::TempInstance::start(&opts).unwrap();
        let srv = Server::ready(&inst.data_dir);
        srv.query(
            "postgres",
            &format!(
                "CREATE ROLE scramuser LOGIN SUPERUSER PASSWORD '{PASSWORD}'; \
                 CREATE ROLE certuser LOGIN SUPERUSER"
            ),
        )
        .unwrap();
        let port = inst.port;
        TlsServer {
            inst,
            srv,
            certs,
            port,
        }
    }

    /// `isospec run` of the blocking spec with `conninfo`, in `out`, with
    /// an empty home directory (no ~/.pgpass, no ~/.postgresql) and no
    /// libpq variables but `env`.
    pub fn run(&self, out: &Path, conninfo: &str, env: &[(&str, &str)]) -> Output {
        let specs = write_suite(out, &[("blocking", BLOCKING, BLOCKING_OUT)]);
        let home = out.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut c = self.command(&home, env);
        c.arg("run")
            .arg("--outputdir")
            .arg(out)
            .args(["--timeout", "60"]);
        if !conninfo.is_empty() {
            c.args(["-d", conninfo]);
        }
        c.arg(specs.join("blocking.spec")).output().unwrap()
    }

    fn command(&self, home: &Path, env: &[(&str, &str)]) -> Command {
        let mut c = isospec();
        for v in LIBPQ_VARS {
            c.env_remove(v);
        }
        c.env("HOME", home);
        c.envs(env.iter().copied());
        c
    }

    /// `certuser` with a client certificate, verifying the server fully.
    pub fn certuser(&self, cert: &Path, key: &Path, extra: &str) -> String {
        format!(
            "host=localhost port={} user=certuser sslmode=verify-full sslrootcert={} sslcert={} sslkey={} {extra}",
            self.port,
            self.certs.ca.display(),
            cert.display(),
            key.display()
        )
    }

    pub fn scram(&self, extra: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=scramuser password={PASSWORD} {extra}",
            self.port
        )
    }
}

/// libpq's variables a test must not inherit.
const LIBPQ_VARS: &[&str] = &[
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLNEGOTIATION",
    "PGCHANNELBINDING",
    "PGPASSFILE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGTARGETSESSIONATTRS",
    "PGCONNECT_TIMEOUT",
];

fn all_output(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn assert_passes(out: &Output, case: &str) {
    let all = all_output(out);
    assert_eq!(out.status.code(), Some(0), "{case}:\n{all}");
    assert!(
        all.contains("1 passed, 0 failed") || all.contains("ok 1"),
        "{case}:\n{all}"
    );
}

fn assert_refused(out: &Output, case: &str, expected: &str) {
    let all = all_output(out);
    assert_eq!(out.status.code(), Some(2), "{case}:\n{all}");
    assert!(
        all.contains(expected),
        "{case}: expected {expected:?} in:\n{all}"
    );
    assert!(
        !all.contains(PASSWORD),
        "{case}: the password was printed:\n{all}"
    );
    assert!(!all.contains("panicked"), "{case}:\n{all}");
}

fn tls_server() -> Option<(tempfile::TempDir, TlsServer)> {
    if let Some(why) = crate::util::no_server_reason() {
        crate::util::skip(&why);
        return None;
    }
    let dir = workdir();
    let s = TlsServer::start(dir.path());
    Some((dir, s))
}

/// A client certificate as `openssl x509 -req` makes it (X.509 v1, no
/// extensions), as many how-tos do, signed by the test CA: libpq and the
/// server accept it.
fn openssl_v1_client_cert(certs: &Certs, cn: &str) -> (PathBuf, PathBuf) {
    openssl_client_cert(
        certs,
        cn,
        "v1",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    )
}

/// Runs openssl, which must succeed.
fn openssl_ok(c: &mut Command) {
    let out = c.output().expect("openssl (Debian: openssl) is needed");
    assert!(out.status.success(), "{}", all_output(&out));
}

/// A client certificate for `cn` signed by the test CA with `openssl x509
/// -req` (X.509 v1), its key made by `openssl req` with `newkey`; files
/// `stem`.key and `stem`.crt beside the CA.
fn openssl_client_cert(certs: &Certs, cn: &str, stem: &str, newkey: &[&str]) -> (PathBuf, PathBuf) {
    let dir = certs.ca.parent().unwrap();
    let (key, csr, crt) = (
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.csr")),
        dir.join(format!("{stem}.crt")),
    );
    openssl_ok(
        Command::new("openssl")
            .arg("req")
            .args(newkey)
            .arg("-nodes")
            .args(["-subj", &format!("/CN={cn}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    openssl_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&certs.ca)
            .arg("-CAkey")
            .arg(dir.join("ca.key"))
            .args(["-CAcreateserial", "-out"])
            .arg(&crt),
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (crt, key)
}

/// A test of one behaviour against a TLS server of its own: `$s` the
/// server, `$d` the test's directory.
macro_rules! tls_test {
    ($(#[$doc:meta])* $name:ident, |$s:ident, $d:ident| $body:block) => {
        $(#[$doc])*
        #[test]
        fn $name() {
            let Some((dir, $s)) = tls_server() else { return };
            let $d = dir.path();
            $body
        }
    };
}

/// The blocking spec passes over `conninfo` with `env`.
fn passes_over(s: &TlsServer, d: &Path, case: &str, conninfo: &str, env: &[(&str, &str)]) {
    assert_passes(&s.run(&d.join("case"), conninfo, env), case);
}

/// The run is refused with `expected` in its one clear line.
fn refused_over(s: &TlsServer, d: &Path, case: &str, conninfo: &str, expected: &str) {
    assert_refused(&s.run(&d.join("case"), conninfo, &[]), case, expected);
}

tls_test!(over_sslmode_require, |s, d| {
    passes_over(&s, d, "sslmode=require", &s.scram("sslmode=require"), &[]);
});

tls_test!(
    /// libpq's default, prefer, uses TLS where the server offers it.
    over_prefer_by_default,
    |s, d| {
        passes_over(&s, d, "prefer by default", &s.scram(""), &[]);
    }
);

tls_test!(over_pgsslmode_require, |s, d| {
    passes_over(
        &s,
        d,
        "PGSSLMODE=require",
        &s.scram(""),
        &[("PGSSLMODE", "require")],
    );
});

tls_test!(over_verify_ca, |s, d| {
    let conn = s.scram(&format!(
        "sslmode=verify-ca sslrootcert={}",
        s.certs.ca.display()
    ));
    passes_over(&s, d, "verify-ca", &conn, &[]);
});

tls_test!(over_verify_full, |s, d| {
    let conn = format!(
        "host=localhost port={} user=scramuser password={PASSWORD} sslmode=verify-full sslrootcert={}",
        s.port,
        s.certs.ca.display()
    );
    passes_over(&s, d, "verify-full", &conn, &[]);
});

tls_test!(over_channel_binding_require, |s, d| {
    let conn = s.scram("channel_binding=require sslmode=require");
    passes_over(&s, d, "channel_binding=require", &conn, &[]);
});

tls_test!(with_a_client_certificate, |s, d| {
    let conn = s.certuser(&s.certs.client_crt, &s.certs.client_key, "");
    passes_over(&s, d, "client certificate", &conn, &[]);
});

tls_test!(
    /// A certificate as `openssl x509 -req` makes it (X.509 v1).
    with_a_client_certificate_made_by_openssl,
    |s, d| {
        let (crt, key) = openssl_v1_client_cert(&s.certs, "certuser");
        passes_over(&s, d, "X.509 v1 client certificate", &s.certuser(&crt, &key, ""), &[]);
    }
);

tls_test!(
    /// sslpassword opens client keys openssl encrypted: PKCS#8 (PBES2 with
    /// AES, with scrypt, and with DES-EDE3) and the traditional RSA and EC
    /// forms (AES-256, DES-EDE3); a wrong or missing passphrase is refused
    /// in one line.
    with_an_encrypted_client_key_and_sslpassword,
    |s, d| {
        let (rsa_crt, rsa_key) = openssl_client_cert(&s.certs, "certuser", "rsa", &["-newkey", "rsa:2048"]);
        let (ec_crt, ec_key) = openssl_v1_client_cert(&s.certs, "certuser");
        let pass = "pass:S3cret pass";
        let encrypted = |name: &str, args: &[&str], from: &Path, header: &str| -> PathBuf {
            let out = d.join(name);
            openssl_ok(Command::new("openssl")
                .args(args)
                .arg("-in")
                .arg(from)
                .arg("-out")
                .arg(&out)
                .args(["-passout", pass]));
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(text.contains(header), "{name}: {text}");
            out
        };
        let cases = [
            ("pkcs8-aes.key", &rsa_crt, encrypted("pkcs8-aes.key", &["pkcs8", "-topk8", "-v2", "aes-256-cbc"], &rsa_key, "BEGIN ENCRYPTED PRIVATE KEY")),
            ("pkcs8-scrypt.key", &ec_crt, encrypted("pkcs8-scrypt.key", &["pkcs8", "-topk8", "-scrypt"], &ec_key, "BEGIN ENCRYPTED PRIVATE KEY")),
            ("pkcs8-des3.key", &ec_crt, encrypted("pkcs8-des3.key", &["pkcs8", "-topk8", "-v2", "des3"], &ec_key, "BEGIN ENCRYPTED PRIVATE KEY")),
            ("rsa-aes256.key", &rsa_crt, encrypted("rsa-aes256.key", &["rsa", "-aes256", "-traditional"], &rsa_key, "DEK-Info: AES-256-CBC")),
            ("ec-des3.key", &ec_crt, encrypted("ec-des3.key", &["ec", "-des3"], &ec_key, "DEK-Info: DES-EDE3-CBC")),
        ];
        for (name, crt, key) in &cases {
            let conn = s.certuser(crt, key, "sslpassword='S3cret pass'");
            assert_passes(&s.run(&d.join(format!("ok-{name}")), &conn, &[]), name);
            let wrong = s.certuser(crt, key, "sslpassword=nope");
            assert_refused(
                &s.run(&d.join(format!("wrong-{name}")), &wrong, &[]),
                name,
                &format!("could not load private key file \"{}\": bad decrypt (is sslpassword right?)", key.display()),
            );
            let none = s.certuser(crt, key, "");
            assert_refused(
                &s.run(&d.join(format!("none-{name}")), &none, &[]),
                name,
                "the key is encrypted: give its passphrase as sslpassword",
            );
        }
    }
);

tls_test!(over_a_uri_with_tls_parameters, |s, d| {
    let conn = format!(
        "postgresql://scramuser:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        PASSWORD.replace('@', "%40"),
        s.port,
        s.certs.ca.display()
    );
    passes_over(&s, d, "URI with TLS parameters", &conn, &[]);
});

/// A password file for the test server (mode 0600): host, port, any
/// database, the user, after lines that do not match.
fn pgpass_for(s: &TlsServer, path: &Path) {
    write_private(
        path,
        &format!(
            "# comment\nlocalhost:*:*:other:x\n127.0.0.1:{}:*:scramuser:{}\n",
            s.port,
            PASSWORD.replace(':', "\\:")
        ),
    );
}

fn without_password(s: &TlsServer) -> String {
    format!(
        "host=127.0.0.1 port={} user=scramuser sslmode=require",
        s.port
    )
}

tls_test!(with_the_password_file_of_pgpassfile, |s, d| {
    let pgpass = d.join("pgpass");
    pgpass_for(&s, &pgpass);
    let env = [("PGPASSFILE", pgpass.to_str().unwrap())];
    passes_over(&s, d, "PGPASSFILE", &without_password(&s), &env);
});

tls_test!(with_the_password_file_in_home, |s, d| {
    std::fs::create_dir_all(d.join("case/home")).unwrap();
    pgpass_for(&s, &d.join("case/home/.pgpass"));
    passes_over(&s, d, "~/.pgpass", &without_password(&s), &[]);
});

/// A service file with a group `tls` for the test server.
fn services_for(s: &TlsServer, d: &Path) -> PathBuf {
    let services = d.join("services.conf");
    std::fs::write(
        &services,
        format!(
            "[other]\nhost=nowhere\n[tls]\nhost=localhost\nport={}\nuser=scramuser\nsslmode=verify-full\nsslrootcert={}\npassword={PASSWORD}\n",
            s.port,
            s.certs.ca.display()
        ),
    )
    .unwrap();
    services
}

tls_test!(with_a_service_named_in_the_conninfo, |s, d| {
    let services = services_for(&s, d);
    let env = [("PGSERVICEFILE", services.to_str().unwrap())];
    passes_over(&s, d, "service=", "service=tls", &env);
});

tls_test!(with_a_service_named_by_pgservice, |s, d| {
    let services = services_for(&s, d);
    let env = [
        ("PGSERVICEFILE", services.to_str().unwrap()),
        ("PGSERVICE", "tls"),
    ];
    passes_over(&s, d, "PGSERVICE", "", &env);
});

/// A port nothing listens on.
fn down_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

tls_test!(over_a_host_list_whose_first_host_is_down, |s, d| {
    let conn = format!(
        "host=127.0.0.1,localhost port={},{} user=scramuser password={PASSWORD} sslmode=verify-full sslrootcert={}",
        down_port(),
        s.port,
        s.certs.ca.display()
    );
    passes_over(&s, d, "host list", &conn, &[]);
});

tls_test!(
    /// Every host down: every attempt is reported, as libpq does.
    a_host_list_all_down_reports_every_attempt,
    |s, d| {
        let down = down_port();
        let conn = format!("host=127.0.0.1,127.0.0.1 port={down},{down} user=scramuser password=x");
        let out = s.run(&d.join("none"), &conn, &[]);
        let all = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{all}");
        let line = format!("connection to server at \"127.0.0.1\", port {down} failed: Connection refused");
        assert_eq!(all.matches(&line).count(), 2, "{all}");
    }
);

/// The test's home directory with `files` copied into ~/.postgresql.
fn home_postgresql(d: &Path, files: &[(&Path, &str)]) {
    let dir = d.join("case/home/.postgresql");
    std::fs::create_dir_all(&dir).unwrap();
    for (from, name) in files {
        std::fs::copy(from, dir.join(name)).unwrap();
    }
}

tls_test!(
    /// ~/.postgresql/root.crt holds a CA that did not sign the server's
    /// certificate: libpq's require then verifies, and fails.
    require_verifies_with_a_root_certificate_in_home,
    |s, d| {
        home_postgresql(d, &[(&s.certs.other_ca, "root.crt")]);
        refused_over(&s, d, "require, foreign root.crt", &s.scram("sslmode=require"), "certificate verify failed");
    }
);

tls_test!(
    require_passes_with_the_right_root_certificate_in_home,
    |s, d| {
        home_postgresql(d, &[(&s.certs.ca, "root.crt")]);
        passes_over(
            &s,
            d,
            "require, right root.crt",
            &s.scram("sslmode=require"),
            &[],
        );
    }
);

tls_test!(client_certificate_and_key_from_home_by_default, |s, d| {
    home_postgresql(
        d,
        &[
            (&s.certs.ca, "root.crt"),
            (&s.certs.client_crt, "postgresql.crt"),
            (&s.certs.client_key, "postgresql.key"),
        ],
    );
    let conn = format!(
        "host=localhost port={} user=certuser sslmode=verify-full",
        s.port
    );
    passes_over(&s, d, "client certificate from ~/.postgresql", &conn, &[]);
});

tls_test!(
    refused_verify_full_against_a_name_not_in_the_certificate,
    |s, d| {
        let conn = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={} user=scramuser password={PASSWORD} sslmode=verify-full sslrootcert={}",
        s.port,
        s.certs.ca.display()
    );
        refused_over(
        &s,
        d,
        "verify-full, wrong name",
        &conn,
        "server certificate for \"localhost\" (and 1 other name) does not match host name \"wrong.example\"",
    );
    }
);

tls_test!(refused_verify_ca_with_a_foreign_root, |s, d| {
    let conn = s.scram(&format!(
        "sslmode=verify-ca sslrootcert={}",
        s.certs.other_ca.display()
    ));
    refused_over(
        &s,
        d,
        "verify-ca, foreign CA",
        &conn,
        "certificate verify failed",
    );
});

tls_test!(refused_verify_ca_without_a_root_certificate, |s, d| {
    refused_over(
        &s,
        d,
        "verify-ca, no root.crt",
        &s.scram("sslmode=verify-ca"),
        "root certificate file",
    );
});

tls_test!(refused_without_tls_by_a_hostssl_only_server, |s, d| {
    refused_over(
        &s,
        d,
        "sslmode=disable",
        &s.scram("sslmode=disable"),
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"scramuser\", database \"postgres\", no encryption",
    );
});

tls_test!(refused_with_a_wrong_password, |s, d| {
    let conn = format!(
        "host=127.0.0.1 port={} user=scramuser password=wrong sslmode=require",
        s.port
    );
    refused_over(
        &s,
        d,
        "wrong password",
        &conn,
        "password authentication failed for user \"scramuser\"",
    );
});

tls_test!(
    /// A password file others may read: libpq's warning, then no password.
    refused_with_a_password_file_others_may_read,
    |s, d| {
        let pgpass = d.join("pgpass-open");
        std::fs::write(&pgpass, format!("*:*:*:scramuser:{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let env = [("PGPASSFILE", pgpass.to_str().unwrap())];
        let out = s.run(&d.join("perm"), &without_password(&s), &env);
        assert_refused(&out, "password file 0644", "has group or world access; permissions should be u=rw (0600) or less");
        assert_refused(&out, "password file 0644", "fe_sendauth: no password supplied");
    }
);

tls_test!(refused_with_a_client_key_others_may_read, |s, d| {
    let key = d.join("open.key");
    std::fs::copy(&s.certs.client_key, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conn = s.certuser(&s.certs.client_crt, &key, "");
    refused_over(&s, d, "client key 0644", &conn, "has group or world access");
});

tls_test!(
    /// channel_binding=require where the server offers no SCRAM (cert auth).
    refused_channel_binding_required_without_scram,
    |s, d| {
        let conn = s.certuser(&s.certs.client_crt, &s.certs.client_key, "channel_binding=require");
        refused_over(
            &s,
            d,
            "channel_binding=require with cert auth",
            &conn,
            "channel binding required, but server authenticated client without channel binding",
        );
    }
);

tls_test!(
    /// What isospec cannot do is said in one line naming the setting.
    refused_gssencmode_require_in_one_line,
    |s, d| {
        refused_over(&s, d, "gssencmode=require", &s.scram("gssencmode=require"), "gssencmode");
    }
);

#[test]
fn a_step_timeout_cancels_over_tls() {
    let Some((dir, s)) = tls_server() else { return };
    let d = dir.path();
    let specs = write_suite(d, &[("endless", ENDLESS, "")]);
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = s
        .command(&home, &[])
        .arg("run")
        .arg("--outputdir")
        .arg(d)
        .args(["--timeout", "2", "-d", &s.scram("sslmode=require")])
        .arg(specs.join("endless.spec"))
        .output()
        .unwrap();
    let result = std::fs::read_to_string(d.join("results/endless.out")).unwrap_or_default();
    assert!(
        result.contains("isolationtester: canceling step s1s after 2 seconds")
            && result.contains("ERROR:  canceling statement due to user request"),
        "{result}\n{}",
        all_output(&out)
    );
}

#[test]
fn through_pgbouncer_with_client_tls() {
    require_pgbouncer!();
    let Some((dir, s)) = tls_server() else { return };
    let d = dir.path();
    s.srv
        .query("postgres", "CREATE DATABASE isolation_regression")
        .unwrap();
    // PgBouncer runs as the server's OS user, who owns the server's key.
    let key = format!("client_tls_key_file = {}", s.certs.server_key.display());
    let crt = format!("client_tls_cert_file = {}", s.certs.server_crt.display());
    let pooler = crate::util::Pooler::start(
        &s.inst,
        &d.join("pgbouncer"),
        &["client_tls_sslmode = require", &key, &crt],
    );
    let through = |sslmode: &str, out: &str| {
        let specs = write_suite(&d.join(out), &[("blocking", BLOCKING, BLOCKING_OUT)]);
        let home = d.join(out).join("home");
        std::fs::create_dir_all(&home).unwrap();
        s.command(&home, &[])
            .arg("run")
            .arg("--outputdir")
            .arg(d.join(out))
            .args(["--use-existing", "--timeout", "60", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user={} {sslmode} sslrootcert={}",
                pooler.port,
                Server::user(),
                s.certs.ca.display()
            ))
            .arg(specs.join("blocking.spec"))
            .output()
            .unwrap()
    };
    assert_passes(
        &through("sslmode=verify-full", "full"),
        "PgBouncer, verify-full",
    );
    assert_passes(&through("sslmode=verify-ca", "ca"), "PgBouncer, verify-ca");
    let out = through("sslmode=disable", "plain");
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("127.0.0.1") && all.contains("SSL"), "{all}");
}

/// PostgreSQL 17's server binaries, as `--postgres 17` gets them (`isospec
/// postgres fetch 17`, into the default cache that `make check-matrix` fills).
fn pg17_bindir() -> PathBuf {
    let out = crate::util::isospec()
        .args(["postgres", "fetch", "17"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "isospec postgres fetch 17 failed: {}",
        all_output(&out)
    );
    PathBuf::from(text(&out.stdout).trim())
}

#[test]
fn direct_tls_negotiation_with_a_postgresql_17_server() {
    if let Some(why) = crate::util::no_server_reason() {
        crate::util::skip(&why);
        return;
    }
    let dir = workdir();
    let s = TlsServer::start_with(dir.path(), Some(pg17_bindir()));
    let d = dir.path();
    let ca = s.certs.ca.display().to_string();
    let direct = format!(
        "host=localhost port={} user=scramuser password={PASSWORD} sslnegotiation=direct sslmode=verify-full sslrootcert={ca}",
        s.port
    );
    assert_passes(
        &s.run(&d.join("direct"), &direct, &[]),
        "sslnegotiation=direct",
    );
    let env = [("PGSSLNEGOTIATION", "direct"), ("PGSSLMODE", "require")];
    assert_passes(
        &s.run(&d.join("env"), &s.scram("channel_binding=require"), &env),
        "PGSSLNEGOTIATION=direct",
    );
    // direct needs sslmode require or stricter, as libpq says.
    let out = s.run(&d.join("weak"), &s.scram("sslnegotiation=direct"), &[]);
    assert_refused(
        &out,
        "direct with prefer",
        "weak sslmode \"prefer\" may not be used with sslnegotiation=direct",
    );
}

#[test]
fn no_output_carries_the_password() {
    let Some((dir, s)) = tls_server() else { return };
    let d = dir.path();
    // A failing spec (its expected file differs), a NEW one, and every
    // report the run can write.
    let specs = write_suite(
        d,
        &[
            ("blocking", BLOCKING, "wrong\n"),
            ("other", BLOCKING, BLOCKING_OUT),
        ],
    );
    std::fs::remove_file(d.join("suite/expected/other.out")).unwrap();
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let summary = d.join("summary.md");
    let conninfo = format!(
        "postgresql://scramuser:{}@localhost:{}/postgres?sslmode=require",
        PASSWORD.replace('@', "%40"),
        s.port
    );
    let out = s
        .command(&home, &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())])
        .arg("run")
        .arg("--outputdir")
        .arg(d.join("out"))
        .args(["-d", &conninfo, "--junit"])
        .arg(d.join("junit.xml"))
        .arg("--json")
        .arg(d.join("report.json"))
        .arg(&specs)
        .output()
        .unwrap();
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    crate::util::read_json(&d.join("report.json"));
    let mut texts = vec![("output".to_string(), all)];
    for f in walk(&d.join("out")).into_iter().chain([
        d.join("junit.xml"),
        d.join("report.json"),
        summary.clone(),
    ]) {
        texts.push((
            f.display().to_string(),
            std::fs::read_to_string(&f).unwrap_or_default(),
        ));
    }
    assert!(
        texts.iter().any(|(_, t)| t.contains("wrong")),
        "the diff is reported"
    );
    for (name, t) in texts {
        assert!(
            !t.contains(PASSWORD) && !t.contains("scram-secret"),
            "{name} carries the password:\n{t}"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian: openssl) is needed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        all_output(&out)
    );
}

/// The server's certificate replaced by one made as PostgreSQL's
/// documentation shows ("Creating Certificates"), before it starts.
fn documented_server(dir: &Path, self_signed: bool) -> TlsServer {
    let certs = dir.join("certs");
    make_certs(&certs, "certuser");
    let o = |args: &[&str]| openssl(args, &certs);
    if self_signed {
        // A self-signed certificate, copied to the clients' root.crt.
        o(&[
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-nodes",
            "-text",
            "-out",
            "server.crt",
            "-keyout",
            "server.key",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::copy(certs.join("server.crt"), certs.join("doc-root.crt")).unwrap();
    } else {
        // A root CA and a server certificate it signs (X.509 v1).
        o(&[
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-nodes",
            "-text",
            "-out",
            "doc-root.crt",
            "-keyout",
            "doc-root.key",
            "-subj",
            "/CN=root.example.com",
        ]);
        o(&[
            "req",
            "-new",
            "-nodes",
            "-text",
            "-out",
            "server.csr",
            "-keyout",
            "server.key",
            "-subj",
            "/CN=localhost",
        ]);
        o(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-text",
            "-days",
            "2",
            "-CA",
            "doc-root.crt",
            "-CAkey",
            "doc-root.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
        ]);
    }
    write_private(
        &certs.join("server.key"),
        &std::fs::read_to_string(certs.join("server.key")).unwrap(),
    );
    std::fs::set_permissions(
        certs.join("doc-root.crt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        certs.join("server.crt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    if crate::util::is_root() {
        let pg = nix::unistd::User::from_name(&Server::user())
            .unwrap()
            .unwrap();
        nix::unistd::chown(&certs.join("server.key"), Some(pg.uid), Some(pg.gid)).unwrap();
    }
    TlsServer::launch(dir, None, false)
}

/// A server with its certificate made as PostgreSQL's documentation shows:
/// verify-ca and verify-full pass with that root, and a foreign root fails.
fn documented_certificate_case(self_signed: bool) {
    if let Some(why) = crate::util::no_server_reason() {
        crate::util::skip(&why);
        return;
    }
    let dir = workdir();
    let s = documented_server(dir.path(), self_signed);
    let root = dir.path().join("certs/doc-root.crt");
    for mode in ["verify-ca", "verify-full"] {
        let conn = format!(
            "host=localhost port={} user=scramuser password={PASSWORD} sslmode={mode} sslrootcert={}",
            s.port,
            root.display()
        );
        let case = format!("{mode}, self-signed {self_signed}");
        assert_passes(&s.run(&dir.path().join(mode), &conn, &[]), &case);
    }
    // Not trusted without that root: the test CA did not sign it.
    let conn = s.scram(&format!(
        "sslmode=verify-ca sslrootcert={}",
        s.certs.ca.display()
    ));
    assert_refused(
        &s.run(&dir.path().join("other"), &conn, &[]),
        "foreign root",
        "certificate verify failed",
    );
}

#[test]
fn a_self_signed_server_certificate_copied_to_root_crt() {
    documented_certificate_case(true);
}

#[test]
fn an_x509_v1_server_certificate_signed_by_a_root() {
    documented_certificate_case(false);
}

tls_test!(
    /// A step of over 64 KiB travels whole over TLS.
    a_step_of_100_kb_over_tls,
    |s, d| {
        let big = "x".repeat(100_000);
        let spec = format!("session s1\nstep big {{ SELECT length('{big}') AS n; }}\npermutation big\n");
        let specs = crate::util::write_new_specs(d, &[("big", &spec)]);
        let home = d.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let out = s
            .command(&home, &[])
            .arg("run")
            .arg("--outputdir")
            .arg(d.join("big"))
            .args(["-d", &s.scram("sslmode=require")])
            .arg(specs.join("big.spec"))
            .output()
            .unwrap();
        let result = std::fs::read_to_string(d.join("big/results/big.out")).unwrap_or_default();
        assert!(
            result.contains("100000") && !result.contains("ERROR"),
            "{result}\n{}",
            all_output(&out)
        );
    }
);

tls_test!(
    /// A key that is not the certificate's: libpq's message.
    refused_a_key_that_is_not_the_certificates,
    |s, d| {
        let conn = s.certuser(&s.certs.client_crt, &s.certs.server_key, "");
        refused_over(&s, d, "key mismatch", &conn, "certificate does not match private key file");
    }
);

tls_test!(
    /// sslcertmode=disable sends no certificate.
    sslcertmode_disable_sends_no_certificate,
    |s, d| {
        let conn = s.certuser(&s.certs.client_crt, &s.certs.client_key, "sslcertmode=disable");
        refused_over(&s, d, "sslcertmode=disable", &conn, "connection requires a valid client certificate");
    }
);

// isospec record connects upstream as run does: TLS required, the password
// from ~/.pgpass, SCRAM.  The client talks to the proxy in the clear (the
// command gets PGSSLMODE=disable over the user's PGSSLMODE=prefer); the
// server sees a TLS connection.
tls_test!(record_connects_upstream_like_run, |s, d| {
    let home = d.join("rec/home");
    std::fs::create_dir_all(&home).unwrap();
    pgpass_for(&s, &home.join(".pgpass"));
    let out = s
        .command(&home, &[("PGSSLMODE", "prefer")])
        .current_dir(d)
        .args([
            "record",
            "-o",
            "tls.spec",
            "-d",
            &without_password(&s),
            "--",
        ])
        .args([
            "psql",
            "-X",
            "-At",
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .output()
        .unwrap();
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(text(&out.stdout).trim(), "t", "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
    let spec = std::fs::read_to_string(d.join("tls.spec")).unwrap();
    assert!(
        spec.contains("step psql_1 { SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid() }"),
        "{spec}"
    );
});
