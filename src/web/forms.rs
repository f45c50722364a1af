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
    use super::local_path;

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
