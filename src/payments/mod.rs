//! Money in: organisations pay wallet top-ups, shares and dues by Stripe Checkout or bank
//! transfer. A payment is booked only when the money is there (Stripe says it succeeded, the
//! treasurer confirms the transfer, or an imported bank statement shows it), each booking a
//! balanced ledger transaction whose key comes from the payment's source, so a replayed webhook,
//! a double confirmation or a statement imported twice books nothing twice.

pub mod camt053;
pub mod stripe;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::{new_id, now_ms};
use crate::ledger::{self, AccountId, Actor, LedgerError, NewTransaction, TxKind};
use crate::money::{Money, MoneyError};
use crate::people::FieldErrors;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("the form has problems: {0:?}")]
    Invalid(FieldErrors),
    #[error("no such payment")]
    UnknownPayment,
    #[error("the payment is {status} and cannot be booked")]
    NotOpen { status: String },
    #[error("nothing is owed for this")]
    NothingOwed,
    #[error("the organisation is not a member")]
    NotMember,
    #[error("the bank statement could not be read: {key}")]
    Statement { key: &'static str, detail: String },
    #[error("no such bank entry, or it is booked already")]
    UnknownEntry,
    #[error("the amount is above the plausibility limit of {max:?} and is not booked")]
    ImplausibleAmount { max: Money },
    #[error("the form's request key is missing or not usable")]
    InvalidKey,
    #[error("this form's request key was used for a different confirmation")]
    KeyConflict,
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What a payment is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    TopUp,
    Shares,
    Dues,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::TopUp => "top_up",
            Purpose::Shares => "shares",
            Purpose::Dues => "dues",
        }
    }

    pub fn parse(text: &str) -> Option<Purpose> {
        match text {
            "top_up" => Some(Purpose::TopUp),
            "shares" => Some(Purpose::Shares),
            "dues" => Some(Purpose::Dues),
            _ => None,
        }
    }

    /// Where the money goes: the wallet, the capital (shares), the pool (dues).
    fn account(self, organisation_id: &str) -> AccountId {
        match self {
            Purpose::TopUp => AccountId::wallet(organisation_id),
            Purpose::Shares => AccountId::capital(),
            Purpose::Dues => AccountId::pool(),
        }
    }

    fn tx_kind(self) -> TxKind {
        match self {
            Purpose::TopUp => TxKind::TopUp,
            Purpose::Shares => TxKind::Shares,
            Purpose::Dues => TxKind::Dues,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    BankTransfer,
    Stripe,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::BankTransfer => "bank_transfer",
            Method::Stripe => "stripe",
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        match text {
            "bank_transfer" => Some(Method::BankTransfer),
            "stripe" => Some(Method::Stripe),
            _ => None,
        }
    }

    fn external_account(self) -> AccountId {
        match self {
            Method::BankTransfer => AccountId::external_bank(),
            Method::Stripe => AccountId::external_stripe(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Payment {
    pub id: String,
    pub organisation_id: String,
    pub organisation_name: String,
    pub organisation_slug: String,
    pub purpose: Purpose,
    pub obligation_id: Option<String>,
    pub obligation_year: Option<i64>,
    pub method: Method,
    pub amount: Money,
    pub received: Money,
    pub refunded: Money,
    pub status: String,
    pub reference: String,
    pub stripe_session_id: Option<String>,
    pub stripe_payment_intent: Option<String>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

const PAYMENT_SELECT: &str = "SELECT p.id, p.organisation_id, o.legal_name, o.slug, p.purpose,
        p.obligation_id, b.year AS obligation_year, p.method, p.amount, p.received, p.refunded,
        p.status, p.reference, p.stripe_session_id, p.stripe_payment_intent, p.created_at, p.paid_at
     FROM payments p
     JOIN organisations o ON o.id = p.organisation_id
     LEFT JOIN member_obligations b ON b.id = p.obligation_id";

fn payment_from_row(row: &sqlx::any::AnyRow) -> Payment {
    let purpose: String = row.get("purpose");
    let method: String = row.get("method");
    Payment {
        id: row.get("id"),
        organisation_id: row.get("organisation_id"),
        organisation_name: row.get("legal_name"),
        organisation_slug: row.get("slug"),
        // Both are written only by this module and checked by the table.
        purpose: Purpose::parse(&purpose).unwrap_or(Purpose::TopUp),
        obligation_id: row.get("obligation_id"),
        obligation_year: row.get("obligation_year"),
        method: Method::parse(&method).unwrap_or(Method::BankTransfer),
        amount: Money::from_cents(row.get("amount")),
        received: Money::from_cents(row.get("received")),
        refunded: Money::from_cents(row.get("refunded")),
        status: row.get("status"),
        reference: row.get("reference"),
        stripe_session_id: row.get("stripe_session_id"),
        stripe_payment_intent: row.get("stripe_payment_intent"),
        created_at: row.get("created_at"),
        paid_at: row.get("paid_at"),
    }
}

pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("{PAYMENT_SELECT} WHERE p.id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(payment_from_row))
}

async fn find_where(
    conn: &mut AnyConnection,
    condition: &'static str,
    value: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("{PAYMENT_SELECT} WHERE {condition} = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(payment_from_row))
}

/// A payment the principal may see: the organisation's people, the treasurer, the board.
pub async fn visible(
    conn: &mut AnyConnection,
    principal: &Principal,
    id: &str,
) -> Result<Payment, PaymentError> {
    let payment = find(conn, id).await?.ok_or(PaymentError::UnknownPayment)?;
    authorize(
        principal,
        Action::ViewPayments {
            organisation_id: &payment.organisation_id,
        },
    )?;
    Ok(payment)
}

pub async fn of_organisation(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
) -> Result<Vec<Payment>, PaymentError> {
    authorize(principal, Action::ViewPayments { organisation_id })?;
    let sql = format!(
        "{PAYMENT_SELECT} WHERE p.organisation_id = $1 ORDER BY p.created_at DESC, p.id DESC"
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(organisation_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(payment_from_row)
        .collect())
}

/// Letters and digits that cannot be mistaken for each other when typed from a letter.
const REFERENCE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A new payment reference: `AM-XXXX-XXXX`, 40 bits of randomness.
pub fn new_reference() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    let chars: String = bytes
        .iter()
        .map(|b| char::from(REFERENCE_ALPHABET[usize::from(*b) % REFERENCE_ALPHABET.len()]))
        .collect();
    format!("AM-{}-{}", &chars[..4], &chars[4..])
}

/// The payment reference in a bank transfer's purpose text, however the payer or the bank
/// wrote or split it (`AM-7KX4-93QF`, `am 7kx4 93qf`, `AM7KX493QF`).
pub fn find_reference(text: &str) -> Option<String> {
    let compact: Vec<char> = text
        .to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let is_ref_char = |c: &char| REFERENCE_ALPHABET.contains(&(*c as u8));
    compact.windows(10).find_map(|w| {
        (w[0] == 'A' && w[1] == 'M' && w[2..].iter().all(is_ref_char)).then(|| {
            let body: String = w[2..].iter().collect();
            format!("AM-{}-{}", &body[..4], &body[4..])
        })
    })
}

/// What an organisation admin asks to pay.
#[derive(Clone, Copy, Debug)]
pub struct PaymentRequest<'a> {
    pub purpose: Purpose,
    /// For shares and dues: which obligation.
    pub obligation_id: Option<&'a str>,
    /// For a top-up: the amount as entered.
    pub amount: &'a str,
    pub method: Method,
}

/// An organisation admin asks to pay: a top-up of an amount, or what is still owed of an
/// obligation (shares, a year's dues). The payment waits for the money.
pub async fn start(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
    request: PaymentRequest<'_>,
    max_amount: Money,
) -> Result<Payment, PaymentError> {
    let PaymentRequest {
        purpose,
        obligation_id,
        amount: amount_text,
        method,
    } = request;
    authorize(principal, Action::PayForOrganisation { organisation_id })?;
    let (amount, obligation) = match purpose {
        Purpose::TopUp => {
            let amount = Money::parse(amount_text, max_amount).map_err(|error| {
                let mut errors = FieldErrors::new();
                errors.insert("amount", crate::proposals::money_message_key(&error));
                PaymentError::Invalid(errors)
            })?;
            if !amount.is_positive() {
                let mut errors = FieldErrors::new();
                errors.insert("amount", "milestone.amount_zero");
                return Err(PaymentError::Invalid(errors));
            }
            (amount, None)
        }
        Purpose::Shares | Purpose::Dues => {
            let obligation_id = obligation_id.ok_or(PaymentError::NothingOwed)?;
            let row = sqlx::query(
                "SELECT b.amount - b.paid AS open, b.kind FROM member_obligations b
                 JOIN memberships m ON m.id = b.membership_id
                 WHERE b.id = $1 AND m.organisation_id = $2",
            )
            .bind(obligation_id)
            .bind(organisation_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(PaymentError::NothingOwed)?;
            let open: i64 = row.get("open");
            let kind: String = row.get("kind");
            if open <= 0 || kind != purpose.as_str() {
                return Err(PaymentError::NothingOwed);
            }
            (Money::from_cents(open), Some(obligation_id.to_owned()))
        }
    };
    let id = new_id();
    let reference = new_reference();
    sqlx::query(
        "INSERT INTO payments (id, organisation_id, purpose, obligation_id, method, amount, status,
                               reference, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(purpose.as_str())
    .bind(obligation.as_deref())
    .bind(method.as_str())
    .bind(amount.cents())
    .bind(&reference)
    .bind(principal.actor().as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "payment.started",
        &id,
        Some(organisation_id),
        serde_json::json!({ "purpose": purpose.as_str(), "method": method.as_str(), "amount": amount }),
    )
    .await?;
    find(conn, &id).await?.ok_or(PaymentError::UnknownPayment)
}

/// Remembers the Stripe Checkout Session made for a payment.
pub async fn attach_checkout_session(
    conn: &mut AnyConnection,
    payment_id: &str,
    session_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payments SET stripe_session_id = $1 WHERE id = $2")
        .bind(session_id)
        .bind(payment_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Cancels a payment nothing was received for (Stripe Checkout could not be started).
pub async fn cancel_unpaid(conn: &mut AnyConnection, payment_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET status = 'cancelled' WHERE id = $1 AND status = 'pending' AND received = 0",
    )
    .bind(payment_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the payment's row for the rest of the transaction and reads it afresh, so that two
/// bookings of the same payment (a webhook and the treasurer at the same moment) happen one
/// after the other and the second sees what the first did.
async fn lock(conn: &mut AnyConnection, payment_id: &str) -> Result<Payment, PaymentError> {
    let locked = sqlx::query("UPDATE payments SET id = id WHERE id = $1")
        .bind(payment_id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(PaymentError::UnknownPayment);
    }
    find(conn, payment_id)
        .await?
        .ok_or(PaymentError::UnknownPayment)
}

fn is_open(status: &str) -> bool {
    matches!(status, "pending" | "processing" | "partly_paid")
}

/// Books `amount` received for a payment from `source` (`stripe`, `treasurer`,
/// `bank_statement`) under `source_ref`: into the wallet for a top-up; for shares and dues, up to
/// what is still owed into the capital or the pool, any excess into the wallet. The same source
/// and reference again books nothing (returns false).
async fn book_receipt(
    conn: &mut AnyConnection,
    payment: &Payment,
    amount: Money,
    source: &str,
    source_ref: &str,
    actor: &Actor,
) -> Result<bool, PaymentError> {
    let already: Option<String> =
        sqlx::query_scalar("SELECT id FROM payment_receipts WHERE source = $1 AND source_ref = $2")
            .bind(source)
            .bind(source_ref)
            .fetch_optional(&mut *conn)
            .await?;
    if already.is_some() {
        return Ok(false);
    }
    let external = payment.method.external_account();
    let mut postings = vec![(external.clone(), amount.checked_neg()?)];
    let mut to_obligation = Money::ZERO;
    match payment.purpose {
        Purpose::TopUp => postings.push((AccountId::wallet(&payment.organisation_id), amount)),
        Purpose::Shares | Purpose::Dues => {
            let open: i64 = match &payment.obligation_id {
                Some(id) => {
                    sqlx::query_scalar("SELECT amount - paid FROM member_obligations WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?
                        .unwrap_or(0)
                }
                None => 0,
            };
            to_obligation = Money::from_cents(open.max(0).min(amount.cents()));
            let excess = amount.checked_sub(to_obligation)?;
            if to_obligation.is_positive() {
                postings.push((
                    payment.purpose.account(&payment.organisation_id),
                    to_obligation,
                ));
            }
            if excess.is_positive() {
                // Paid more than owed: the rest is the organisation's, in its wallet.
                postings.push((AccountId::wallet(&payment.organisation_id), excess));
            }
        }
    }
    let mut new = NewTransaction::new(
        format!("receipt:{source}:{source_ref}"),
        payment.purpose.tx_kind(),
        format!("{} {}", payment.reference, payment.organisation_name),
        actor.clone(),
    );
    for (account, cents) in postings {
        new = new.posting(account, cents);
    }
    let transaction = ledger::post(conn, new).await?.into_transaction();
    sqlx::query(
        "INSERT INTO payment_receipts (id, payment_id, amount, source, source_ref, transaction_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(&payment.id)
    .bind(amount.cents())
    .bind(source)
    .bind(source_ref)
    .bind(&transaction.id)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    if let (Some(obligation), true) = (&payment.obligation_id, to_obligation.is_positive()) {
        sqlx::query("UPDATE member_obligations SET paid = paid + $1 WHERE id = $2")
            .bind(to_obligation.cents())
            .bind(obligation)
            .execute(&mut *conn)
            .await?;
    }
    let received = payment.received.checked_add(amount)?;
    let status = if received >= payment.amount {
        "paid"
    } else {
        "partly_paid"
    };
    sqlx::query(
        "UPDATE payments SET received = $1, status = $2,
             paid_at = CASE WHEN $2 = 'paid' THEN $3 ELSE paid_at END
         WHERE id = $4",
    )
    .bind(received.cents())
    .bind(status)
    .bind(now_ms())
    .bind(&payment.id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        actor,
        "payment.received",
        &payment.id,
        Some(&payment.organisation_id),
        serde_json::json!({ "amount": amount, "source": source, "status": status }),
    )
    .await?;
    Ok(true)
}

/// The treasurer confirms money that arrived by bank transfer (or, when a webhook is late, by
/// Stripe). The amount received may differ from the amount asked: less leaves the payment
/// partly paid, more is credited to the wallet. `form_key` makes a double submission harmless.
pub async fn confirm(
    conn: &mut AnyConnection,
    principal: &Principal,
    payment_id: &str,
    received_text: &str,
    form_key: &str,
    max_amount: Money,
) -> Result<Payment, PaymentError> {
    authorize(principal, Action::ManagePayments)?;
    let received = Money::parse(received_text, max_amount)
        .ok()
        .filter(|m| m.is_positive())
        .ok_or_else(|| {
            let mut errors = FieldErrors::new();
            errors.insert("received", "payment.received_invalid");
            PaymentError::Invalid(errors)
        })?;
    if !crate::pledges::request_key_is_valid(form_key) {
        return Err(PaymentError::InvalidKey);
    }
    // The form's key is scoped to the payment: a key sent for another payment never answers
    // for this one (it used to: "confirmed", and nothing booked).
    let source_ref = format!("{payment_id}:{form_key}");
    let payment = lock(conn, payment_id).await?;
    let replay: Option<(String, i64)> = sqlx::query_as(
        "SELECT payment_id, amount FROM payment_receipts
         WHERE source = 'treasurer' AND source_ref = $1",
    )
    .bind(&source_ref)
    .fetch_optional(&mut *conn)
    .await?;
    match replay {
        // The same confirmation again (a double click): the first answer.
        Some((paid, amount)) if paid == payment.id && amount == received.cents() => {}
        Some(_) => return Err(PaymentError::KeyConflict),
        None if !is_open(&payment.status) => {
            return Err(PaymentError::NotOpen {
                status: payment.status,
            });
        }
        None => {
            book_receipt(
                conn,
                &payment,
                received,
                "treasurer",
                &source_ref,
                &principal.actor(),
            )
            .await?;
        }
    }
    find(conn, payment_id)
        .await?
        .ok_or(PaymentError::UnknownPayment)
}

/// Books what Stripe reports as paid for a payment, unless it is booked already: the full
/// open amount, keyed by the Checkout Session, so `checkout.session.completed` and
/// `async_payment_succeeded` of the same session book it once. Then applies the refunds and
/// disputes of its payment intent that arrived before it (parked until now).
async fn settle_from_stripe(
    conn: &mut AnyConnection,
    payment_id: &str,
    session_id: &str,
    payment_intent: Option<&str>,
    now: i64,
) -> Result<(), PaymentError> {
    let payment = lock(conn, payment_id).await?;
    if let Some(intent) = payment_intent {
        sqlx::query("UPDATE payments SET stripe_payment_intent = $1 WHERE id = $2")
            .bind(intent)
            .bind(payment_id)
            .execute(&mut *conn)
            .await?;
    }
    if is_open(&payment.status) {
        let open = payment.amount.checked_sub(payment.received)?;
        if open.is_positive() {
            book_receipt(conn, &payment, open, "stripe", session_id, &Actor::system()).await?;
        }
    }
    if let Some(intent) = payment_intent {
        apply_parked(conn, payment_id, intent, now).await?;
    }
    Ok(())
}

/// Locks a payment intent for the rest of the transaction (see `stripe_intent_locks`): a
/// completion and a refund or dispute of the same intent are handled one after the other.
async fn lock_intent(conn: &mut AnyConnection, intent: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stripe_intent_locks (payment_intent) VALUES ($1) ON CONFLICT (payment_intent) DO NOTHING",
    )
    .bind(intent)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE stripe_intent_locks SET payment_intent = payment_intent WHERE payment_intent = $1",
    )
    .bind(intent)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A refund or a dispute, as Stripe reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TakeBack {
    /// `amount` is what was refunded so far in all.
    Refunded,
    Disputed,
}

impl TakeBack {
    fn as_str(self) -> &'static str {
        match self {
            TakeBack::Refunded => "refunded",
            TakeBack::Disputed => "disputed",
        }
    }

    fn parse(text: &str) -> Option<TakeBack> {
        match text {
            "refunded" => Some(TakeBack::Refunded),
            "disputed" => Some(TakeBack::Disputed),
            _ => None,
        }
    }
}

/// Takes back what a refund or a dispute took, from a payment whose completion Stripe has
/// reported.
async fn apply_take_back(
    conn: &mut AnyConnection,
    payment_id: &str,
    kind: TakeBack,
    amount: Money,
    event_id: &str,
) -> Result<(), PaymentError> {
    let payment = lock(conn, payment_id).await?;
    let amount = match kind {
        // Stripe reports the refunds so far; take back what is new.
        TakeBack::Refunded => amount.checked_sub(payment.refunded)?,
        TakeBack::Disputed => amount,
    };
    take_back(conn, &payment, amount, kind.as_str(), event_id).await
}

/// A refund or dispute of a payment intent: taken back at once when the payment's completion
/// is known, else parked (answered 200, nothing depends on Stripe sending it again) and applied
/// by the completion.
async fn refund_or_dispute(
    conn: &mut AnyConnection,
    event: &stripe::WebhookEvent,
    intent: &str,
    kind: TakeBack,
    amount: Money,
    now: i64,
) -> Result<(), PaymentError> {
    lock_intent(conn, intent).await?;
    let payment = find_where(conn, "p.stripe_payment_intent", intent).await?;
    // Known with its intent and no longer waiting for Stripe: the completion has been handled
    // (a payment still `processing` is a SEPA debit whose money has not arrived yet).
    let completed = payment
        .as_ref()
        .is_some_and(|p| !matches!(p.status.as_str(), "pending" | "processing"));
    if let (Some(payment), true) = (payment, completed) {
        return apply_take_back(conn, &payment.id, kind, amount, &event.id).await;
    }
    sqlx::query(
        "INSERT INTO stripe_parked_events (event_id, payment_intent, kind, amount, event_created, received_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(intent)
    .bind(kind.as_str())
    .bind(amount.cents())
    .bind(event.created)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    tracing::info!(event = %event.id, %intent, kind = kind.as_str(), "Stripe event parked until the payment's completion arrives");
    Ok(())
}

/// Applies, in the order Stripe created them, the refunds and disputes of `intent` that were
/// parked because they arrived before the payment's completion.
async fn apply_parked(
    conn: &mut AnyConnection,
    payment_id: &str,
    intent: &str,
    now: i64,
) -> Result<(), PaymentError> {
    let parked: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT event_id, kind, amount FROM stripe_parked_events
         WHERE payment_intent = $1 AND applied_at IS NULL
         ORDER BY event_created, received_at, event_id",
    )
    .bind(intent)
    .fetch_all(&mut *conn)
    .await?;
    for (event_id, kind, amount) in parked {
        let Some(kind) = TakeBack::parse(&kind) else {
            continue;
        };
        apply_take_back(conn, payment_id, kind, Money::from_cents(amount), &event_id).await?;
        sqlx::query(
            "UPDATE stripe_parked_events SET applied_at = $1, payment_id = $2 WHERE event_id = $3",
        )
        .bind(now)
        .bind(payment_id)
        .bind(&event_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Takes back money Stripe took back (refund, dispute): from the account it was booked to, as
/// far as that account still holds it; what it no longer holds is recorded as a shortfall the
/// organisation owes, shown to the treasurer and the board.
async fn take_back(
    conn: &mut AnyConnection,
    payment: &Payment,
    amount: Money,
    reason: &str,
    event_id: &str,
) -> Result<(), PaymentError> {
    let amount = Money::from_cents(
        amount
            .cents()
            .min(payment.received.cents() - payment.refunded.cents())
            .max(0),
    );
    if !amount.is_positive() {
        return Ok(());
    }
    // Each account gives back at most what this payment put into it (less what earlier
    // take-backs of this payment took from it) and at most what it holds: the wallet first (an
    // excess went there), then the capital or the pool. Never other members' money.
    let mut accounts = vec![AccountId::wallet(&payment.organisation_id)];
    if payment.purpose != Purpose::TopUp {
        accounts.push(payment.purpose.account(&payment.organisation_id));
    }
    let mut left = amount.cents();
    let mut back = 0_i64;
    let mut from_obligation = 0_i64;
    let mut new = NewTransaction::new(
        format!("takeback:{}:{event_id}", payment.id),
        TxKind::Reversal,
        format!("{reason} {}", payment.reference),
        Actor::system(),
    );
    for account in accounts {
        let put: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(lp.amount), 0) AS BIGINT)
             FROM payment_receipts r JOIN ledger_postings lp ON lp.transaction_id = r.transaction_id
             WHERE r.payment_id = $1 AND lp.account_id = $2",
        )
        .bind(&payment.id)
        .bind(account.as_str())
        .fetch_one(&mut *conn)
        .await?;
        let taken: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(-SUM(lp.amount), 0) AS BIGINT)
             FROM ledger_transactions t JOIN ledger_postings lp ON lp.transaction_id = t.id
             WHERE t.idempotency_key LIKE $1 AND lp.account_id = $2",
        )
        .bind(format!("takeback:{}:%", payment.id))
        .bind(account.as_str())
        .fetch_one(&mut *conn)
        .await?;
        let owed_here = left.min((put - taken).max(0));
        if account != AccountId::wallet(&payment.organisation_id) {
            from_obligation = owed_here;
        }
        let held = ledger::balance(conn, &account).await?.cents().max(0);
        let take = owed_here.min(held);
        if take > 0 {
            new = new.posting(account, Money::from_cents(-take));
            back += take;
        }
        left -= owed_here;
    }
    let back = Money::from_cents(back);
    let shortfall = amount.checked_sub(back)?;
    if back.is_positive() {
        ledger::post(conn, new.posting(AccountId::external_stripe(), back)).await?;
    }
    if let (Some(obligation), true) = (&payment.obligation_id, from_obligation > 0) {
        // The member owes again what no longer counts as paid.
        sqlx::query(
            "UPDATE member_obligations SET paid = CASE WHEN paid > $1 THEN paid - $1 ELSE 0 END
             WHERE id = $2",
        )
        .bind(from_obligation)
        .bind(obligation)
        .execute(&mut *conn)
        .await?;
    }
    if shortfall.is_positive() {
        sqlx::query(
            "INSERT INTO payment_shortfalls (id, payment_id, amount, reason, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id())
        .bind(&payment.id)
        .bind(shortfall.cents())
        .bind(reason)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE payments SET refunded = refunded + $1 WHERE id = $2")
        .bind(amount.cents())
        .bind(&payment.id)
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        &Actor::system(),
        &format!("payment.{reason}"),
        &payment.id,
        Some(&payment.organisation_id),
        serde_json::json!({ "amount": amount, "taken_back": back, "shortfall": shortfall }),
    )
    .await?;
    Ok(())
}

/// Handles a verified Stripe event once: the event id is recorded in the same transaction as
/// what it causes. A refund or dispute whose payment has not been completed yet is parked and
/// applied by the completion. Other events for payments this instance does not know, and kinds
/// it does not act on, are recorded and otherwise ignored.
pub async fn handle_stripe_event(
    conn: &mut AnyConnection,
    event: &stripe::WebhookEvent,
    now: i64,
) -> Result<(), PaymentError> {
    let parsed = stripe::parse_event(event).map_err(|e| PaymentError::Statement {
        key: "stripe.malformed",
        detail: e.to_string(),
    })?;
    let inserted = sqlx::query(
        "INSERT INTO stripe_events (id, kind, received_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(());
    }
    use stripe::StripeEvent as E;
    match parsed {
        E::CheckoutCompleted {
            session_id,
            payment_id,
            paid,
            payment_intent,
        } => {
            if let (true, Some(intent)) = (paid, payment_intent.as_deref()) {
                lock_intent(conn, intent).await?;
            }
            let Some(payment) = resolve(conn, payment_id.as_deref(), &session_id).await? else {
                return Ok(());
            };
            if paid {
                settle_from_stripe(
                    conn,
                    &payment.id,
                    &session_id,
                    payment_intent.as_deref(),
                    now,
                )
                .await?;
            } else {
                // A SEPA debit: accepted, not yet cleared. Not spendable until Stripe says so.
                sqlx::query(
                    "UPDATE payments SET status = 'processing', stripe_payment_intent = COALESCE($1, stripe_payment_intent)
                     WHERE id = $2 AND status = 'pending'",
                )
                .bind(payment_intent.as_deref())
                .bind(&payment.id)
                .execute(&mut *conn)
                .await?;
            }
        }
        E::AsyncPaymentSucceeded {
            session_id,
            payment_id,
            payment_intent,
        } => {
            if let Some(intent) = payment_intent.as_deref() {
                lock_intent(conn, intent).await?;
            }
            if let Some(payment) = resolve(conn, payment_id.as_deref(), &session_id).await? {
                settle_from_stripe(
                    conn,
                    &payment.id,
                    &session_id,
                    payment_intent.as_deref(),
                    now,
                )
                .await?;
            }
        }
        E::AsyncPaymentFailed {
            session_id,
            payment_id,
        } => {
            if let Some(payment) = resolve(conn, payment_id.as_deref(), &session_id).await? {
                sqlx::query(
                    "UPDATE payments SET status = 'failed' WHERE id = $1 AND status IN ('pending', 'processing')",
                )
                .bind(&payment.id)
                .execute(&mut *conn)
                .await?;
                audit::record(
                    conn,
                    &Actor::system(),
                    "payment.failed",
                    &payment.id,
                    Some(&payment.organisation_id),
                    serde_json::json!({}),
                )
                .await?;
            }
        }
        E::ChargeRefunded {
            payment_intent: Some(intent),
            amount_refunded,
        } => {
            refund_or_dispute(
                conn,
                event,
                &intent,
                TakeBack::Refunded,
                amount_refunded,
                now,
            )
            .await?;
        }
        E::DisputeCreated {
            payment_intent: Some(intent),
            amount,
        } => {
            refund_or_dispute(conn, event, &intent, TakeBack::Disputed, amount, now).await?;
        }
        // Without a payment intent there is no payment of ours to take back from.
        E::ChargeRefunded { .. } | E::DisputeCreated { .. } => {}
        E::Other(_) => {}
    }
    Ok(())
}

async fn resolve(
    conn: &mut AnyConnection,
    payment_id: Option<&str>,
    session_id: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    if let Some(id) = payment_id
        && let Some(payment) = find(conn, id).await?
    {
        return Ok(Some(payment));
    }
    find_where(conn, "p.stripe_session_id", session_id).await
}

/// Why a credit of a bank statement waits for the treasurer instead of being booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// The purpose line carries no payment reference.
    NoReference,
    /// It carries a reference no payment has.
    UnknownReference,
    /// The payment is paid, failed or cancelled already.
    PaymentNotOpen,
    /// More than `max_amount`: a real member payment is never that large, so the file (or the
    /// bank) is wrong. Never booked automatically, and not assignable by hand either.
    ImplausibleAmount,
    /// The ledger refused the booking (a balance would leave its range).
    Refused,
}

impl Attention {
    pub fn as_str(self) -> &'static str {
        match self {
            Attention::NoReference => "no_reference",
            Attention::UnknownReference => "unknown_reference",
            Attention::PaymentNotOpen => "payment_not_open",
            Attention::ImplausibleAmount => "implausible_amount",
            Attention::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Attention> {
        [
            Attention::NoReference,
            Attention::UnknownReference,
            Attention::PaymentNotOpen,
            Attention::ImplausibleAmount,
            Attention::Refused,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// What an import did with one credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum EntryOutcome {
    /// Booked now for the payment whose reference it carries.
    Booked,
    /// Seen in an earlier import (the same statement again, an overlapping or re-issued one):
    /// nothing done.
    Known,
    /// Listed for the treasurer, not booked.
    Attention(Attention),
}

/// One credit of an imported statement and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct ImportedEntry {
    /// The bank's id of the statement that showed it.
    pub statement: String,
    pub entry_ref: String,
    pub amount: Money,
    pub booking_date: Option<String>,
    pub debtor_name: Option<String>,
    pub remittance: String,
    pub outcome: EntryOutcome,
    /// The payment it was booked for.
    pub payment_reference: Option<String>,
}

/// What importing a statement did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub statements: usize,
    /// Credits the bank has booked (pending ones and debits are not imported).
    pub credits: usize,
    /// Booked now.
    pub matched: usize,
    /// Left for the treasurer.
    pub unmatched: usize,
    /// Entries seen before (the same statement, or an overlapping one).
    pub already_imported: usize,
    /// Every booked credit of the file, in the file's order, with its outcome.
    pub entries: Vec<ImportedEntry>,
}

/// Imports a camt.053 statement: each credit entry whose purpose line carries an open payment's
/// reference is booked for it; the rest is listed for the treasurer.
///
/// De-duplication is per entry, never per statement: a statement imported again, a re-issued
/// or paginated one under a known id, and overlapping statements book every credit once, and a
/// credit that is new is booked (or listed) whatever statement shows it. Entries are keyed by
/// the bank's reference, or by their content where the bank gives none (see
/// [`camt053::Entry::entry_ref`]). Credits above `max_amount` are listed as needing attention
/// and never booked automatically.
pub async fn import_statement(
    conn: &mut AnyConnection,
    principal: &Principal,
    xml: &str,
    max_amount: Money,
) -> Result<ImportReport, PaymentError> {
    authorize(principal, Action::ManagePayments)?;
    let statements = camt053::parse(xml).map_err(|error| PaymentError::Statement {
        key: error.message_key(),
        detail: error.to_string(),
    })?;
    let mut report = ImportReport::default();
    let actor = principal.actor();
    for statement in statements {
        report.statements += 1;
        let statement_ref = format!(
            "{}:{}",
            statement.account_iban.clone().unwrap_or_default(),
            statement.id
        );
        // One row per statement id; a statement seen before keeps its row and gets what is new.
        sqlx::query(
            "INSERT INTO bank_statements (id, statement_ref, imported_by, imported_at, entries, matched)
             VALUES ($1, $2, $3, $4, 0, 0) ON CONFLICT (statement_ref) DO NOTHING",
        )
        .bind(new_id())
        .bind(&statement_ref)
        .bind(actor.as_str())
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        let statement_id: String =
            sqlx::query_scalar("SELECT id FROM bank_statements WHERE statement_ref = $1")
                .bind(&statement_ref)
                .fetch_one(&mut *conn)
                .await?;
        let mut matched: i64 = 0;
        let mut credits: i64 = 0;
        let mut known: i64 = 0;
        for entry in statement.entries.iter().filter(|e| e.credit && e.booked) {
            report.credits += 1;
            let (outcome, payment_reference) =
                import_entry(conn, &statement_id, entry, max_amount, &actor).await?;
            match outcome {
                EntryOutcome::Booked => {
                    credits += 1;
                    matched += 1;
                    report.matched += 1;
                }
                EntryOutcome::Known => {
                    known += 1;
                    report.already_imported += 1;
                }
                EntryOutcome::Attention(_) => {
                    credits += 1;
                    report.unmatched += 1;
                }
            }
            report.entries.push(ImportedEntry {
                statement: statement.id.clone(),
                entry_ref: entry.entry_ref.clone(),
                amount: entry.amount,
                booking_date: entry.booking_date.clone(),
                debtor_name: entry.debtor_name.clone(),
                remittance: entry.remittance.clone(),
                outcome,
                payment_reference,
            });
        }
        sqlx::query(
            "UPDATE bank_statements SET entries = entries + $1, matched = matched + $2 WHERE id = $3",
        )
        .bind(credits)
        .bind(matched)
        .bind(&statement_id)
        .execute(&mut *conn)
        .await?;
        audit::record(
            conn,
            &actor,
            "payment.statement_imported",
            &statement_id,
            None,
            serde_json::json!({
                "statement": statement.id, "credits": credits, "matched": matched, "known": known,
            }),
        )
        .await?;
    }
    Ok(report)
}

/// Imports one booked credit: known already, booked for its payment, or kept for the
/// treasurer with the reason. Returns the outcome and the reference of the payment booked.
async fn import_entry(
    conn: &mut AnyConnection,
    statement_id: &str,
    entry: &camt053::Entry,
    max_amount: Money,
    actor: &Actor,
) -> Result<(EntryOutcome, Option<String>), PaymentError> {
    // Imported before under the key earlier versions gave entries without a bank reference.
    if let Some(previous) = &entry.previous_ref {
        let seen: Option<String> =
            sqlx::query_scalar("SELECT entry_ref FROM bank_entries WHERE entry_ref = $1")
                .bind(previous)
                .fetch_optional(&mut *conn)
                .await?;
        if seen.is_some() {
            return Ok((EntryOutcome::Known, None));
        }
    }
    let new_entry = sqlx::query(
        "INSERT INTO bank_entries (entry_ref, statement_id, amount, booking_date, remittance,
                                   debtor_name, debtor_iban, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'unmatched', $8)
         ON CONFLICT (entry_ref) DO NOTHING",
    )
    .bind(&entry.entry_ref)
    .bind(statement_id)
    .bind(entry.amount.cents())
    .bind(entry.booking_date.as_deref())
    .bind(&entry.remittance)
    .bind(entry.debtor_name.as_deref())
    .bind(entry.debtor_iban.as_deref())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    if new_entry.rows_affected() == 0 {
        return Ok((EntryOutcome::Known, None));
    }
    let (attention, reference) = book_entry(conn, entry, max_amount, actor).await?;
    match attention {
        None => Ok((EntryOutcome::Booked, reference)),
        Some(attention) => {
            sqlx::query("UPDATE bank_entries SET attention = $1 WHERE entry_ref = $2")
                .bind(attention.as_str())
                .bind(&entry.entry_ref)
                .execute(&mut *conn)
                .await?;
            Ok((EntryOutcome::Attention(attention), None))
        }
    }
}

/// Books a new credit for the open payment whose reference it carries; `Some(reason)` when it
/// cannot. A booking the ledger refuses leaves nothing behind (a savepoint) and the entry is
/// listed instead, so one bad entry never stops the rest of the file.
async fn book_entry(
    conn: &mut AnyConnection,
    entry: &camt053::Entry,
    max_amount: Money,
    actor: &Actor,
) -> Result<(Option<Attention>, Option<String>), PaymentError> {
    if entry.amount > max_amount {
        return Ok((Some(Attention::ImplausibleAmount), None));
    }
    let Some(reference) = find_reference(&entry.remittance) else {
        return Ok((Some(Attention::NoReference), None));
    };
    let Some(payment) = find_where(conn, "p.reference", &reference).await? else {
        return Ok((Some(Attention::UnknownReference), None));
    };
    let payment = lock(conn, &payment.id).await?;
    if !is_open(&payment.status) {
        return Ok((Some(Attention::PaymentNotOpen), None));
    }
    let mut scope = sqlx::Connection::begin(&mut *conn).await?;
    let booked = book_receipt(
        &mut scope,
        &payment,
        entry.amount,
        "bank_statement",
        &entry.entry_ref,
        actor,
    )
    .await;
    match booked {
        Ok(_) => {
            sqlx::query(
                "UPDATE bank_entries SET payment_id = $1, status = 'matched' WHERE entry_ref = $2",
            )
            .bind(&payment.id)
            .bind(&entry.entry_ref)
            .execute(&mut *scope)
            .await?;
            scope.commit().await?;
            Ok((None, Some(payment.reference)))
        }
        Err(error) if is_refusal(&error) => {
            scope.rollback().await?;
            tracing::warn!(entry = %entry.entry_ref, %error, "bank entry not booked");
            Ok((Some(Attention::Refused), None))
        }
        Err(error) => Err(error),
    }
}

/// A booking refused by a money rule (as opposed to a failing database).
fn is_refusal(error: &PaymentError) -> bool {
    match error {
        PaymentError::Money(_) => true,
        PaymentError::Ledger(LedgerError::Db(_)) => false,
        PaymentError::Ledger(_) => true,
        _ => false,
    }
}

/// The treasurer books an unmatched bank entry for the payment with the given reference. An
/// entry above `max_amount` is refused here too: like a confirmation by hand, no single booking
/// may be larger than a form may ask for.
pub async fn assign_entry(
    conn: &mut AnyConnection,
    principal: &Principal,
    entry_ref: &str,
    reference: &str,
    max_amount: Money,
) -> Result<Payment, PaymentError> {
    authorize(principal, Action::ManagePayments)?;
    let row = sqlx::query(
        "SELECT amount FROM bank_entries WHERE entry_ref = $1 AND status = 'unmatched'",
    )
    .bind(entry_ref)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(PaymentError::UnknownEntry)?;
    let amount = Money::from_cents(row.try_get("amount")?);
    if amount > max_amount {
        return Err(PaymentError::ImplausibleAmount { max: max_amount });
    }
    let reference = find_reference(reference).ok_or_else(|| {
        let mut errors = FieldErrors::new();
        errors.insert("reference", "payment.reference_unknown");
        PaymentError::Invalid(errors)
    })?;
    let payment = find_where(conn, "p.reference", &reference)
        .await?
        .ok_or_else(|| {
            let mut errors = FieldErrors::new();
            errors.insert("reference", "payment.reference_unknown");
            PaymentError::Invalid(errors)
        })?;
    let payment = lock(conn, &payment.id).await?;
    if !is_open(&payment.status) {
        return Err(PaymentError::NotOpen {
            status: payment.status,
        });
    }
    let updated = sqlx::query(
        "UPDATE bank_entries SET payment_id = $1, status = 'resolved' WHERE entry_ref = $2 AND status = 'unmatched'",
    )
    .bind(&payment.id)
    .bind(entry_ref)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(PaymentError::UnknownEntry);
    }
    book_receipt(
        conn,
        &payment,
        amount,
        "bank_statement",
        entry_ref,
        &principal.actor(),
    )
    .await?;
    find(conn, &payment.id)
        .await?
        .ok_or(PaymentError::UnknownPayment)
}

#[derive(Clone, Debug, Serialize)]
pub struct BankEntry {
    pub entry_ref: String,
    pub amount: Money,
    pub booking_date: Option<String>,
    pub remittance: String,
    pub debtor_name: Option<String>,
    /// Why it was not booked; `None` for entries imported before reasons were kept.
    pub attention: Option<Attention>,
    /// Whether the treasurer may book it by hand: not above the plausibility limit.
    pub assignable: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Shortfall {
    pub payment_id: String,
    pub organisation_name: String,
    pub reference: String,
    pub amount: Money,
    pub reason: String,
    pub created_at: i64,
}

/// The treasurer's worklist: payments waiting for money, bank entries nobody could match, and
/// shortfalls from refunds and disputes.
#[derive(Clone, Debug, Serialize)]
pub struct Worklist {
    pub open_payments: Vec<Payment>,
    pub unmatched: Vec<BankEntry>,
    pub shortfalls: Vec<Shortfall>,
}

pub async fn worklist(
    conn: &mut AnyConnection,
    principal: &Principal,
    max_amount: Money,
) -> Result<Worklist, PaymentError> {
    authorize(principal, Action::ViewShortfalls)?;
    let sql = format!(
        "{PAYMENT_SELECT} WHERE p.status IN ('pending', 'processing', 'partly_paid') ORDER BY p.created_at"
    );
    let open_payments = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(payment_from_row)
        .collect();
    let unmatched = sqlx::query(
        "SELECT entry_ref, amount, booking_date, remittance, debtor_name, attention
         FROM bank_entries WHERE status = 'unmatched' ORDER BY created_at, entry_ref",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        let amount = Money::from_cents(row.try_get("amount")?);
        let attention: Option<String> = row.try_get("attention")?;
        Ok(BankEntry {
            entry_ref: row.try_get("entry_ref")?,
            amount,
            booking_date: row.try_get("booking_date")?,
            remittance: row.try_get("remittance")?,
            debtor_name: row.try_get("debtor_name")?,
            attention: attention.as_deref().and_then(Attention::parse),
            assignable: amount <= max_amount,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let shortfalls = sqlx::query(
        "SELECT s.payment_id, o.legal_name, p.reference, s.amount, s.reason, s.created_at
         FROM payment_shortfalls s JOIN payments p ON p.id = s.payment_id
         JOIN organisations o ON o.id = p.organisation_id
         WHERE s.settled_at IS NULL ORDER BY s.created_at",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| Shortfall {
        payment_id: row.get("payment_id"),
        organisation_name: row.get("legal_name"),
        reference: row.get("reference"),
        amount: Money::from_cents(row.get("amount")),
        reason: row.get("reason"),
        created_at: row.get("created_at"),
    })
    .collect();
    Ok(Worklist {
        open_payments,
        unmatched,
        shortfalls,
    })
}

/// The bookings of a payment, for its page and receipt: (amount, source, when).
pub async fn receipts_of(
    conn: &mut AnyConnection,
    payment_id: &str,
) -> Result<Vec<(Money, String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT amount, source, created_at FROM payment_receipts WHERE payment_id = $1 ORDER BY created_at, id",
    )
    .bind(payment_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                Money::from_cents(row.get("amount")),
                row.get("source"),
                row.get("created_at"),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_readable_and_found_however_written() {
        let reference = new_reference();
        assert_eq!(reference.len(), 12);
        assert!(reference.starts_with("AM-"));
        assert!(!reference[3..].contains(['0', 'O', '1', 'I', 'L']));
        assert_eq!(
            find_reference(&format!("Beitrag 2026 {reference} danke")),
            Some(reference.clone())
        );
        assert_eq!(find_reference("am 7kx4 93qf"), Some("AM-7KX4-93QF".into()));
        assert_eq!(
            find_reference("Beitrag AM-P2M8- R4TZ Danke"),
            Some("AM-P2M8-R4TZ".into())
        );
        assert_eq!(find_reference("Spende ohne Verwendungszweck"), None);
    }
}
