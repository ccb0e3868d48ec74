//! A cache entry's manifest: every file's size and SHA-256 and every
//! link, written last into a fetched tree, and checked on every use, so a
//! damaged or partial entry is never taken for whole.

use super::{is_executable, Package};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// The file written last into an entry: what a whole entry holds.
#[derive(Serialize, Deserialize)]
struct Manifest {
    package: Package,
    bindir: String,
    files: Vec<ManifestFile>,
    links: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    size: u64,
    sha256: String,
}

pub(super) const MANIFEST: &str = "isospec-manifest.json";

fn sha256_file(p: &Path) -> io::Result<(u64, String)> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, format!("{:x}", h.finalize())))
}

pub(super) fn write_manifest(tree: &Path, package: &Package) -> Result<(), String> {
    let mut files = Vec::new();
    let mut links = Vec::new();
    for e in walkdir::WalkDir::new(tree).sort_by_file_name() {
        let e = e.map_err(|e| e.to_string())?;
        let rel = e
            .path()
            .strip_prefix(tree)
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let ft = e
            .path()
            .symlink_metadata()
            .map_err(|e| e.to_string())?
            .file_type();
        if ft.is_symlink() {
            let to = fs::read_link(e.path()).map_err(|e| e.to_string())?;
            links.push((rel, to.to_string_lossy().into_owned()));
        } else if ft.is_file() {
            let (size, sha256) =
                sha256_file(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
            files.push(ManifestFile {
                path: rel,
                size,
                sha256,
            });
        }
    }
    let m = Manifest {
        package: package.clone(),
        bindir: package.bindir().to_string(),
        files,
        links,
    };
    let text = serde_json::to_string(&m).map_err(|e| e.to_string())?;
    fs::write(tree.join(MANIFEST), text).map_err(|e| format!("could not write the manifest: {e}"))
}

/// Whether `entry` is whole: its manifest names this package, and every
/// file and link it lists is there as listed.  Returns the files checked,
/// or why not.
pub(super) fn verify(entry: &Path, package: &Package) -> Result<usize, String> {
    let text = fs::read_to_string(entry.join(MANIFEST))
        .map_err(|_| "no manifest (an interrupted fetch?)".to_string())?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("the manifest does not parse: {e}"))?;
    if m.package.registry != package.registry || m.package.version != package.version {
        return Err(format!("the manifest is for the {}", m.package));
    }
    for f in &m.files {
        let p = entry.join(&f.path);
        match sha256_file(&p) {
            Err(e) => return Err(format!("{}: {e}", f.path)),
            Ok((size, _)) if size != f.size => {
                return Err(format!("{} has {size} bytes, not {}", f.path, f.size))
            }
            Ok((_, sum)) if sum != f.sha256 => {
                return Err(format!("{} does not have its SHA-256", f.path))
            }
            Ok(_) => {}
        }
    }
    for (link, to) in &m.links {
        match fs::read_link(entry.join(link)) {
            Ok(t) if t == Path::new(to) => {}
            _ => return Err(format!("the link {link} is not there")),
        }
    }
    if !is_executable(&entry.join(&m.bindir).join("initdb")) {
        return Err("no initdb".to_string());
    }
    Ok(m.files.len())
}
