//! A fake Stripe API on loopback, so no test ever reaches api.stripe.com: it answers
//! `POST /v1/checkout/sessions`, `POST /v1/transfers` and `GET /v1/transfers` (filtered by
//! `transfer_group` and `destination`) the way Stripe does (form-encoded request, Checkout
//! Session JSON, idempotency keys, Stripe's error JSON), records every request, and can be told
//! to fail the next create, to make a transfer and lose its answer, or to hold transfers until
//! released. Also builds signed webhook payloads for the webhook tests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use allmende::config::{Secret, StripeConfig};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stripe_webhook::Webhook;

/// The secret key the fake server accepts; any other is answered with 401.
pub const SECRET_KEY: &str = "sk_test_allmende";
/// The webhook signing secret that goes with [`FakeStripe::config`].
pub const WEBHOOK_SECRET: &str = "whsec_test_allmende";

/// One request as the fake server received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The decoded `x-www-form-urlencoded` body in order; nested keys stay as sent
    /// (`metadata[payment_id]`, `line_items[0][price_data][unit_amount]`).
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    /// Whether `Authorization` was `Bearer` + [`SECRET_KEY`].
    pub authorization_ok: bool,
}

impl RecordedRequest {
    /// The first value of a form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of the fields whose name starts with `prefix`, in order
    /// (`allowed_payment_method_types[` gives the list).
    pub fn values(&self, prefix: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// A create request's parameters, sorted, and the session it was answered with.
type StoredSession = (Vec<(String, String)>, Value);

#[derive(Default)]
struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    fail_next: Mutex<Option<u16>>,
    /// By idempotency key.
    sessions: Mutex<HashMap<String, StoredSession>>,
    /// Every transfer made, oldest first (a replay under the same key makes none).
    transfers: Mutex<Vec<Value>>,
    /// The next transfer is made, but answered with this status (its answer is "lost").
    lose_next_answer: Mutex<Option<u16>>,
    /// While true, `POST /v1/transfers` waits until [`FakeStripe::release_transfers`].
    hold: std::sync::atomic::AtomicBool,
    released: tokio::sync::Notify,
    /// Signalled whenever a `POST /v1/transfers` arrives.
    transfer_arrived: tokio::sync::Notify,
}

/// Session ids are unique across all fake servers of the test binary, as Stripe's are.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct FakeStripe {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeStripe {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> FakeStripe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(State::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { addr, state, task }
    }

    /// The API base for `stripe.api_base`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stripe settings pointing at this server, with [`SECRET_KEY`] and [`WEBHOOK_SECRET`].
    pub fn config(&self) -> StripeConfig {
        StripeConfig {
            secret_key: Secret::new(SECRET_KEY),
            webhook_secret: Secret::new(WEBHOOK_SECRET),
            publishable_key: Some("pk_test_allmende".into()),
            api_base: self.url(),
        }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The next `POST /v1/checkout/sessions` is answered with `status` and Stripe's error JSON
    /// (500 → api_error, 402 → card_error, others → invalid_request_error). Like a request
    /// Stripe refuses before running it, the failure is not stored under its idempotency key.
    pub fn fail_next(&self, status: u16) {
        *self.state.fail_next.lock().expect("lock") = Some(status);
    }

    /// The next `POST /v1/transfers` is carried out (stored under its idempotency key, listed
    /// by `GET /v1/transfers`), but answered with `status` and an error: a transfer whose
    /// answer was lost.
    pub fn lose_next_answer(&self, status: u16) {
        *self.state.lose_next_answer.lock().expect("lock") = Some(status);
    }

    /// Every transfer the fake has made, oldest first.
    pub fn transfers(&self) -> Vec<Value> {
        self.state.transfers.lock().expect("lock").clone()
    }

    /// From now on `POST /v1/transfers` waits (a transfer in flight) until released.
    pub fn hold_transfers(&self) {
        self.state.hold.store(true, Ordering::SeqCst);
    }

    /// Lets the held transfers (and all later ones) go on.
    pub fn release_transfers(&self) {
        self.state.hold.store(false, Ordering::SeqCst);
        self.state.released.notify_waiters();
    }

    /// Waits until `count` transfer requests have arrived in all.
    pub async fn transfer_requests_arrived(&self, count: usize) {
        loop {
            let arrived = self.state.transfer_arrived.notified();
            let seen = self
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path == "/v1/transfers")
                .count();
            if seen >= count {
                return;
            }
            arrived.await;
        }
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    AxumState(state): AxumState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authorization_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {SECRET_KEY}"));
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = uri.path().to_owned();
    state.requests.lock().expect("lock").push(RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        form: form.clone(),
        idempotency_key: idempotency_key.clone(),
        authorization_ok,
    });

    if !authorization_ok {
        return error(
            401,
            "invalid_request_error",
            "Invalid API Key provided: sk_test_********",
        );
    }
    let transfer = method == Method::POST && path == "/v1/transfers";
    let session = method == Method::POST && path == "/v1/checkout/sessions";
    if method == Method::GET && path == "/v1/transfers" {
        return list_transfers(&state, uri.query().unwrap_or(""));
    }
    if !session && !transfer {
        return error(
            404,
            "invalid_request_error",
            &format!("Unrecognized request URL ({method}: {path})."),
        );
    }
    if transfer {
        state.transfer_arrived.notify_waiters();
        loop {
            let released = state.released.notified();
            if !state.hold.load(Ordering::SeqCst) {
                break;
            }
            released.await;
        }
    }
    if let Some(status) = state.fail_next.lock().expect("lock").take() {
        let kind = match status {
            402 => "card_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        };
        return error(
            status,
            kind,
            &format!("Simulated failure of the fake Stripe server ({status})."),
        );
    }
    // Removed in API version 2026-09-30.endive, the one async-stripe rc.10 sends.
    if let Some((key, _)) = form
        .iter()
        .find(|(k, _)| k.starts_with("payment_method_types"))
    {
        return error(
            400,
            "invalid_request_error",
            &format!("Received unknown parameter: {key}"),
        );
    }

    let mut sorted = form.clone();
    sorted.sort();
    let mut sessions = state.sessions.lock().expect("lock");
    if let Some(key) = &idempotency_key
        && let Some((first, session)) = sessions.get(key)
    {
        if *first != sorted {
            return error(
                400,
                "idempotency_error",
                &format!(
                    "Keys for idempotent requests can only be used with the same parameters \
                     they were first used with. Try using a key other than '{key}' if you meant \
                     to execute a different request."
                ),
            );
        }
        let mut response = axum::Json(session.clone()).into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", "true".parse().expect("header value"));
        return response;
    }
    let session = if transfer {
        transfer_from_form(&form)
    } else {
        session_from_form(&form)
    };
    if let Some(key) = idempotency_key {
        sessions.insert(key, (sorted, session.clone()));
    }
    if transfer {
        state.transfers.lock().expect("lock").push(session.clone());
        if let Some(status) = state.lose_next_answer.lock().expect("lock").take() {
            return error(
                status,
                "api_error",
                "Simulated lost answer of the fake Stripe server (the transfer was made).",
            );
        }
    }
    axum::Json(session).into_response()
}

