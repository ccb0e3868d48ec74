//! sslmode and the rest of TLS as libpq settles them: defaults, files
//! under ~/.postgresql, and the combinations libpq refuses.

use super::super::settings::*;
use super::{bool_option, Values};
use std::path::{Path, PathBuf};

/// sslmode and the rest of TLS, channel binding included, with libpq's
/// defaults and its checks of combinations.
pub(super) fn tls_settings(vals: &Values, home: Option<&Path>) -> Result<TlsSettings, String> {
    let get = |k: &str| vals.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let rootcert = get("sslrootcert").map(str::to_string);
    let mode = match get("sslmode") {
        Some(m) => SslMode::parse(m).ok_or_else(|| format!("invalid sslmode value: \"{m}\""))?,
        None if rootcert.as_deref() == Some("system") => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if rootcert.as_deref() == Some("system") && mode != SslMode::VerifyFull {
        return Err(format!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
            mode.name()
        ));
    }
    let direct = match get("sslnegotiation") {
        None | Some("postgres") => false,
        Some("direct") => true,
        Some(v) => return Err(format!("invalid sslnegotiation value: \"{v}\"")),
    };
    if direct && mode < SslMode::Require {
        return Err(format!(
            "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
            mode.name()
        ));
    }
    let channel_binding = match get("channel_binding") {
        None | Some("prefer") => ChannelBinding::Prefer,
        Some("disable") => ChannelBinding::Disable,
        Some("require") => ChannelBinding::Require,
        Some(v) => return Err(format!("invalid channel_binding value: \"{v}\"")),
    };
    if channel_binding == ChannelBinding::Require && mode == SslMode::Disable {
        return Err(
            "channel_binding=require is incompatible with sslmode=disable (channel binding needs TLS)".into(),
        );
    }
    let version = |k: &str| -> Result<Option<TlsVersion>, String> {
        match get(k) {
            None => Ok(None),
            Some("TLSv1.2") => Ok(Some(TlsVersion::Tls12)),
            Some("TLSv1.3") => Ok(Some(TlsVersion::Tls13)),
            Some(v @ ("TLSv1" | "TLSv1.1")) => Err(format!(
                "{k} \"{v}\" is not supported by isospec (its TLS library speaks TLSv1.2 and TLSv1.3)"
            )),
            Some(v) => Err(format!("invalid {k} value: \"{v}\"")),
        }
    };
    let min_version = version("ssl_min_protocol_version")?.or(Some(TlsVersion::Tls12));
    let max_version = version("ssl_max_protocol_version")?;
    if let (Some(TlsVersion::Tls13), Some(TlsVersion::Tls12)) = (min_version, max_version) {
        return Err("invalid SSL protocol version range".into());
    }
    let tls = TlsSettings {
        mode,
        direct,
        rootcert,
        cert: get("sslcert").map(PathBuf::from),
        key: get("sslkey").map(PathBuf::from),
        key_password: get("sslpassword").map(|p| Secret(p.as_bytes().to_vec())),
        no_client_cert: get("sslcertmode") == Some("disable"),
        crl: get("sslcrl").map(PathBuf::from),
        crldir: get("sslcrldir").map(PathBuf::from),
        sni: bool_option(vals, "sslsni", true)?,
        min_version,
        max_version,
        channel_binding,
        home: home.map(Path::to_path_buf),
    };
    Ok(tls)
}
