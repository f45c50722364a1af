//! The treasurer's payouts: payable balances, creating payouts, the SEPA file, marking paid or
//! returned, Stripe transfers; the credit note; a project's releases and payouts for its
//! maintainers. Each handler calls one function of `payouts`.

use axum::Form;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::see_other;
use super::{AppError, AppState, Ctx, value};
use crate::authz::{Action, Denied, authorize};
use crate::payouts::{self, PayoutError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/treasurer/payouts", get(show_payouts).post(create_payout))
        .route("/treasurer/payouts/export", post(export_payouts))
        .route("/treasurer/payouts/exports/{id}", get(download_export))
        .route("/payouts/{id}/paid", post(mark_paid))
        .route("/payouts/{id}/return", post(return_payout))
        .route("/payouts/{id}/transfer", post(transfer_payout))
        .route("/payouts/{id}/check", post(check_payout))
        .route("/payouts/{id}/credit-note", get(show_credit_note))
        .route("/projects/{slug}/money", get(show_project_money))
}

impl From<PayoutError> for AppError {
    fn from(error: PayoutError) -> Self {
        match error {
            PayoutError::Denied(denied) => denied.into(),
            PayoutError::Unknown => AppError::not_found(),
            PayoutError::NoPayoutDetails => AppError::conflict("payouts.no_details"),
            PayoutError::NothingToPay => AppError::conflict("payouts.nothing_to_pay"),
            PayoutError::WrongStatus { .. } => AppError::conflict("payouts.wrong_status"),
            PayoutError::NoneSelected => AppError::bad_request("payouts.none_selected"),
            PayoutError::TransferUnderWay => {
                AppError::conflict("hardening.stripe.transfer_under_way")
            }
            PayoutError::TransferInDoubt => AppError::conflict("hardening.stripe.return_in_doubt"),
            PayoutError::Sepa(_) => {
                AppError::status(StatusCode::UNPROCESSABLE_ENTITY, "payouts.sepa_invalid")
            }
            other => AppError::internal(other),
        }
    }
}

async fn show_payouts(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::ManagePayments)?;
    let mut conn = state.db.pool().acquire().await?;
    let payables = payouts::payables(&mut conn).await?;
    let list = payouts::list(&mut conn, None).await?;
    let problems = payouts::transfer_problems(&mut conn).await?;
    drop(conn);
    let in_doubt: Vec<&str> = list
        .iter()
        .filter(|p| p.transfer_in_doubt())
        .map(|p| p.id.as_str())
        .collect();
    Ok(state
        .render(
            &ctx,
            "payouts/treasurer.html",
            context! {
                payables => value(&payables),
                payouts => value(&list),
                in_doubt => value(&in_doubt),
                transfer_problems => value(&problems),
                stripe_enabled => state.stripe.is_some(),
            },
        )?
        .into_response())
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    #[serde(default)]
    project_id: String,
}

async fn create_payout(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    let payout = payouts::create(
        &mut tx,
        &ctx.principal,
        &form.project_id,
        state.clock.now_ms(),
    )
    .await?;
    tx.commit().await?;
    if payout.method == "stripe" {
        return transfer(&state, &ctx, &payout.id).await;
    }
    ctx.flash("flash.payout_created");
    Ok(see_other("/treasurer/payouts"))
}

/// Sends a Stripe payout: the order in one transaction, Stripe outside any, the answer in a
/// second one (a slow Stripe never holds the database). A payout whose earlier try is in doubt
/// is first settled by asking Stripe: paid if the transfer happened, else sent again under the
/// same key.
async fn transfer(state: &AppState, ctx: &Ctx, payout_id: &str) -> Result<Response, AppError> {
    let Some(gateway) = state.stripe.as_ref() else {
        return Err(AppError::conflict("payouts.stripe_unavailable"));
    };
    let mut order = {
        let mut tx = state.db.begin().await?;
        let order =
            payouts::order_transfer(&mut tx, &ctx.principal, payout_id, state.clock.now_ms())
                .await?;
        tx.commit().await?;
        order
    };
    if order.in_doubt {
        if lookup(state, ctx, gateway, &order).await? {
            ctx.flash("flash.payout_transferred");
            return Ok(see_other("/treasurer/payouts"));
        }
        let mut tx = state.db.begin().await?;
        order = payouts::order_transfer(&mut tx, &ctx.principal, payout_id, state.clock.now_ms())
            .await?;
        tx.commit().await?;
        if order.in_doubt {
            return Err(AppError::conflict("hardening.stripe.transfer_under_way"));
        }
    }
    let description = format!("Allmende: {}", order.payout.project_name);
    let outcome = match gateway
        .create_transfer(
            &order.destination,
            order.payout.amount,
            &description,
            &order.idempotency_key,
            &order.payout.id,
        )
        .await
    {
        Ok(transfer) => payouts::TransferOutcome::Confirmed {
            transfer,
            idempotency_key: order.idempotency_key.clone(),
        },
        Err(error) => payouts::TransferOutcome::Failed {
            definite: error.is_definite_refusal(),
            failure: error.to_string(),
        },
    };
    let paid = matches!(outcome, payouts::TransferOutcome::Confirmed { .. });
    let mut tx = state.db.begin().await?;
    payouts::record_transfer(
        &mut tx,
        &ctx.principal,
        payout_id,
        outcome,
        state.clock.now_ms(),
    )
    .await?;
    tx.commit().await?;
    ctx.flash(if paid {
        "flash.payout_transferred"
    } else {
        "flash.payout_failed"
    });
    Ok(see_other("/treasurer/payouts"))
}

