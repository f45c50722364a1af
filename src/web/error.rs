//! One error type for handlers: logs what went wrong inside, shows the user a plain message in
//! their language. The page itself is rendered by the `error_pages` middleware, which knows the
//! visitor's language.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Marks a response whose body is to be an error page; carries the message's catalogue key.
#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub message_key: &'static str,
}

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    /// A key in the message catalogues: what the user reads.
    pub message_key: &'static str,
    /// What went wrong inside, for the log only.
    pub internal: Option<anyhow::Error>,
}

impl AppError {
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message_key: "error.not_found",
            internal: None,
        }
    }

    pub fn bad_request(message_key: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message_key,
            internal: None,
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message_key: "error.internal",
            internal: Some(error.into()),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
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

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal {
            tracing::error!(status = %self.status, error = ?internal, "request failed");
        }
        let mut response = self.status.into_response();
        response.extensions_mut().insert(ErrorPage {
            message_key: self.message_key,
        });
        response
    }
}
