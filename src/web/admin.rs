//! The platform admin's page: people and their platform roles.

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::see_other;
use super::{AppError, AppState, Ctx, value};
use crate::authz::PlatformRole;
use crate::people::roles::{self, RolesError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/people", get(list_people))
        .route(
            "/admin/people/{person_id}/roles",
            post(change_platform_role),
        )
        .route("/admin/jobs", get(list_failed_jobs))
}

impl From<RolesError> for AppError {
    fn from(error: RolesError) -> Self {
        match error {
            RolesError::Denied(denied) => denied.into(),
            RolesError::UnknownPerson => AppError::not_found(),
            RolesError::LastAdmin => AppError::conflict("admin.last_admin"),
            RolesError::Db(e) => AppError::internal(e),
        }
    }
}

async fn list_people(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let people = roles::people_with_roles(&mut conn, &ctx.principal).await?;
    drop(conn);
    let all_roles: Vec<_> = PlatformRole::ALL
        .iter()
        .map(|r| context! { value => r.as_str(), label => ctx.t(&format!("role.{}", r.as_str())) })
        .collect();
    let page = state.render(
        &ctx,
        "admin/people.html",
        context! { people => value(&people), all_roles => all_roles },
    )?;
    Ok(page.into_response())
}

#[derive(Debug, Deserialize)]
struct RoleChange {
    #[serde(default)]
    role: String,
    /// grant or revoke
    #[serde(default)]
    change: String,
}

async fn change_platform_role(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(person_id): Path<String>,
    Form(form): Form<RoleChange>,
) -> Result<Response, AppError> {
    let role = PlatformRole::parse(&form.role)
        .ok_or_else(|| AppError::bad_request("admin.role_invalid"))?;
    let mut tx = state.db.begin().await?;
    match form.change.as_str() {
        "grant" => roles::grant(&mut tx, &ctx.principal, &person_id, role).await?,
        "revoke" => roles::revoke(&mut tx, &ctx.principal, &person_id, role).await?,
        _ => return Err(AppError::bad_request("admin.role_invalid")),
    }
    tx.commit().await?;
    ctx.flash("flash.saved");
    Ok(see_other("/admin/people"))
}

impl From<crate::jobs::JobsError> for AppError {
    fn from(error: crate::jobs::JobsError) -> Self {
        match error {
            crate::jobs::JobsError::Denied(denied) => denied.into(),
            crate::jobs::JobsError::Db(e) => AppError::internal(e),
        }
    }
}

/// Background jobs that failed: those that gave up, and those waiting to be tried again
/// (the board and the platform's admins; also at `/board/jobs`).
pub(super) async fn list_failed_jobs(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let failed = crate::jobs::failed_for(&mut conn, &ctx.principal).await?;
    drop(conn);
    let may_retry =
        crate::authz::authorize(&ctx.principal, crate::authz::Action::RetryFailedJobs).is_ok();
    let page = state.render(
        &ctx,
        "admin/jobs.html",
        context! { jobs => value(&failed), may_retry => may_retry },
    )?;
    Ok(page.into_response())
}

/// Tries a job that gave up again (the board or an admin, once its cause is seen to).
pub(super) async fn retry_failed_job(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(job_id): Path<String>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    let retried =
        crate::jobs::retry(&mut tx, &ctx.principal, &job_id, state.clock.now_ms()).await?;
    if !retried {
        return Err(AppError::conflict("hardening.keys.jobs_not_given_up"));
    }
    tx.commit().await?;
    ctx.flash("hardening.keys.job_retried");
    Ok(see_other("/board/jobs"))
}
