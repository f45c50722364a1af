//! The visitor of one request: language, session, person and roles, network address, and the
//! cookies the response must set. Loaded once by middleware; handlers take it as [`Ctx`].
//! CSRF is checked here too, for every state-changing request, so no route can forget it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{AppError, AppState};
use crate::authz::Principal;
use crate::i18n::{self, Locale};
use crate::members::{self, Organisation};
use crate::people::{self, Person, sessions};

pub const SESSION_COOKIE: &str = "allmende_session";
const FLASH_COOKIE: &str = "allmende_flash";
const LANGUAGE_COOKIE: &str = "lang";
/// Form bodies larger than this are refused before the CSRF check reads them.
const MAX_FORM_BYTES: usize = super::MAX_FORM_BYTES;
/// Uploads (multipart forms: bank statements, Pabulib files, publiccode.yml) larger than this
/// are refused before the CSRF check reads them: the largest of the upload routes' own limits
/// (see `web::MAX_STATEMENT_UPLOAD_BYTES` and its neighbours), which each route then applies.
const MAX_UPLOAD_BYTES: usize = super::MAX_STATEMENT_UPLOAD_BYTES;

pub struct Visitor {
    pub locale: Locale,
    /// Whether the language was chosen by `?lang=` on this request (and is to be remembered).
    language_chosen: bool,
    pub address: String,
    session: Mutex<Option<sessions::Session>>,
    pub person: Option<Person>,
    pub principal: Principal,
    /// The organisations the person acts for.
    pub organisations: Vec<(Organisation, crate::authz::OrgRole)>,
    flash: Option<String>,
    cookies: Mutex<Vec<String>>,
    secure: bool,
}

/// The visitor, as handlers take it.
#[derive(Clone)]
pub struct Ctx(pub Arc<Visitor>);

impl std::ops::Deref for Ctx {
    type Target = Visitor;
    fn deref(&self) -> &Visitor {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("visitor middleware missing")))
    }
}

impl Visitor {
    pub fn person_id(&self) -> Option<&str> {
        self.person.as_ref().map(|p| p.id.as_str())
    }

    pub fn session_token_hash(&self) -> Option<String> {
        self.session
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.token_hash.clone()))
    }

    pub fn acting_organisation_id(&self) -> Option<String> {
        let chosen = self
            .session
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(|s| s.acting_organisation_id.clone()));
        // Only an organisation the person still acts for; otherwise the first one.
        chosen
            .filter(|id| self.organisations.iter().any(|(o, _)| &o.id == id))
            .or_else(|| self.organisations.first().map(|(o, _)| o.id.clone()))
    }

    /// The CSRF token for forms, starting a visitor's session if there is none yet.
    pub async fn csrf_token(&self, state: &AppState) -> Result<String, AppError> {
        if let Some(token) = self
            .session
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.csrf_token.clone()))
        {
            return Ok(token);
        }
        let mut conn = state.db.pool().acquire().await?;
        let (token, session) = sessions::start(&mut conn, None).await?;
        let csrf = session.csrf_token.clone();
        self.set_session_cookie(&token);
        if let Ok(mut slot) = self.session.lock() {
            *slot = Some(session);
        }
        Ok(csrf)
    }

    /// The CSRF token of an existing session, or empty (for layouts that show forms only to
    /// logged-in people).
    pub fn existing_csrf_token(&self) -> String {
        self.session
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.csrf_token.clone()))
            .unwrap_or_default()
    }

    fn cookie(&self, value: String) {
        if let Ok(mut cookies) = self.cookies.lock() {
            cookies.push(value);
        }
    }

    fn secure_attr(&self) -> &'static str {
        if self.secure { "; Secure" } else { "" }
    }

    /// Sets the session cookie: HttpOnly, SameSite=Lax, Secure on https; it lives as long as
    /// the session may.
    pub fn set_session_cookie(&self, token: &str) {
        let max_age = sessions::ABSOLUTE_MS / 1000;
        self.cookie(format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
            self.secure_attr()
        ));
    }

    pub fn clear_session_cookie(&self) {
        self.cookie(format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            self.secure_attr()
        ));
    }

    /// A message for the next page (after a redirect): a catalogue key under `flash.`.
    pub fn flash(&self, key: &'static str) {
        self.cookie(format!(
            "{FLASH_COOKIE}={key}; Path=/; HttpOnly; SameSite=Lax; Max-Age=300{}",
            self.secure_attr()
        ));
    }

    /// The message left by the previous request, shown once.
    pub fn take_flash(&self) -> Option<String> {
        let key = self.flash.clone()?;
        self.cookie(format!(
            "{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            self.secure_attr()
        ));
        Some(i18n::t(self.locale, &key))
    }

    pub fn t(&self, key: &str) -> String {
        i18n::t(self.locale, key)
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Picks the reader's language: `?lang=` (remembered in a cookie), the cookie, the browser's
/// `Accept-Language`, then the instance's default.
pub(super) fn choose_locale(request: &Request, default: Locale) -> (Locale, bool) {
    let asked = request.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "lang")
            .and_then(|(_, value)| Locale::from_tag(&value))
    });
    if let Some(asked) = asked {
        return (asked, true);
    }
    let remembered = cookie_value(request.headers(), LANGUAGE_COOKIE).and_then(Locale::from_tag);
    let browser = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(i18n::negotiate);
    (remembered.or(browser).unwrap_or(default), false)
}

