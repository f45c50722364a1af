//! Stripe: Checkout Sessions that take money in, and the webhooks that report what became of it.
//!
//! Creating a session goes through `async-stripe` (its hyper client with rustls). Webhooks are
//! checked here with HMAC-SHA256 and read with `serde_json`, not with `stripe_webhook`: its typed
//! events cannot keep the raw object and refuse payloads they have no type for, while Stripe
//! adds event types and fields at any time and every one of them must get an answer.
//!
//! The API version is the one `async-stripe` pins (2026-09-30.endive). From that version on a
//! Checkout Session no longer takes `payment_method_types`; `allowed_payment_method_types`
//! narrows the payment methods enabled in the Stripe Dashboard instead (so SEPA Direct Debit
//! must be switched on there as well).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionAllowedPaymentMethodTypes,
    CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData, ProductData,
};
use stripe_checkout::{CheckoutSessionLocale, CheckoutSessionMode};

use crate::config::StripeConfig;
use crate::money::{Locale, Money};

/// How old a webhook signature may be before it is refused as a possible replay; Stripe's own
/// libraries use the same five minutes.
pub const WEBHOOK_TOLERANCE_SECONDS: i64 = 300;

/// One attempt at the Stripe API may take this long. The request runs while a person waits for
/// the redirect to Checkout, so a hanging connection must end with an error page, not never.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Talks to the Stripe API with the platform's secret key.
#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
    api_base: String,
}

// Written by hand so the key can never reach a log; `stripe::Client` hides it today, but that is
// its promise, not ours.
impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// What a person is about to pay through Stripe Checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// Our payment's id; goes into `metadata[payment_id]` and `client_reference_id`, so each
    /// webhook leads back to the payment.
    pub payment_id: String,
    /// In EUR; must be positive.
    pub amount: Money,
    /// The line item's product name, e.g. "Guthaben aufladen: Verein A".
    pub description: String,
    /// Prefills the e-mail field on the Checkout page.
    pub customer_email: Option<String>,
    pub success_url: String,
    pub cancel_url: String,
    /// Card always; SEPA Direct Debit in addition when true.
    pub allow_sepa_debit: bool,
    /// Sent as Stripe's `Idempotency-Key`: a retried create returns the session of the first.
    pub idempotency_key: String,
    /// "de" or "en" (a longer tag like "de-AT" works too); anything else lets Checkout follow
    /// the browser.
    pub locale: String,
}

/// A created Checkout Session: where to send the person, and the id its webhooks will carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

/// Why a Checkout Session could not be created. None of these is the visitor's doing, so all
/// of them show the same message; the details are for the log.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// The Stripe settings cannot make a client (an unusable key or API base URL).
    #[error("Stripe is not configured correctly: {0}")]
    Config(String),
    /// Our own request is not one Stripe would accept (no amount, no idempotency key, ...).
    #[error("invalid Stripe request: {0}")]
    InvalidRequest(String),
    /// Stripe answered with an error (`status` is its HTTP status), or could not be reached or
    /// did not answer in time (`status` is `None`).
    #[error("Stripe API error (status {status:?}): {message}")]
    Api {
        status: Option<u16>,
        message: String,
    },
    /// Stripe answered with success, but not with a session we can use.
    #[error("unexpected answer from Stripe: {0}")]
    UnexpectedResponse(String),
}

impl StripeError {
    /// The translation key of what the visitor is shown.
    #[must_use]
    pub const fn message_key(&self) -> &'static str {
        match self {
            Self::Config(_)
            | Self::InvalidRequest(_)
            | Self::Api { .. }
            | Self::UnexpectedResponse(_) => "stripe.unavailable",
        }
    }
}

impl From<stripe::StripeError> for StripeError {
    fn from(error: stripe::StripeError) -> Self {
        match error {
            stripe::StripeError::Stripe(details, status) => {
                let message = details
                    .message
                    .clone()
                    .unwrap_or_else(|| details.type_.as_str().to_owned());
                Self::Api {
                    status: Some(status),
                    message,
                }
            }
            stripe::StripeError::ClientError(message) => Self::Api {
                status: None,
                message,
            },
            stripe::StripeError::Timeout => Self::Api {
                status: None,
                message: "no answer from Stripe in time".into(),
            },
            stripe::StripeError::JSONDeserialize(message) => Self::UnexpectedResponse(message),
            stripe::StripeError::ConfigError(message) => Self::Config(message),
        }
    }
}

