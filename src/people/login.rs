//! Logging in: the password check (the same time and the same answer for an unknown address
//! and a wrong password) and the limits on guessing, per account and per network address.
//! An attempt counts as a failure from the moment it starts until its password matched.

use sqlx::AnyConnection;

use super::{Person, find_by_email, normalise_email, password};
use crate::config::Limits;
use crate::db::{Db, new_id, now_ms, serialise_on};

/// The window in which failures count.
pub const WINDOW_MS: i64 = 15 * 60_000;
/// Failures of one account within the window before it is locked for the rest of it (the
/// default of `limits.login_failures_per_account`).
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
/// Failures from one address within the window (many accounts, one guesser; the default of
/// `limits.login_failures_per_address`).
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

/// Checks email and password, within the limits on guessing.
///
/// Every attempt first takes its slot: in one write transaction, serialised per account and
/// per address, it checks the limits and records itself as a failure. Only then is the
/// password checked (outside the transaction, in turn through `hasher`), and a match turns
/// the record into a success. So however many requests arrive at once, at most the limit's
/// number of guesses per account and per address are ever checked in a window; the others are
/// refused without checking the password, the right one included.
pub async fn authenticate(
    db: &Db,
    hasher: &password::Hasher,
    limits: &Limits,
    email: &str,
    password_given: &str,
    address: &str,
) -> Result<Person, LoginError> {
    let email = normalise_email(email);
    let attempt = new_id();
    let mut tx = db.begin().await?;
    // Account first, then address: one order, so no two attempts wait for each other.
    serialise_on(&mut tx, &format!("login:email:{email}")).await?;
    serialise_on(&mut tx, &format!("login:address:{address}")).await?;
    let now = now_ms();
    if let Some(until_ms) = throttled_until(&mut tx, limits, &email, address, now).await? {
        tx.rollback().await?;
        return Err(LoginError::Throttled { until_ms });
    }
    sqlx::query(
        "INSERT INTO login_attempts (id, email, address, succeeded, at) VALUES ($1, $2, $3, 0, $4)",
    )
    .bind(&attempt)
    .bind(&email)
    .bind(address)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let person = find_by_email(&mut tx, &email).await?;
    let hash: String = match &person {
        Some(p) => {
            sqlx::query_scalar("SELECT password_hash FROM people WHERE id = $1")
                .bind(&p.id)
                .fetch_one(&mut *tx)
                .await?
        }
        None => password::dummy_hash().to_owned(),
    };
    tx.commit().await?;

    // Verified for unknown addresses too, against a dummy hash: the same cost either way.
    let matches = match hasher.verify(password_given, &hash).await {
        Ok(matches) => matches && person.is_some(),
        Err(error) => {
            // Not checked at all (the hashing slots stayed busy): the attempt gives its slot back.
            if let Err(db_error) = forget_attempt(db, &attempt).await {
                tracing::warn!(%db_error, "could not give back a login attempt that was not checked");
            }
            return Err(error.into());
        }
    };
    if matches {
        let mut tx = db.begin().await?;
        sqlx::query("UPDATE login_attempts SET succeeded = 1 WHERE id = $1")
            .bind(&attempt)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    match person {
        Some(person) if matches => Ok(person),
        _ => Err(LoginError::Invalid),
    }
}

async fn forget_attempt(db: &Db, attempt: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM login_attempts WHERE id = $1")
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// When the account or the address may try again, if it is locked now.
async fn throttled_until(
    conn: &mut AnyConnection,
    limits: &Limits,
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
        let max = usize::try_from(max.max(1)).unwrap_or(usize::MAX);
        // Locked until the oldest of the last `max` failures leaves the window.
        failures.get(max - 1).map(|at| at + WINDOW_MS)
    };
    Ok(
        match (
            until(&account_failures, limits.login_failures_per_account),
            until(&address_failures, limits.login_failures_per_address),
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
