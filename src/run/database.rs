//! The test databases on the server: created from template0 with
//! pg_regress's settings and marked as isospec's, dropped only when isospec
//! made them, one per -j worker slot; and the few facts a run asks the
//! server (its version, max_prepared_transactions).

use super::{DatabasePlan, Events, RunConfig, RunError};
use crate::executor::quote_literal;
use crate::outcome::{Phase, RunEvent};
use crate::pgwire::{Conn, ConnParams, PgResult};

pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

const DB_MARKER: &str = "created by isospec";

/// How long a database just created (with its extensions, their
/// connections closed) is left alone before the first spec: pg_regress
/// spends about that much starting psql and then isolationtester, and a
/// spec started at once loses races inside the server more often.
/// Measured with pg_ivm's `create_insert2` through the drop-in, 400 runs
/// each alternating with pg_isolation_regress on one server: lost 12 times
/// with no pause, 9 with 10 ms, 1 and 2 with 30 ms; pg_isolation_regress
/// 9 and 10.  Neither pg_stat_activity nor the machine's CPU counters
/// showed what the server does meanwhile.
const SETTLE_AFTER_CREATE: std::time::Duration = std::time::Duration::from_millis(30);

/// pg_regress's settings for a test database it created, and the marker
/// that lets a later run drop it (`q`: the quoted database name).
pub(crate) fn database_settings(q: &str) -> String {
    format!(
        "ALTER DATABASE {q} SET lc_messages TO 'C';\
ALTER DATABASE {q} SET lc_monetary TO 'C';\
ALTER DATABASE {q} SET lc_numeric TO 'C';\
ALTER DATABASE {q} SET lc_time TO 'C';\
ALTER DATABASE {q} SET bytea_output TO 'hex';\
ALTER DATABASE {q} SET timezone_abbreviations TO 'Default';\
COMMENT ON DATABASE {q} IS '{DB_MARKER}'"
    )
}

/// A connection for set-up work (`application_name` isospec), made like
/// every other connection from the run's one `ConnParams`.
pub(super) struct Admin(Conn);

pub(super) async fn admin_client(params: &ConnParams, dbname: &str) -> Result<Admin, String> {
    let mut p = params.clone();
    p.dbname = dbname.to_string();
    p.application_name = Some("isospec".into());
    Conn::connect(&p)
        .await
        .map(Admin)
        .map_err(|e| format!("connecting to database \"{dbname}\": {e}"))
}