impl StripeGateway {
    /// A client for the API at `config.api_base` (`https://api.stripe.com` in production, a
    /// fake server in tests).
    ///
    /// # Errors
    /// [`StripeError::Config`] if the key is empty or not usable in a header, or the API base is
    /// not an http(s) URL.
    pub fn from_config(config: &StripeConfig) -> Result<Self, StripeError> {
        let secret = config.secret_key.expose();
        if secret.is_empty() {
            return Err(StripeError::Config("stripe.secret_key is empty".into()));
        }
        let mut base = url::Url::parse(config.api_base.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                StripeError::Config(format!(
                    "stripe.api_base `{}` is not an http(s) URL",
                    config.api_base
                ))
            })?;
        // The client appends "v1/..." to the base as text, so the base has to end in a slash.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let api_base = base.to_string();
        let client = ClientBuilder::new(secret)
            .url(api_base.clone())
            .timeout(REQUEST_TIMEOUT)
            .app_info("Allmende", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            // The builder's messages name the setting, never the key's value.
            .map_err(|e| StripeError::Config(e.to_string()))?;
        Ok(Self { client, api_base })
    }

    /// Creates a hosted Checkout Session in payment mode for one line item of `request.amount`.
    ///
    /// # Errors
    /// [`StripeError::InvalidRequest`] before anything is sent if the request is incomplete;
    /// [`StripeError::Api`] if Stripe refuses it or cannot be reached;
    /// [`StripeError::UnexpectedResponse`] if the answer is not a usable session.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, StripeError> {
        let create = build_create(request)?;
        let key = IdempotencyKey::new(&request.idempotency_key)
            .map_err(|e| StripeError::InvalidRequest(format!("idempotency key: {e}")))?;
        let result = create
            .customize()
            // Idempotent runs the request once; the caller retries with the same key.
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await;
        let session = match result {
            Ok(session) => session,
            Err(error) => {
                let error = StripeError::from(error);
                tracing::warn!(payment_id = %request.payment_id, %error, "creating a Stripe Checkout Session failed");
                return Err(error);
            }
        };
        let id = session.id.as_str().to_owned();
        let url = session.url.ok_or_else(|| {
            StripeError::UnexpectedResponse(format!("Checkout Session {id} has no url"))
        })?;
        tracing::info!(payment_id = %request.payment_id, session_id = %id, "Stripe Checkout Session created");
        Ok(CheckoutSession { id, url })
    }
}

/// A transfer Stripe has made to a connected account: confirmed by its answer to the create
/// request, or found afterwards by asking for the payout's transfer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// `tr_...`
    pub id: String,
    pub amount: Money,
    /// The connected account, `acct_...`.
    pub destination: String,
}

/// The transfer group of a payout's transfers: set on every try, so that Stripe can be asked
/// afterwards whether a try whose answer was lost was carried out.
#[must_use]
pub fn transfer_group(payout_id: &str) -> String {
    format!("payout:{payout_id}")
}

impl StripeError {
    /// Whether Stripe definitely did not carry out the request, so a new try may use a new
    /// idempotency key: the request never left (bad settings or request), or Stripe refused it
    /// with a 4xx other than 409 (a concurrent request with the same key), 424 and 429 (try
    /// again). A 5xx, no answer, or an answer we cannot read leave the outcome open: the next try
    /// keeps the key, and Stripe is asked first.
    #[must_use]
    pub fn is_definite_refusal(&self) -> bool {
        match self {
            Self::Config(_) | Self::InvalidRequest(_) => true,
            Self::Api {
                status: Some(status),
                ..
            } => (400..500).contains(status) && !matches!(status, 409 | 424 | 429),
            Self::Api { status: None, .. } | Self::UnexpectedResponse(_) => false,
        }
    }
}

fn transfer_of(transfer: &stripe_connect::Transfer) -> Transfer {
    Transfer {
        id: transfer.id.as_str().to_owned(),
        amount: Money::from_cents(transfer.amount),
        destination: transfer
            .destination
            .as_ref()
            .map(|d| d.id().as_str().to_owned())
            .unwrap_or_default(),
    }
}

