//! Paying maintainers what was released to them. The treasurer creates a payout of a project's
//! available payable balance (the balance less payouts under way) to its payout details:
//! - **SEPA**: selected payouts go into a pain.001.001.09 file ([`sepa`]) to upload to the bank;
//!   they stay "exported" until the treasurer marks them paid (or returns them);
//! - **Stripe Connect**: a transfer to the project's connected account, with the payout's id in
//!   the idempotency key and the transfer group; a failed transfer is shown and can be tried
//!   again. A try whose outcome is unknown (no answer, a 5xx, 409 or 429) keeps its key and
//!   leaves the payout "in doubt": it cannot be returned, and before it is tried again or
//!   returned Stripe is asked whether the transfer happened. Every transfer Stripe confirms is
//!   recorded in `stripe_transfers`, whatever became of the payout, and checked by `verify`.
//!
//! The ledger moves `maintainer:<project>:payable → external:payouts` only when the money has
//! left (marked paid, or Stripe confirmed), so every payable balance equals releases minus paid
//! payouts (`allmende verify` checks it).

pub mod sepa;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::new_id;
use crate::ledger::{self, AccountId, NewTransaction, TxKind};
use crate::money::Money;
use crate::payments::stripe::Transfer;

/// How long a Stripe try may still be running after it was ordered. The gateway gives up on
/// a request after 20 seconds; after a minute the try has ended one way or another (also when
/// the process died during it), so Stripe can be asked what became of it.
pub const TRANSFER_IN_FLIGHT_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("no such project or payout")]
    Unknown,
    #[error("the project has no payout details")]
    NoPayoutDetails,
    #[error("nothing to pay out")]
    NothingToPay,
    #[error("the payout is {status}")]
    WrongStatus { status: String },
    #[error("no payouts selected")]
    NoneSelected,
    /// A Stripe transfer for the payout is being sent right now.
    #[error("a Stripe transfer for this payout is under way")]
    TransferUnderWay,
    /// A Stripe transfer for the payout may have happened: Stripe must be asked first.
    #[error("a Stripe transfer for this payout may have happened; ask Stripe first")]
    TransferInDoubt,
    #[error(transparent)]
    Sepa(#[from] sepa::SepaError),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A project's money at the cooperative, as the treasurer sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectPayable {
    pub project_id: String,
    pub slug: String,
    pub name: String,
    /// Released and not yet paid.
    pub payable: Money,
    /// In payouts under way (created, exported or failed).
    pub under_way: Money,
    pub available: Money,
    pub method: Option<String>,
    pub account_holder: Option<String>,
    pub iban: Option<String>,
    pub stripe_account_id: Option<String>,
}

const UNDER_WAY: &str = "('pending', 'exported', 'failed')";

/// Every project with money payable or payouts under way.
pub async fn payables(conn: &mut AnyConnection) -> Result<Vec<ProjectPayable>, sqlx::Error> {
    let sql = format!(
        "SELECT pj.id, pj.slug, pj.name, a.balance,
                CAST(COALESCE((SELECT SUM(po.amount) FROM payouts po
                      WHERE po.project_id = pj.id AND po.status IN {UNDER_WAY}), 0) AS BIGINT) AS under_way,
                pp.method, pp.account_holder, pp.iban, pp.stripe_account_id
         FROM projects pj
         JOIN accounts a ON a.id = 'maintainer:' || pj.id || ':payable'
         LEFT JOIN project_payouts pp ON pp.project_id = pj.id
         WHERE a.balance > 0
         ORDER BY LOWER(pj.name)"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let payable: i64 = row.get("balance");
            let under_way: i64 = row.get("under_way");
            ProjectPayable {
                project_id: row.get("id"),
                slug: row.get("slug"),
                name: row.get("name"),
                payable: Money::from_cents(payable),
                under_way: Money::from_cents(under_way),
                available: Money::from_cents((payable - under_way).max(0)),
                method: row.get("method"),
                account_holder: row.get("account_holder"),
                iban: row.get("iban"),
                stripe_account_id: row.get("stripe_account_id"),
            }
        })
        .collect())
}

/// A payout as the treasurer, the maintainers and the credit note show it.
#[derive(Clone, Debug, Serialize)]
pub struct Payout {
    pub id: String,
    pub project_id: String,
    pub project_name: String,
    pub amount: Money,
    pub method: String,
    pub status: String,
    pub account_holder: Option<String>,
    pub iban: Option<String>,
    pub bic: Option<String>,
    pub stripe_account_id: Option<String>,
    pub stripe_transfer_id: Option<String>,
    pub failure: Option<String>,
    pub export_id: Option<String>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    /// When the Stripe try whose outcome is not known was ordered (see the migration 0018).
    pub transfer_started_at: Option<i64>,
}

