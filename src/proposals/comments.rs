//! The discussion of a proposal: comments in Markdown (rendered safely), edits shown as edited,
//! and the board's moderation (a hidden comment is kept, not shown).

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::ProposalError;
use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::{new_id, now_ms};
use crate::people::FieldErrors;

/// A comment's limit, from the list of text fields.
pub const MAX_LENGTH: usize = crate::text::COMMENT_BODY.max_chars;

#[derive(Clone, Debug, Serialize)]
pub struct Comment {
    pub id: String,
    pub author_id: String,
    pub author_name: String,
    /// Markdown as written; empty when hidden.
    pub body: String,
    /// Rendered; empty when hidden.
    pub body_html: String,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub hidden: bool,
}

fn check(body: &str) -> Result<(), ProposalError> {
    let mut errors = FieldErrors::new();
    if body.trim().is_empty() {
        errors.insert("body", "comment.empty");
    }
    crate::text::check(&mut errors, &[(&crate::text::COMMENT_BODY, body)]);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ProposalError::Invalid(errors))
    }
}

/// Adds a comment by the logged-in person to a proposal they can see.
pub async fn add(
    conn: &mut AnyConnection,
    principal: &Principal,
    proposal_id: &str,
    body: &str,
) -> Result<String, ProposalError> {
    authorize(principal, Action::Comment)?;
    super::visible(conn, principal, proposal_id).await?;
    check(body)?;
    let author = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO comments (id, proposal_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(proposal_id)
    .bind(author)
    .bind(body.trim())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

async fn find(
    conn: &mut AnyConnection,
    comment_id: &str,
) -> Result<(String, String, Option<i64>), ProposalError> {
    let row = sqlx::query("SELECT proposal_id, author_id, hidden_at FROM comments WHERE id = $1")
        .bind(comment_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(ProposalError::UnknownProposal)?;
    Ok((
        row.get("proposal_id"),
        row.get("author_id"),
        row.get("hidden_at"),
    ))
}

/// The author changes their comment; it shows as edited. Returns the proposal's id.
pub async fn edit(
    conn: &mut AnyConnection,
    principal: &Principal,
    comment_id: &str,
    body: &str,
) -> Result<String, ProposalError> {
    authorize(principal, Action::Comment)?;
    let (proposal_id, author, hidden) = find(conn, comment_id).await?;
    if principal.person_id.as_deref() != Some(author.as_str()) || hidden.is_some() {
        return Err(Denied::Forbidden.into());
    }
    check(body)?;
    sqlx::query("UPDATE comments SET body = $1, edited_at = $2 WHERE id = $3")
        .bind(body.trim())
        .bind(now_ms())
        .bind(comment_id)
        .execute(&mut *conn)
        .await?;
    Ok(proposal_id)
}

/// The board hides a comment; it stays stored, and the trail says who hid it. Returns the
/// proposal's id.
pub async fn hide(
    conn: &mut AnyConnection,
    principal: &Principal,
    comment_id: &str,
) -> Result<String, ProposalError> {
    authorize(principal, Action::ModerateComments)?;
    let (proposal_id, _, _) = find(conn, comment_id).await?;
    // A draft's discussion is not the board's to see, nor to moderate.
    super::visible(conn, principal, &proposal_id).await?;
    sqlx::query(
        "UPDATE comments SET hidden_at = $1, hidden_by = $2 WHERE id = $3 AND hidden_at IS NULL",
    )
    .bind(now_ms())
    .bind(principal.actor().as_str())
    .bind(comment_id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "comment.hidden",
        comment_id,
        None,
        serde_json::json!({ "proposal": proposal_id }),
    )
    .await?;
    Ok(proposal_id)
}

/// The discussion, oldest first; hidden comments keep their place without their text.
pub async fn of_proposal(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<Comment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.id, c.author_id, p.name, c.body, c.created_at, c.edited_at, c.hidden_at
         FROM comments c JOIN people p ON p.id = c.author_id
         WHERE c.proposal_id = $1 ORDER BY c.created_at, c.id",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let hidden_at: Option<i64> = row.get("hidden_at");
            let body: String = if hidden_at.is_some() {
                String::new()
            } else {
                row.get("body")
            };
            Comment {
                id: row.get("id"),
                author_id: row.get("author_id"),
                author_name: row.get("name"),
                body_html: crate::markdown::to_html(&body),
                body,
                created_at: row.get("created_at"),
                edited_at: row.get("edited_at"),
                hidden: hidden_at.is_some(),
            }
        })
        .collect())
}