impl StripeGateway {
    /// Transfers `amount` to a connected account (Stripe Connect) for a payout. The idempotency
    /// key comes from the payout, so a retried request pays once; the payout's transfer group
    /// and `metadata[payout_id]` let [`Self::find_transfers`] find it afterwards.
    ///
    /// # Errors
    /// [`StripeError::InvalidRequest`] for a non-positive amount or an unusable key;
    /// [`StripeError::Api`] if Stripe refuses it or cannot be reached (`status` is `None` when
    /// the outcome is unknown); see [`StripeError::is_definite_refusal`].
    pub async fn create_transfer(
        &self,
        destination: &str,
        amount: Money,
        description: &str,
        idempotency_key: &str,
        payout_id: &str,
    ) -> Result<Transfer, StripeError> {
        if !amount.is_positive() || !destination.starts_with("acct_") {
            return Err(StripeError::InvalidRequest(
                "a transfer needs a positive amount and a connected account (acct_…)".into(),
            ));
        }
        let key = IdempotencyKey::new(idempotency_key)
            .map_err(|e| StripeError::InvalidRequest(format!("idempotency key: {e}")))?;
        let metadata = HashMap::from([("payout_id".to_owned(), payout_id.to_owned())]);
        let transfer =
            stripe_connect::transfer::CreateTransfer::new(stripe_types::Currency::EUR, destination)
                .amount(amount.cents())
                .description(description)
                .transfer_group(transfer_group(payout_id))
                .metadata(metadata)
                .customize()
                .request_strategy(RequestStrategy::Idempotent(key))
                .send(&self.client)
                .await
                .map_err(StripeError::from)?;
        tracing::info!(transfer = %transfer.id.as_str(), %destination, "Stripe transfer created");
        Ok(transfer_of(&transfer))
    }

    /// The transfers Stripe has made to `destination` for a payout (its transfer group): how a
    /// try whose answer was lost is settled before the payout is paid, tried again or returned.
    ///
    /// # Errors
    /// [`StripeError::Api`] if Stripe cannot be asked; then nothing is known.
    pub async fn find_transfers(
        &self,
        destination: &str,
        payout_id: &str,
    ) -> Result<Vec<Transfer>, StripeError> {
        let group = transfer_group(payout_id);
        let list = stripe_connect::transfer::ListTransfer::new()
            .destination(destination)
            .transfer_group(group.clone())
            .limit(100)
            .send(&self.client)
            .await
            .map_err(StripeError::from)?;
        if list.has_more {
            // A hundred tries of one payout cannot happen; do not settle on a partial answer.
            return Err(StripeError::UnexpectedResponse(format!(
                "more than 100 transfers in the group {group}"
            )));
        }
        Ok(list
            .data
            .iter()
            // Defensive: only what is ours, should the filter not have applied.
            .filter(|t| {
                t.transfer_group.as_deref() == Some(group.as_str())
                    || t.metadata.get("payout_id").map(String::as_str) == Some(payout_id)
            })
            .map(transfer_of)
            .filter(|t| t.destination == destination)
            .collect())
    }
}

/// The create request, checked before it leaves: Stripe would refuse most of these with a
/// message that is harder to trace back.
fn build_create(request: &CheckoutRequest) -> Result<CreateCheckoutSession, StripeError> {
    let invalid = |what: &str| Err(StripeError::InvalidRequest(what.to_owned()));
    if !request.amount.is_positive() {
        return invalid("the amount must be positive");
    }
    if request.payment_id.trim().is_empty() {
        return invalid("the payment id is empty");
    }
    if request.description.trim().is_empty() {
        return invalid("the description is empty");
    }
    if request.success_url.trim().is_empty() || request.cancel_url.trim().is_empty() {
        return invalid("success and cancel URLs are required");
    }

    let mut price = CreateCheckoutSessionLineItemsPriceData::new(stripe_types::Currency::EUR);
    price.unit_amount = Some(request.amount.cents());
    price.product_data = Some(ProductData::new(request.description.clone()));
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price_data = Some(price);
    item.quantity = Some(1);

    let mut methods = vec![CreateCheckoutSessionAllowedPaymentMethodTypes::Card];
    if request.allow_sepa_debit {
        methods.push(CreateCheckoutSessionAllowedPaymentMethodTypes::SepaDebit);
    }
    let locale = match Locale::from_tag(&request.locale) {
        Some(Locale::De) => CheckoutSessionLocale::De,
        Some(Locale::En) => CheckoutSessionLocale::En,
        None => CheckoutSessionLocale::Auto,
    };
    let metadata = HashMap::from([("payment_id".to_owned(), request.payment_id.clone())]);

    let mut create = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .line_items(vec![item])
        .allowed_payment_method_types(methods)
        .client_reference_id(request.payment_id.clone())
        .metadata(metadata)
        .success_url(request.success_url.clone())
        .cancel_url(request.cancel_url.clone())
        .locale(locale);
    if let Some(email) = request
        .customer_email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        create = create.customer_email(email);
    }
    Ok(create)
}

