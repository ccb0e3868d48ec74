//! TLS as libpq's fe-secure-openssl.c does it, over rustls: which
//! certificates are trusted (`sslrootcert`, `~/.postgresql/root.crt`, the
//! system's store), libpq's rule that `sslmode=require` verifies the chain
//! when a root certificate is present, client certificates and the key
//! file's permission check, CRLs, the host name check of `verify-full` with
//! libpq's own rules and texts, and the `tls-server-end-point` hash for
//! SCRAM channel binding.
//!
//! rustls is driven sans-I/O here (not through tokio-rustls): a spec
//! connection must read whatever the kernel already holds without waiting
//! for the runtime's readiness (libpq's PQconsumeInput), so the transport
//! feeds the TLS engine from its own non-blocking reads.

use super::settings::{SslMode, TlsSettings, TlsVersion};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Why TLS could not be set up or the server's certificate is refused,
/// with libpq's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The client's own side: root certificates, CRLs, the client
    /// certificate and key, protocol versions.
    #[error("{0}")]
    Config(String),
    /// verify-full: the certificate names another host.
    #[error("{0}")]
    HostName(String),
    /// The server's certificate could not be read.
    #[error("{0}")]
    Certificate(String),
}

/// A client configuration per distinct TLS settings: 100 sessions read
/// the certificate files once.
pub fn client_config(s: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    static CACHE: OnceLock<Mutex<HashMap<TlsSettings, Arc<ClientConfig>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap().get(s) {
        return Ok(c.clone());
    }
    let c = Arc::new(build_config(s)?);
    cache.lock().unwrap().insert(s.clone(), c.clone());
    Ok(c)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn home_file(s: &TlsSettings, name: &str) -> Option<PathBuf> {
    s.home.as_ref().map(|h| h.join(".postgresql").join(name))
}

/// The root certificate file libpq would use, and whether the chain is
/// verified: always for verify-ca/verify-full, and for the weaker modes
/// when the file exists.
fn roots(
    s: &TlsSettings,
) -> Result<Option<(rustls::RootCertStore, Vec<CertificateDer<'static>>)>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    if s.rootcert.as_deref() == Some("system") {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            return Err(TlsError::Config(format!(
                "could not load system root certificate paths: {}",
                found
                    .errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "no certificates found".into())
            )));
        }
        let ders = found.certs.clone();
        store.add_parsable_certificates(found.certs);
        return Ok(Some((store, ders)));
    }
    let file = match &s.rootcert {
        Some(f) => Some(PathBuf::from(f)),
        None => home_file(s, "root.crt"),
    };
    let verify_required = s.mode >= SslMode::VerifyCa;
    const EITHER: &str = "Either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification.";
    let Some(file) = file else {
        if verify_required {
            return Err(TlsError::Config(format!(
                "could not get home directory to locate root certificate file\n{EITHER}"
            )));
        }
        return Ok(None);
    };
    if std::fs::metadata(&file).is_err() {
        if verify_required {
            return Err(TlsError::Config(format!(
                "root certificate file \"{}\" does not exist\n{EITHER}",
                file.display()
            )));
        }
        return Ok(None);
    }
    let certs = read_certs(&file).map_err(|e| {
        TlsError::Config(format!(
            "could not read root certificate file \"{}\": {e}",
            file.display()
        ))
    })?;
    for c in &certs {
        // OpenSSL takes any certificate in the file as a trust anchor.
        let _ = store.add(c.clone());
    }
    Ok(Some((store, certs)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::Config(e.to_string()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    let certs = certs.map_err(|e| TlsError::Config(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Config("no certificate found".into()));
    }
    Ok(certs)
}

fn crls(s: &TlsSettings) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut files = Vec::new();
    // As libpq: sslcrl and sslcrldir, else ~/.postgresql/root.crl; a file
    // that does not exist is ignored.
    if s.crl.is_none() && s.crldir.is_none() {
        files.extend(home_file(s, "root.crl"));
    }
    files.extend(s.crl.clone());
    if let Some(dir) = &s.crldir {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                files.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    for f in files.into_iter().filter(|f| f.is_file()) {
        let data = std::fs::read(&f).map_err(|e| {
            TlsError::Config(format!(
                "could not load SSL certificate revocation list \"{}\": {e}",
                f.display()
            ))
        })?;
        let found: Result<Vec<_>, _> = rustls_pemfile::crls(&mut data.as_slice()).collect();
        let found = found.map_err(|e| {
            TlsError::Config(format!(
                "could not load SSL certificate revocation list \"{}\": {e}",
                f.display()
            ))
        })?;
        if found.is_empty() {
            // A DER file.
            out.push(CertificateRevocationListDer::from(data));
        } else {
            out.extend(found);
        }
    }
    Ok(out)
}

/// The client certificate and key, if a certificate file exists: the key
/// file must exist and pass libpq's permission check.
type ClientIdentity = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    PathBuf,
);

fn client_identity(s: &TlsSettings) -> Result<Option<ClientIdentity>, TlsError> {
    if s.no_client_cert {
        return Ok(None);
    }
    let cert = s.cert.clone().or_else(|| home_file(s, "postgresql.crt"));
    let Some(cert) = cert.filter(|c| c.exists()) else {
        return Ok(None);
    };
    let certs = read_certs(&cert).map_err(|e| {
        TlsError::Config(format!(
            "could not load certificate file \"{}\": {e}",
            cert.display()
        ))
    })?;
    let key = s.key.clone().or_else(|| home_file(s, "postgresql.key"));
    let Some(key) = key else {
        return Err(TlsError::Config(
            "certificate present, but not private key file".into(),
        ));
    };
    let meta = std::fs::metadata(&key).map_err(|_| {
        TlsError::Config(format!(
            "certificate present, but not private key file \"{}\"",
            key.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(TlsError::Config(format!(
            "private key file \"{}\" is not a regular file",
            key.display()
        )));
    }
    let mode = meta.mode();
    let bad = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if bad {
        return Err(TlsError::Config(format!(
            "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            key.display()
        )));
    }
    let data = std::fs::read(&key).map_err(|e| {
        TlsError::Config(format!(
            "could not load private key file \"{}\": {e}",
            key.display()
        ))
    })?;
    let password = s.key_password.as_ref().map(|p| p.0.as_slice());
    let k = super::client_key::load(&data, password).map_err(|e| {
        TlsError::Config(format!(
            "could not load private key file \"{}\": {e}",
            key.display()
        ))
    })?;
    Ok(Some((certs, k, key)))
}

fn build_config(s: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    let allowed = |v: TlsVersion| {
        s.min_version.is_none_or(|m| m as u8 <= v as u8)
            && s.max_version.is_none_or(|m| v as u8 <= m as u8)
    };
    if allowed(TlsVersion::Tls13) {
        versions.push(&rustls::version::TLS13);
    }
    if allowed(TlsVersion::Tls12) {
        versions.push(&rustls::version::TLS12);
    }
    let verifier: Arc<dyn ServerCertVerifier> = match roots(s)? {
        Some((store, root_ders)) => {
            let crls = crls(s)?;
            let checks_revocation = !crls.is_empty();
            // As libpq's X509_V_FLAG_CRL_CHECK_ALL: with CRLs, every
            // certificate of the chain needs one, and an expired one fails.
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .with_crls(crls)
                    .enforce_revocation_expiration()
                    .build()
                    .map_err(|e| {
                        TlsError::Config(format!("could not set up certificate verification: {e}"))
                    })?;
            Arc::new(ChainOnly {
                inner,
                roots: root_ders,
                checks_revocation,
            })
        }
        None => Arc::new(AnyCertificate(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(format!("invalid SSL protocol version range: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match client_identity(s)? {
        Some((certs, key, key_path)) => {
            // Not with_client_auth_cert: it parses the certificate with
            // webpki, which refuses X.509 v1 certificates (what
            // `openssl x509 -req` makes without extensions) that libpq
            // and the server accept.
            let signer = rustls::crypto::ring::default_provider()
                .key_provider
                .load_private_key(key)
                .map_err(|e| TlsError::Config(format!("could not load private key file: {e}")))?;
            // libpq's check that the key is the certificate's.
            let cert_key = x509_parser::parse_x509_certificate(certs[0].as_ref())
                .ok()
                .map(|(_, c)| c.public_key().raw.to_vec());
            if let (Some(a), Some(b)) = (cert_key, signer.public_key()) {
                if a != b.as_ref() {
                    return Err(TlsError::Config(format!(
                        "certificate does not match private key file \"{}\"",
                        key_path.display()
                    )));
                }
            }
            let key = Arc::new(rustls::sign::CertifiedKey::new(certs, signer));
            builder.with_client_cert_resolver(Arc::new(ClientCert(key)))
        }
        None => builder.with_no_client_auth(),
    };
    cfg.enable_sni = s.sni;
    // libpq 17 offers ALPN "postgresql" on every TLS connection.
    cfg.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(cfg)
}

/// The client certificate, offered whenever the server asks for one.
#[derive(Debug)]
struct ClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The chain is verified against the roots; the name is libpq's to check
/// (only under verify-full, with its own rules), so a name mismatch alone
/// is not a failure here.  What webpki refuses but OpenSSL (and so libpq)
/// accepts is verified as OpenSSL would: a server certificate that is
/// itself in the root file (a self-signed certificate copied to
/// root.crt), and an X.509 v1 certificate signed by a root (what
/// `openssl x509 -req` makes without extensions).
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
    roots: Vec<CertificateDer<'static>>,
    checks_revocation: bool,
}

impl ChainOnly {
    fn openssl_accepts(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> bool {
        use x509_parser::prelude::*;
        let Ok((_, cert)) = X509Certificate::from_der(end_entity.as_ref()) else {
            return false;
        };
        let Ok(now) = ASN1Time::from_timestamp(now.as_secs() as i64) else {
            return false;
        };
        if !cert.validity().is_valid_at(now) {
            return false;
        }
        if self.roots.iter().any(|r| r.as_ref() == end_entity.as_ref()) {
            return true;
        }
        self.roots.iter().any(|r| {
            X509Certificate::from_der(r.as_ref()).is_ok_and(|(_, root)| {
                root.subject() == cert.issuer()
                    && root.validity().is_valid_at(now)
                    && cert.verify_signature(Some(root.public_key())).is_ok()
            })
        })
    }
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(C::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(C::UnknownIssuer | C::Other(_)))
                if !self.checks_revocation && self.openssl_accepts(end_entity, now) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            r => r,
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.inner.verify_tls13_signature(m, c, d) {
            // A certificate webpki cannot parse (X.509 v1) that
            // verify_server_cert accepted: its key signs all the same.
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(_))) => {
                let (_, cert) = x509_parser::parse_x509_certificate(c.as_ref()).map_err(|_| {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
                })?;
                let spki = rustls::pki_types::SubjectPublicKeyInfoDer::from(cert.public_key().raw);
                rustls::crypto::verify_tls13_signature_with_raw_key(
                    m,
                    &spki,
                    d,
                    &rustls::crypto::ring::default_provider().signature_verification_algorithms,
                )
            }
            r => r,
        }
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// sslmode require/prefer/allow without a root certificate: encryption
/// without authentication of the server (the handshake's signatures are
/// still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The name rustls is given (SNI is sent for names, not addresses).
pub fn server_name(host: &str) -> ServerName<'static> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(IpAddr::from([0u8, 0, 0, 0]).into()))
}

/// libpq's text for a failed handshake.
pub fn describe_tls_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            format!(
                "SSL error: certificate verify failed: {}",
                certificate_error(c)
            )
        }
        rustls::Error::AlertReceived(a) => format!("SSL error: tlsv1 alert {}", alert_name(a)),
        rustls::Error::NoApplicationProtocol => {
            "SSL connection was established with unexpected ALPN protocol".into()
        }
        e => format!("SSL error: {e}"),
    }
}

fn certificate_error(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => "unable to get local issuer certificate".into(),
        C::Expired | C::ExpiredContext { .. } => "certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate is not yet valid".into(),
        C::Revoked => "certificate revoked".into(),
        C::BadSignature => "certificate signature failure".into(),
        other => format!("{other:?}"),
    }
}

fn alert_name(a: &rustls::AlertDescription) -> String {
    format!("{a:?}")
        .chars()
        .flat_map(|c| {
            if c.is_uppercase() {
                vec![' ', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The certificate's names as libpq examines them.
struct CertNames {
    dns: Vec<String>,
    ips: Vec<Vec<u8>>,
    cn: Option<String>,
    /// In examination order (SANs), for the message's first name.
    all: Vec<String>,
}

fn cert_names(der: &[u8]) -> Result<CertNames, TlsError> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
        TlsError::Certificate(format!("could not parse the server certificate: {e}"))
    })?;
    let mut names = CertNames {
        dns: Vec::new(),
        ips: Vec::new(),
        cn: None,
        all: Vec::new(),
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => {
                    names.dns.push(d.to_string());
                    names.all.push(d.to_string());
                }
                GeneralName::IPAddress(b) => {
                    names.ips.push(b.to_vec());
                    let shown = match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string(),
                        _ => format!("{b:?}"),
                    };
                    names.all.push(shown);
                }
                _ => {}
            }
        }
    }
    names.cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_string);
    Ok(names)
}