/// `GET /v1/transfers`: the transfers made, newest first, filtered as Stripe filters them.
fn list_transfers(state: &State, query: &str) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10);
    let matching: Vec<Value> = state
        .transfers
        .lock()
        .expect("lock")
        .iter()
        .rev()
        .filter(|t| {
            param("transfer_group").is_none_or(|g| t["transfer_group"] == json!(g))
                && param("destination").is_none_or(|d| t["destination"] == json!(d))
        })
        .cloned()
        .collect();
    let has_more = matching.len() > limit;
    axum::Json(json!({
        "object": "list",
        "data": matching.into_iter().take(limit).collect::<Vec<_>>(),
        "has_more": has_more,
        "url": "/v1/transfers",
    }))
    .into_response()
}

/// A transfer to a connected account, as Stripe answers `POST /v1/transfers`.
fn transfer_from_form(form: &[(String, String)]) -> Value {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let id = format!("tr_test_{}", NEXT_ID.fetch_add(1, Ordering::SeqCst));
    let metadata: BTreeMap<String, String> = form
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), value.clone()))
        })
        .collect();
    json!({
        "id": id,
        "object": "transfer",
        "amount": field("amount").and_then(|a| a.parse::<i64>().ok()).unwrap_or(0),
        "amount_reversed": 0,
        "balance_transaction": "txn_test",
        "created": now(),
        "currency": field("currency").unwrap_or_else(|| "eur".into()),
        "description": field("description"),
        "destination": field("destination"),
        "destination_payment": "py_test",
        "livemode": false,
        "metadata": metadata,
        "reversals": { "object": "list", "data": [], "has_more": false, "url": format!("/v1/transfers/{id}/reversals") },
        "reversed": false,
        "source_transaction": null,
        "source_type": "card",
        "transfer_group": field("transfer_group")
    })
}