/// A webhook whose signature checked out: the envelope, with the object as Stripe sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    /// `evt_...`; Stripe may deliver an event more than once, so this is the key to dedupe on.
    pub id: String,
    /// The event type, e.g. `checkout.session.completed`.
    pub kind: String,
    /// When the event happened, in Unix seconds.
    pub created: i64,
    /// `data.object`: the session, charge or dispute the event is about.
    pub object: serde_json::Value,
}

/// Why a webhook was refused. Every one of them is answered with 400, which makes Stripe retry
/// and shows the failures in its Dashboard.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The Stripe-Signature header is missing, unreadable, or signs something else (another
    /// payload, another secret).
    #[error("the Stripe-Signature header does not match the payload")]
    Signature,
    /// Correctly signed, but longer ago than [`WEBHOOK_TOLERANCE_SECONDS`]: possibly a replay.
    #[error("the webhook was signed more than {WEBHOOK_TOLERANCE_SECONDS} seconds ago")]
    TooOld,
    /// Correctly signed, but not an event we can read.
    #[error("the webhook is not a readable Stripe event: {0}")]
    Malformed(String),
}

type HmacSha256 = Hmac<Sha256>;

/// Verifies the Stripe-Signature header (scheme v1, HMAC-SHA256 over "{t}.{payload}", tolerance
/// 300 s) and parses the event envelope.
///
/// `payload` must be the request body exactly as received: re-serialised JSON no longer matches
/// the signature. Pass an empty `signature_header` when the header is missing.
///
/// # Errors
/// [`WebhookError::Signature`] for a missing, malformed or non-matching signature (also for an
/// empty secret, which would let anyone sign); [`WebhookError::TooOld`] for a valid signature
/// older than the tolerance; [`WebhookError::Malformed`] for a signed payload that is not an
/// event.
pub fn verify_webhook(
    payload: &str,
    signature_header: &str,
    secret: &str,
) -> Result<WebhookEvent, WebhookError> {
    verify_webhook_at(payload, signature_header, secret, unix_now())
}

/// [`verify_webhook`] with the current time given.
fn verify_webhook_at(
    payload: &str,
    signature_header: &str,
    secret: &str,
    now: i64,
) -> Result<WebhookEvent, WebhookError> {
    if secret.is_empty() {
        tracing::error!("stripe.webhook_secret is empty: every webhook is refused");
        return Err(WebhookError::Signature);
    }
    let header = SignatureHeader::parse(signature_header).ok_or(WebhookError::Signature)?;
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| WebhookError::Signature)?;
    // Signed as the timestamp text appears in the header, as Stripe computes it.
    mac.update(header.timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    // Several v1 signatures appear while a secret is being rolled; one match is enough.
    // `verify_slice` compares in constant time.
    let matches = header.signatures.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    });
    if !matches {
        return Err(WebhookError::Signature);
    }
    // Checked after the signature, so only Stripe's own old deliveries are told apart. A
    // timestamp ahead of our clock is accepted, as Stripe's libraries do: only the holder of the
    // secret can sign one.
    if now.saturating_sub(header.timestamp) > WEBHOOK_TOLERANCE_SECONDS {
        return Err(WebhookError::TooOld);
    }
    parse_envelope(payload)
}