fn client_address(request: &Request, behind_proxy: bool) -> String {
    if behind_proxy {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_owned());
        if let Some(address) = forwarded.filter(|a| !a.is_empty()) {
            return address;
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Loads the visitor for every page, checks CSRF on state-changing requests, and sets the
/// cookies the handler asked for.
pub async fn load_visitor(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/static/") || path == "/healthz" {
        return next.run(request).await;
    }
    let (locale, language_chosen) = choose_locale(&request, state.config.default_locale);
    let headers = request.headers().clone();
    let address = client_address(&request, state.config.behind_proxy);
    let visitor = match build_visitor(&state, &headers, address, locale, language_chosen).await {
        Ok(visitor) => Ctx(Arc::new(visitor)),
        Err(error) => {
            let mut response = error.into_response();
            response.extensions_mut().insert(locale);
            return response;
        }
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(visitor.clone());
    parts.extensions.insert(locale);

    let request = if is_state_changing(&parts.method) && !parts.uri.path().starts_with("/webhooks/")
    {
        match check_csrf(&visitor, parts, body).await {
            Ok(request) => request,
            Err(error) => return finish(&visitor, error.into_response()),
        }
    } else {
        Request::from_parts(parts, body)
    };
    let response = next.run(request).await;
    finish(&visitor, response)
}

fn finish(visitor: &Ctx, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if visitor.language_chosen {
        let cookie = format!(
            "{LANGUAGE_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly{}",
            visitor.locale.as_str(),
            visitor.secure_attr()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    if let Ok(cookies) = visitor.cookies.lock() {
        for cookie in cookies.iter() {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(visitor.locale.as_str()) {
        headers.insert(header::CONTENT_LANGUAGE, value);
    }
    headers.append(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie"),
    );
    if visitor.person.is_some() || visitor.session_token_hash().is_some() {
        // Pages for a person must not be kept by shared caches.
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    response
}

async fn build_visitor(
    state: &AppState,
    headers: &HeaderMap,
    address: String,
    locale: Locale,
    language_chosen: bool,
) -> Result<Visitor, AppError> {
    let mut visitor = Visitor {
        locale,
        language_chosen,
        address,
        session: Mutex::new(None),
        person: None,
        principal: Principal::visitor(),
        organisations: Vec::new(),
        flash: cookie_value(headers, FLASH_COOKIE)
            .filter(|key| {
                key.starts_with("flash.") && i18n::catalogues().of(locale).contains_key(*key)
            })
            .map(str::to_owned),
        cookies: Mutex::new(Vec::new()),
        secure: state.config.base_url.scheme() == "https",
    };
    let Some(token) = cookie_value(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(visitor);
    };
    let mut conn = state.db.pool().acquire().await?;
    let idle_ms = state.config.session_idle_minutes * 60_000;
    let Some(session) = sessions::resume(&mut conn, token, idle_ms).await? else {
        visitor.clear_session_cookie();
        return Ok(visitor);
    };
    if let Some(person_id) = &session.person_id {
        visitor.person = people::find(&mut conn, person_id).await?;
        visitor.principal = crate::authz::principal_of(&mut conn, person_id).await?;
        visitor.organisations = members::of_person(&mut conn, person_id).await?;
    }
    visitor.session = Mutex::new(Some(session));
    Ok(visitor)
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The token must come in the body of the form (`csrf_token` field, URL-encoded or multipart)
/// or in a header (`X-CSRF-Token`), and match the session's. Otherwise: 403. Never from the
/// query string: a token in a URL lands in logs, in the history and in `Referer` headers.
async fn check_csrf(visitor: &Ctx, parts: Parts, body: Body) -> Result<Request, AppError> {
    let expected = visitor.existing_csrf_token();
    let from_header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let kind = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let too_large = super::forms::too_large;
    let (body, from_form) = match kind.as_str() {
        "application/x-www-form-urlencoded" => {
            let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
                .await
                .map_err(|_| too_large())?;
            let token = url::form_urlencoded::parse(&bytes)
                .find(|(key, _)| key == "csrf_token")
                .map(|(_, value)| value.into_owned());
            (Body::from(bytes), token)
        }
        // File uploads: the token is a field of the form like any other. The body is read
        // once here (within the upload limit) and handed on unchanged.
        "multipart/form-data" if from_header.is_none() => {
            let bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
                .await
                .map_err(|_| too_large())?;
            let token = multipart_csrf_token(&content_type, bytes.clone()).await;
            (Body::from(bytes), token)
        }
        _ => (body, None),
    };
    let given = from_form.or(from_header).unwrap_or_default();
    let valid = !expected.is_empty()
        && given.len() == expected.len()
        && bool::from(given.as_bytes().ct_eq(expected.as_bytes()));
    if !valid {
        tracing::warn!(path = %parts.uri.path(), "CSRF token missing or wrong");
        return Err(AppError::status(
            axum::http::StatusCode::FORBIDDEN,
            "error.csrf",
        ));
    }
    Ok(Request::from_parts(parts, body))
}

/// The `csrf_token` field of a multipart form, if it has one (and the form can be read).
async fn multipart_csrf_token(content_type: &str, bytes: axum::body::Bytes) -> Option<String> {
    use axum::extract::FromRequest;
    let request = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(bytes))
        .ok()?;
    let mut multipart = axum::extract::Multipart::from_request(request, &())
        .await
        .ok()?;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("csrf_token") {
            return field.text().await.ok();
        }
    }
    None
}
