//! Hosts, host addresses and ports, paired as libpq pairs them, with the
//! default socket directory where none is given.

use super::super::files::DEFAULT_SOCKET_DIR;
use super::super::settings::*;
use super::Values;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Hosts, addresses and ports, paired as libpq pairs them.
pub(super) fn targets(vals: &Values) -> Result<Vec<Target>, String> {
    let split = |k: &str| -> Vec<String> {
        match vals.get(k) {
            Some(v) if !v.is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let mut hosts = split("host");
    let addrs = split("hostaddr");
    let ports = split("port");
    if hosts.is_empty() {
        hosts = vec![String::new(); addrs.len().max(1)];
    }
    if !addrs.is_empty() && addrs.len() != hosts.len() {
        return Err(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        ));
    }
    if ports.len() > 1 && ports.len() != hosts.len() {
        return Err(format!(
            "could not match {} port numbers to {} hosts",
            ports.len(),
            hosts.len()
        ));
    }
    let mut targets = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let addr = addrs.get(i).filter(|a| !a.is_empty());
        let hostaddr = match addr {
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| format!("could not parse network address \"{a}\""))?,
            ),
            None => None,
        };
        let port_s = if ports.len() == 1 {
            ports.first()
        } else {
            ports.get(i)
        };
        let port = match port_s.map(String::as_str).filter(|p| !p.is_empty()) {
            None => 5432,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port number: \"{p}\""))?,
        };
        let host = if h.is_empty() {
            match hostaddr {
                Some(a) => Host::Tcp(a.to_string()),
                None => Host::Unix(PathBuf::from(default_socket_dir())),
            }
        } else if h.starts_with('/') {
            Host::Unix(PathBuf::from(h))
        } else {
            Host::Tcp(h.clone())
        };
        targets.push(Target {
            host,
            hostaddr,
            port,
            host_given: !h.is_empty(),
        });
    }

    Ok(targets)
}

/// libpq's DEFAULT_PGSOCKET_DIR where it exists, else /tmp (PostgreSQL's
/// own default, for servers built from source).
fn default_socket_dir() -> String {
    for d in [DEFAULT_SOCKET_DIR, "/tmp"] {
        if Path::new(d).is_dir() {
            return d.to_string();
        }
    }
    "/tmp".to_string()
}