/// `t=1700000000,v1=hex,v1=hex,v0=hex`: the timestamp and every v1 signature. Other schemes (v0
/// is Stripe's test-only scheme) are ignored.
struct SignatureHeader<'a> {
    timestamp: i64,
    timestamp_text: &'a str,
    signatures: Vec<&'a str>,
}

impl<'a> SignatureHeader<'a> {
    fn parse(header: &'a str) -> Option<Self> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key {
                "t" if timestamp.is_none() => timestamp = Some(value),
                "v1" => signatures.push(value),
                _ => {}
            }
        }
        let timestamp_text = timestamp?;
        let timestamp = timestamp_text.parse::<i64>().ok()?;
        if signatures.is_empty() {
            return None;
        }
        Some(Self {
            timestamp,
            timestamp_text,
            signatures,
        })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Only what every event has; the rest of the envelope (api_version, livemode, request, ...)
/// is not needed and may change.
#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EnvelopeData,
}

#[derive(Deserialize)]
struct EnvelopeData {
    object: serde_json::Value,
}

fn parse_envelope(payload: &str) -> Result<WebhookEvent, WebhookError> {
    let envelope: Envelope =
        serde_json::from_str(payload).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    if !envelope.data.object.is_object() {
        return Err(WebhookError::Malformed(
            "data.object is not an object".into(),
        ));
    }
    Ok(WebhookEvent {
        id: envelope.id,
        kind: envelope.kind,
        created: envelope.created,
        object: envelope.data.object,
    })
}

/// The events the platform acts on; anything else is `Other(kind)` (ignored with 200 by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeEvent {
    /// `checkout.session.completed`: the person finished Checkout. `paid` is false for methods
    /// that settle later (SEPA Direct Debit); their outcome comes as one of the next two.
    CheckoutCompleted {
        session_id: String,
        payment_id: Option<String>,
        paid: bool,
        payment_intent: Option<String>,
    },
    /// `checkout.session.async_payment_succeeded`: a delayed payment arrived.
    AsyncPaymentSucceeded {
        session_id: String,
        payment_id: Option<String>,
        payment_intent: Option<String>,
    },
    /// `checkout.session.async_payment_failed`: a delayed payment did not arrive.
    AsyncPaymentFailed {
        session_id: String,
        payment_id: Option<String>,
    },
    /// `charge.refunded`: `amount_refunded` is the total refunded so far, as Stripe reports it,
    /// not this refund alone.
    ChargeRefunded {
        payment_intent: Option<String>,
        amount_refunded: Money,
    },
    /// `charge.dispute.created`: the payer's bank disputes `amount`.
    DisputeCreated {
        payment_intent: Option<String>,
        amount: Money,
    },
    /// Any other event type.
    Other(String),
}

/// Reads the fields the platform needs from a verified event.
///
/// # Errors
/// [`WebhookError::Malformed`] if a known event lacks a field it always has, or reports an
/// amount in another currency than EUR (ours are all EUR, so that is not one of ours to book).
pub fn parse_event(event: &WebhookEvent) -> Result<StripeEvent, WebhookError> {
    let object = &event.object;
    let parsed = match event.kind.as_str() {
        "checkout.session.completed" => StripeEvent::CheckoutCompleted {
            session_id: required_str(object, "id")?,
            payment_id: payment_id_of_session(object),
            paid: required_str(object, "payment_status")? == "paid",
            payment_intent: expandable_id(object, "payment_intent"),
        },
        "checkout.session.async_payment_succeeded" => StripeEvent::AsyncPaymentSucceeded {
            session_id: required_str(object, "id")?,
            payment_id: payment_id_of_session(object),
            payment_intent: expandable_id(object, "payment_intent"),
        },
        "checkout.session.async_payment_failed" => StripeEvent::AsyncPaymentFailed {
            session_id: required_str(object, "id")?,
            payment_id: payment_id_of_session(object),
        },
        "charge.refunded" => StripeEvent::ChargeRefunded {
            payment_intent: expandable_id(object, "payment_intent"),
            amount_refunded: eur_amount(object, "amount_refunded")?,
        },
        "charge.dispute.created" => StripeEvent::DisputeCreated {
            payment_intent: expandable_id(object, "payment_intent"),
            amount: eur_amount(object, "amount")?,
        },
        other => StripeEvent::Other(other.to_owned()),
    };
    Ok(parsed)
}

