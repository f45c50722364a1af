//! People: registration, email verification, passwords (change and reset), and the tokens
//! sent by mail. Sessions and login live in the submodules.

pub mod limits;
pub mod login;
pub mod password;
pub mod roles;
pub mod sessions;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::config::Limits;
use crate::db::{Db, new_id, now_ms};
use crate::i18n::Locale;
use crate::ledger::Actor;
use crate::mail;
use password::PasswordProblem;

pub const HOUR_MS: i64 = 3_600_000;
/// How long an email verification link works.
pub const VERIFY_EMAIL_VALID_MS: i64 = 48 * HOUR_MS;
/// How long a password reset link works.
pub const RESET_PASSWORD_VALID_MS: i64 = HOUR_MS;

/// A fresh random token (256 bits, URL-safe) for a cookie or a link.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not something the platform can work around; without it
    // no session or link can be safe, so this is the one place that may stop the process.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a token: its SHA-256, hex. A database leak does not reveal live tokens.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Lower-cased and trimmed: one address, one account.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible address: something@domain.tld, no spaces, at most 254 characters. Whether it
/// exists is proven by the verification mail, not here.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub email: String,
    pub locale: Locale,
    pub email_verified: bool,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("the form has problems: {0:?}")]
    Invalid(FieldErrors),
    #[error("not a valid email address")]
    InvalidEmail,
    #[error("password: {0}")]
    Password(PasswordProblem),
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the link is unknown, used or expired")]
    TokenInvalid,
    #[error("too many requests of this kind; try again after {retry_at_ms}")]
    Limited { retry_at_ms: i64 },
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<limits::LimitError> for PeopleError {
    fn from(error: limits::LimitError) -> Self {
        match error {
            limits::LimitError::Reached { retry_at_ms } => PeopleError::Limited { retry_at_ms },
            limits::LimitError::Db(error) => PeopleError::Db(error),
        }
    }
}

/// Where a request comes from and when: what the limits count by.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The client's network address.
    pub address: &'a str,
    /// Now, by the injected clock.
    pub now_ms: i64,
}

const PERSON_COLUMNS: &str = "id, name, email, locale, email_verified_at, created_at";

fn person_from_row(row: &sqlx::any::AnyRow) -> Person {
    let locale: String = row.get("locale");
    let verified: Option<i64> = row.get("email_verified_at");
    Person {
        id: row.get("id"),
        name: row.get("name"),
        email: row.get("email"),
        locale: Locale::from_tag(&locale).unwrap_or_default(),
        email_verified: verified.is_some(),
        created_at: row.get("created_at"),
    }
}

pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Person>, sqlx::Error> {
    let sql = format!("SELECT {PERSON_COLUMNS} FROM people WHERE id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(person_from_row))
}

pub async fn find_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<Option<Person>, sqlx::Error> {
    let sql = format!("SELECT {PERSON_COLUMNS} FROM people WHERE email = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(normalise_email(email))
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(person_from_row))
}

/// What a registration form holds.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize)]
pub struct Registration {
    pub name: String,
    pub email: String,
    #[serde(skip_serializing)]
    pub password: String,
}

/// Field-level problems of a form: field name → message key.
pub type FieldErrors = std::collections::BTreeMap<&'static str, &'static str>;

impl Registration {
    pub fn problems(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let name = self.name.trim();
        if name.is_empty() {
            errors.insert("name", "register.name_missing");
        } else if name.chars().count() > 200 {
            errors.insert("name", "register.name_too_long");
        }
        if !is_plausible_email(&normalise_email(&self.email)) {
            errors.insert("email", "register.email_invalid");
        }
        if let Err(problem) = password::check(&self.password, &self.email, name) {
            errors.insert("password", problem.message_key());
        }
        crate::text::check(
            &mut errors,
            &[
                (&crate::text::PERSON_NAME, &self.name),
                (&crate::text::PERSON_EMAIL, &self.email),
            ],
        );
        errors
    }
}

/// Registers a person and sends the verification mail. When the address has an account
/// already, that account's owner gets a mail saying so and the caller sees the same outcome, so
/// the form does not reveal who is registered.
///
/// In three steps, so that no write transaction waits for argon2: the limits per network
/// address and per recipient take their slot (a short transaction; a flood is refused before it
/// costs a hash), then the password is hashed through `hasher`, whether or not the address is
/// known (the same work on both paths: the answer's timing does not tell who has an account),
/// then one short transaction registers or mails the owner.
/// Returns the new person's id, or `None` when the address was taken.
#[allow(clippy::too_many_arguments)]
pub async fn register(
    db: &Db,
    hasher: &password::Hasher,
    limits: &Limits,
    form: &Registration,
    locale: Locale,
    base_url: &url::Url,
    origin: Origin<'_>,
) -> Result<Option<String>, PeopleError> {
    let problems = form.problems();
    if !problems.is_empty() {
        return Err(PeopleError::Invalid(problems));
    }
    let email = normalise_email(&form.email);
    let mut tx = db.begin().await?;
    limits::take(
        &mut tx,
        &[
            limits::Rule::per_address(
                limits::Action::Registration,
                origin.address,
                limits.registrations_per_address_hour,
            ),
            limits::Rule::per_recipient(&email, limits.mails_per_recipient_hour),
        ],
        origin.now_ms,
    )
    .await?;
    tx.commit().await?;

    let hash = hasher.hash(&form.password).await?;

    let mut tx = db.begin().await?;
    let registered = register_hashed(&mut tx, form, &email, &hash, locale, base_url).await?;
    tx.commit().await?;
    Ok(registered)
}

/// The write of a registration, with the password hashed already.
async fn register_hashed(
    conn: &mut AnyConnection,
    form: &Registration,
    email: &str,
    hash: &str,
    locale: Locale,
    base_url: &url::Url,
) -> Result<Option<String>, PeopleError> {
    if let Some(existing) = find_by_email(conn, email).await? {
        let login = link(base_url, "/login");
        let reset = link(base_url, "/password-reset");
        let mail = mail::compose(
            &existing.email,
            existing.locale,
            "account_exists",
            "mail.account_exists",
            &[("name", &existing.name), ("reset_url", &reset)],
            Some(login),
        );
        mail::enqueue(conn, &mail).await?;
        return Ok(None);
    }
    let id = new_id();
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO people (id, name, email, password_hash, locale, password_changed_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(form.name.trim())
    .bind(email)
    .bind(hash)
    .bind(locale.as_str())
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {}
        // Two registrations of one address racing: the second one behaves as "taken".
        Err(e) if crate::db::is_unique_violation(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    audit::record(
        conn,
        &Actor::person(&id),
        "person.registered",
        &id,
        None,
        serde_json::json!({}),
    )
    .await?;
    send_verification(conn, &id, base_url).await?;
    Ok(Some(id))
}

fn link(base_url: &url::Url, path: &str) -> String {
    format!("{}{}", base_url.as_str().trim_end_matches('/'), path)
}

/// Sends (again) the link that proves the person owns the address.
pub async fn send_verification(
    conn: &mut AnyConnection,
    person_id: &str,
    base_url: &url::Url,
) -> Result<(), PeopleError> {
    let person = find(conn, person_id)
        .await?
        .ok_or(PeopleError::TokenInvalid)?;
    let token = issue_token(conn, person_id, "verify_email", VERIFY_EMAIL_VALID_MS).await?;
    let mail = mail::compose(
        &person.email,
        person.locale,
        "verify_email",
        "mail.verify_email",
        &[("name", &person.name)],
        Some(link(base_url, &format!("/verify-email/{token}"))),
    );
    mail::enqueue(conn, &mail).await?;
    Ok(())
}

/// Sends the verification link again on the person's request, within the limit of mails per
/// recipient (an account registered with someone else's address cannot flood their mailbox).
pub async fn resend_verification(
    conn: &mut AnyConnection,
    limits: &Limits,
    person: &Person,
    base_url: &url::Url,
    origin: Origin<'_>,
) -> Result<(), PeopleError> {
    limits::take(
        conn,
        &[limits::Rule::per_recipient(
            &person.email,
            limits.mails_per_recipient_hour,
        )],
        origin.now_ms,
    )
    .await?;
    send_verification(conn, &person.id, base_url).await
}

async fn issue_token(
    conn: &mut AnyConnection,
    person_id: &str,
    purpose: &str,
    valid_ms: i64,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO person_tokens (token_hash, person_id, purpose, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash_token(&token))
    .bind(person_id)
    .bind(purpose)
    .bind(now)
    .bind(now + valid_ms)
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// Uses a token once: the conditional UPDATE makes a second use (or a race of two) fail.
async fn consume_token(
    conn: &mut AnyConnection,
    token: &str,
    purpose: &str,
) -> Result<String, PeopleError> {
    let hash = hash_token(token);
    let now = now_ms();
    let used = sqlx::query(
        "UPDATE person_tokens SET used_at = $1
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(&hash)
    .bind(purpose)
    .execute(&mut *conn)
    .await?;
    if used.rows_affected() != 1 {
        return Err(PeopleError::TokenInvalid);
    }
    let person_id: String =
        sqlx::query_scalar("SELECT person_id FROM person_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_one(&mut *conn)
            .await?;
    Ok(person_id)
}

/// Whether a token would be accepted now (to show the form behind a link), without using it.
pub async fn token_is_valid(
    conn: &mut AnyConnection,
    token: &str,
    purpose: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT person_id FROM person_tokens
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(hash_token(token))
    .bind(purpose)
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Marks the address as verified by the link's token; the token works once.
pub async fn verify_email(conn: &mut AnyConnection, token: &str) -> Result<Person, PeopleError> {
    let person_id = consume_token(conn, token, "verify_email").await?;
    sqlx::query(
        "UPDATE people SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
    )
    .bind(now_ms())
    .bind(&person_id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &Actor::person(&person_id),
        "person.email_verified",
        &person_id,
        None,
        serde_json::json!({}),
    )
    .await?;
    find(conn, &person_id)
        .await?
        .ok_or(PeopleError::TokenInvalid)
}

async fn password_hash_of(
    conn: &mut AnyConnection,
    person_id: &str,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM people WHERE id = $1")
        .bind(person_id)
        .fetch_one(&mut *conn)
        .await
}

/// Stores a new password hash, ends every outstanding reset link of the person (a link sent
/// before the change must not undo it) and tells the person by mail. `old_hash`, when given,
/// must still be the stored one: a change that raced another one is refused.
async fn set_password_hash(
    conn: &mut AnyConnection,
    person: &Person,
    new_hash: &str,
    old_hash: Option<&str>,
) -> Result<(), PeopleError> {
    let now = now_ms();
    let changed = sqlx::query(
        "UPDATE people SET password_hash = $1, password_changed_at = $2
         WHERE id = $3 AND ($4 = '' OR password_hash = $4)",
    )
    .bind(new_hash)
    .bind(now)
    .bind(&person.id)
    .bind(old_hash.unwrap_or(""))
    .execute(&mut *conn)
    .await?;
    if changed.rows_affected() != 1 {
        return Err(PeopleError::WrongPassword);
    }
    revoke_reset_links(conn, &person.id, now).await?;
    let mail = mail::compose(
        &person.email,
        person.locale,
        "password_changed",
        "mail.password_changed",
        &[("name", &person.name)],
        None,
    );
    mail::enqueue(conn, &mail).await?;
    Ok(())
}

/// Every reset link of the person that is still open stops working.
async fn revoke_reset_links(
    conn: &mut AnyConnection,
    person_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE person_tokens SET used_at = $1
         WHERE person_id = $2 AND purpose = 'reset_password' AND used_at IS NULL",
    )
    .bind(now)
    .bind(person_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Changes the password after checking the current one; every other session of the person ends,
/// and so does every reset link. Both hashing steps run before the write transaction. The check
/// of the current password counts as a login attempt, within the same limits: a stolen session
/// cannot be used to guess the password without limit.
#[allow(clippy::too_many_arguments)]
pub async fn change_password(
    db: &Db,
    hasher: &password::Hasher,
    limits: &Limits,
    person: &Person,
    current: &str,
    new_password: &str,
    keep_session: &str,
    address: &str,
) -> Result<(), PeopleError> {
    match login::authenticate(db, hasher, limits, &person.email, current, address).await {
        Ok(checked) if checked.id == person.id => {}
        Ok(_) | Err(login::LoginError::Invalid) => return Err(PeopleError::WrongPassword),
        Err(login::LoginError::Throttled { until_ms }) => {
            return Err(PeopleError::Limited {
                retry_at_ms: until_ms,
            });
        }
        Err(login::LoginError::Hash(error)) => return Err(error.into()),
        Err(login::LoginError::Db(error)) => return Err(error.into()),
    }
    let old_hash = {
        let mut conn = db.pool().acquire().await?;
        password_hash_of(&mut conn, &person.id).await?
    };
    password::check(new_password, &person.email, &person.name).map_err(PeopleError::Password)?;
    let new_hash = hasher.hash(new_password).await?;

    let mut tx = db.begin().await?;
    set_password_hash(&mut tx, person, &new_hash, Some(&old_hash)).await?;
    sessions::end_all_of(&mut tx, &person.id, Some(keep_session)).await?;
    audit::record(
        &mut tx,
        &Actor::person(&person.id),
        "person.password_changed",
        &person.id,
        None,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sends a reset link when the address has an account; says nothing either way. Limited per
/// network address and per recipient (counted for unknown addresses too, so the limit does not
/// tell who has an account).
pub async fn request_password_reset(
    conn: &mut AnyConnection,
    limits: &Limits,
    email: &str,
    base_url: &url::Url,
    origin: Origin<'_>,
) -> Result<(), PeopleError> {
    let email = normalise_email(email);
    limits::take(
        conn,
        &[
            limits::Rule::per_address(
                limits::Action::PasswordReset,
                origin.address,
                limits.password_resets_per_address_hour,
            ),
            limits::Rule::per_recipient(&email, limits.mails_per_recipient_hour),
        ],
        origin.now_ms,
    )
    .await?;
    let Some(person) = find_by_email(conn, &email).await? else {
        return Ok(());
    };
    let token = issue_token(conn, &person.id, "reset_password", RESET_PASSWORD_VALID_MS).await?;
    let mail = mail::compose(
        &person.email,
        person.locale,
        "reset_password",
        "mail.reset_password",
        &[("name", &person.name)],
        Some(link(base_url, &format!("/password-reset/{token}"))),
    );
    mail::enqueue(conn, &mail).await?;
    Ok(())
}

/// Sets a new password by a reset link: the link works once, within an hour, and using it ends
/// every other reset link of the person; all sessions end and the address counts as verified
/// (the mail reached its owner). The new password is hashed before the write transaction.
pub async fn reset_password(
    db: &Db,
    hasher: &password::Hasher,
    token: &str,
    new_password: &str,
) -> Result<Person, PeopleError> {
    // Check the password before using up the token, so a too-short password can be retried.
    let person = {
        let mut conn = db.pool().acquire().await?;
        if !token_is_valid(&mut conn, token, "reset_password").await? {
            return Err(PeopleError::TokenInvalid);
        }
        let person_id: String =
            sqlx::query_scalar("SELECT person_id FROM person_tokens WHERE token_hash = $1")
                .bind(hash_token(token))
                .fetch_one(&mut *conn)
                .await?;
        find(&mut conn, &person_id)
            .await?
            .ok_or(PeopleError::TokenInvalid)?
    };
    password::check(new_password, &person.email, &person.name).map_err(PeopleError::Password)?;
    let new_hash = hasher.hash(new_password).await?;

    let mut tx = db.begin().await?;
    // Used meanwhile (or ended by another link or a change): refused, nothing written.
    let person_id = consume_token(&mut tx, token, "reset_password").await?;
    if person_id != person.id {
        return Err(PeopleError::TokenInvalid);
    }
    set_password_hash(&mut tx, &person, &new_hash, None).await?;
    sqlx::query(
        "UPDATE people SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
    )
    .bind(now_ms())
    .bind(&person.id)
    .execute(&mut *tx)
    .await?;
    sessions::end_all_of(&mut tx, &person.id, None).await?;
    audit::record(
        &mut tx,
        &Actor::person(&person.id),
        "person.password_reset",
        &person.id,
        None,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(person)
}

/// Creates a person from the command line (the first admin): verified, with a random password
/// that nobody knows; the returned reset link lets them set their own.
pub async fn create_by_cli(
    conn: &mut AnyConnection,
    email: &str,
    name: &str,
    base_url: &url::Url,
) -> Result<(Person, String), PeopleError> {
    let email = normalise_email(email);
    if !is_plausible_email(&email) {
        return Err(PeopleError::InvalidEmail);
    }
    let person = match find_by_email(conn, &email).await? {
        Some(person) => person,
        None => {
            let id = new_id();
            let now = now_ms();
            let hash = password::hash(&new_token()).await?;
            sqlx::query(
                "INSERT INTO people (id, name, email, password_hash, locale, email_verified_at,
                                     password_changed_at, created_at)
                 VALUES ($1, $2, $3, $4, 'de', $5, $5, $5)",
            )
            .bind(&id)
            .bind(if name.trim().is_empty() {
                email.as_str()
            } else {
                name.trim()
            })
            .bind(&email)
            .bind(&hash)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            audit::record(
                conn,
                &Actor::cli(),
                "person.created",
                &id,
                None,
                serde_json::json!({}),
            )
            .await?;
            find(conn, &id).await?.ok_or(PeopleError::TokenInvalid)?
        }
    };
    let token = issue_token(conn, &person.id, "reset_password", 24 * HOUR_MS).await?;
    Ok((person, link(base_url, &format!("/password-reset/{token}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in base64url");
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn email_addresses_are_checked_for_plausibility_only() {
        assert!(is_plausible_email("kasse@verein.de"));
        assert!(is_plausible_email("it-leitung@stadt.musterhausen.de"));
        for bad in [
            "",
            "kasse",
            "kasse@",
            "@verein.de",
            "kasse@verein",
            "a b@c.de",
            "a@b@c.de",
            "a@.de",
        ] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }
}
