//! PostgreSQL: the shared database of a grid with several masters. One
//! pool per master; the schema in numbered migrations applied at start;
//! the lease that makes one master the leader, and the fence every write
//! of the leader checks.

pub mod fence;
pub mod identity;
pub mod lease;
pub mod lease_metrics;

pub use fence::Fence;

use crate::error::{MasterError, Result};

/// A pool of connections to the grid's database.
pub type Pool = deadpool_postgres::Pool;

/// Connections one master keeps open at most: the record's writer, its
/// readers, the lease, and the token registry.
pub const POOL_SIZE: usize = 16;

/// The schema, in the order it is applied: each migration runs once per
/// database, in one transaction, recorded in `grid_migrations`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_record", include_str!("migrations/0001_record.sql")),
    ("0002_lease", include_str!("migrations/0002_lease.sql")),
    ("0003_identity", include_str!("migrations/0003_identity.sql")),
    ("0004_keyless_jobs", include_str!("migrations/0004_keyless_jobs.sql")),
];

/// Any key of PostgreSQL's advisory locks, held while migrations run so
/// that masters starting together apply each one once.
const MIGRATION_LOCK: i64 = 0x0067_7269_646d_6967; // "gridmig"

/// `url` with its password hidden, for messages and logs.
pub fn shown(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let user = config.get_user().unwrap_or("");
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
            let db = config.get_dbname().unwrap_or("");
            format!("postgres://{user}@{}:{}/{db}", hosts.join(","), ports.join(","))
        }
        Err(_) => "the --database URL".to_owned(),
    }
}

/// A pool for the database at `url` (`postgres://user:password@host:port/db`),
/// checked by one connection.
pub async fn connect(url: &str) -> Result<Pool> {
    connect_as(url, "grid-master").await
}

/// A pool like [`connect`]'s, whose connections show as `application` in
/// `pg_stat_activity` (a master names itself there).
pub async fn connect_as(url: &str, application: &str) -> Result<Pool> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| MasterError::InvalidArgument(format!("--database `{}`: {e}", shown(url))))?;
    if config.get_application_name().is_none() {
        config.application_name(application);
    }
    // A database out of reach fails a connection within seconds, so that
    // the lease's timers, not the kernel's, decide.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(3));
    }
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(POOL_SIZE)
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| MasterError::Db(format!("database pool: {e}")))?;
    drop(pool.get().await.map_err(|e| unreachable_db(url, e))?);
    Ok(pool)
}

fn unreachable_db(url: &str, e: impl std::fmt::Display) -> MasterError {
    MasterError::Db(format!("cannot reach the database `{}`: {e}", shown(url)))
}

/// A database error as the master reports it.
pub fn db_err(e: impl std::fmt::Display) -> MasterError {
    MasterError::Db(e.to_string())
}

/// Applies the migrations the database has not seen yet, in order.
pub async fn migrate(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS grid_migrations (
            name TEXT PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(db_err)?;
    let applied: Vec<String> =
        tx.query("SELECT name FROM grid_migrations", &[]).await.map_err(db_err)?.iter().map(|r| r.get(0)).collect();
    for (name, sql) in MIGRATIONS {
        if applied.iter().any(|a| a == name) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| MasterError::Db(format!("migration {name}: {e}")))?;
        tx.execute("INSERT INTO grid_migrations (name) VALUES ($1)", &[name]).await.map_err(db_err)?;
        tracing::info!(migration = name, "database migrated");
    }
    tx.commit().await.map_err(db_err)
}