fn required_str(object: &serde_json::Value, field: &str) -> Result<String, WebhookError> {
    object
        .get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| WebhookError::Malformed(format!("data.object.{field} is missing")))
}

/// Our payment id: from the metadata we set, else from `client_reference_id` (set to the same).
fn payment_id_of_session(object: &serde_json::Value) -> Option<String> {
    object
        .get("metadata")
        .and_then(|m| m.get("payment_id"))
        .and_then(serde_json::Value::as_str)
        .or_else(|| {
            object
                .get("client_reference_id")
                .and_then(serde_json::Value::as_str)
        })
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// An id field that Stripe sends as a string, or as the whole object when it was expanded.
fn expandable_id(object: &serde_json::Value, field: &str) -> Option<String> {
    let value = object.get(field)?;
    value
        .as_str()
        .or_else(|| value.get("id").and_then(serde_json::Value::as_str))
        .map(str::to_owned)
}

/// A non-negative amount in cents whose `currency` (when given) is EUR.
fn eur_amount(object: &serde_json::Value, field: &str) -> Result<Money, WebhookError> {
    if let Some(currency) = object.get("currency").and_then(serde_json::Value::as_str)
        && !currency.eq_ignore_ascii_case("eur")
    {
        return Err(WebhookError::Malformed(format!(
            "data.object.currency is {currency}, not eur"
        )));
    }
    object
        .get(field)
        .and_then(serde_json::Value::as_i64)
        .filter(|cents| *cents >= 0)
        .map(Money::from_cents)
        .ok_or_else(|| {
            WebhookError::Malformed(format!(
                "data.object.{field} is not a non-negative amount in cents"
            ))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use serde_json::json;
    use stripe_webhook::Webhook;

    const SECRET: &str = "whsec_unit_test";

    fn event(kind: &str, object: serde_json::Value) -> String {
        json!({
            "id": "evt_unit",
            "object": "event",
            "api_version": "2026-09-30.endive",
            "created": 1_790_000_000,
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind,
        })
        .to_string()
    }

    fn config(api_base: &str) -> StripeConfig {
        StripeConfig {
            secret_key: Secret::new("sk_test_unit"),
            webhook_secret: Secret::new(SECRET),
            publishable_key: None,
            api_base: api_base.into(),
        }
    }

    #[test]
    fn the_gateway_needs_an_http_api_base_and_hides_the_key() {
        for bad in ["", "api.stripe.com", "ftp://api.stripe.com", "http://"] {
            let err = StripeGateway::from_config(&config(bad)).unwrap_err();
            assert!(matches!(err, StripeError::Config(_)), "{bad}: {err:?}");
            assert_eq!(err.message_key(), "stripe.unavailable");
        }
        let gateway = StripeGateway::from_config(&config("http://127.0.0.1:9/prefix")).unwrap();
        let shown = format!("{gateway:?}");
        assert!(!shown.contains("sk_test_unit"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:9/prefix/"), "{shown}");
    }

    #[test]
    fn an_incomplete_request_is_refused_before_sending() {
        let good = CheckoutRequest {
            payment_id: "pay_1".into(),
            amount: Money::from_cents(500),
            description: "Guthaben".into(),
            customer_email: None,
            success_url: "https://a.example/ok".into(),
            cancel_url: "https://a.example/cancel".into(),
            allow_sepa_debit: false,
            idempotency_key: "key".into(),
            locale: "de".into(),
        };
        assert!(build_create(&good).is_ok());
        for bad in [
            CheckoutRequest {
                amount: Money::ZERO,
                ..good.clone()
            },
            CheckoutRequest {
                amount: Money::from_cents(-1),
                ..good.clone()
            },
            CheckoutRequest {
                payment_id: " ".into(),
                ..good.clone()
            },
            CheckoutRequest {
                description: String::new(),
                ..good.clone()
            },
        ] {
            assert!(matches!(
                build_create(&bad),
                Err(StripeError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn signature_header_variants() {
        let payload = event("charge.refunded", json!({"amount_refunded": 1}));
        let now = 1_790_000_000;
        let header = Webhook::generate_test_header(&payload, SECRET, Some(now));
        assert!(verify_webhook_at(&payload, &header, SECRET, now).is_ok());

        // Spaces after commas, an extra v0 and a second (rolled) v1 signature.
        let v1 = header.split("v1=").nth(1).unwrap();
        let lenient = format!("t={now}, v0=abcd, v1={}, v1={v1}", "00".repeat(32));
        assert!(verify_webhook_at(&payload, &lenient, SECRET, now).is_ok());

        for bad in [
            String::new(),
            "garbage".into(),
            format!("t={now}"),
            format!("v1={v1}"),
            format!("t=soon,v1={v1}"),
            format!("t={now},v1=not-hex"),
            format!("t={},v1={v1}", now + 1),
        ] {
            assert_eq!(
                verify_webhook_at(&payload, &bad, SECRET, now),
                Err(WebhookError::Signature),
                "{bad}"
            );
        }
        assert_eq!(
            verify_webhook_at(&payload, &header, "", now),
            Err(WebhookError::Signature),
            "an empty secret must not verify anything"
        );
    }

    #[test]
    fn tolerance_is_five_minutes_back() {
        let payload = event("charge.refunded", json!({"amount_refunded": 1}));
        let signed = 1_790_000_000;
        let header = Webhook::generate_test_header(&payload, SECRET, Some(signed));
        assert!(verify_webhook_at(&payload, &header, SECRET, signed + 300).is_ok());
        assert_eq!(
            verify_webhook_at(&payload, &header, SECRET, signed + 301),
            Err(WebhookError::TooOld)
        );
        assert!(verify_webhook_at(&payload, &header, SECRET, signed - 600).is_ok());
    }

    #[test]
    fn a_signed_payload_that_is_no_event_is_malformed() {
        for payload in [
            "not json".to_owned(),
            json!({"id": "evt_1", "type": "x", "created": 1}).to_string(),
            json!({"id": "evt_1", "type": "x", "created": 1, "data": {"object": 5}}).to_string(),
        ] {
            let header = Webhook::generate_test_header(&payload, SECRET, None);
            assert!(matches!(
                verify_webhook(&payload, &header, SECRET),
                Err(WebhookError::Malformed(_))
            ));
        }
    }

    fn parsed(kind: &str, object: serde_json::Value) -> Result<StripeEvent, WebhookError> {
        let payload = event(kind, object);
        let header = Webhook::generate_test_header(&payload, SECRET, None);
        parse_event(&verify_webhook(&payload, &header, SECRET)?)
    }

    #[test]
    fn sessions_fall_back_to_client_reference_and_expanded_intents() {
        let event = parsed(
            "checkout.session.completed",
            json!({
                "id": "cs_1", "object": "checkout.session", "payment_status": "no_payment_required",
                "metadata": {}, "client_reference_id": "pay_9",
                "payment_intent": {"id": "pi_9", "object": "payment_intent"},
            }),
        )
        .unwrap();
        assert_eq!(
            event,
            StripeEvent::CheckoutCompleted {
                session_id: "cs_1".into(),
                payment_id: Some("pay_9".into()),
                paid: false,
                payment_intent: Some("pi_9".into()),
            }
        );
        let event = parsed(
            "checkout.session.async_payment_failed",
            json!({"id": "cs_2", "metadata": null, "client_reference_id": null}),
        )
        .unwrap();
        assert_eq!(
            event,
            StripeEvent::AsyncPaymentFailed {
                session_id: "cs_2".into(),
                payment_id: None
            }
        );
    }

    #[test]
    fn known_events_without_their_fields_are_malformed() {
        for (kind, object) in [
            (
                "checkout.session.completed",
                json!({"id": "cs_1", "metadata": {}}),
            ),
            ("checkout.session.async_payment_succeeded", json!({})),
            ("charge.refunded", json!({"payment_intent": "pi_1"})),
            (
                "charge.refunded",
                json!({"amount_refunded": -5, "currency": "eur"}),
            ),
            (
                "charge.dispute.created",
                json!({"amount": 100, "currency": "usd"}),
            ),
        ] {
            assert!(
                matches!(
                    parsed(kind, object.clone()),
                    Err(WebhookError::Malformed(_))
                ),
                "{kind} {object}"
            );
        }
    }
}
