//! Milestone delivery on the proposal page: a maintainer submits, backers review, the board
//! decides disputes. Each handler calls one function of `reviews`.

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::forms::see_other;
use super::{AppError, AppState, Ctx};
use crate::authz::Denied;
use crate::money::Money;
use crate::people::FieldErrors;
use crate::reviews::{self, Decision, DisputeDecision, ReviewError, ReviewSettings};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/milestones/{id}/submissions", post(submit_milestone))
        .route("/submissions/{id}/reviews", post(review_milestone))
        .route("/milestones/{id}/dispute", post(decide_dispute))
}

impl From<ReviewError> for AppError {
    fn from(error: ReviewError) -> Self {
        match error {
            ReviewError::Denied(denied) => denied.into(),
            ReviewError::Unknown => AppError::not_found(),
            ReviewError::NotInProgress => AppError::conflict("review.not_in_progress"),
            ReviewError::NotSubmittable { .. } => AppError::conflict("review.not_submittable"),
            ReviewError::NotUnderReview => AppError::conflict("review.not_under_review"),
            ReviewError::NotABacker => {
                AppError::status(StatusCode::FORBIDDEN, "review.not_a_backer")
            }
            ReviewError::NoDispute => AppError::conflict("review.no_dispute"),
            ReviewError::Proposal(error) => error.into(),
            ReviewError::Invalid(_) | ReviewError::PartialAmount { .. } => {
                AppError::bad_request("error.bad_request")
            }
            other => AppError::internal(other),
        }
    }
}

async fn proposal_of_milestone(state: &AppState, milestone_id: &str) -> Result<String, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    sqlx::query_scalar("SELECT proposal_id FROM milestones WHERE id = $1")
        .bind(milestone_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(AppError::not_found)
}

/// Commits on success and goes back to the milestone; a form problem shows the proposal page
/// again with the fields named.
async fn finish(
    state: &AppState,
    ctx: &Ctx,
    tx: sqlx::Transaction<'static, sqlx::Any>,
    result: Result<(), ReviewError>,
    proposal_id: &str,
    milestone_id: &str,
    flash: &'static str,
) -> Result<Response, AppError> {
    match result {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash(flash);
            Ok(see_other(&format!(
                "/proposals/{proposal_id}#milestone-{milestone_id}"
            )))
        }
        Err(ReviewError::Invalid(problems)) => {
            drop(tx);
            let page =
                super::proposals::proposal_page(state, ctx, proposal_id, &problems, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(ReviewError::PartialAmount { .. }) => {
            drop(tx);
            let mut problems = FieldErrors::new();
            problems.insert("amount", "dispute.amount_invalid");
            let page =
                super::proposals::proposal_page(state, ctx, proposal_id, &problems, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

async fn settings(state: &AppState) -> Result<ReviewSettings<'_>, AppError> {
    let terms = state.cooperative_terms().await?;
    Ok(ReviewSettings {
        window_ms: i64::from(terms.review_window_days) * 86_400_000,
        fee_basis_points: terms.fee_basis_points,
        base_url: state.config.base_url.as_str(),
    })
}

async fn submit_milestone(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<reviews::SubmissionForm>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let proposal_id = proposal_of_milestone(&state, &id).await?;
    let settings = settings(&state).await?;
    let mut tx = state.db.begin().await?;
    let result = reviews::submit(
        &mut tx,
        &ctx.principal,
        &id,
        &form,
        state.clock.now_ms(),
        settings,
    )
    .await
    .map(|_| ());
    finish(
        &state,
        &ctx,
        tx,
        result,
        &proposal_id,
        &id,
        "flash.milestone_submitted",
    )
    .await
}

#[derive(Debug, Deserialize)]
struct ReviewForm {
    #[serde(default)]
    reviewer: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

async fn review_milestone(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let (milestone_id, proposal_id): (String, String) = {
        let mut conn = state.db.pool().acquire().await?;
        sqlx::query_as(
            "SELECT s.milestone_id, m.proposal_id FROM milestone_submissions s
             JOIN milestones m ON m.id = s.milestone_id WHERE s.id = $1",
        )
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(AppError::not_found)?
    };
    let Some(decision) = Decision::parse(&form.decision) else {
        let mut problems = FieldErrors::new();
        problems.insert("decision", "review.decision_missing");
        let page =
            super::proposals::proposal_page(&state, &ctx, &proposal_id, &problems, None).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let fee = state.cooperative_terms().await?.fee_basis_points;
    let mut tx = state.db.begin().await?;
    let result = reviews::review(
        &mut tx,
        &ctx.principal,
        &id,
        &form.reviewer,
        decision,
        &form.reason,
        state.clock.now_ms(),
        fee,
    )
    .await
    .map(|_| ());
    finish(
        &state,
        &ctx,
        tx,
        result,
        &proposal_id,
        &milestone_id,
        "flash.reviewed",
    )
    .await
}

#[derive(Debug, Deserialize)]
struct DisputeForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    rest: String,
    #[serde(default)]
    reason: String,
}

async fn decide_dispute(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<DisputeForm>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let proposal_id = proposal_of_milestone(&state, &id).await?;
    let mut problems = FieldErrors::new();
    let decision = match form.decision.as_str() {
        "accept" => Some(DisputeDecision::Accept),
        "accept_partly" => match Money::parse(&form.amount, state.config.max_amount) {
            Ok(amount) => Some(DisputeDecision::AcceptPartly {
                amount,
                refund_rest: form.rest == "refund",
            }),
            Err(error) => {
                problems.insert("amount", crate::proposals::money_message_key(&error));
                None
            }
        },
        "request_changes" => Some(DisputeDecision::RequestChanges),
        "cancel" => Some(DisputeDecision::Cancel),
        _ => {
            problems.insert("decision", "review.decision_missing");
            None
        }
    };
    let Some(decision) = decision else {
        let page =
            super::proposals::proposal_page(&state, &ctx, &proposal_id, &problems, None).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let fee = state.cooperative_terms().await?.fee_basis_points;
    let mut tx = state.db.begin().await?;
    let result = reviews::decide_dispute(
        &mut tx,
        &ctx.principal,
        &id,
        decision,
        &form.reason,
        state.clock.now_ms(),
        fee,
    )
    .await;
    finish(
        &state,
        &ctx,
        tx,
        result,
        &proposal_id,
        &id,
        "flash.dispute_decided",
    )
    .await
}
