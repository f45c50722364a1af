//! HTTP: the router, the middleware every page passes through (language, error pages, security
//! headers, tracing) and serving with graceful shutdown. Handlers translate HTTP to domain calls
//! and back; rules and SQL live in the domain modules.

mod account;
mod admin;
mod board;
mod context;
mod error;
mod forms;
mod organisations;
mod pages;
mod payments;
mod payouts;
mod projects;
mod proposals;
mod reviews;
mod rounds;
mod templates;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use context::Ctx;
pub use error::{AppError, ErrorPage};
pub use templates::Templates;

use crate::config::Config;
use crate::db::Db;
use crate::i18n;

/// The largest request body a route takes, unless it says otherwise: every form on the site is
/// urlencoded text, and the longest texts the forms accept ([`crate::text::FIELDS`]) fit many
/// times over. A larger body is answered 413 before any handler runs, so nothing changes.
pub const MAX_FORM_BYTES: usize = 256 * 1024;
/// Bank statements (camt.053): the parser's own limit and room for the multipart framing.
pub const MAX_STATEMENT_UPLOAD_BYTES: usize =
    crate::payments::camt053::MAX_INPUT_BYTES + 1024 * 1024;
/// publiccode.yml: the file and the pasted text, each at most the parser's limit.
pub const MAX_PUBLICCODE_UPLOAD_BYTES: usize =
    2 * crate::catalogue::publiccode::MAX_BYTES + 64 * 1024;
/// Pabulib files of a voting round.
pub const MAX_PABULIB_UPLOAD_BYTES: usize = 2 * 1024 * 1024;
/// Stripe's webhook events (JSON; Stripe's own are far smaller).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
    pub statutes: Arc<crate::members::statutes::Statutes>,
    /// Present when Stripe keys are configured; without it only bank transfer is offered.
    pub stripe: Option<Arc<crate::payments::stripe::StripeGateway>>,
    /// The time deadlines are checked against (tests move it).
    pub clock: Arc<dyn crate::jobs::Clock>,
    /// Hashes and checks passwords, a bounded number at once (`limits.concurrent_password_hashes`).
    pub hasher: Arc<crate::people::password::Hasher>,
}

impl AppState {
    /// Fails when the configured statutes cannot be read.
    pub fn new(db: Db, config: Config) -> std::io::Result<Self> {
        let statutes = crate::members::statutes::load(config.statutes_path.as_deref())?;
        let stripe = match &config.stripe {
            Some(stripe) => Some(Arc::new(
                crate::payments::stripe::StripeGateway::from_config(stripe)
                    .map_err(|e| std::io::Error::other(format!("Stripe: {e}")))?,
            )),
            None => None,
        };
        let hasher = Arc::new(crate::people::password::Hasher::from_limits(&config.limits));
        Ok(Self {
            db,
            hasher,
            config: Arc::new(config),
            templates: Arc::new(Templates::new()),
            statutes: Arc::new(statutes),
            stripe,
            clock: Arc::new(crate::jobs::SystemClock),
        })
    }

    /// The same state, on another clock.
    pub fn with_clock(self, clock: Arc<dyn crate::jobs::Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The fee and review window that apply now: the board's settings, else the configuration.
    pub async fn cooperative_terms(&self) -> Result<crate::cooperative::Terms, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        crate::cooperative::terms(
            &mut conn,
            crate::cooperative::Terms {
                fee_basis_points: self.config.fee_basis_points,
                review_window_days: self.config.review_window_days,
            },
        )
        .await
    }

    pub fn terms(&self) -> crate::members::membership::Terms {
        crate::members::membership::Terms {
            share_price: self.config.share_price,
            annual_dues: self.config.annual_dues,
        }
    }

