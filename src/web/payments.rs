//! Paying and being paid: an organisation's payments (top-ups, shares, dues by Stripe or bank
//! transfer), receipts, the treasurer's worklist (confirmations, bank statements, unmatched
//! entries, shortfalls), and the Stripe webhook.

use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::{errors, invalid, see_other, upload_error};
use super::{AppError, AppState, Ctx, MAX_STATEMENT_UPLOAD_BYTES, MAX_WEBHOOK_BYTES, value};
use crate::authz::{Action, authorize};
use crate::ledger::LedgerError;
use crate::members::{self, Organisation, membership};
use crate::payments::{self, Method, PaymentError, Purpose, stripe};
use crate::people::{FieldErrors, new_token};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/organisations/{slug}/payments",
            get(show_organisation_payments).post(start_payment),
        )
        .route("/payments/{id}", get(show_payment))
        .route("/payments/{id}/receipt", get(show_receipt))
        .route("/treasurer/payments", get(show_worklist))
        .route("/treasurer/payments/{id}/confirm", post(confirm_payment))
        .route(
            "/treasurer/statements",
            post(import_statement).layer(DefaultBodyLimit::max(MAX_STATEMENT_UPLOAD_BYTES)),
        )
        .route(
            "/treasurer/bank-entries/{entry_ref}/assign",
            post(assign_entry),
        )
        .route(
            "/webhooks/stripe",
            post(receive_stripe_webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        )
}

impl From<PaymentError> for AppError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Denied(denied) => denied.into(),
            PaymentError::UnknownPayment | PaymentError::UnknownEntry => AppError::not_found(),
            PaymentError::NotOpen { .. } => AppError::conflict("payment.not_open"),
            PaymentError::NothingOwed => AppError::conflict("payment.nothing_owed"),
            PaymentError::NotMember => AppError::conflict("payment.not_member"),
            PaymentError::InvalidKey => AppError::bad_request("hardening.keys.invalid"),
            PaymentError::KeyConflict => AppError::conflict("hardening.keys.conflict"),
            PaymentError::Invalid(_) => AppError::bad_request("error.bad_request"),
            PaymentError::Statement { .. } => AppError::bad_request("camt.not_camt053"),
            PaymentError::ImplausibleAmount { .. } => {
                AppError::conflict("hardening.bank.implausible_amount")
            }
            // A balance or a payment's sum that would leave the range of whole cents: the
            // input is wrong, and nothing was booked.
            PaymentError::Money(_)
            | PaymentError::Ledger(LedgerError::Overflow { .. } | LedgerError::Money(_)) => {
                AppError::conflict("hardening.bank.out_of_range")
            }
            other => AppError::internal(other),
        }
    }
}

async fn organisation(state: &AppState, slug: &str) -> Result<Organisation, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    members::find_by_slug(&mut conn, slug)
        .await?
        .ok_or_else(AppError::not_found)
}

async fn organisation_page(
    state: &AppState,
    ctx: &Ctx,
    org: &Organisation,
    problems: &FieldErrors,
    amount: &str,
) -> Result<Html<String>, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let list = payments::of_organisation(&mut conn, &ctx.principal, &org.id).await?;
    let entry = membership::entry_of(&mut conn, &org.id).await?;
    let obligations = match &entry {
        Some(entry) => membership::obligations_of(&mut conn, &entry.membership_id).await?,
        None => Vec::new(),
    };
    let wallet = crate::ledger::balance(&mut conn, &crate::ledger::AccountId::wallet(&org.id))
        .await
        .unwrap_or(crate::money::Money::ZERO);
    drop(conn);
    state.render(
        ctx,
        "payments/organisation.html",
        context! {
            org => value(org),
            payments => value(&list),
            open_obligations => value(&obligations.iter().filter(|o| o.status != "paid").collect::<Vec<_>>()),
            wallet => wallet,
            may_pay => ctx.principal.is_admin_of(&org.id),
            stripe_enabled => state.stripe.is_some(),
            errors => errors(ctx.locale, problems),
            amount => amount,
        },
    )
}

