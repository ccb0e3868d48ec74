//! A cache of data directories just made by initdb, copied into a new
//! temporary instance instead of running initdb again, as PostgreSQL 16's
//! pg_regress copies its `INITDB_TEMPLATE`.  initdb takes about a second
//! (it boots the server several times); copying its 40 MB takes a tenth of
//! that, and a test suite or a `--repeat` loop starts many instances.
//!
//! An entry is keyed by everything that decides what initdb writes for a
//! temporary instance of isospec's own: the initdb and postgres binaries
//! (path, size, modification time: an upgrade changes them), the
//! superuser, and the fixed options (`-A trust -E UTF8 --locale=C`).
//! Instances initdb'd any other way (the environment's locale, `--debug`,
//! `PG_TEST_INITDB_EXTRA_OPTS`) never use the cache.  An entry is written
//! whole into a private directory and renamed into place, so readers see
//! a whole entry or none; storing after a concurrent writer won is a no-op.
//! Any failure of the cache falls back to running initdb.

use crate::environment::Environment;
use sha2::{Digest, Sha256};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bumped when an entry's layout or what goes into its key changes.
const FORMAT: &str = "isospec initdb template 1";

/// The cache entry for one way of running initdb.
pub(super) struct Template {
    entry: PathBuf,
    key: String,
}

/// `ISOSPEC_INITDB_CACHE`: a directory, or `off` (also 0, false, no);
/// unset, `initdb` beside the cache of fetched server binaries (whose rule
/// keeps root's out of directories other users could write).
pub(super) fn cache_dir(env: &Environment) -> Option<PathBuf> {
    match env.get("ISOSPEC_INITDB_CACHE") {
        Some(v)
            if matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            ) =>
        {
            None
        }
        Some(v) => Some(PathBuf::from(v)),
        None => Some(
            crate::pgdist::default_cache_dir(
                env.get_os("XDG_CACHE_HOME").map(PathBuf::from),
                env.get_os("HOME").map(PathBuf::from),
                nix::unistd::geteuid().is_root(),
            )
            .with_file_name("initdb"),
        ),
    }
}