impl Payout {
    /// A Stripe payout whose transfer may be under way or may have happened.
    pub fn transfer_in_doubt(&self) -> bool {
        self.transfer_started_at.is_some() && matches!(self.status.as_str(), "pending" | "failed")
    }
}

const PAYOUT_SELECT: &str = "SELECT po.id, po.project_id, pj.name AS project_name, po.amount,
        po.method, po.status, po.account_holder, po.iban, po.bic, po.stripe_account_id,
        po.stripe_transfer_id, po.failure, po.export_id, po.created_at, po.paid_at,
        po.transfer_started_at
     FROM payouts po JOIN projects pj ON pj.id = po.project_id";

fn payout_from_row(row: &sqlx::any::AnyRow) -> Payout {
    Payout {
        id: row.get("id"),
        project_id: row.get("project_id"),
        project_name: row.get("project_name"),
        amount: Money::from_cents(row.get("amount")),
        method: row.get("method"),
        status: row.get("status"),
        account_holder: row.get("account_holder"),
        iban: row.get("iban"),
        bic: row.get("bic"),
        stripe_account_id: row.get("stripe_account_id"),
        stripe_transfer_id: row.get("stripe_transfer_id"),
        failure: row.get("failure"),
        export_id: row.get("export_id"),
        created_at: row.get("created_at"),
        paid_at: row.get("paid_at"),
        transfer_started_at: row.get("transfer_started_at"),
    }
}

pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Payout>, sqlx::Error> {
    let sql = format!("{PAYOUT_SELECT} WHERE po.id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(payout_from_row))
}

/// Payouts newest first; with a project, only that project's.
pub async fn list(
    conn: &mut AnyConnection,
    project_id: Option<&str>,
) -> Result<Vec<Payout>, sqlx::Error> {
    let sql = format!(
        "{PAYOUT_SELECT} WHERE ($1 = '' OR po.project_id = $1) ORDER BY po.created_at DESC, po.id"
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(project_id.unwrap_or(""))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(payout_from_row)
        .collect())
}

/// Locks the project's payable account for the rest of the transaction, so that two payouts
/// created at once cannot both take the same money.
async fn lock_payable(conn: &mut AnyConnection, project_id: &str) -> Result<Money, PayoutError> {
    let payable = AccountId::payable(project_id);
    let locked = sqlx::query("UPDATE accounts SET id = id WHERE id = $1")
        .bind(payable.as_str())
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(PayoutError::NothingToPay);
    }
    Ok(ledger::balance(conn, &payable).await?)
}

