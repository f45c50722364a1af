//! The cooperative's staff pages: the statutes (public), applications (board), the member list
//! and its export, dues and exits (board and treasurer), the audit log (board).

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::see_other;
use super::{AppError, AppState, Ctx, value};
use crate::audit;
use crate::authz::{Action, authorize};
use crate::members::{self, membership};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/statutes", get(show_statutes))
        .route("/board/applications", get(list_applications))
        .route("/board/applications/{id}/admit", post(admit_application))
        .route("/board/applications/{id}/reject", post(reject_application))
        .route("/members", get(list_members))
        .route("/members.csv", get(export_members))
        .route("/members/dues", post(record_dues))
        .route("/members/{membership_id}/exit", post(record_exit))
        .route("/board/audit", get(show_audit_log))
        .route("/board/settings", get(show_settings).post(save_settings))
        .route("/board/jobs", get(super::admin::list_failed_jobs))
        .route(
            "/board/jobs/{id}/retry",
            post(super::admin::retry_failed_job),
        )
}

async fn show_statutes(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let page = state.render(
        &ctx,
        "statutes.html",
        context! { statutes => value(&*state.statutes) },
    )?;
    Ok(page.into_response())
}

async fn list_applications(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let applications = membership::pending(&mut conn, &ctx.principal).await?;
    drop(conn);
    let page = state.render(
        &ctx,
        "board/applications.html",
        context! { applications => value(&applications), share_price => state.config.share_price },
    )?;
    Ok(page.into_response())
}

async fn admit_application(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    membership::admit(&mut tx, &ctx.principal, &id, state.terms()).await?;
    tx.commit().await?;
    ctx.flash("flash.admitted");
    Ok(see_other("/board/applications"))
}

#[derive(Debug, Deserialize)]
struct RejectForm {
    #[serde(default)]
    reason: String,
}

async fn reject_application(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<RejectForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match membership::reject(&mut tx, &ctx.principal, &id, &form.reason).await {
        Ok(()) => {}
        Err(membership::MembershipError::Invalid(problems)) => {
            return Err(super::forms::first_problem(
                &problems,
                "membership.reason_missing",
            ));
        }
        Err(other) => return Err(other.into()),
    }
    tx.commit().await?;
    ctx.flash("flash.rejected");
    Ok(see_other("/board/applications"))
}

async fn list_members(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let entries = membership::member_list(&mut conn, &ctx.principal).await?;
    drop(conn);
    let page = state.render(
        &ctx,
        "board/members.html",
        context! {
            members => value(&entries),
            this_year => membership::year_of(crate::db::now_ms()),
            annual_dues => state.config.annual_dues,
        },
    )?;
    Ok(page.into_response())
}

async fn export_members(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let entries = membership::member_list(&mut conn, &ctx.principal).await?;
    let csv = membership::member_list_csv(&entries, ctx.locale);
    let name = format!(
        "{}-{}.csv",
        ctx.t("members.csv.file_name"),
        membership::year_of(crate::db::now_ms())
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        csv,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct DuesForm {
    #[serde(default)]
    year: String,
}

async fn record_dues(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<DuesForm>,
) -> Result<Response, AppError> {
    let year = form
        .year
        .trim()
        .parse::<i64>()
        .map_err(|_| AppError::bad_request("membership.year_invalid"))?;
    let mut tx = state.db.begin().await?;
    match membership::record_dues(&mut tx, &ctx.principal, year, state.terms()).await {
        Ok(_) => {}
        Err(membership::MembershipError::Invalid(_)) => {
            return Err(AppError::bad_request("membership.year_invalid"));
        }
        Err(other) => return Err(other.into()),
    }
    tx.commit().await?;
    ctx.flash("flash.dues_recorded");
    Ok(see_other("/members"))
}

#[derive(Debug, Deserialize)]
struct ExitForm {
    /// YYYY-MM-DD, as a date input sends it.
    #[serde(default)]
    date: String,
}

fn parse_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format).ok()?;
    // The exit takes effect at the end of that day.
    Some((date.next_day()?.midnight().assume_utc().unix_timestamp()) * 1000 - 1)
}

