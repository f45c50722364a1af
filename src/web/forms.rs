//! Form helpers: field errors in the reader's language, for the error summary at the top of a
//! form and the message next to each field; safe redirects.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::Value;

use super::{AppError, MAX_FORM_BYTES};

use crate::i18n::Locale;
use crate::people::FieldErrors;

/// `{ field: message }` for the template, in the reader's language.
pub fn errors(locale: Locale, problems: &FieldErrors) -> Value {
    let messages: std::collections::BTreeMap<String, String> = problems
        .iter()
        .map(|(field, key)| (field.to_string(), crate::text::message(locale, key)))
        .collect();
    Value::from(messages)
}

/// Reads a form's body (urlencoded) before its handler does: at most [`MAX_FORM_BYTES`]
/// (else 413 and nothing done), and a textarea's CR LF line breaks as LF, so that stored text
/// has one kind of line break and limits count a line break once.
pub async fn read_form_body(request: Request, next: Next) -> Response {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return too_large().into_response();
    };
    let body = match crate::text::normalise_form_line_breaks(&bytes) {
        Some(normalised) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(normalised.len()));
            Body::from(normalised)
        }
        None => Body::from(bytes),
    };
    next.run(Request::from_parts(parts, body)).await
}

/// A form body over [`MAX_FORM_BYTES`].
pub fn too_large() -> AppError {
    AppError::status(StatusCode::PAYLOAD_TOO_LARGE, "hardening.text.too_large")
}

/// An upload that could not be read: 413 when it was over its route's limit, else 400.
pub fn upload_error(error: axum::extract::multipart::MultipartError) -> AppError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::status(StatusCode::PAYLOAD_TOO_LARGE, "error.too_large")
    } else {
        AppError::bad_request("error.bad_request")
    }
}

/// A refused form that has no page of its own to show again: 400 with its first problem.
pub fn first_problem(problems: &FieldErrors, fallback: &'static str) -> AppError {
    AppError::bad_request(problems.values().next().copied().unwrap_or(fallback))
}

/// A form shown again with its problems: 422, so that tests and tools see the refusal.
pub fn invalid(page: Html<String>) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// See other: the answer to a successful form.
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Where to go after login: `next` only when it is a path on this site, else the start page.
/// A path starts with exactly one `/` and holds no backslash and no control character
/// (browsers drop tabs and line breaks from URLs, so `/\t/evil.example` would become
/// `//evil.example`, another site; a line break would not even fit in a header). Without any
/// `next`, the account page.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        None | Some("") => "/account".to_owned(),
        Some(path) if is_local_path(path) => path.to_owned(),
        Some(_) => "/".to_owned(),
    }
}

/// A path on this site, safe as a redirect target (see [`local_path`]).
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.chars().any(|c| c == '\\' || c.is_control())
        // Unicode spaces and invisible marks that some browsers strip as well.
        && !path.chars().any(|c| c.is_whitespace() || ('\u{200b}'..='\u{200f}').contains(&c) || ('\u{2028}'..='\u{202e}').contains(&c) || c == '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::{MAX_FORM_BYTES, local_path};

    #[test]
    fn the_too_large_message_states_the_form_limit() {
        let limit = format!("{} KiB", MAX_FORM_BYTES / 1024);
        for locale in [crate::i18n::Locale::De, crate::i18n::Locale::En] {
            assert!(crate::i18n::t(locale, "hardening.text.too_large").contains(&limit));
        }
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path(Some("/organisations/x")), "/organisations/x");
        assert_eq!(
            local_path(Some("/proposals/1?tab=a%20b")),
            "/proposals/1?tab=a%20b"
        );
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("\\/evil.example")), "/");
        assert_eq!(local_path(Some("/\t/evil.example")), "/");
        assert_eq!(local_path(Some("/\n/evil.example")), "/");
        assert_eq!(local_path(Some("/\r\nSet-Cookie: x=1")), "/");
        assert_eq!(local_path(Some("/\u{0}/evil.example")), "/");
        assert_eq!(local_path(Some("/\u{7f}/evil.example")), "/");
        assert_eq!(local_path(Some("/\u{85}/evil.example")), "/");
        assert_eq!(local_path(Some("/ /evil.example")), "/");
        assert_eq!(local_path(Some("/\u{2028}/evil.example")), "/");
        assert_eq!(local_path(Some("evil.example")), "/");
        assert_eq!(local_path(None), "/account");
        assert_eq!(local_path(Some("")), "/account");
    }
}