async fn show_organisation_payments(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    Ok(
        organisation_page(&state, &ctx, &org, &FieldErrors::new(), "")
            .await?
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
struct PaymentForm {
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    obligation_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    method: String,
}

async fn start_payment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<PaymentForm>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    authorize(
        &ctx.principal,
        Action::PayForOrganisation {
            organisation_id: &org.id,
        },
    )?;
    let purpose = Purpose::parse(&form.purpose)
        .ok_or_else(|| AppError::bad_request("payment.purpose_invalid"))?;
    let method = match Method::parse(&form.method) {
        Some(Method::Stripe) if state.stripe.is_none() => None,
        other => other,
    }
    .ok_or_else(|| AppError::bad_request("payment.method_invalid"))?;
    let mut tx = state.db.begin().await?;
    let payment = match payments::start(
        &mut tx,
        &ctx.principal,
        &org.id,
        payments::PaymentRequest {
            purpose,
            obligation_id: (!form.obligation_id.is_empty()).then_some(form.obligation_id.as_str()),
            amount: &form.amount,
            method,
        },
        state.config.max_amount,
    )
    .await
    {
        Ok(payment) => payment,
        Err(PaymentError::Invalid(problems)) => {
            drop(tx);
            return Ok(invalid(
                organisation_page(&state, &ctx, &org, &problems, &form.amount).await?,
            ));
        }
        Err(other) => return Err(other.into()),
    };
    tx.commit().await?;
    let (Method::Stripe, Some(gateway)) = (method, state.stripe.as_ref()) else {
        return Ok(see_other(&format!("/payments/{}", payment.id)));
    };
    // Stripe is called outside any database transaction: on SQLite a writing transaction
    // holds the database's write lock, and a slow Stripe must not stop everybody else. If
    // Stripe cannot be reached, the payment is cancelled, so nothing is left open. The
    // idempotency key makes a retry of this request get the same session.
    let base = state
        .config
        .base_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let description = ctx.t(&format!("payment.purpose.{}", purpose.as_str()));
    let request = stripe::CheckoutRequest {
        payment_id: payment.id.clone(),
        amount: payment.amount,
        description: format!("{description}: {}", org.legal_name),
        customer_email: ctx.person.as_ref().map(|p| p.email.clone()),
        success_url: format!("{base}/payments/{}?checkout=success", payment.id),
        cancel_url: format!("{base}/payments/{}?checkout=cancelled", payment.id),
        allow_sepa_debit: true,
        idempotency_key: format!("checkout:{}", payment.id),
        locale: ctx.locale.as_str().to_owned(),
    };
    let session = gateway.create_checkout_session(&request).await;
    let mut tx = state.db.begin().await?;
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            tracing::warn!(%error, "Stripe Checkout could not be started");
            payments::cancel_unpaid(&mut tx, &payment.id).await?;
            tx.commit().await?;
            return Err(AppError::status(
                StatusCode::BAD_GATEWAY,
                "stripe.unavailable",
            ));
        }
    };
    payments::attach_checkout_session(&mut tx, &payment.id, &session.id).await?;
    tx.commit().await?;
    Ok(see_other(&session.url))
}

#[derive(Debug, Deserialize)]
struct CheckoutQuery {
    #[serde(default)]
    checkout: String,
}

async fn show_payment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<CheckoutQuery>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let payment = payments::visible(&mut conn, &ctx.principal, &id).await?;
    let receipts = payments::receipts_of(&mut conn, &id).await?;
    drop(conn);
    let bank = &state.config.bank;
    let html = state.render(
        &ctx,
        "payments/show.html",
        context! {
            payment => value(&payment),
            receipts => receipts.iter().map(|(amount, source, at)| context! { amount => *amount, source => source, at => at }).collect::<Vec<_>>(),
            bank => context! { holder => bank.account_holder.clone(), iban => bank.iban_formatted(), bic => bank.bic.clone(), name => bank.name.clone() },
            checkout => query.checkout,
        },
    )?;
    Ok(html.into_response())
}