/// Stripe's error envelope.
fn error(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "error": {
            "message": message,
            "type": kind,
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_fake",
        }
    });
    (status, axum::Json(body)).into_response()
}

fn now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(seconds).expect("seconds fit")
}

/// A new open session for a create request, echoing what the request set.
fn session_from_form(form: &[(String, String)]) -> Value {
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut amount: i64 = 0;
    for index in 0.. {
        let Some(unit) = field(&format!("line_items[{index}][price_data][unit_amount]")) else {
            break;
        };
        let quantity = field(&format!("line_items[{index}][quantity]")).unwrap_or("1".into());
        amount += unit.parse::<i64>().expect("unit_amount in cents")
            * quantity.parse::<i64>().expect("quantity");
    }
    let metadata: BTreeMap<String, String> = form
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), value.clone()))
        })
        .collect();
    let mut methods: Vec<String> = form
        .iter()
        .filter(|(key, _)| key.starts_with("allowed_payment_method_types["))
        .map(|(_, value)| value.clone())
        .collect();
    if methods.is_empty() {
        methods.push("card".into());
    }
    let id = format!(
        "cs_test_a1Fake{:06}Session",
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    let mut session = checkout_session(
        &id,
        metadata,
        field("client_reference_id"),
        "unpaid",
        "open",
        None,
    );
    let created = now();
    session["created"] = json!(created);
    session["expires_at"] = json!(created + 24 * 3600);
    session["amount_subtotal"] = json!(amount);
    session["amount_total"] = json!(amount);
    session["currency"] =
        json!(field("line_items[0][price_data][currency]").unwrap_or("eur".into()));
    session["customer_email"] = json!(field("customer_email"));
    session["success_url"] = json!(field("success_url"));
    session["cancel_url"] = json!(field("cancel_url"));
    session["locale"] = json!(field("locale").unwrap_or("auto".into()));
    session["mode"] = json!(field("mode").unwrap_or("payment".into()));
    if methods.iter().any(|m| m == "sepa_debit") {
        session["payment_method_options"]["sepa_debit"] = json!({});
    }
    session["allowed_payment_method_types"] = json!(methods.clone());
    session["payment_method_types"] = json!(methods);
    session
}

