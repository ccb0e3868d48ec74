//! The test databases on the server: created from template0 with
//! pg_regress's settings and marked as isospec's, dropped only when isospec
//! made them, one per -j worker slot; and the few facts a run asks the
//! server (its version, max_prepared_transactions).

use super::{Events, RunConfig, RunError};
use crate::outcome::RunEvent;
use crate::pgwire::{ConnParams, Host};

pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

const DB_MARKER: &str = "created by isospec";

pub(super) async fn admin_client(
    params: &ConnParams,
    dbname: &str,
) -> Result<tokio_postgres::Client, String> {
    let mut cfg = tokio_postgres::Config::new();
    match &params.host {
        Host::Tcp(h) => cfg.host(h),
        Host::Unix(p) => cfg.host_path(p),
    };
    cfg.port(params.port)
        .user(&params.user)
        .dbname(dbname)
        .application_name("isospec");
    if let Some(pw) = &params.password {
        cfg.password(pw);
    }
    if let Some(t) = params.connect_timeout {
        cfg.connect_timeout(t);
    }
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| describe_pg_error(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

pub(super) fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}:  {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// Drops (if isospec made it) and creates the test database like pg_regress.
pub(super) async fn prepare_database(
    cfg: &RunConfig,
    params: &ConnParams,
    db: &str,
    events: Option<&Events>,
) -> Result<(), RunError> {
    let banner = |text: String| {
        if let Some(e) = events {
            e.emit(RunEvent::Banner(text));
        }
    };
    let server = params.describe();
    let dberr = |message: String| RunError::Database {
        server: server.clone(),
        message,
    };
    let admin = admin_client(params, "postgres").await.map_err(&dberr)?;
    if !cfg.use_existing {
        let row = admin
            .query_opt(
                "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database WHERE datname = $1",
                &[&db],
            )
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
        if let Some(row) = row {
            let comment: Option<String> = row.get(0);
            if comment.as_deref() != Some(DB_MARKER) && !cfg.drop_existing {
                return Err(dberr(format!(
                    "database \"{db}\" exists and was not created by isospec; refusing to drop it \
(pass --drop-existing to drop it anyway, --use-existing to run in it, or --dbname to choose another)"
                )));
            }
            banner(format!("dropping database \"{db}\""));
            admin
                .batch_execute(&format!("DROP DATABASE {}", quote_ident(db)))
                .await
                .map_err(|e| dberr(describe_pg_error(&e)))?;
        }
        banner(format!("creating database \"{db}\""));
        let q = quote_ident(db);
        admin
            .batch_execute(&format!("CREATE DATABASE {q} TEMPLATE=template0"))
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {q} SET lc_messages TO 'C';\
ALTER DATABASE {q} SET lc_monetary TO 'C';\
ALTER DATABASE {q} SET lc_numeric TO 'C';\
ALTER DATABASE {q} SET lc_time TO 'C';\
ALTER DATABASE {q} SET bytea_output TO 'hex';\
ALTER DATABASE {q} SET timezone_abbreviations TO 'Default';\
COMMENT ON DATABASE {q} IS '{DB_MARKER}'"
            ))
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
    }
    if !cfg.load_extensions.is_empty() {
        let c = admin_client(params, db).await.map_err(&dberr)?;
        for ext in &cfg.load_extensions {
            banner(format!("installing {ext}"));
            c.batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS {}",
                quote_ident(ext)
            ))
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
        }
    }
    Ok(())
}

pub(super) async fn drop_database(params: &ConnParams, db: &str) {
    if let Ok(admin) = admin_client(params, "postgres").await {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(db)))
            .await;
    }
}

/// The server's version number (e.g. 150018), asked in database `db`.
pub(super) async fn server_version_num(params: &ConnParams, db: &str) -> Result<u32, RunError> {
    let err = |message: String| RunError::Database {
        server: params.describe(),
        message,
    };
    let c = admin_client(params, db).await.map_err(err)?;
    let row = c
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .map_err(|e| err(describe_pg_error(&e)))?;
    let v: String = row.get(0);
    v.parse()
        .map_err(|_| err(format!("unexpected server_version_num \"{v}\"")))
}

/// The server's max_prepared_transactions, if it can be read.
pub(super) async fn max_prepared_transactions(params: &ConnParams) -> Option<usize> {
    let admin = admin_client(params, "postgres").await.ok()?;
    let row = admin
        .query_one("SELECT current_setting('max_prepared_transactions')", &[])
        .await
        .ok()?;
    row.get::<_, String>(0).parse().ok()
}

/// The database of worker slot `index` under -j (slot 0 is --dbname).
pub(super) fn spec_database(cfg: &RunConfig, index: usize) -> String {
    if index == 0 {
        return cfg.dbname.clone();
    }
    let suffix = format!("_{}", index + 1);
    let mut base = cfg.dbname.clone();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    base + &suffix
}