    /// Renders a page for the visitor: the page's values plus what every page shows (who is
    /// logged in, for which organisation they act, the navigation, a message from the last
    /// request).
    pub fn render(
        &self,
        ctx: &Ctx,
        template: &str,
        page: minijinja::Value,
    ) -> Result<Html<String>, AppError> {
        let acting = ctx.acting_organisation_id();
        let organisations: Vec<_> = ctx
            .organisations
            .iter()
            .map(|(org, role)| {
                minijinja::context! {
                    id => org.id.clone(),
                    slug => org.slug.clone(),
                    legal_name => org.legal_name.clone(),
                    role => role.as_str(),
                    acting => acting.as_deref() == Some(org.id.as_str()),
                }
            })
            .collect();
        let roles: Vec<&str> = ctx
            .principal
            .platform_roles
            .iter()
            .map(|r| r.as_str())
            .collect();
        let defaults = minijinja::context! {
            person => ctx.person.as_ref().map(|p| minijinja::context! {
                name => p.name.clone(),
                email => p.email.clone(),
                email_verified => p.email_verified,
            }),
            roles => roles,
            organisations => organisations,
            acting_organisation => organisations_acting(&ctx.organisations, acting.as_deref()),
            csrf_token => ctx.existing_csrf_token(),
            flash => ctx.take_flash(),
        };
        Ok(Html(
            self.templates
                .render(template, ctx.locale, page, defaults)?,
        ))
    }
}

/// Any serialisable value, for a template.
pub fn value<T: serde::Serialize>(value: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

fn organisations_acting(
    organisations: &[(crate::members::Organisation, crate::authz::OrgRole)],
    acting: Option<&str>,
) -> Option<String> {
    organisations
        .iter()
        .find(|(o, _)| Some(o.id.as_str()) == acting)
        .map(|(o, _)| o.legal_name.clone())
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let mut app = Router::new()
        .merge(pages::router())
        .merge(account::router())
        .merge(organisations::router())
        .merge(board::router())
        .merge(admin::router())
        .merge(projects::router())
        .merge(proposals::router())
        .merge(reviews::router())
        .merge(payouts::router())
        .merge(payments::router())
        .merge(rounds::router())
        .fallback(|| async { AppError::not_found() })
        .layer(middleware::from_fn(forms::read_form_body))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a handler panicked");
            AppError::internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            context::load_visitor,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), error_pages))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));
    for (name, value) in security_headers(&state.config) {
        app = app.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    app.layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), id)
            },
        ))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Headers on every response: no inline scripts or third-party anything, no framing, no
/// sniffing, no referrer leaks.
fn security_headers(config: &Config) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                 base-uri 'self'; object-src 'none'",
            ),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(), microphone=(), geolocation=(), interest-cohort=()",
            ),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    if config.base_url.scheme() == "https" {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    headers
}

/// Turns responses marked with [`ErrorPage`] into a page in the reader's language, or, when
/// the visitor must log in first, into a redirect to the login page.
async fn error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (locale, _) = context::choose_locale(&request, state.config.default_locale);
    let return_to = (request.method() == axum::http::Method::GET)
        .then(|| {
            request
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
        })
        .flatten();
    let response = next.run(request).await;
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    if page.login_required {
        let target = match return_to {
            Some(path) => format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()
            ),
            None => "/login".to_owned(),
        };
        let mut redirect = axum::response::Redirect::to(&target).into_response();
        for cookie in response.headers().get_all(header::SET_COOKIE) {
            redirect
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        return redirect;
    }
    let status = response.status();
    let message = match page.retry_after_secs {
        Some(secs) => {
            let minutes = secs.div_ceil(60).max(1).to_string();
            i18n::t_with(locale, page.message_key, &[("minutes", &minutes)])
        }
        None => crate::text::message(locale, page.message_key),
    };
    let ctx = minijinja::context! {
        status => status.as_u16(),
        message => message.clone(),
    };
    let defaults = minijinja::context! {
        person => (), roles => Vec::<String>::new(), organisations => Vec::<String>::new(),
        acting_organisation => (), csrf_token => "", flash => (),
    };
    let mut rendered = match state.templates.render("error.html", locale, ctx, defaults) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(?error, "the error page itself failed to render");
            (status, message).into_response()
        }
    };
    if let Some(retry_after) = response.headers().get(header::RETRY_AFTER) {
        rendered
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.clone());
    }
    // Keep the cookies (a new session, a language) the failed request set.
    for cookie in response.headers().get_all(header::SET_COOKIE) {
        rendered
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    if let Ok(value) = HeaderValue::from_str(locale.as_str()) {
        rendered
            .headers_mut()
            .insert(header::CONTENT_LANGUAGE, value);
    }
    rendered
}

/// Serves until `shutdown` completes, then finishes the requests under way.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests under way");
}