/// A Checkout Session object as Stripe sends it, with every field async-stripe requires.
fn checkout_session(
    id: &str,
    metadata: BTreeMap<String, String>,
    client_reference_id: Option<String>,
    payment_status: &str,
    status: &str,
    payment_intent: Option<&str>,
) -> Value {
    let created = now();
    // Two halves: one json! this size goes past the macro recursion limit.
    let mut session = json!({
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": { "enabled": false },
        "after_expiration": null,
        "allow_promotion_codes": null,
        "allowed_payment_method_types": ["card"],
        "amount_subtotal": 0,
        "amount_total": 0,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null,
        "cancel_url": null,
        "client_reference_id": client_reference_id,
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": created,
        "currency": "eur",
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null
        },
        "customer": null,
        "customer_creation": "if_required",
        "customer_details": null,
        "customer_email": null,
        "discounts": [],
        "expires_at": created + 24 * 3600,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": "auto",
    });
    let rest = json!({
        "metadata": metadata,
        "mode": "payment",
        "origin_context": null,
        "payment_intent": payment_intent,
        "payment_link": null,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": null,
        "payment_method_options": { "card": { "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "permissions": null,
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": status,
        "submit_type": null,
        "subscription": null,
        "success_url": null,
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted_page",
        "url": if status == "open" {
            json!(format!("https://checkout.stripe.com/c/pay/{id}"))
        } else {
            Value::Null
        },
        "wallet_options": null
    });
    if let (Some(session), Value::Object(rest)) = (session.as_object_mut(), rest) {
        session.extend(rest);
    }
    session
}

/// A webhook event envelope around `object`, as Stripe posts it.
pub fn event_json(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": now(),
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
    .to_string()
}

/// A finished Checkout Session for `checkout.session.*` events: `payment_status` is "paid",
/// "unpaid" (SEPA still on its way) or "no_payment_required".
pub fn checkout_session_object(
    session_id: &str,
    payment_id: &str,
    payment_status: &str,
    payment_intent: &str,
) -> Value {
    checkout_session(
        session_id,
        BTreeMap::from([("payment_id".to_owned(), payment_id.to_owned())]),
        Some(payment_id.to_owned()),
        payment_status,
        "complete",
        Some(payment_intent),
    )
}

/// A charge for `charge.refunded`, refunded `amount_refunded_cents` in total.
pub fn charge_object(payment_intent: &str, amount_refunded_cents: i64) -> Value {
    json!({
        "id": format!("ch_test_for_{payment_intent}"),
        "object": "charge",
        "amount": amount_refunded_cents,
        "amount_captured": amount_refunded_cents,
        "amount_refunded": amount_refunded_cents,
        "captured": true,
        "created": now(),
        "currency": "eur",
        "livemode": false,
        "metadata": {},
        "paid": true,
        "payment_intent": payment_intent,
        "refunded": true,
        "status": "succeeded",
    })
}

/// A dispute for `charge.dispute.created` over `amount_cents`.
pub fn dispute_object(payment_intent: &str, amount_cents: i64) -> Value {
    json!({
        "id": format!("dp_test_for_{payment_intent}"),
        "object": "dispute",
        "amount": amount_cents,
        "charge": format!("ch_test_for_{payment_intent}"),
        "created": now(),
        "currency": "eur",
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": "fraudulent",
        "status": "needs_response",
    })
}

/// The Stripe-Signature header for `payload`, signed now with Stripe's own test helper.
pub fn sign(payload: &str, secret: &str) -> String {
    Webhook::generate_test_header(payload, secret, None)
}

/// As [`sign`], at `timestamp` (Unix seconds), for signatures that are too old.
pub fn sign_at(payload: &str, secret: &str, timestamp: i64) -> String {
    Webhook::generate_test_header(payload, secret, Some(timestamp))
}

mod tests {
    use allmende::money::Money;
    use allmende::payments::stripe::{
        CheckoutRequest, StripeError, StripeEvent, StripeGateway, WebhookError, parse_event,
        verify_webhook,
    };
    use serde_json::json;

    use super::*;

    fn request(payment_id: &str, key: &str) -> CheckoutRequest {
        CheckoutRequest {
            payment_id: payment_id.into(),
            amount: Money::from_cents(12_345),
            description: "Guthaben aufladen: Verein A".into(),
            customer_email: Some("kasse@verein-a.example".into()),
            success_url: "http://127.0.0.1:3000/payments/p1/done".into(),
            cancel_url: "http://127.0.0.1:3000/payments/p1/cancelled".into(),
            allow_sepa_debit: true,
            idempotency_key: key.into(),
            locale: "de".into(),
        }
    }

    #[tokio::test]
    async fn a_session_is_created_with_the_expected_form() {
        let stripe = FakeStripe::start().await;
        let gateway = StripeGateway::from_config(&stripe.config()).unwrap();

        let session = gateway
            .create_checkout_session(&request("pay_1", "checkout-pay_1"))
            .await
            .unwrap();
        assert!(session.id.starts_with("cs_test_"), "{session:?}");
        assert_eq!(
            session.url,
            format!("https://checkout.stripe.com/c/pay/{}", session.id)
        );

        let requests = stripe.requests();
        assert_eq!(requests.len(), 1);
        let sent = &requests[0];
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, "/v1/checkout/sessions");
        assert!(sent.authorization_ok, "the secret key is sent as Bearer");
        assert_eq!(sent.idempotency_key.as_deref(), Some("checkout-pay_1"));
        for (name, value) in [
            ("mode", "payment"),
            ("line_items[0][price_data][unit_amount]", "12345"),
            ("line_items[0][price_data][currency]", "eur"),
            (
                "line_items[0][price_data][product_data][name]",
                "Guthaben aufladen: Verein A",
            ),
            ("line_items[0][quantity]", "1"),
            ("metadata[payment_id]", "pay_1"),
            ("client_reference_id", "pay_1"),
            ("customer_email", "kasse@verein-a.example"),
            ("success_url", "http://127.0.0.1:3000/payments/p1/done"),
            ("cancel_url", "http://127.0.0.1:3000/payments/p1/cancelled"),
            ("locale", "de"),
        ] {
            assert_eq!(sent.field(name), Some(value), "{name} in {:?}", sent.form);
        }
        assert_eq!(
            sent.values("allowed_payment_method_types["),
            ["card", "sepa_debit"]
        );

        // Card only, English, no e-mail.
        let card_only = CheckoutRequest {
            allow_sepa_debit: false,
            customer_email: None,
            locale: "en-GB".into(),
            ..request("pay_2", "checkout-pay_2")
        };
        gateway.create_checkout_session(&card_only).await.unwrap();
        let sent = stripe.requests().pop().unwrap();
        assert_eq!(sent.values("allowed_payment_method_types["), ["card"]);
        assert_eq!(sent.field("locale"), Some("en"));
        assert_eq!(sent.field("customer_email"), None);
    }

    #[tokio::test]
    async fn the_same_idempotency_key_returns_the_same_session() {
        let stripe = FakeStripe::start().await;
        let gateway = StripeGateway::from_config(&stripe.config()).unwrap();
        let first = gateway
            .create_checkout_session(&request("pay_1", "key-1"))
            .await
            .unwrap();
        let again = gateway
            .create_checkout_session(&request("pay_1", "key-1"))
            .await
            .unwrap();
        let other = gateway
            .create_checkout_session(&request("pay_2", "key-2"))
            .await
            .unwrap();
        assert_eq!(first, again);
        assert_ne!(first.id, other.id);
        let keys: Vec<_> = stripe
            .requests()
            .into_iter()
            .map(|r| r.idempotency_key.unwrap())
            .collect();
        assert_eq!(keys, ["key-1", "key-1", "key-2"]);

        // A key reused for another payment is Stripe's idempotency_error.
        let err = gateway
            .create_checkout_session(&request("pay_3", "key-1"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StripeError::Api { status: Some(400), message } if message.contains("idempotent")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn api_errors_carry_status_and_message() {
        let stripe = FakeStripe::start().await;
        let gateway = StripeGateway::from_config(&stripe.config()).unwrap();
        for status in [500, 402] {
            stripe.fail_next(status);
            let err = gateway
                .create_checkout_session(&request("pay_1", "key-1"))
                .await
                .unwrap_err();
            match &err {
                StripeError::Api {
                    status: Some(got),
                    message,
                } => {
                    assert_eq!(*got, status);
                    assert_eq!(
                        message,
                        &format!("Simulated failure of the fake Stripe server ({status}).")
                    );
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(err.message_key(), "stripe.unavailable");
        }
        assert_eq!(
            stripe.requests().len(),
            2,
            "an idempotent create is not retried"
        );
        // The failure was not stored: the retry with the same key succeeds.
        gateway
            .create_checkout_session(&request("pay_1", "key-1"))
            .await
            .unwrap();

        let wrong_key = StripeConfig {
            secret_key: Secret::new("sk_test_wrong"),
            ..stripe.config()
        };
        let err = StripeGateway::from_config(&wrong_key)
            .unwrap()
            .create_checkout_session(&request("pay_1", "key-9"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StripeError::Api {
                    status: Some(401),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!stripe.requests().last().unwrap().authorization_ok);
    }

    #[tokio::test]
    async fn an_unreachable_stripe_is_an_api_error_without_status() {
        // A port that was free a moment ago: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = StripeConfig {
            api_base: format!("http://{closed}"),
            ..FakeStripe::start().await.config()
        };
        let err = StripeGateway::from_config(&config)
            .unwrap()
            .create_checkout_session(&request("pay_1", "key-1"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StripeError::Api { status: None, .. }),
            "{err:?}"
        );
        assert_eq!(err.message_key(), "stripe.unavailable");
    }

    fn completed(payment_id: &str) -> String {
        event_json(
            "evt_1",
            "checkout.session.completed",
            checkout_session_object("cs_test_1", payment_id, "paid", "pi_1"),
        )
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        let payload = completed("pay_1");
        let event =
            verify_webhook(&payload, &sign(&payload, WEBHOOK_SECRET), WEBHOOK_SECRET).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.kind, "checkout.session.completed");
        assert!(event.created > 0);
        assert_eq!(event.object["id"], "cs_test_1");
    }

    #[test]
    fn bad_signatures_are_refused() {
        let payload = completed("pay_1");
        let header = sign(&payload, WEBHOOK_SECRET);

        let tampered = completed("pay_2");
        assert_eq!(
            verify_webhook(&tampered, &header, WEBHOOK_SECRET),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            verify_webhook(&payload, &sign(&payload, "whsec_other"), WEBHOOK_SECRET),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            verify_webhook(&payload, "", WEBHOOK_SECRET),
            Err(WebhookError::Signature),
            "a missing header"
        );
        let ten_minutes_ago = sign_at(&payload, WEBHOOK_SECRET, now() - 600);
        assert_eq!(
            verify_webhook(&payload, &ten_minutes_ago, WEBHOOK_SECRET),
            Err(WebhookError::TooOld)
        );
    }

    fn parse(kind: &str, object: Value) -> StripeEvent {
        let payload = event_json("evt_x", kind, object);
        let event =
            verify_webhook(&payload, &sign(&payload, WEBHOOK_SECRET), WEBHOOK_SECRET).unwrap();
        parse_event(&event).unwrap()
    }

    #[test]
    fn the_five_events_parse() {
        assert_eq!(
            parse(
                "checkout.session.completed",
                checkout_session_object("cs_1", "pay_1", "paid", "pi_1")
            ),
            StripeEvent::CheckoutCompleted {
                session_id: "cs_1".into(),
                payment_id: Some("pay_1".into()),
                paid: true,
                payment_intent: Some("pi_1".into()),
            }
        );
        assert_eq!(
            parse(
                "checkout.session.completed",
                checkout_session_object("cs_2", "pay_2", "unpaid", "pi_2")
            ),
            StripeEvent::CheckoutCompleted {
                session_id: "cs_2".into(),
                payment_id: Some("pay_2".into()),
                paid: false,
                payment_intent: Some("pi_2".into()),
            }
        );
        assert_eq!(
            parse(
                "checkout.session.async_payment_succeeded",
                checkout_session_object("cs_2", "pay_2", "paid", "pi_2")
            ),
            StripeEvent::AsyncPaymentSucceeded {
                session_id: "cs_2".into(),
                payment_id: Some("pay_2".into()),
                payment_intent: Some("pi_2".into()),
            }
        );
        assert_eq!(
            parse(
                "checkout.session.async_payment_failed",
                checkout_session_object("cs_3", "pay_3", "unpaid", "pi_3")
            ),
            StripeEvent::AsyncPaymentFailed {
                session_id: "cs_3".into(),
                payment_id: Some("pay_3".into()),
            }
        );
        assert_eq!(
            parse("charge.refunded", charge_object("pi_1", 2_500)),
            StripeEvent::ChargeRefunded {
                payment_intent: Some("pi_1".into()),
                amount_refunded: Money::from_cents(2_500),
            }
        );
        assert_eq!(
            parse("charge.dispute.created", dispute_object("pi_1", 12_345)),
            StripeEvent::DisputeCreated {
                payment_intent: Some("pi_1".into()),
                amount: Money::from_cents(12_345),
            }
        );
    }

    #[test]
    fn an_unknown_event_type_is_other() {
        assert_eq!(
            parse(
                "billing.meter.created",
                json!({"id": "mtr_1", "object": "billing.meter", "brand_new_field": [1, 2]})
            ),
            StripeEvent::Other("billing.meter.created".into())
        );
    }
}