/// One line of the key for a binary: its path, size and modification
/// time (None when it cannot be read: then nothing is cached).
fn binary_line(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let m = fs::metadata(&path).ok()?;
    Some(format!(
        "{}\t{}\t{}.{}",
        path.display(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

impl Template {
    /// The entry in `cache` for initdb'ing with `initdb` (and `postgres`)
    /// as `superuser`, with isospec's fixed options.
    pub(super) fn new(
        cache: &Path,
        initdb: &Path,
        postgres: &Path,
        superuser: &str,
    ) -> Option<Template> {
        let key = format!(
            "{FORMAT}\n{}\n{}\nsuperuser {superuser}\noptions --no-clean --no-sync -A trust -E UTF8 --locale=C\n",
            binary_line(initdb)?,
            binary_line(postgres)?,
        );
        let digest = Sha256::digest(key.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Some(Template {
            entry: cache.join(name),
            key,
        })
    }

    /// Copies the entry's data directory to `data` (which must not exist)
    /// and gives it to `owner` (uid, gid); writes `log` saying where it
    /// came from.  Ok(false): no entry yet.  An error leaves no `data`.
    pub(super) fn copy_into(
        &self,
        data: &Path,
        owner: Option<(u32, u32)>,
        log: &Path,
    ) -> io::Result<bool> {
        let from = self.entry.join("data");
        // Only an entry whose key matches (not a hash collision, not a
        // half-removed entry) is used.
        match fs::read_to_string(self.entry.join("key")) {
            Ok(k) if k == self.key && from.is_dir() => {}
            _ => return Ok(false),
        }
        let copied = copy_tree(&from, data, owner);
        if let Err(e) = copied {
            let _ = fs::remove_dir_all(data);
            return Err(e);
        }
        let made = fs::read_to_string(self.entry.join("initdb.log")).unwrap_or_default();
        fs::write(
            log,
            format!(
                "isospec: data directory copied from {} instead of running initdb again \
(ISOSPEC_INITDB_CACHE=off runs initdb every time); initdb's output when it made it:\n\n{made}",
                from.display()
            ),
        )?;
        Ok(true)
    }

    /// Stores `data`, just made by initdb (its output in `log`), as the
    /// entry, unless one is there already; removes the entries of
    /// binaries that changed since.  Best effort: the caller ignores an
    /// error.
    pub(super) fn store(&self, data: &Path, log: &Path) -> io::Result<()> {
        if self.entry.join("key").exists() {
            return Ok(());
        }
        let cache = self.entry.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(cache)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = cache.join(format!(".new-{}-{nanos}", std::process::id()));
        let written = (|| {
            fs::create_dir(&tmp)?;
            copy_tree(data, &tmp.join("data"), None)?;
            fs::copy(log, tmp.join("initdb.log"))?;
            fs::write(tmp.join("key"), &self.key)
        })();
        let placed = written.and_then(|()| fs::rename(&tmp, &self.entry));
        if placed.is_err() {
            let _ = fs::remove_dir_all(&tmp);
            // Another process stored the same entry first: fine.
            if self.entry.join("key").exists() {
                return Ok(());
            }
            return placed;
        }
        prune(cache, &self.entry);
        Ok(())
    }
}

/// Removes the entries whose binaries are gone or changed (an upgrade, an
/// uninstalled version), and writers' leftovers older than an hour.
fn prune(cache: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path == keep {
            continue;
        }
        let stale = if e.file_name().to_string_lossy().starts_with(".new-") {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600)
        } else {
            match fs::read_to_string(path.join("key")) {
                // The two binary lines after the format line must still
                // describe the files they name.
                Ok(key) => {
                    key.lines().next() != Some(FORMAT)
                        || key.lines().skip(1).take(2).any(|line| {
                            let file = line.split('\t').next().unwrap_or("");
                            binary_line(Path::new(file)).as_deref() != Some(line)
                        })
                }
                Err(_) => false,
            }
        };
        if stale {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Copies directory `from` to `to` (which must not exist): directories,
/// regular files and their permission bits, nothing else (a data
/// directory initdb just made has no links); everything made is given to
/// `owner`.
fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let chown = |p: &Path| -> io::Result<()> {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
        }
        Ok(())
    };
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(io::Error::other)?;
        let rel = entry.path().strip_prefix(from).map_err(io::Error::other)?;
        let dest = to.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir(&dest)?;
            fs::set_permissions(
                &dest,
                entry.metadata().map_err(io::Error::other)?.permissions(),
            )?;
        } else if kind.is_file() {
            // fs::copy copies the permission bits too.
            fs::copy(entry.path(), &dest)?;
        } else {
            return Err(io::Error::other(format!(
                "{} is neither a file nor a directory",
                entry.path().display()
            )));
        }
        chown(&dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("base/1")).unwrap();
        fs::write(root.join("PG_VERSION"), "15\n").unwrap();
        fs::write(root.join("base/1/1259"), vec![7u8; 8192]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn an_entry_is_stored_once_and_copied_whole_with_its_modes() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fs::write(bin.join("initdb"), "a").unwrap();
        fs::write(bin.join("postgres"), "b").unwrap();
        let cache = dir.path().join("cache");
        let t = Template::new(&cache, &bin.join("initdb"), &bin.join("postgres"), "me").unwrap();
        let log = dir.path().join("initdb.log");
        fs::write(&log, "initdb said this\n").unwrap();
        let to = dir.path().join("copy");
        assert!(!t.copy_into(&to, None, &log).unwrap(), "no entry yet");
        assert!(!to.exists());

        let made = dir.path().join("made");
        tree(&made);
        t.store(&made, &log).unwrap();
        t.store(&made, &log).unwrap();
        let names: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "one entry, no leftovers: {names:?}");

        let out = dir.path().join("out.log");
        assert!(t.copy_into(&to, None, &out).unwrap());
        assert_eq!(fs::read(to.join("base/1/1259")).unwrap(), vec![7u8; 8192]);
        assert_eq!(fs::metadata(&to).unwrap().mode() & 0o777, 0o700);
        let said = fs::read_to_string(&out).unwrap();
        assert!(
            said.contains("copied from") && said.contains("initdb said this"),
            "{said}"
        );

        // Another superuser is another entry; a changed binary makes the
        // old entry stale, and storing the new one removes it.
        let other =
            Template::new(&cache, &bin.join("initdb"), &bin.join("postgres"), "you").unwrap();
        assert_ne!(other.entry, t.entry);
        fs::write(bin.join("initdb"), "upgraded").unwrap();
        let upgraded =
            Template::new(&cache, &bin.join("initdb"), &bin.join("postgres"), "me").unwrap();
        assert_ne!(upgraded.entry, t.entry);
        upgraded.store(&made, &log).unwrap();
        assert!(!t.entry.exists(), "the old binaries' entry is pruned");
        assert!(upgraded.entry.join("data/PG_VERSION").is_file());
    }

    #[test]
    fn a_copy_that_fails_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("initdb"), "a").unwrap();
        let bin = dir.path().join("initdb");
        let t = Template::new(&dir.path().join("cache"), &bin, &bin, "me").unwrap();
        // An entry holding what a copy refuses (a link), stored by hand.
        tree(&t.entry.join("data"));
        std::os::unix::fs::symlink("/nowhere", t.entry.join("data/zz-link")).unwrap();
        fs::write(t.entry.join("key"), &t.key).unwrap();
        let to = dir.path().join("to");
        assert!(t.copy_into(&to, None, &dir.path().join("log")).is_err());
        assert!(!to.exists());
    }
}