/// The treasurer creates a payout of the project's available balance to its payout details.
pub async fn create(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
    now: i64,
) -> Result<Payout, PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    let payable = lock_payable(conn, project_id).await?;
    let under_way: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM payouts
         WHERE project_id = $1 AND status IN {UNDER_WAY}"
    )))
    .bind(project_id)
    .fetch_one(&mut *conn)
    .await?;
    let available = payable.cents() - under_way;
    if available <= 0 {
        return Err(PayoutError::NothingToPay);
    }
    let details = sqlx::query(
        "SELECT method, account_holder, iban, bic, stripe_account_id FROM project_payouts
         WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(PayoutError::NoPayoutDetails)?;
    let method: String = details.get("method");
    let usable = match method.as_str() {
        "sepa" => details.get::<Option<String>, _>("iban").is_some(),
        _ => details
            .get::<Option<String>, _>("stripe_account_id")
            .is_some(),
    };
    if !usable {
        return Err(PayoutError::NoPayoutDetails);
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO payouts (id, project_id, amount, method, status, account_holder, iban, bic,
                              stripe_account_id, created_by, created_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(project_id)
    .bind(available)
    .bind(&method)
    .bind(details.get::<Option<String>, _>("account_holder"))
    .bind(details.get::<Option<String>, _>("iban"))
    .bind(details.get::<Option<String>, _>("bic"))
    .bind(details.get::<Option<String>, _>("stripe_account_id"))
    .bind(principal.actor().as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "payout.created",
        project_id,
        None,
        serde_json::json!({ "payout": id, "amount": Money::from_cents(available), "method": method }),
    )
    .await?;
    find(conn, &id).await?.ok_or(PayoutError::Unknown)
}

/// The money has left: `payable → external:payouts`, once (the key is the payout's).
async fn book_paid(
    conn: &mut AnyConnection,
    payout: &Payout,
    actor: &ledger::Actor,
    now: i64,
) -> Result<(), PayoutError> {
    let transaction = ledger::post(
        conn,
        NewTransaction::transfer(
            format!("payout:{}", payout.id),
            TxKind::Payout,
            format!("payout to {}", payout.project_name),
            actor.clone(),
            AccountId::payable(&payout.project_id),
            AccountId::external_payouts(),
            payout.amount,
        )?,
    )
    .await?
    .into_transaction();
    sqlx::query(
        "UPDATE payouts SET status = 'paid', paid_at = $1, transaction_id = $2 WHERE id = $3",
    )
    .bind(now)
    .bind(&transaction.id)
    .bind(&payout.id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        actor,
        "payout.paid",
        &payout.project_id,
        None,
        serde_json::json!({ "payout": payout.id, "amount": payout.amount }),
    )
    .await?;
    Ok(())
}

/// The cooperative's account (from the configuration), as the debtor of a SEPA file.
pub fn debtor(config: &crate::config::Config) -> sepa::Debtor {
    sepa::Debtor {
        name: config.bank.account_holder.clone(),
        iban: config.bank.iban.as_str().to_owned(),
        bic: Some(config.bank.bic.clone()).filter(|b| !b.trim().is_empty()),
    }
}

/// Puts the selected pending SEPA payouts into one pain.001 file and marks them exported.
/// A payout is exported once: one already in a file is refused (the file can be downloaded
/// again unchanged).
pub async fn export_sepa(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_ids: &[String],
    debtor: &sepa::Debtor,
    now: i64,
) -> Result<String, PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    if payout_ids.is_empty() {
        return Err(PayoutError::NoneSelected);
    }
    let mut transfers = Vec::new();
    let export_id = new_id();
    for id in payout_ids {
        let claimed = sqlx::query(
            "UPDATE payouts SET status = 'exported', export_id = $1
             WHERE id = $2 AND status = 'pending' AND method = 'sepa'",
        )
        .bind(&export_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        let payout = find(conn, id).await?.ok_or(PayoutError::Unknown)?;
        if claimed.rows_affected() != 1 {
            return Err(PayoutError::WrongStatus {
                status: payout.status,
            });
        }
        let what: Vec<String> = releases_paid_by(conn, &payout)
            .await?
            .iter()
            .map(|r| format!("{}: {}", r.proposal_title, r.milestone_title))
            .collect();
        transfers.push(sepa::CreditTransfer {
            end_to_end_id: payout.id.replace('-', ""),
            amount: payout.amount,
            creditor_name: payout
                .account_holder
                .clone()
                .unwrap_or_else(|| payout.project_name.clone()),
            creditor_iban: payout.iban.clone().unwrap_or_default(),
            creditor_bic: payout.bic.clone(),
            remittance: format!("Allmende {}: {}", payout.project_name, what.join("; ")),
        });
    }
    let created = time::OffsetDateTime::from_unix_timestamp(now.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let message_id = export_id.replace('-', "");
    let xml = sepa::pain001(&message_id, created, created.date(), debtor, &transfers)?;
    sqlx::query(
        "INSERT INTO payout_exports (id, message_id, xml, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&export_id)
    .bind(&message_id)
    .bind(&xml)
    .bind(principal.actor().as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "payout.exported",
        &export_id,
        None,
        serde_json::json!({ "payouts": payout_ids }),
    )
    .await?;
    Ok(export_id)
}

/// A pain.001 file as it was first downloaded.
pub async fn export_file(
    conn: &mut AnyConnection,
    principal: &Principal,
    export_id: &str,
) -> Result<String, PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    sqlx::query_scalar("SELECT xml FROM payout_exports WHERE id = $1")
        .bind(export_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(PayoutError::Unknown)
}

/// The bank has carried out an exported transfer: the treasurer marks it paid.
pub async fn mark_paid(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_id: &str,
    now: i64,
) -> Result<(), PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
    let claimed = sqlx::query(
        "UPDATE payouts SET status = 'paid' WHERE id = $1 AND status = 'exported' AND method = 'sepa'",
    )
    .bind(payout_id)
    .execute(&mut *conn)
    .await?;
    if claimed.rows_affected() != 1 {
        return Err(PayoutError::WrongStatus {
            status: payout.status,
        });
    }
    book_paid(conn, &payout, &principal.actor(), now).await
}

/// A payout that will not be carried out (the bank returned it, or it was never sent): its
/// money is available again. Not while a Stripe transfer for it may be under way or may have
/// happened (its money would be paid a second time): Stripe is asked first.
pub async fn return_payout(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_id: &str,
) -> Result<(), PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
    let updated = sqlx::query(
        "UPDATE payouts SET status = 'returned'
         WHERE id = $1 AND status IN ('pending', 'exported', 'failed') AND transfer_started_at IS NULL",
    )
    .bind(payout_id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        let now = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
        if now.transfer_in_doubt() {
            return Err(PayoutError::TransferInDoubt);
        }
        return Err(PayoutError::WrongStatus { status: now.status });
    }
    audit::record(
        conn,
        &principal.actor(),
        "payout.returned",
        &payout.project_id,
        None,
        serde_json::json!({ "payout": payout_id }),
    )
    .await?;
    Ok(())
}

/// What a Stripe transfer needs, taken in a short transaction before Stripe is called.
#[derive(Clone, Debug)]
pub struct TransferOrder {
    pub payout: Payout,
    pub destination: String,
    pub idempotency_key: String,
    /// An earlier try's outcome is not known: ask Stripe ([`record_lookup`]) before sending.
    pub in_doubt: bool,
}

/// Locks a Stripe payout that is pending or failed and says whether an earlier try may have
/// happened (`true`); refuses one whose try is running right now.
async fn claim_stripe_payout(
    conn: &mut AnyConnection,
    payout_id: &str,
    now: i64,
) -> Result<(Payout, bool), PayoutError> {
    let locked = sqlx::query("UPDATE payouts SET id = id WHERE id = $1")
        .bind(payout_id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(PayoutError::Unknown);
    }
    let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
    if payout.method != "stripe" || !matches!(payout.status.as_str(), "pending" | "failed") {
        return Err(PayoutError::WrongStatus {
            status: payout.status,
        });
    }
    let in_doubt = match payout.transfer_started_at {
        Some(started)
            if payout.status == "pending"
                && now.saturating_sub(started) < TRANSFER_IN_FLIGHT_MS =>
        {
            return Err(PayoutError::TransferUnderWay);
        }
        Some(_) => true,
        None => false,
    };
    Ok((payout, in_doubt))
}

async fn transfer_order(
    conn: &mut AnyConnection,
    payout: Payout,
    in_doubt: bool,
) -> Result<TransferOrder, PayoutError> {
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM payouts WHERE id = $1")
        .bind(&payout.id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(TransferOrder {
        destination: payout.stripe_account_id.clone().unwrap_or_default(),
        idempotency_key: format!("payout:{}:{attempts}", payout.id),
        in_doubt,
        payout,
    })
}

/// Prepares a Stripe transfer for a pending or failed Stripe payout. The key stays the same
/// until Stripe has definitely refused a try, so a try whose answer was lost cannot pay twice.
/// Unless an earlier try is in doubt (then the order says so, and Stripe must be asked first),
/// the payout is marked as having a try under way, in this transaction, before Stripe is called:
/// from then on it cannot be returned until Stripe's answer is known.
pub async fn order_transfer(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_id: &str,
    now: i64,
) -> Result<TransferOrder, PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    let (_, in_doubt) = claim_stripe_payout(conn, payout_id, now).await?;
    if !in_doubt {
        sqlx::query(
            "UPDATE payouts SET status = 'pending', transfer_started_at = $1
             WHERE id = $2 AND status IN ('pending', 'failed')",
        )
        .bind(now)
        .bind(payout_id)
        .execute(&mut *conn)
        .await?;
    }
    let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
    transfer_order(conn, payout, in_doubt).await
}

/// Prepares asking Stripe what became of a payout's try whose outcome is not known (the
/// treasurer's "ask Stripe", before a return). Refused while the try may still be running, and
/// for a payout with no try in doubt.
pub async fn order_lookup(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_id: &str,
    now: i64,
) -> Result<TransferOrder, PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    let (payout, in_doubt) = claim_stripe_payout(conn, payout_id, now).await?;
    if !in_doubt {
        return Err(PayoutError::WrongStatus {
            status: payout.status,
        });
    }
    transfer_order(conn, payout, true).await
}

/// What Stripe answered to a transfer request.
#[derive(Clone, Debug)]
pub enum TransferOutcome {
    /// Stripe made the transfer, under this idempotency key.
    Confirmed {
        transfer: Transfer,
        idempotency_key: String,
    },
    /// Refused or unanswered; `definite` says Stripe itself refused (the next try may use a
    /// new key), otherwise the try stays in doubt.
    Failed { failure: String, definite: bool },
}

/// Books what Stripe answered: paid (with the transfer's id), or failed with the reason.
pub async fn record_transfer(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_id: &str,
    outcome: TransferOutcome,
    now: i64,
) -> Result<(), PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
    match outcome {
        TransferOutcome::Confirmed {
            transfer,
            idempotency_key,
        } => {
            record_executed(
                conn,
                &payout,
                &transfer,
                Some(&idempotency_key),
                &principal.actor(),
                now,
            )
            .await?;
        }
        TransferOutcome::Failed { failure, definite } => {
            // A definite refusal ends the try (a new key next time); otherwise the try stays in
            // doubt until Stripe has been asked.
            sqlx::query(
                "UPDATE payouts SET status = 'failed', failure = $1,
                     attempts = attempts + $2,
                     transfer_started_at = CASE WHEN $2 = 1 THEN NULL ELSE transfer_started_at END
                 WHERE id = $3 AND status IN ('pending', 'failed')",
            )
            .bind(failure.chars().take(500).collect::<String>())
            .bind(i64::from(definite))
            .bind(payout_id)
            .execute(&mut *conn)
            .await?;
            audit::record(
                conn,
                &principal.actor(),
                "payout.failed",
                &payout.project_id,
                None,
                serde_json::json!({ "payout": payout_id, "failure": failure, "definite": definite }),
            )
            .await?;
        }
    }
    Ok(())
}

