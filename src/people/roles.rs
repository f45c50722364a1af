//! Platform roles (board, treasurer, admin): granted and withdrawn by an admin; the first
//! admin is made on the command line.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, PlatformRole, Principal, authorize};
use crate::db::now_ms;
use crate::ledger::Actor;

#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("no such person")]
    UnknownPerson,
    #[error("the platform needs at least one admin")]
    LastAdmin,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Clone, Debug, Serialize)]
pub struct PersonWithRoles {
    pub id: String,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub roles: Vec<PlatformRole>,
}

/// Everybody, with their platform roles (admins only).
pub async fn people_with_roles(
    conn: &mut AnyConnection,
    principal: &Principal,
) -> Result<Vec<PersonWithRoles>, RolesError> {
    authorize(principal, Action::ManagePlatformRoles)?;
    let rows = sqlx::query(
        "SELECT p.id, p.name, p.email, p.email_verified_at, r.role
         FROM people p LEFT JOIN platform_roles r ON r.person_id = p.id
         ORDER BY p.name, p.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut people: Vec<PersonWithRoles> = Vec::new();
    for row in rows {
        let id: String = row.get("id");
        let role: Option<String> = row.get("role");
        if people.last().is_none_or(|p| p.id != id) {
            let verified: Option<i64> = row.get("email_verified_at");
            people.push(PersonWithRoles {
                id,
                name: row.get("name"),
                email: row.get("email"),
                email_verified: verified.is_some(),
                roles: Vec::new(),
            });
        }
        if let (Some(person), Some(role)) = (
            people.last_mut(),
            role.as_deref().and_then(PlatformRole::parse),
        ) {
            person.roles.push(role);
        }
    }
    Ok(people)
}

async fn insert_role(
    conn: &mut AnyConnection,
    actor: &Actor,
    person_id: &str,
    role: PlatformRole,
) -> Result<(), RolesError> {
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM people WHERE id = $1")
        .bind(person_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(RolesError::UnknownPerson);
    }
    let inserted = sqlx::query(
        "INSERT INTO platform_roles (person_id, role, granted_by, granted_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (person_id, role) DO NOTHING",
    )
    .bind(person_id)
    .bind(role.as_str())
    .bind(actor.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        audit::record(
            conn,
            actor,
            "role.granted",
            person_id,
            None,
            serde_json::json!({ "role": role.as_str() }),
        )
        .await?;
    }
    Ok(())
}

pub async fn grant(
    conn: &mut AnyConnection,
    principal: &Principal,
    person_id: &str,
    role: PlatformRole,
) -> Result<(), RolesError> {
    authorize(principal, Action::ManagePlatformRoles)?;
    insert_role(conn, &principal.actor(), person_id, role).await
}

/// From `allmende admin create`: no principal, the command line is trusted.
pub async fn grant_by_cli(
    conn: &mut AnyConnection,
    person_id: &str,
    role: PlatformRole,
) -> Result<(), RolesError> {
    insert_role(conn, &Actor::cli(), person_id, role).await
}

pub async fn revoke(
    conn: &mut AnyConnection,
    principal: &Principal,
    person_id: &str,
    role: PlatformRole,
) -> Result<(), RolesError> {
    authorize(principal, Action::ManagePlatformRoles)?;
    if role == PlatformRole::Admin {
        // Serialise admin changes so two admins cannot remove each other at once.
        sqlx::query("UPDATE accounts SET id = id WHERE id = 'coop:fees'")
            .execute(&mut *conn)
            .await?;
        let admins: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM platform_roles WHERE role = 'admin' AND person_id <> $1",
        )
        .bind(person_id)
        .fetch_one(&mut *conn)
        .await?;
        if admins == 0 {
            return Err(RolesError::LastAdmin);
        }
    }
    let deleted = sqlx::query("DELETE FROM platform_roles WHERE person_id = $1 AND role = $2")
        .bind(person_id)
        .bind(role.as_str())
        .execute(&mut *conn)
        .await?;
    if deleted.rows_affected() == 1 {
        audit::record(
            conn,
            &principal.actor(),
            "role.revoked",
            person_id,
            None,
            serde_json::json!({ "role": role.as_str() }),
        )
        .await?;
    }
    Ok(())
}
