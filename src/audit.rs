//! The audit trail: one event per change of state (who, what, when, which organisation).

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::db::{new_id, now_ms};
use crate::ledger::Actor;

/// Records an event in the caller's transaction, so it exists exactly when the change does.
pub async fn record(
    conn: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    subject: &str,
    organisation_id: Option<&str>,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (id, actor, action, subject, organisation_id, details, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(actor.as_str())
    .bind(action)
    .bind(subject)
    .bind(organisation_id)
    .bind(details.to_string())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub actor: String,
    /// The actor's name, where the actor is a person who still exists.
    pub actor_name: Option<String>,
    pub action: String,
    pub subject: String,
    pub organisation_id: Option<String>,
    pub organisation_name: Option<String>,
    pub details: String,
    pub created_at: i64,
}

/// Events newest first, optionally of one organisation.
pub async fn list(
    conn: &mut AnyConnection,
    organisation_id: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT e.id, e.actor, e.action, e.subject, e.organisation_id, e.details, e.created_at,
                p.name AS actor_name, o.legal_name AS organisation_name
         FROM audit_events e
         LEFT JOIN people p ON e.actor = 'person:' || p.id
         LEFT JOIN organisations o ON o.id = e.organisation_id
         WHERE ($1 IS NULL OR e.organisation_id = $1)
         ORDER BY e.created_at DESC, e.id DESC
         LIMIT $2",
    )
    .bind(organisation_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| AuditEvent {
            id: row.get("id"),
            actor: row.get("actor"),
            actor_name: row.get("actor_name"),
            action: row.get("action"),
            subject: row.get("subject"),
            organisation_id: row.get("organisation_id"),
            organisation_name: row.get("organisation_name"),
            details: row.get("details"),
            created_at: row.get("created_at"),
        })
        .collect())
}
