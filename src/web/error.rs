//! One error type for handlers: logs what went wrong inside, shows the user a plain message in
//! their language. The page itself is rendered by the `error_pages` middleware, which knows the
//! visitor's language and the page they asked for.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::authz::Denied;
use crate::members::MembersError;
use crate::members::membership::MembershipError;
use crate::people::PeopleError;
use crate::people::login::LoginError;

/// Marks a response whose body is to be an error page; carries the message's catalogue key.
#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub message_key: &'static str,
    /// Not logged in: the middleware sends the visitor to the login page instead.
    pub login_required: bool,
    /// When to come back (429, 503): sent as `Retry-After` and said in the message, whose
    /// `{minutes}` it fills.
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    /// A key in the message catalogues: what the user reads.
    pub message_key: &'static str,
    /// What went wrong inside, for the log only.
    pub internal: Option<anyhow::Error>,
    login_required: bool,
    retry_after_secs: Option<u64>,
}

impl AppError {
    pub fn status(status: StatusCode, message_key: &'static str) -> Self {
        Self {
            status,
            message_key,
            internal: None,
            login_required: false,
            retry_after_secs: None,
        }
    }

    /// 429: a limit was reached; the page says in how many minutes to try again.
    pub fn too_many_requests(message_key: &'static str, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::status(StatusCode::TOO_MANY_REQUESTS, message_key)
        }
    }

    /// 429 for a limit that frees up at `retry_at_ms`.
    pub fn limited(retry_at_ms: i64, now_ms: i64) -> Self {
        let secs = u64::try_from((retry_at_ms - now_ms).max(1_000) / 1_000).unwrap_or(1);
        Self::too_many_requests("hardening.accounts.too_many", secs)
    }

    /// 503: too busy right now (all password-hashing slots taken, the database's write lock
    /// held too long); nothing was done, and the request may simply be sent again.
    pub fn busy(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::status(StatusCode::SERVICE_UNAVAILABLE, "hardening.accounts.busy")
        }
    }

    pub fn not_found() -> Self {
        Self::status(StatusCode::NOT_FOUND, "error.not_found")
    }

    pub fn bad_request(message_key: &'static str) -> Self {
        Self::status(StatusCode::BAD_REQUEST, message_key)
    }

    pub fn conflict(message_key: &'static str) -> Self {
        Self::status(StatusCode::CONFLICT, message_key)
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self {
            internal: Some(error.into()),
            ..Self::status(StatusCode::INTERNAL_SERVER_ERROR, "error.internal")
        }
    }
}

impl From<Denied> for AppError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotLoggedIn => Self {
                login_required: true,
                ..Self::status(StatusCode::UNAUTHORIZED, denied.message_key())
            },
            Denied::EmailNotVerified | Denied::Forbidden => {
                Self::status(StatusCode::FORBIDDEN, denied.message_key())
            }
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_busy(&error) {
            // Rolled back whole: "busy, send it again", never "database is locked" as a 500.
            tracing::warn!(%error, "database too busy for a request");
            return Self::busy(5);
        }
        Self::internal(error)
    }
}

impl From<crate::people::password::HashError> for AppError {
    fn from(error: crate::people::password::HashError) -> Self {
        match error {
            crate::people::password::HashError::Busy { retry_after_secs } => {
                tracing::warn!("all password-hashing slots busy; request refused");
                Self::busy(retry_after_secs)
            }
            other => Self::internal(other),
        }
    }
}

impl From<crate::ledger::LedgerError> for AppError {
    fn from(error: crate::ledger::LedgerError) -> Self {
        Self::internal(error)
    }
}

impl From<minijinja::Error> for AppError {
    fn from(error: minijinja::Error) -> Self {
        Self::internal(error)
    }
}

impl From<crate::mail::MailError> for AppError {
    fn from(error: crate::mail::MailError) -> Self {
        Self::internal(error)
    }
}

impl From<MembersError> for AppError {
    fn from(error: MembersError) -> Self {
        match error {
            MembersError::Denied(denied) => denied.into(),
            MembersError::UnknownOrganisation | MembersError::UnknownPerson => Self::not_found(),
            MembersError::LastAdmin => Self::conflict("organisation.last_admin"),
            MembersError::AlreadyInOrganisation => Self::conflict("organisation.already_in"),
            MembersError::InvitationInvalid => Self::status(StatusCode::GONE, "invitation.invalid"),
            MembersError::InvitationForSomeoneElse => {
                Self::status(StatusCode::FORBIDDEN, "invitation.someone_else")
            }
            MembersError::Membership(error) => error.into(),
            // Forms with problems are re-rendered by their handlers; reaching here is a bug.
            other => Self::internal(other),
        }
    }
}

impl From<MembershipError> for AppError {
    fn from(error: MembershipError) -> Self {
        match error {
            MembershipError::Denied(denied) => denied.into(),
            MembershipError::StatutesChanged => Self::conflict("membership.statutes_changed"),
            MembershipError::AlreadyMember => Self::conflict("membership.already_member"),
            MembershipError::AlreadyApplied => Self::conflict("membership.already_applied"),
            MembershipError::UnknownApplication | MembershipError::UnknownMembership => {
                Self::not_found()
            }
            MembershipError::AlreadyLeaving => Self::conflict("membership.already_leaving"),
            other => Self::internal(other),
        }
    }
}

impl From<PeopleError> for AppError {
    fn from(error: PeopleError) -> Self {
        match error {
            PeopleError::TokenInvalid => Self::status(StatusCode::GONE, "token.invalid"),
            PeopleError::InvalidEmail => Self::bad_request("register.email_invalid"),
            PeopleError::Limited { retry_at_ms } => Self::limited(retry_at_ms, crate::db::now_ms()),
            PeopleError::Hash(error) => error.into(),
            PeopleError::Db(error) => error.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::people::limits::LimitError> for AppError {
    fn from(error: crate::people::limits::LimitError) -> Self {
        match error {
            crate::people::limits::LimitError::Reached { retry_at_ms } => {
                Self::limited(retry_at_ms, crate::db::now_ms())
            }
            crate::people::limits::LimitError::Db(error) => error.into(),
        }
    }
}

impl From<LoginError> for AppError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::Hash(error) => error.into(),
            LoginError::Db(error) => error.into(),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal {
            tracing::error!(status = %self.status, error = ?internal, "request failed");
        }
        let mut response = self.status.into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response.extensions_mut().insert(ErrorPage {
            message_key: self.message_key,
            login_required: self.login_required,
            retry_after_secs: self.retry_after_secs,
        });
        response
    }
}
