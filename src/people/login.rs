//! Logging in: the password check (the same time and the same answer for an unknown address
//! and a wrong password) and the limits on guessing, per account and per network address.

use sqlx::AnyConnection;

use super::{Person, find_by_email, normalise_email, password};
use crate::db::{Db, new_id, now_ms};

/// The window in which failures count.
pub const WINDOW_MS: i64 = 15 * 60_000;
/// Failures of one account within the window before it is locked for the rest of it.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
/// Failures from one address within the window (many accounts, one guesser).
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("unknown email or wrong password")]
    Invalid,
    #[error("too many failed attempts; try again after {until_ms}")]
    Throttled { until_ms: i64 },
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Checks email and password. Every attempt is recorded; after too many failures the account
/// (or the address) is refused until the window has passed, without checking the password.
pub async fn authenticate(
    db: &Db,
    email: &str,
    password_given: &str,
    address: &str,
) -> Result<Person, LoginError> {
    let email = normalise_email(email);
    let mut conn = db.pool().acquire().await?;
    let now = now_ms();
    if let Some(until_ms) = throttled_until(&mut conn, &email, address, now).await? {
        return Err(LoginError::Throttled { until_ms });
    }
    let person = find_by_email(&mut conn, &email).await?;
    let hash: String = match &person {
        Some(p) => {
            sqlx::query_scalar("SELECT password_hash FROM people WHERE id = $1")
                .bind(&p.id)
                .fetch_one(&mut *conn)
                .await?
        }
        None => password::dummy_hash().to_owned(),
    };
    drop(conn);
    // Verified for unknown addresses too, against a dummy hash: the same cost either way.
    let matches = password::verify(password_given, &hash).await? && person.is_some();

    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO login_attempts (id, email, address, succeeded, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id())
    .bind(&email)
    .bind(address)
    .bind(i64::from(matches))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    match person {
        Some(person) if matches => Ok(person),
        _ => Err(LoginError::Invalid),
    }
}

/// When the account or the address may try again, if it is locked now.
async fn throttled_until(
    conn: &mut AnyConnection,
    email: &str,
    address: &str,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let since = now - WINDOW_MS;
    // Failures of the account since its last success within the window.
    let last_success: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(at), 0) AS BIGINT) FROM login_attempts
         WHERE email = $1 AND succeeded = 1",
    )
    .bind(email)
    .fetch_one(&mut *conn)
    .await?;
    let account_failures: Vec<i64> = sqlx::query_scalar(
        "SELECT at FROM login_attempts
         WHERE email = $1 AND succeeded = 0 AND at > $2 ORDER BY at DESC",
    )
    .bind(email)
    .bind(since.max(last_success))
    .fetch_all(&mut *conn)
    .await?;
    let address_failures: Vec<i64> = sqlx::query_scalar(
        "SELECT at FROM login_attempts
         WHERE address = $1 AND succeeded = 0 AND at > $2 ORDER BY at DESC",
    )
    .bind(address)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let until = |failures: &[i64], max: i64| -> Option<i64> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        // Locked until the oldest of the last `max` failures leaves the window.
        (failures.len() >= max).then(|| failures[max - 1] + WINDOW_MS)
    };
    Ok(
        match (
            until(&account_failures, MAX_FAILURES_PER_ACCOUNT),
            until(&address_failures, MAX_FAILURES_PER_ADDRESS),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
    )
}

/// Forgets attempts older than the window.
pub async fn purge_old_attempts(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM login_attempts WHERE at < $1")
        .bind(now_ms() - 2 * WINDOW_MS)
        .execute(&mut *conn)
        .await?;
    Ok(deleted.rows_affected())
}
