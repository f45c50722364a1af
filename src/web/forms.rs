//! Form helpers: field errors in the reader's language, for the error summary at the top of a
//! form and the message next to each field; safe redirects.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::Value;

use crate::i18n::{self, Locale};
use crate::people::FieldErrors;

/// `{ field: message }` for the template, in the reader's language.
pub fn errors(locale: Locale, problems: &FieldErrors) -> Value {
    let messages: std::collections::BTreeMap<String, String> = problems
        .iter()
        .map(|(field, key)| (field.to_string(), i18n::t(locale, key)))
        .collect();
    Value::from(messages)
}

/// A form shown again with its problems: 422, so that tests and tools see the refusal.
pub fn invalid(page: Html<String>) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// See other: the answer to a successful form.
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Only a path on this site may be a target after login (no `//evil.example`, no scheme).
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path(Some("/organisations/x")), "/organisations/x");
        assert_eq!(local_path(Some("//evil.example/")), "/account");
        assert_eq!(local_path(Some("https://evil.example/")), "/account");
        assert_eq!(local_path(Some("/\\evil.example")), "/account");
        assert_eq!(local_path(None), "/account");
    }
}