async fn record_exit(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(membership_id): Path<String>,
    Form(form): Form<ExitForm>,
) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::ManageMembers)?;
    let date =
        parse_date(&form.date).ok_or_else(|| AppError::bad_request("membership.date_invalid"))?;
    let mut tx = state.db.begin().await?;
    membership::record_exit(
        &mut tx,
        &ctx.principal,
        &membership_id,
        date,
        state.clock.now_ms(),
        state.config.base_url.as_str(),
    )
    .await?;
    tx.commit().await?;
    ctx.flash("flash.exit_recorded");
    Ok(see_other("/members"))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    organisation: Option<String>,
}

async fn show_audit_log(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<AuditQuery>,
) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::ViewAuditLog)?;
    let mut conn = state.db.pool().acquire().await?;
    let organisation = match query.organisation.as_deref().filter(|s| !s.is_empty()) {
        Some(slug) => Some(
            members::find_by_slug(&mut conn, slug)
                .await?
                .ok_or_else(AppError::not_found)?,
        ),
        None => None,
    };
    let events = audit::list(&mut conn, organisation.as_ref().map(|o| o.id.as_str()), 500).await?;
    let organisations: Vec<(String, String)> =
        sqlx::query_as("SELECT slug, legal_name FROM organisations ORDER BY legal_name")
            .fetch_all(&mut *conn)
            .await?;
    drop(conn);
    let page = state.render(
        &ctx,
        "board/audit.html",
        context! {
            events => value(&events),
            organisation => value(&organisation),
            organisations => organisations
                .into_iter()
                .map(|(slug, name)| context! { slug => slug, name => name })
                .collect::<Vec<_>>(),
        },
    )?;
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_dates_end_with_their_day() {
        let end = super::parse_date("2026-12-31").unwrap_or_default();
        assert_eq!(
            crate::i18n::format_datetime(end, crate::i18n::Locale::De),
            "31.12.2026, 23:59"
        );
        assert_eq!(super::parse_date("31.12.2026"), None);
    }
}

async fn settings_page(
    state: &AppState,
    ctx: &Ctx,
    fee: &str,
    window: &str,
    problems: &crate::people::FieldErrors,
) -> Result<axum::response::Html<String>, AppError> {
    state.render(
        ctx,
        "board/settings.html",
        context! {
            fee_basis_points => fee,
            review_window_days => window,
            configured_fee => state.config.fee_basis_points,
            configured_window => state.config.review_window_days,
            errors => super::forms::errors(ctx.locale, problems),
        },
    )
}

async fn show_settings(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::SetCooperativeTerms)?;
    let terms = state.cooperative_terms().await?;
    Ok(settings_page(
        &state,
        &ctx,
        &terms.fee_basis_points.to_string(),
        &terms.review_window_days.to_string(),
        &crate::people::FieldErrors::new(),
    )
    .await?
    .into_response())
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    #[serde(default)]
    fee_basis_points: String,
    #[serde(default)]
    review_window_days: String,
}

async fn save_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<SettingsForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match crate::cooperative::set_terms(
        &mut tx,
        &ctx.principal,
        &form.fee_basis_points,
        &form.review_window_days,
        state.clock.now_ms(),
    )
    .await
    {
        Ok(_) => {
            tx.commit().await?;
            ctx.flash("flash.settings_saved");
            Ok(see_other("/board/settings"))
        }
        Err(crate::cooperative::TermsError::Invalid(problems)) => {
            drop(tx);
            let page = settings_page(
                &state,
                &ctx,
                &form.fee_basis_points,
                &form.review_window_days,
                &problems,
            )
            .await?;
            Ok(super::forms::invalid(page))
        }
        Err(crate::cooperative::TermsError::Denied(denied)) => Err(denied.into()),
        Err(crate::cooperative::TermsError::Db(error)) => Err(error.into()),
    }
}
