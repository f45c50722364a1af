//! The public pages of the foundation: home, health check, static files.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use super::{AppError, AppState, Ctx};
use crate::cooperative;

#[derive(RustEmbed)]
#[folder = "static/"]
struct StaticFiles;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(show_home))
        .route("/healthz", get(check_health))
        .route("/static/{*path}", get(serve_static))
}

async fn show_home(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let overview = cooperative::overview(&mut conn).await?;
    drop(conn);
    let page = state.render(
        &ctx,
        "home.html",
        minijinja::context! { overview => minijinja::Value::from(minijinja::value::Serde(&overview)) },
    )?;
    Ok(page.into_response())
}

/// For load balancers and operators: 200 when the database answers, 503 when it does not.
async fn check_health(State(state): State<AppState>) -> Response {
    if state.db.ping().await {
        (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ok", "database": "ok" })),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "database": "unreachable" })),
        )
            .into_response()
    }
}

async fn serve_static(Path(path): Path<String>) -> Result<Response, AppError> {
    let file = StaticFiles::get(&path).ok_or_else(AppError::not_found)?;
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    Ok((
        [
            (header::CONTENT_TYPE, mime.as_ref().to_owned()),
            (header::CACHE_CONTROL, "public, max-age=3600".to_owned()),
        ],
        file.data.into_owned(),
    )
        .into_response())
}