/// Asks Stripe for the transfers of a payout in doubt and books what it says; true when Stripe
/// had made one (the payout is paid).
async fn lookup(
    state: &AppState,
    ctx: &Ctx,
    gateway: &crate::payments::stripe::StripeGateway,
    order: &payouts::TransferOrder,
) -> Result<bool, AppError> {
    let found = match gateway
        .find_transfers(&order.destination, &order.payout.id)
        .await
    {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(payout = %order.payout.id, %error, "asking Stripe for a payout's transfers failed");
            return Err(AppError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                "hardening.stripe.lookup_failed",
            ));
        }
    };
    let mut tx = state.db.begin().await?;
    let transferred = payouts::record_lookup(
        &mut tx,
        &ctx.principal,
        &order.payout.id,
        &found,
        state.clock.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(transferred)
}

/// "Ask Stripe": settles a payout whose try is in doubt, so that it can then be returned or
/// sent again.
async fn check_payout(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let Some(gateway) = state.stripe.as_ref() else {
        return Err(AppError::conflict("payouts.stripe_unavailable"));
    };
    let order = {
        let mut tx = state.db.begin().await?;
        let order =
            payouts::order_lookup(&mut tx, &ctx.principal, &id, state.clock.now_ms()).await?;
        tx.commit().await?;
        order
    };
    let transferred = lookup(&state, &ctx, gateway, &order).await?;
    ctx.flash(if transferred {
        "flash.payout_transferred"
    } else {
        "flash.hardening_stripe.no_transfer_found"
    });
    Ok(see_other("/treasurer/payouts"))
}

async fn transfer_payout(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    transfer(&state, &ctx, &id).await
}

fn xml_download(export_id: &str, xml: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/xml; charset=utf-8".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"pain001-{export_id}.xml\""),
            ),
        ],
        xml,
    )
        .into_response()
}

/// The selected payouts (`payout` fields, repeated) into one pain.001 file, downloaded at once.
async fn export_payouts(
    State(state): State<AppState>,
    ctx: Ctx,
    body: Bytes,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let ids: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(key, _)| key == "payout")
        .map(|(_, value)| value.into_owned())
        .collect();
    let debtor = payouts::debtor(&state.config);
    let mut tx = state.db.begin().await?;
    let export_id =
        payouts::export_sepa(&mut tx, &ctx.principal, &ids, &debtor, state.clock.now_ms()).await?;
    let xml = payouts::export_file(&mut tx, &ctx.principal, &export_id).await?;
    tx.commit().await?;
    Ok(xml_download(&export_id, xml))
}

async fn download_export(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let xml = payouts::export_file(&mut conn, &ctx.principal, &id).await?;
    Ok(xml_download(&id, xml))
}

async fn mark_paid(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    payouts::mark_paid(&mut tx, &ctx.principal, &id, state.clock.now_ms()).await?;
    tx.commit().await?;
    ctx.flash("flash.payout_paid");
    Ok(see_other("/treasurer/payouts"))
}

async fn return_payout(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    payouts::return_payout(&mut tx, &ctx.principal, &id).await?;
    tx.commit().await?;
    ctx.flash("flash.payout_returned");
    Ok(see_other("/treasurer/payouts"))
}

async fn show_credit_note(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let note = payouts::credit_note(&mut conn, &ctx.principal, &id).await?;
    drop(conn);
    Ok(state
        .render(
            &ctx,
            "payouts/credit_note.html",
            context! {
                note => value(&note),
                cooperative_name => state.config.cooperative_name.clone(),
                cooperative_address => state.config.cooperative_address.clone(),
                fee_basis_points => state.config.fee_basis_points,
            },
        )?
        .into_response())
}

/// A project's releases and payouts, for its maintainers (and the treasurer).
async fn show_project_money(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let project = crate::catalogue::find_by_slug(&mut conn, &slug)
        .await?
        .ok_or_else(AppError::not_found)?;
    authorize(
        &ctx.principal,
        Action::ViewPayoutDetails {
            project_id: &project.id,
        },
    )?;
    let releases = crate::reviews::release::of_project(&mut conn, &project.id).await?;
    let list = payouts::list(&mut conn, Some(&project.id)).await?;
    let payable =
        crate::ledger::balance(&mut conn, &crate::ledger::AccountId::payable(&project.id))
            .await
            .unwrap_or(crate::money::Money::ZERO);
    drop(conn);
    Ok(state
        .render(
            &ctx,
            "payouts/project.html",
            context! {
                project => value(&project),
                releases => value(&releases),
                payouts => value(&list),
                payable => payable,
            },
        )?
        .into_response())
}