/// Books what asking Stripe showed for a payout in doubt: the transfers Stripe made for it are
/// recorded and the payout is paid by the first; when there is none, the try is no longer in
/// doubt (the payout can be sent again under the same key, or returned). Returns whether Stripe
/// had made a transfer.
pub async fn record_lookup(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_id: &str,
    found: &[Transfer],
    now: i64,
) -> Result<bool, PayoutError> {
    authorize(principal, Action::ManagePayments)?;
    let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
    // Stripe lists the newest first: the oldest is the one that paid.
    for transfer in found.iter().rev() {
        let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
        record_executed(conn, &payout, transfer, None, &principal.actor(), now).await?;
    }
    if found.is_empty() {
        sqlx::query(
            "UPDATE payouts SET transfer_started_at = NULL
             WHERE id = $1 AND status IN ('pending', 'failed')",
        )
        .bind(payout_id)
        .execute(&mut *conn)
        .await?;
    }
    audit::record(
        conn,
        &principal.actor(),
        "stripe.transfer_checked",
        &payout.project_id,
        None,
        serde_json::json!({
            "payout": payout_id,
            "transfers": found.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(!found.is_empty())
}

/// Records a transfer Stripe made for a payout, once per transfer id, and pays the payout by it
/// if it is still under way. A transfer for a payout that is no longer under way (returned, or
/// paid by another transfer) stays recorded and is shown to the treasurer as a problem.
async fn record_executed(
    conn: &mut AnyConnection,
    payout: &Payout,
    transfer: &Transfer,
    idempotency_key: Option<&str>,
    actor: &ledger::Actor,
    now: i64,
) -> Result<(), PayoutError> {
    let destination = if transfer.destination.is_empty() {
        payout.stripe_account_id.clone().unwrap_or_default()
    } else {
        transfer.destination.clone()
    };
    sqlx::query(
        "INSERT INTO stripe_transfers (id, payout_id, project_id, amount, destination,
                                       idempotency_key, found_by, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&transfer.id)
    .bind(&payout.id)
    .bind(&payout.project_id)
    .bind(transfer.amount.cents())
    .bind(&destination)
    .bind(idempotency_key)
    .bind(if idempotency_key.is_some() {
        "create"
    } else {
        "lookup"
    })
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let claimed = sqlx::query(
        "UPDATE payouts SET stripe_transfer_id = $1, failure = NULL, transfer_started_at = NULL
         WHERE id = $2 AND status IN ('pending', 'failed')",
    )
    .bind(&transfer.id)
    .bind(&payout.id)
    .execute(&mut *conn)
    .await?;
    if claimed.rows_affected() == 1 {
        return book_paid(conn, payout, actor, now).await;
    }
    if payout.stripe_transfer_id.as_deref() != Some(transfer.id.as_str()) {
        tracing::error!(
            payout = %payout.id, transfer = %transfer.id, status = %payout.status,
            "Stripe made a transfer for a payout that is not under way"
        );
        audit::record(
            conn,
            actor,
            "stripe.transfer_unexpected",
            &payout.project_id,
            None,
            serde_json::json!({
                "payout": payout.id,
                "transfer": transfer.id,
                "amount": transfer.amount,
                "status": payout.status,
            }),
        )
        .await?;
    }
    Ok(())
}

/// A Stripe transfer that does not fit the books: for a payout that is not paid (returned, or
/// still under way), one of several for the same payout, or of another amount than its payout.
#[derive(Clone, Debug, Serialize)]
pub struct TransferProblem {
    pub transfer_id: String,
    pub payout_id: String,
    pub project_name: String,
    pub amount: Money,
    pub payout_amount: Money,
    pub payout_status: String,
    /// How many transfers Stripe made for this payout.
    pub transfers_of_payout: i64,
}

/// Every Stripe transfer the treasurer must look into, newest first.
pub async fn transfer_problems(
    conn: &mut AnyConnection,
) -> Result<Vec<TransferProblem>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT st.id, st.payout_id, pj.name AS project_name, st.amount, po.amount AS payout_amount,
                po.status, n.transfers
         FROM stripe_transfers st
         JOIN payouts po ON po.id = st.payout_id
         JOIN projects pj ON pj.id = st.project_id
         JOIN (SELECT payout_id, CAST(COUNT(*) AS BIGINT) AS transfers
               FROM stripe_transfers GROUP BY payout_id) n ON n.payout_id = st.payout_id
         WHERE po.status <> 'paid' OR st.amount <> po.amount OR n.transfers > 1
         ORDER BY st.recorded_at DESC, st.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| TransferProblem {
            transfer_id: row.get("id"),
            payout_id: row.get("payout_id"),
            project_name: row.get("project_name"),
            amount: Money::from_cents(row.get("amount")),
            payout_amount: Money::from_cents(row.get("payout_amount")),
            payout_status: row.get("status"),
            transfers_of_payout: row.get("transfers"),
        })
        .collect())
}

