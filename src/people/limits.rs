//! Limits on what anybody can repeat to flood the platform or someone else's mailbox:
//! registrations, password-reset requests, invitations, and mails to one address, each counted
//! per subject (a network address, a recipient, a person) within an hour.
//!
//! The check and the record of an action are one step in the caller's write transaction,
//! serialised per subject ([`crate::db::serialise_on`]), so a hundred parallel requests cannot
//! all pass a check that only one of them should.

use sqlx::AnyConnection;

use crate::db::new_id;

/// The window the limits count in.
pub const WINDOW_MS: i64 = 3_600_000;

/// What is limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Registration,
    PasswordReset,
    Invitation,
    /// A mail to an address that anybody can cause (verification, "you have an account",
    /// reset link).
    MailTo,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Registration => "registration",
            Action::PasswordReset => "password_reset",
            Action::Invitation => "invitation",
            Action::MailTo => "mail_to",
        }
    }
}

/// At most `max` of `action` by `subject` within [`WINDOW_MS`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub action: Action,
    pub subject: String,
    pub max: i64,
}

impl Rule {
    /// Per network address of the client.
    pub fn per_address(action: Action, address: &str, max: i64) -> Self {
        Self {
            action,
            subject: format!("address:{address}"),
            max,
        }
    }

    /// Per recipient's mail address (normalised by the caller).
    pub fn per_recipient(email: &str, max: i64) -> Self {
        Self {
            action: Action::MailTo,
            subject: format!("email:{email}"),
            max,
        }
    }

    /// Per person who acts.
    pub fn per_person(action: Action, person_id: &str, max: i64) -> Self {
        Self {
            action,
            subject: format!("person:{person_id}"),
            max,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("too many requests of this kind; try again after {retry_at_ms}")]
    Reached { retry_at_ms: i64 },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Records one action under every rule, or none when any rule's limit is reached (then the
/// error says when the first slot frees up). Runs in the caller's write transaction.
pub async fn take(conn: &mut AnyConnection, rules: &[Rule], now: i64) -> Result<(), LimitError> {
    // Locks in one order, so two transactions never wait for each other in a circle.
    let mut rules = rules.to_vec();
    rules.sort();
    let mut retry_at: Option<i64> = None;
    for rule in &rules {
        crate::db::serialise_on(
            conn,
            &format!("limit:{}:{}", rule.action.as_str(), rule.subject),
        )
        .await?;
        // The `max`-th most recent action in the window: while it is in there, the limit holds.
        let offset = rule.max.max(1) - 1;
        let blocking: Option<i64> = sqlx::query_scalar(
            "SELECT at FROM action_limits
             WHERE action = $1 AND subject = $2 AND at > $3
             ORDER BY at DESC LIMIT 1 OFFSET $4",
        )
        .bind(rule.action.as_str())
        .bind(&rule.subject)
        .bind(now - WINDOW_MS)
        .bind(offset)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(at) = blocking {
            let free_at = at + WINDOW_MS;
            retry_at = Some(retry_at.map_or(free_at, |r| r.max(free_at)));
        }
    }
    if let Some(retry_at_ms) = retry_at {
        return Err(LimitError::Reached { retry_at_ms });
    }
    for rule in &rules {
        sqlx::query("INSERT INTO action_limits (id, action, subject, at) VALUES ($1, $2, $3, $4)")
            .bind(new_id())
            .bind(rule.action.as_str())
            .bind(&rule.subject)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Takes the slot of one invitation mail (to an organisation or a project), per inviting
/// person and per network address, in the transaction that sends it.
pub async fn take_invitation(
    conn: &mut AnyConnection,
    limits: &crate::config::Limits,
    person_id: Option<&str>,
    address: &str,
    now: i64,
) -> Result<(), LimitError> {
    let mut rules = vec![Rule::per_address(
        Action::Invitation,
        address,
        limits.invitations_per_address_hour,
    )];
    if let Some(person_id) = person_id {
        rules.push(Rule::per_person(
            Action::Invitation,
            person_id,
            limits.invitations_per_person_hour,
        ));
    }
    take(conn, &rules, now).await
}

/// Forgets actions that no longer count (older than a day: kept a little for operators).
pub async fn purge_old(conn: &mut AnyConnection, now: i64) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM action_limits WHERE at < $1")
        .bind(now - 24 * WINDOW_MS)
        .execute(&mut *conn)
        .await?;
    Ok(deleted.rows_affected())
}
