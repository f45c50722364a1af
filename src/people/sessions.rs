//! Sessions in the database. The cookie carries a random 256-bit token; the table keeps only
//! its SHA-256, the session's CSRF token, and which organisation the person acts for.

use sqlx::{AnyConnection, Row};

use super::{hash_token, new_token};
use crate::db::now_ms;

/// However active, a session ends after 30 days.
pub const ABSOLUTE_MS: i64 = 30 * 24 * 3_600_000;
/// `last_seen_at` is written at most this often, not on every request.
const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Clone, Debug)]
pub struct Session {
    pub token_hash: String,
    pub person_id: Option<String>,
    pub csrf_token: String,
    pub acting_organisation_id: Option<String>,
    pub last_seen_at: i64,
}

/// A new session; returns the cookie's token and the session.
pub async fn start(
    conn: &mut AnyConnection,
    person_id: Option<&str>,
) -> Result<(String, Session), sqlx::Error> {
    let token = new_token();
    let session = Session {
        token_hash: hash_token(&token),
        person_id: person_id.map(str::to_owned),
        csrf_token: new_token(),
        acting_organisation_id: None,
        last_seen_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO sessions (token_hash, person_id, csrf_token, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(&session.token_hash)
    .bind(person_id)
    .bind(&session.csrf_token)
    .bind(session.last_seen_at)
    .bind(session.last_seen_at + ABSOLUTE_MS)
    .execute(&mut *conn)
    .await?;
    Ok((token, session))
}

/// The live session for a cookie's token, or `None` (unknown, idle too long, or past its end;
/// such a session is deleted). Records activity at most once a minute.
pub async fn resume(
    conn: &mut AnyConnection,
    token: &str,
    idle_ms: i64,
) -> Result<Option<Session>, sqlx::Error> {
    let token_hash = hash_token(token);
    let now = now_ms();
    let Some(row) = sqlx::query(
        "SELECT person_id, csrf_token, acting_organisation_id, last_seen_at, expires_at
         FROM sessions WHERE token_hash = $1",
    )
    .bind(&token_hash)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let last_seen_at: i64 = row.get("last_seen_at");
    let expires_at: i64 = row.get("expires_at");
    if now - last_seen_at > idle_ms || now >= expires_at {
        end(conn, &token_hash).await?;
        return Ok(None);
    }
    if now - last_seen_at > TOUCH_EVERY_MS {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(&token_hash)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some(Session {
        token_hash,
        person_id: row.get("person_id"),
        csrf_token: row.get("csrf_token"),
        acting_organisation_id: row.get("acting_organisation_id"),
        last_seen_at: now,
    }))
}

pub async fn end(conn: &mut AnyConnection, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends every session of a person, but the one named (after a password change).
pub async fn end_all_of(
    conn: &mut AnyConnection,
    person_id: &str,
    except_token_hash: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE person_id = $1 AND token_hash <> $2")
        .bind(person_id)
        .bind(except_token_hash.unwrap_or(""))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Logs a person in: the visitor's session (if any) ends and a new one with a new token and a
/// new CSRF token starts, so a token planted before login is worth nothing after it.
pub async fn renew_for(
    conn: &mut AnyConnection,
    old_token_hash: Option<&str>,
    person_id: &str,
) -> Result<(String, Session), sqlx::Error> {
    if let Some(old) = old_token_hash {
        end(conn, old).await?;
    }
    start(conn, Some(person_id)).await
}

pub async fn set_acting_organisation(
    conn: &mut AnyConnection,
    token_hash: &str,
    organisation_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET acting_organisation_id = $1 WHERE token_hash = $2")
        .bind(organisation_id)
        .bind(token_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes sessions that can no longer be resumed.
pub async fn purge_expired(conn: &mut AnyConnection, idle_ms: i64) -> Result<u64, sqlx::Error> {
    let now = now_ms();
    let deleted = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR expires_at <= $2")
        .bind(now - idle_ms)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(deleted.rows_affected())
}