/// The releases a payout paid: payouts take released money first in, first out, so a payout
/// covers the slice of the project's releases (net of fees, oldest first) after what earlier
/// payouts (not returned) took.
async fn releases_paid_by(
    conn: &mut AnyConnection,
    payout: &Payout,
) -> Result<Vec<crate::reviews::release::Release>, sqlx::Error> {
    let earlier: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM payouts
         WHERE project_id = $1 AND status <> 'returned'
           AND (created_at < $2 OR (created_at = $2 AND id < $3))",
    )
    .bind(&payout.project_id)
    .bind(payout.created_at)
    .bind(&payout.id)
    .fetch_one(&mut *conn)
    .await?;
    let (from, to) = (earlier, earlier + payout.amount.cents());
    let mut all = crate::reviews::release::of_project(conn, &payout.project_id).await?;
    all.reverse();
    let mut releases = Vec::new();
    let mut start = 0;
    for release in all {
        let end = start + release.amount.cents() - release.fee.cents();
        if end > from && start < to {
            releases.push(release);
        }
        start = end;
    }
    Ok(releases)
}

/// A self-billing credit note (Gutschrift) for a paid or exported payout: the releases it paid
/// (with their amounts and fees), and what was paid.
#[derive(Clone, Debug, Serialize)]
pub struct CreditNote {
    pub payout: Payout,
    pub number: String,
    pub releases: Vec<crate::reviews::release::Release>,
    pub gross: Money,
    pub fees: Money,
}

pub async fn credit_note(
    conn: &mut AnyConnection,
    principal: &Principal,
    payout_id: &str,
) -> Result<CreditNote, PayoutError> {
    let payout = find(conn, payout_id).await?.ok_or(PayoutError::Unknown)?;
    authorize(
        principal,
        Action::ViewPayoutDetails {
            project_id: &payout.project_id,
        },
    )?;
    let releases = releases_paid_by(conn, &payout).await?;
    let gross = Money::from_cents(releases.iter().map(|r| r.amount.cents()).sum());
    let fees = Money::from_cents(releases.iter().map(|r| r.fee.cents()).sum());
    let year = time::OffsetDateTime::from_unix_timestamp(payout.created_at.div_euclid(1000))
        .map(|t| t.year())
        .unwrap_or(1970);
    Ok(CreditNote {
        number: format!(
            "GS-{year}-{}",
            payout
                .id
                .replace('-', "")
                .chars()
                .take(12)
                .collect::<String>()
        ),
        payout,
        releases,
        gross,
        fees,
    })
}
