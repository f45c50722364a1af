//! The database: pool, migrations, and every difference between SQLite and PostgreSQL.
//!
//! Everything above this module writes portable SQL (TEXT ids, BIGINT money/times/flags,
//! `$1` placeholders, `CAST(... AS BIGINT)` around aggregates) through the `Any` driver.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use rust_embed::RustEmbed;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, SqlSafeStr, Transaction};

pub type Tx = Transaction<'static, Any>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// The backend an `Any` connection talks to (the drivers name themselves as [`Self::name`]).
    pub fn of_connection(conn: &sqlx::AnyConnection) -> Option<Backend> {
        [Backend::Sqlite, Backend::Postgres]
            .into_iter()
            .find(|backend| backend.name() == conn.backend_name())
    }

    /// SQL that is true where `column` does not hold a whole number. SQLite stores whatever a
    /// value is (an integer sum that overflowed becomes a float, a hand edit may leave text), so
    /// it asks `typeof`; PostgreSQL's BIGINT holds nothing else, and the value is still read as
    /// text and checked, which also catches a column whose type was changed by hand.
    pub fn not_an_integer_sql(self, column: &str) -> String {
        match self {
            Backend::Sqlite => format!("typeof({column}) <> 'integer'"),
            Backend::Postgres => format!("CAST({column} AS TEXT) !~ '^-?[0-9]+$'"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL (use sqlite://path or postgres://…)")]
    UnsupportedUrl,
    #[error("cannot create the folder for the SQLite file {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("migration file {0} is not named like 0001_what_it_does.sql")]
    MigrationName(String),
}

#[derive(RustEmbed)]
#[folder = "migrations/"]
struct Migrations;

/// The pool and the backend it talks to. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

static DRIVERS: Once = Once::new();

/// Registers the SQLite and PostgreSQL drivers with `Any`, once per process.
pub fn install_drivers() {
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

impl Db {
    /// Connects; a SQLite file and its folder are created on first use, in WAL mode.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        Self::connect_with(url, 10).await
    }

    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Db, DbError> {
        install_drivers();
        let backend = Backend::of_url(url).ok_or(DbError::UnsupportedUrl)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Foreign keys are off by default in SQLite; writers wait rather than fail.
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that may write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers queue instead of failing with "database is locked"
    /// when the first one upgrades from reading to writing.
    ///
    /// A writer that still finds the lock taken after `busy_timeout` tries again, up to
    /// [`BEGIN_ATTEMPTS`] times, so a burst of writers queues instead of failing.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let mut attempt = 1;
                loop {
                    match self.pool.begin_with("BEGIN IMMEDIATE").await {
                        Err(error) if is_busy(&error) && attempt < BEGIN_ATTEMPTS => {
                            tracing::warn!(attempt, "SQLite write lock still taken; waiting again");
                            attempt += 1;
                        }
                        other => return other,
                    }
                }
            }
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Runs the migrations in `migrations/` that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = migrator()?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The migrations compiled into the binary, so it runs from any folder.
fn migrator() -> Result<Migrator, DbError> {
    let mut files: Vec<_> = Migrations::iter().filter(|f| f.ends_with(".sql")).collect();
    files.sort();
    let mut migrations = Vec::with_capacity(files.len());
    for name in files {
        let (version, description) = name
            .strip_suffix(".sql")
            .and_then(|stem| stem.split_once('_'))
            .and_then(|(v, d)| Some((v.parse::<i64>().ok()?, d.replace('_', " "))))
            .ok_or_else(|| DbError::MigrationName(name.to_string()))?;
        let sql = Migrations::get(&name)
            .map(|file| String::from_utf8_lossy(&file.data).into_owned())
            .ok_or_else(|| DbError::MigrationName(name.to_string()))?;
        migrations.push(Migration::new(
            version,
            Cow::Owned(description),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(sql).into_sql_str(),
            false,
        ));
    }
    Ok(Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    })
}

/// Makes sure the SQLite file's folder exists and the file is created when missing.
fn prepare_sqlite_url(url: &str) -> Result<String, DbError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let folder = Path::new(path)
        .parent()
        .filter(|p| path != ":memory:" && !p.as_os_str().is_empty());
    if let Some(parent) = folder {
        std::fs::create_dir_all(parent).map_err(|source| DbError::Folder {
            path: parent.display().to_string(),
            source,
        })?;
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{}", params.join("&")))
}

/// How often [`Db::begin`] waits `busy_timeout` for SQLite's write lock before giving up.
pub const BEGIN_ATTEMPTS: u32 = 3;

/// Whether an error says the database was too busy to take the write (SQLite's "database is
/// locked" after `busy_timeout`; PostgreSQL's lock timeouts): the request may be retried.
pub fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            let code = e.code();
            let code = code.as_deref().unwrap_or("");
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            // PostgreSQL: lock_not_available (55P03).
            code == "5"
                || code == "6"
                || code == "55P03"
                || code
                    .parse::<i64>()
                    .is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6)
                || e.message().contains("database is locked")
        }
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

/// Serialises the write transactions that name the same `key` until they commit, on both
/// backends: on SQLite every write transaction holds the one write lock already
/// (`BEGIN IMMEDIATE`); on PostgreSQL a transaction-scoped advisory lock on the key's hash.
/// For a check followed by an insert ("fewer than five attempts? then record one") that must
/// not let parallel requests all pass the check.
pub async fn serialise_on(conn: &mut sqlx::AnyConnection, key: &str) -> Result<(), sqlx::Error> {
    use sha2::Digest;
    if conn.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let id = i64::from_be_bytes(first);
    sqlx::query("SELECT CAST(1 AS BIGINT) FROM pg_advisory_xact_lock($1)")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

/// Whether an error is a unique-key violation (the same on both backends).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// `$first, $first+1, …` for `count` values: portable `IN (…)` lists.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds since the Unix epoch: the one time format in the database.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A new id: a UUIDv7, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_gain_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/x.db");
        let url = prepare_sqlite_url(&format!("sqlite://{}", file.display())).unwrap();
        assert!(url.ends_with("?mode=rwc"), "{url}");
        assert!(dir.path().join("sub").is_dir());
    }

    #[test]
    fn placeholders_count_from_the_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
    }

    #[test]
    fn migrations_are_named_and_ordered() {
        let m = migrator().unwrap();
        let versions: Vec<i64> = m.migrations.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort();
        assert_eq!(versions, sorted);
        assert!(!versions.is_empty());
    }
}