impl Admin {
    /// Runs `sql` (one or more statements); the server's error text if one failed.
    pub(super) async fn batch(&mut self, sql: &str) -> Result<(), String> {
        match self.0.exec(sql).await {
            Ok(Some(PgResult::Error(_) | PgResult::ClientError(_))) => {
                Err(self.0.error_message().trim_end().to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Says goodbye and waits until the backend has gone (at most 10 s):
    /// a spec that starts while the backend that created its database is
    /// still exiting races that exit for the CPUs, and loses the server's
    /// own races (a woken waiter, a lock released) more often than under
    /// isolationtester, which starts a process first.
    pub(super) async fn close(self) {
        self.0
            .close_and_wait(std::time::Duration::from_secs(10))
            .await;
    }

    /// The first column of the first row of `sql`'s result, if any row.
    pub(super) async fn value(&mut self, sql: &str) -> Result<Option<String>, String> {
        match self.0.exec(sql).await {
            Ok(Some(PgResult::Tuples(t))) => {
                Ok(t.rows.first().and_then(|r| r.first().cloned().flatten()))
            }
            Ok(Some(PgResult::Error(_) | PgResult::ClientError(_))) => {
                Err(self.0.error_message().trim_end().to_string())
            }
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Drops (if isospec made it, or always with `drop_existing`) and creates
/// the test database like pg_regress, with the setup's other databases and
/// roles; installs the extensions.  Against a temp instance nothing needs
/// dropping.  `events` is None for -j worker databases (not shown).
pub async fn prepare_database(
    cfg: &DatabasePlan,
    params: &ConnParams,
    db: &str,
    events: Option<&Events>,
) -> Result<(), RunError> {
    let sh = Shown {
        events,
        server: params.describe_server(),
    };
    let phase = |p: Phase| sh.phase(p);
    let dberr = |m: String| sh.err(m);
    let first_only = events.is_some();
    let mut dbs = vec![db.to_string()];
    if first_only {
        dbs.extend(cfg.setup.more_databases.iter().cloned());
    }
    if !cfg.use_existing {
        let mut admin = admin_client(params, "postgres").await.map_err(&dberr)?;
        let fresh_server = cfg.fresh_server;
        // A fresh temp instance has nothing to drop but what an earlier
        // pass of this run made.
        for d in &dbs {
            drop_old_database(cfg.drop_existing && !fresh_server, &mut admin, d, &sh).await?;
        }
        if !fresh_server && first_only {
            for r in &cfg.setup.roles {
                phase(Phase::DroppingRole(r.clone()));
                sh.exec(&mut admin, "SET client_min_messages = warning", &["SET"])
                    .await?;
                let sql = format!("DROP ROLE IF EXISTS {}", quote_ident(r));
                sh.exec(&mut admin, &sql, &["DROP ROLE"]).await?;
            }
        }
        for d in &dbs {
            phase(Phase::CreatingDatabase(d.clone()));
            let q = quote_ident(d);
            let mut create = format!("CREATE DATABASE {q} TEMPLATE=template0");
            if let Some(enc) = &cfg.setup.encoding {
                create.push_str(&format!(" ENCODING={}", quote_literal(enc)));
            }
            if cfg.setup.c_locale {
                create.push_str(" LC_COLLATE='C' LC_CTYPE='C'");
            }
            sh.exec(&mut admin, &create, &["CREATE DATABASE"]).await?;
            sh.exec(&mut admin, &database_settings(&q), &["ALTER DATABASE"; 6])
                .await?;
            if !cfg.load_extensions.is_empty() || !cfg.setup.languages.is_empty() {
                let mut c = admin_client(params, d).await.map_err(&dberr)?;
                for lang in &cfg.setup.languages {
                    phase(Phase::Installing(lang.clone()));
                    let sql = format!("CREATE OR REPLACE LANGUAGE {}", quote_ident(lang));
                    sh.exec(&mut c, &sql, &["CREATE LANGUAGE"]).await?;
                }
                install_extensions(cfg, &mut c, &sh).await?;
                c.close().await;
            }
        }
        if first_only {
            for r in &cfg.setup.roles {
                phase(Phase::CreatingRole(r.clone()));
                let mut sql = format!("CREATE ROLE {} WITH LOGIN", quote_ident(r));
                for d in &dbs {
                    sql.push_str(&format!(
                        "; GRANT ALL ON DATABASE {} TO {}",
                        quote_ident(d),
                        quote_ident(r)
                    ));
                }
                sh.exec(&mut admin, &sql, &["CREATE ROLE"]).await?;
                for _ in &dbs {
                    phase(Phase::Command("GRANT".into()));
                }
            }
        }
        admin.close().await;
        // Created just now: let the server settle before the first spec.
        tokio::time::sleep(SETTLE_AFTER_CREATE).await;
    } else if !cfg.load_extensions.is_empty() {
        let mut c = admin_client(params, db).await.map_err(&dberr)?;
        install_extensions(cfg, &mut c, &sh).await?;
        c.close().await;
    }
    Ok(())
}

/// Shows the setup's phases (when `events` is given) and names the server
/// in errors.
struct Shown<'a> {
    events: Option<&'a Events>,
    server: String,
}

impl Shown<'_> {
    fn phase(&self, p: Phase) {
        if let Some(e) = self.events {
            e.emit(RunEvent::Phase(p));
        }
    }

    fn err(&self, message: String) -> RunError {
        RunError::Database {
            server: self.server.clone(),
            message,
        }
    }

    /// Runs `sql`, then shows `tags` as psql would print them.
    async fn exec(&self, client: &mut Admin, sql: &str, tags: &[&str]) -> Result<(), RunError> {
        client.batch(sql).await.map_err(|e| self.err(e))?;
        for t in tags {
            self.phase(Phase::Command(t.to_string()));
        }
        Ok(())
    }
}

/// `CREATE EXTENSION IF NOT EXISTS` for each `--load-extension`.
async fn install_extensions(
    cfg: &DatabasePlan,
    client: &mut Admin,
    sh: &Shown<'_>,
) -> Result<(), RunError> {
    for ext in &cfg.load_extensions {
        sh.phase(Phase::Installing(ext.clone()));
        let sql = format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(ext));
        sh.exec(client, &sql, &["CREATE EXTENSION"]).await?;
    }
    Ok(())
}

/// Drops database `db` of an earlier run: `always` (pg_regress's way), else
/// only when isospec created it.
async fn drop_old_database(
    always: bool,
    admin: &mut Admin,
    db: &str,
    sh: &Shown<'_>,
) -> Result<(), RunError> {
    let phase = |p: Phase| sh.phase(p);
    let dberr = |m: String| sh.err(m);
    if always {
        phase(Phase::DroppingDatabase(db.to_string()));
        // Two statements, as psql's two -c: DROP DATABASE cannot run in
        // the implicit transaction of a multi-statement query.
        sh.exec(admin, "SET client_min_messages = warning", &["SET"])
            .await?;
        let sql = format!("DROP DATABASE IF EXISTS {}", quote_ident(db));
        sh.exec(admin, &sql, &["DROP DATABASE"]).await?;
        return Ok(());
    }
    let exists = admin
        .value(&format!(
            "SELECT coalesce(pg_catalog.shobj_description(oid, 'pg_database'), '') FROM pg_catalog.pg_database WHERE datname = {}",
            quote_literal(db)
        ))
        .await
        .map_err(dberr)?;
    if let Some(comment) = exists {
        if comment != DB_MARKER {
            return Err(dberr(format!(
                "database \"{db}\" exists and was not created by isospec; refusing to drop it \
(pass --drop-existing to drop it anyway, --use-existing to run in it, or --dbname to choose another)"
            )));
        }
        phase(Phase::DroppingDatabase(db.to_string()));
        admin
            .batch(&format!("DROP DATABASE {}", quote_ident(db)))
            .await
            .map_err(dberr)?;
    }
    Ok(())
}

/// Drops database `db` once the backends that used it have gone (those of
/// connections closed just now exit a moment later), waiting at most
/// `limit`; the server's error if the drop failed.
pub async fn drop_when_unused(
    params: &ConnParams,
    db: &str,
    limit: std::time::Duration,
) -> Result<(), String> {
    let mut admin = admin_client(params, "postgres").await?;
    let busy = format!(
        "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = {} AND pid <> pg_catalog.pg_backend_pid()",
        quote_literal(db)
    );
    let deadline = tokio::time::Instant::now() + limit;
    while admin.value(&busy).await?.as_deref().unwrap_or("0") != "0"
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let r = admin
        .batch(&format!("DROP DATABASE IF EXISTS {}", quote_ident(db)))
        .await
        .map_err(|e| format!("dropping database \"{db}\": {e}"));
    admin.close().await;
    r
}

pub(super) async fn drop_database(params: &ConnParams, db: &str) {
    if let Ok(mut admin) = admin_client(params, "postgres").await {
        let _ = admin
            .batch(&format!("DROP DATABASE IF EXISTS {}", quote_ident(db)))
            .await;
        admin.close().await;
    }
}

/// The server's version number (e.g. 150018), asked in database `db`.
pub(super) async fn server_version_num(params: &ConnParams, db: &str) -> Result<u32, RunError> {
    let err = |message: String| RunError::Database {
        server: params.describe_server(),
        message,
    };
    let mut c = admin_client(params, db).await.map_err(err)?;
    let limit = params
        .connect_timeout
        .unwrap_or(crate::pgwire::settings::DEFAULT_CONNECT_TIMEOUT);
    let v = tokio::time::timeout(
        limit,
        c.value("SELECT current_setting('server_version_num')"),
    )
    .await
    .map_err(|_| err(format!("no answer to a query within {} s", limit.as_secs())))?
    .map_err(err)?
    .unwrap_or_default();
    c.close().await;
    v.parse()
        .map_err(|_| err(format!("unexpected server_version_num \"{v}\"")))
}

/// The server's max_prepared_transactions, if it can be read.
pub(super) async fn max_prepared_transactions(params: &ConnParams) -> Option<usize> {
    let mut admin = admin_client(params, "postgres").await.ok()?;
    let v = admin
        .value("SELECT current_setting('max_prepared_transactions')")
        .await;
    admin.close().await;
    v.ok()??.parse().ok()
}

/// The database of worker slot `index` under -j (slot 0 is --dbname).
pub(super) fn spec_database(cfg: &RunConfig, index: usize) -> String {
    lane_database(&cfg.dbname, index)
}

/// The one rule that names the database of lane `index` (0-based) for
/// `dbname`, in `run -j` and `explore -j` alike: lane 0 is `dbname`, lane K
/// is `dbname_K+1` with `dbname` shortened so that the whole fits the 63
/// bytes PostgreSQL keeps of a name (the server would cut the suffix off,
/// and two lanes would share a database).
pub fn lane_database(dbname: &str, index: usize) -> String {
    if index == 0 {
        return dbname.to_string();
    }
    let suffix = format!("_{}", index + 1);
    let mut base = dbname.to_string();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    base + &suffix
}