async fn show_receipt(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let payment = payments::visible(&mut conn, &ctx.principal, &id).await?;
    if !payment.received.is_positive() {
        return Err(AppError::conflict("payment.no_receipt_yet"));
    }
    let receipts = payments::receipts_of(&mut conn, &id).await?;
    let org = members::find(&mut conn, &payment.organisation_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    drop(conn);
    let html = state.render(
        &ctx,
        "payments/receipt.html",
        context! {
            payment => value(&payment),
            org => value(&org),
            receipts => receipts.iter().map(|(amount, source, at)| context! { amount => *amount, source => source, at => at }).collect::<Vec<_>>(),
            cooperative => context! {
                name => state.config.cooperative_name.clone(),
                address => state.config.cooperative_address.clone(),
            },
        },
    )?;
    Ok(html.into_response())
}

async fn worklist_page(
    state: &AppState,
    ctx: &Ctx,
    report: Option<payments::ImportReport>,
    import_error: Option<String>,
) -> Result<Html<String>, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let worklist = payments::worklist(&mut conn, &ctx.principal, state.config.max_amount).await?;
    drop(conn);
    state.render(
        ctx,
        "payments/worklist.html",
        context! {
            worklist => value(&worklist),
            report => value(&report),
            import_error => import_error,
            may_manage => authorize(&ctx.principal, Action::ManagePayments).is_ok(),
            form_key => new_token(),
        },
    )
}

async fn show_worklist(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    Ok(worklist_page(&state, &ctx, None, None)
        .await?
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    received: String,
    #[serde(default)]
    form_key: String,
}

async fn confirm_payment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match payments::confirm(
        &mut tx,
        &ctx.principal,
        &id,
        &form.received,
        &form.form_key,
        state.config.max_amount,
    )
    .await
    {
        Ok(_) => {}
        Err(PaymentError::Invalid(_)) => {
            return Err(AppError::bad_request("payment.received_invalid"));
        }
        Err(other) => return Err(other.into()),
    }
    tx.commit().await?;
    ctx.flash("flash.payment_confirmed");
    Ok(see_other("/treasurer/payments"))
}

async fn import_statement(
    State(state): State<AppState>,
    ctx: Ctx,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::ManagePayments)?;
    let mut xml = String::new();
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        if field.name() == Some("statement") {
            let bytes = field.bytes().await.map_err(upload_error)?;
            xml = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    let mut tx = state.db.begin().await?;
    match payments::import_statement(&mut tx, &ctx.principal, &xml, state.config.max_amount).await {
        Ok(report) => {
            tx.commit().await?;
            Ok(worklist_page(&state, &ctx, Some(report), None)
                .await?
                .into_response())
        }
        Err(PaymentError::Statement { key, detail }) => {
            drop(tx);
            let message = format!("{} ({detail})", ctx.t(key));
            Ok(invalid(
                worklist_page(&state, &ctx, None, Some(message)).await?,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    #[serde(default)]
    reference: String,
}

async fn assign_entry(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(entry_ref): Path<String>,
    Form(form): Form<AssignForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match payments::assign_entry(
        &mut tx,
        &ctx.principal,
        &entry_ref,
        &form.reference,
        state.config.max_amount,
    )
    .await
    {
        Ok(_) => {}
        Err(PaymentError::Invalid(_)) => {
            return Err(AppError::bad_request("payment.reference_unknown"));
        }
        Err(other) => return Err(other.into()),
    }
    tx.commit().await?;
    ctx.flash("flash.payment_confirmed");
    Ok(see_other("/treasurer/payments"))
}

/// Stripe's webhook: a valid signature or 400; each event handled once; events this platform
/// does not act on are acknowledged with 200 so Stripe stops sending them. A refund or dispute
/// that arrives before its payment's completion is parked (200) and applied by the completion.
async fn receive_stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(config) = state.config.stripe.as_ref() else {
        return (StatusCode::NOT_FOUND, "Stripe is not configured").into_response();
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let event = match stripe::verify_webhook(&body, signature, config.webhook_secret.expose()) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "Stripe webhook refused");
            return (StatusCode::BAD_REQUEST, "invalid signature").into_response();
        }
    };
    let result = async {
        let mut tx = state.db.begin().await?;
        payments::handle_stripe_event(&mut tx, &event, state.clock.now_ms()).await?;
        tx.commit().await?;
        Ok::<(), PaymentError>(())
    }
    .await;
    match result {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(PaymentError::Statement { detail, .. }) => {
            tracing::warn!(event = %event.id, %detail, "malformed Stripe event");
            (StatusCode::BAD_REQUEST, "malformed event").into_response()
        }
        Err(error) => {
            // Stripe retries on 5xx: nothing was committed, so the retry starts afresh.
            tracing::error!(event = %event.id, ?error, "Stripe event failed");
            (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
        }
    }
}