/// libpq's wildcard_certificate_match: `*.` then a suffix, matching one
/// label only.
fn wildcard_match(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    if p.len() < 3 || !p.starts_with("*.") || p.len() > h.len() {
        return false;
    }
    let suffix = &p[1..];
    if !h.ends_with(suffix) {
        return false;
    }
    let start = h.len() - suffix.len();
    !h[..start].contains('.')
}

fn name_matches(name: &str, host: &str) -> bool {
    name.eq_ignore_ascii_case(host) || wildcard_match(name, host)
}

/// verify-full's check of the server certificate's names against `host`
/// (pq_verify_peer_name_matches_certificate), with libpq's texts.
pub fn check_host_name(cert_der: &[u8], host: &str) -> Result<(), TlsError> {
    if host.is_empty() {
        return Err(TlsError::HostName(
            "host name must be specified for a verified SSL connection".into(),
        ));
    }
    let names = cert_names(cert_der)?;
    let host_ip: Option<IpAddr> = host.parse().ok();
    let host_is_ip = host_ip.is_some();
    let mut examined = names.all.clone();
    let mut found = names.dns.iter().any(|d| name_matches(d, host));
    if let Some(ip) = host_ip {
        let octets = match ip {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        };
        found |= names.ips.contains(&octets);
    }
    let same_type_san = if host_is_ip {
        !names.ips.is_empty()
    } else {
        !names.dns.is_empty()
    };
    if !found && !same_type_san {
        if let Some(cn) = &names.cn {
            examined.push(cn.clone());
            found = name_matches(cn, host);
        }
    }
    if found {
        return Ok(());
    }
    Err(TlsError::HostName(match examined.len() {
        0 => "could not get server's host name from server certificate".into(),
        1 => format!(
            "server certificate for \"{}\" does not match host name \"{host}\"",
            examined[0]
        ),
        n => format!(
            "server certificate for \"{}\" (and {} other name{}) does not match host name \"{host}\"",
            examined[0],
            n - 1,
            if n == 2 { "" } else { "s" }
        ),
    }))
}

/// The `tls-server-end-point` channel binding data: the certificate's
/// hash with its signature's digest (SHA-256 for MD5 and SHA-1).
pub fn end_point_hash(cert_der: &[u8]) -> Result<Vec<u8>, TlsError> {
    use sha2::Digest;
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| {
        TlsError::Certificate("could not determine server certificate signature algorithm".into())
    })?;
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    Ok(match oid.as_str() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(cert_der).to_vec(),
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(cert_der).to_vec(),
        _ => sha2::Sha256::digest(cert_der).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str], cn: &str) -> Vec<u8> {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn host_names_checked_like_libpq() {
        let c = cert(&["localhost", "127.0.0.1"], "ignored-cn");
        assert!(check_host_name(&c, "localhost").is_ok());
        assert!(check_host_name(&c, "LOCALHOST").is_ok());
        assert!(check_host_name(&c, "127.0.0.1").is_ok());
        assert_eq!(
            check_host_name(&c, "db.example.com").unwrap_err(),
            TlsError::HostName("server certificate for \"localhost\" (and 1 other name) does not match host name \"db.example.com\"".into())
        );
        // With a dNSName SAN the CN is not a name of the server.
        assert!(check_host_name(&c, "ignored-cn").is_err());
        // Without SANs, the CN is.
        let c = cert(&[], "db.example.com");
        assert!(check_host_name(&c, "db.example.com").is_ok());
        assert_eq!(
            check_host_name(&c, "other").unwrap_err().to_string(),
            "server certificate for \"db.example.com\" does not match host name \"other\""
        );
        // Wildcards match one label only.
        let c = cert(&["*.example.com"], "x");
        assert!(check_host_name(&c, "db.example.com").is_ok());
        assert!(check_host_name(&c, "a.b.example.com").is_err());
        assert!(check_host_name(&c, "example.com").is_err());
        assert_eq!(
            check_host_name(&c, "").unwrap_err().to_string(),
            "host name must be specified for a verified SSL connection"
        );
    }

    #[test]
    fn end_point_hash_follows_the_signature() {
        let c = cert(&["localhost"], "x");
        // rcgen signs with ECDSA P-256 and SHA-256.
        assert_eq!(end_point_hash(&c).unwrap().len(), 32);
    }
}
