//! Recurring pledges for maintenance contracts: an amount per period for the rest of the term
//! (or until the organisation stops). The current period's instalment is collected when the
//! pledge is made; each later one by a job at its period's start. Every collected instalment is
//! an ordinary pledge row (`wallet → escrow`), so expiry, cancellation and release treat it like
//! any other pledge. When the wallet is short the period's collection lapses, the organisation
//! is told, and it can pay that period later.
//!
//! Funding rule for maintenance contracts (see also `proposals::lifecycle`): money in escrow
//! plus the instalments recurring pledges have promised and not yet collected counts towards the
//! goal. Because each recurring pledge pays its first instalment at once, a contract whose
//! commitments reach the goal always has its first period covered.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{
    PledgeError, PledgeRequest, Pledged, RequestKind, lock_proposal, open_goal, still_needed,
};
use crate::audit;
use crate::authz::{Action, Principal, authorize};
use crate::db::new_id;
use crate::ledger::{self, AccountId, LedgerError, NewTransaction, TxKind};
use crate::money::Money;
use crate::proposals::{self, Proposal};

const DAY_MS: i64 = 86_400_000;
/// The wallet-short reminder goes out this long before a collection.
pub const REMINDER_BEFORE_MS: i64 = 3 * DAY_MS;

/// What the organisation has promised in instalments not yet collected (nor lapsed), over all
/// its recurring pledges to the proposal; `None` for all organisations.
pub async fn promised(
    conn: &mut AnyConnection,
    proposal_id: &str,
    organisation_id: Option<&str>,
) -> Result<Money, sqlx::Error> {
    let cents: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(rp.amount * (rp.last_period - rp.first_period + 1
                    - (SELECT COUNT(*) FROM recurring_collections rc
                       WHERE rc.recurring_pledge_id = rp.id))), 0) AS BIGINT)
         FROM recurring_pledges rp
         WHERE rp.proposal_id = $1 AND ($2 = '' OR rp.organisation_id = $2)",
    )
    .bind(proposal_id)
    .bind(organisation_id.unwrap_or(""))
    .fetch_one(&mut *conn)
    .await?;
    Ok(Money::from_cents(cents))
}

async fn maintenance_contract(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Proposal, PledgeError> {
    let proposal = proposals::find(conn, proposal_id)
        .await?
        .ok_or(PledgeError::UnknownProposal)?;
    if proposal.kind != "maintenance" || proposal.term_periods.is_none() {
        return Err(PledgeError::NotMaintenance);
    }
    Ok(proposal)
}

/// An organisation admin pledges an amount per period (the request's amount) from the current
/// period to the end of the term; the current period's instalment is collected now.
pub async fn pledge_recurring(
    conn: &mut AnyConnection,
    principal: &Principal,
    request: PledgeRequest<'_>,
    now: i64,
) -> Result<Pledged, PledgeError> {
    let PledgeRequest {
        proposal_id,
        organisation_id,
        amount: amount_text,
        show_publicly,
        key,
        max_amount,
    } = request;
    authorize(principal, Action::PledgeForOrganisation { organisation_id })?;
    let key = super::user_key(organisation_id, proposal_id, RequestKind::Recurring, key)?;
    let amount = super::amount_of(amount_text, max_amount)?;
    lock_proposal(conn, proposal_id).await?;
    let existing = sqlx::query(
        "SELECT id, amount, organisation_id, proposal_id FROM recurring_pledges
         WHERE idempotency_key = $1",
    )
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = existing {
        // The same form again: the first answer. The same key for another amount: a conflict.
        let same = row.get::<i64, _>("amount") == amount.cents()
            && row.get::<String, _>("organisation_id") == organisation_id
            && row.get::<String, _>("proposal_id") == proposal_id;
        if !same {
            return Err(PledgeError::KeyConflict);
        }
        return Ok(Pledged {
            pledge_id: row.get("id"),
            funded: false,
            replay: true,
        });
    }
    let proposal = maintenance_contract(conn, proposal_id).await?;
    let (goal, project_id) = open_goal(conn, proposal_id, now).await?;
    let term = proposal.term_periods.unwrap_or(1);
    let first = proposal.current_period(now);
    let periods = term - first + 1;
    let remaining = still_needed(conn, proposal_id).await?;
    // An amount so large that the term's total overflows is more than needed, too.
    let fits = amount
        .checked_mul(periods)
        .is_ok_and(|total| total <= remaining);
    if !fits {
        return Err(PledgeError::ExceedsRemainingPerPeriod {
            per_period: Money::from_cents(remaining.cents() / periods.max(1)),
            periods,
        });
    }
    let wallet = AccountId::wallet(organisation_id);
    let balance = ledger::balance(conn, &wallet).await?;
    if balance < amount {
        return Err(PledgeError::InsufficientFunds { balance });
    }
    let recurring_id = new_id();
    sqlx::query(
        "INSERT INTO recurring_pledges (id, proposal_id, organisation_id, amount, first_period,
                                        last_period, show_publicly, idempotency_key, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&recurring_id)
    .bind(proposal_id)
    .bind(organisation_id)
    .bind(amount.cents())
    .bind(first)
    .bind(term)
    .bind(i64::from(show_publicly))
    .bind(&key)
    .bind(principal.person_id.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    collect_one(conn, &principal.actor(), &recurring_id, first, now)
        .await?
        .ok_or(PledgeError::InsufficientFunds { balance })?;
    schedule_collections(conn, &proposal, first + 1, term, now).await?;
    audit::record(
        conn,
        &principal.actor(),
        "pledge.recurring",
        proposal_id,
        Some(organisation_id),
        serde_json::json!({ "amount_per_period": amount, "from_period": first, "to_period": term }),
    )
    .await?;
    let funded = goal.is_positive() && still_needed(conn, proposal_id).await?.is_zero();
    if funded {
        super::fund(conn, principal, proposal_id, &project_id).await?;
    }
    Ok(Pledged {
        pledge_id: recurring_id,
        funded,
        replay: false,
    })
}

/// The collection jobs (at each period's start) and the wallet reminders before them.
async fn schedule_collections(
    conn: &mut AnyConnection,
    proposal: &Proposal,
    from: i64,
    to: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    for period in from..=to {
        let Some(start) = proposal.period_start(period) else {
            continue;
        };
        let payload = serde_json::json!({ "proposal": proposal.id, "period": period });
        crate::jobs::schedule(
            conn,
            "instalment.collect",
            payload.clone(),
            start,
            Some(&format!("collect:{}:{period}", proposal.id)),
        )
        .await?;
        if start - REMINDER_BEFORE_MS > now {
            crate::jobs::schedule(
                conn,
                "instalment.wallet_reminder",
                payload,
                start - REMINDER_BEFORE_MS,
                Some(&format!("wallet-reminder:{}:{period}", proposal.id)),
            )
            .await?;
        }
    }
    Ok(())
}

/// Collects one instalment: `wallet → escrow` and its pledge row, or nothing when the wallet is
/// short. Returns the pledge id. The ledger key is the same for a collection and for paying the
/// same period later, so an instalment is booked at most once.
async fn collect_one(
    conn: &mut AnyConnection,
    actor: &ledger::Actor,
    recurring_id: &str,
    period: i64,
    now: i64,
) -> Result<Option<String>, PledgeError> {
    let row = sqlx::query(
        "SELECT proposal_id, organisation_id, amount, show_publicly FROM recurring_pledges WHERE id = $1",
    )
    .bind(recurring_id)
    .fetch_one(&mut *conn)
    .await?;
    let proposal_id: String = row.get("proposal_id");
    let organisation_id: String = row.get("organisation_id");
    let amount = Money::from_cents(row.get("amount"));
    let wallet = AccountId::wallet(&organisation_id);
    let posted = ledger::post(
        conn,
        NewTransaction::transfer(
            format!("collect:{recurring_id}:{period}"),
            TxKind::Pledge,
            format!("maintenance period {period}"),
            actor.clone(),
            wallet.clone(),
            AccountId::escrow(&proposal_id),
            amount,
        )?
        .for_proposal(&proposal_id),
    )
    .await;
    let transaction = match posted {
        Ok(posted) if posted.is_replay() => return Ok(None),
        Ok(posted) => posted.into_transaction(),
        Err(LedgerError::InsufficientFunds { .. }) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    let pledge_id = new_id();
    sqlx::query(
        "INSERT INTO pledges (id, proposal_id, organisation_id, source_account, committed, show_publicly,
                              transaction_id, created_at, recurring_pledge_id, period)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&pledge_id)
    .bind(&proposal_id)
    .bind(&organisation_id)
    .bind(wallet.as_str())
    .bind(amount.cents())
    .bind(row.get::<i64, _>("show_publicly"))
    .bind(&transaction.id)
    .bind(now)
    .bind(recurring_id)
    .bind(period)
    .execute(&mut *conn)
    .await?;
    // A lapsed period paid later becomes collected; a new one is inserted as collected.
    let updated = sqlx::query(
        "UPDATE recurring_collections SET status = 'collected', pledge_id = $1, collected_at = $2
         WHERE recurring_pledge_id = $3 AND period = $4 AND status = 'lapsed'",
    )
    .bind(&pledge_id)
    .bind(now)
    .bind(recurring_id)
    .bind(period)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO recurring_collections (recurring_pledge_id, period, status, pledge_id, tried_at, collected_at)
             VALUES ($1, $2, 'collected', $3, $4, $4)",
        )
        .bind(recurring_id)
        .bind(period)
        .bind(&pledge_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(pledge_id))
}

/// Whether a contract in this state still collects instalments.
fn collecting(proposal: &Proposal) -> bool {
    matches!(proposal.status.as_str(), "open" | "funded" | "in_progress")
}

/// The job at a period's start: collects every recurring pledge due for it. A wallet that is
/// short makes that pledge's collection lapse, and the organisation's admins are told.
pub async fn collect_period(
    conn: &mut AnyConnection,
    proposal_id: &str,
    period: i64,
    now: i64,
) -> Result<(), PledgeError> {
    lock_proposal(conn, proposal_id).await?;
    let proposal = maintenance_contract(conn, proposal_id).await?;
    if !collecting(&proposal) {
        return Ok(());
    }
    // An organisation that left the cooperative pays no instalment after its exit. The exit's
    // job has normally ended its pledges already; this catches a late or failed job.
    let left: Vec<(String, i64)> = sqlx::query_as(
        "SELECT DISTINCT rp.organisation_id, m.left_at FROM recurring_pledges rp
         JOIN memberships m ON m.organisation_id = rp.organisation_id
         WHERE rp.proposal_id = $1 AND rp.stopped_at IS NULL
           AND m.left_at IS NOT NULL AND m.left_at <= $2 AND rp.created_at < m.left_at",
    )
    .bind(proposal_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for (organisation_id, exit_at) in left {
        end_with_membership(conn, &organisation_id, exit_at).await?;
    }
    let due = sqlx::query(
        "SELECT rp.id, rp.organisation_id, rp.amount FROM recurring_pledges rp
         WHERE rp.proposal_id = $1 AND rp.first_period <= $2 AND rp.last_period >= $2
           AND NOT EXISTS (SELECT 1 FROM recurring_collections rc
                           WHERE rc.recurring_pledge_id = rp.id AND rc.period = $2)
         ORDER BY rp.created_at, rp.id",
    )
    .bind(proposal_id)
    .bind(period)
    .fetch_all(&mut *conn)
    .await?;
    for row in due {
        let recurring_id: String = row.get("id");
        let organisation_id: String = row.get("organisation_id");
        let amount = Money::from_cents(row.get("amount"));
        if collect_one(conn, &ledger::Actor::system(), &recurring_id, period, now)
            .await?
            .is_some()
        {
            continue;
        }
        sqlx::query(
            "INSERT INTO recurring_collections (recurring_pledge_id, period, status, tried_at)
             VALUES ($1, $2, 'lapsed', $3)",
        )
        .bind(&recurring_id)
        .bind(period)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let wallet = ledger::balance(conn, &AccountId::wallet(&organisation_id)).await?;
        audit::record(
            conn,
            &ledger::Actor::system(),
            "pledge.lapsed",
            proposal_id,
            Some(&organisation_id),
            serde_json::json!({ "period": period, "amount": amount, "wallet": wallet }),
        )
        .await?;
        mail_admins(
            conn,
            &organisation_id,
            "recurring_lapsed",
            "mail.recurring_lapsed",
            &proposal,
            period,
            amount,
            wallet,
        )
        .await?;
    }
    Ok(())
}

/// The job a few days before a collection: tells organisations whose wallet will not cover it.
pub async fn remind_short_wallets(
    conn: &mut AnyConnection,
    proposal_id: &str,
    period: i64,
) -> Result<(), PledgeError> {
    let proposal = maintenance_contract(conn, proposal_id).await?;
    if !collecting(&proposal) {
        return Ok(());
    }
    let due = sqlx::query(
        "SELECT rp.organisation_id, CAST(SUM(rp.amount) AS BIGINT) AS amount FROM recurring_pledges rp
         WHERE rp.proposal_id = $1 AND rp.first_period <= $2 AND rp.last_period >= $2
           AND NOT EXISTS (SELECT 1 FROM recurring_collections rc
                           WHERE rc.recurring_pledge_id = rp.id AND rc.period = $2)
         GROUP BY rp.organisation_id",
    )
    .bind(proposal_id)
    .bind(period)
    .fetch_all(&mut *conn)
    .await?;
    for row in due {
        let organisation_id: String = row.get("organisation_id");
        let amount = Money::from_cents(row.get("amount"));
        let wallet = ledger::balance(conn, &AccountId::wallet(&organisation_id)).await?;
        if wallet < amount {
            mail_admins(
                conn,
                &organisation_id,
                "wallet_short",
                "mail.wallet_short",
                &proposal,
                period,
                amount,
                wallet,
            )
            .await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn mail_admins(
    conn: &mut AnyConnection,
    organisation_id: &str,
    kind: &'static str,
    key_prefix: &str,
    proposal: &Proposal,
    period: i64,
    amount: Money,
    wallet: Money,
) -> Result<(), PledgeError> {
    let start = proposal.period_start(period).unwrap_or_default();
    for (email, locale) in crate::members::admin_addresses(conn, organisation_id).await? {
        let mail = crate::mail::compose(
            &email,
            locale,
            kind,
            key_prefix,
            &[
                ("title", &proposal.title),
                ("period", &period.to_string()),
                ("date", &crate::i18n::format_date(start, locale)),
                ("amount", &amount.format(locale)),
                ("wallet", &wallet.format(locale)),
            ],
            None,
        );
        crate::mail::enqueue(conn, &mail).await?;
    }
    Ok(())
}

/// Pays a lapsed period's instalment now, from the wallet, while the contract still collects
/// and that period has not been released.
pub async fn pay_lapsed(
    conn: &mut AnyConnection,
    principal: &Principal,
    recurring_id: &str,
    period: i64,
    now: i64,
) -> Result<Money, PledgeError> {
    let row = sqlx::query(
        "SELECT rp.proposal_id, rp.organisation_id, rp.amount, rc.status FROM recurring_pledges rp
         LEFT JOIN recurring_collections rc ON rc.recurring_pledge_id = rp.id AND rc.period = $2
         WHERE rp.id = $1",
    )
    .bind(recurring_id)
    .bind(period)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(PledgeError::UnknownRecurring)?;
    let organisation_id: String = row.get("organisation_id");
    authorize(
        principal,
        Action::PledgeForOrganisation {
            organisation_id: &organisation_id,
        },
    )?;
    let proposal_id: String = row.get("proposal_id");
    let amount = Money::from_cents(row.get("amount"));
    lock_proposal(conn, &proposal_id).await?;
    let status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM recurring_collections WHERE recurring_pledge_id = $1 AND period = $2",
    )
    .bind(recurring_id)
    .bind(period)
    .fetch_optional(&mut *conn)
    .await?;
    match status.as_deref() {
        Some("lapsed") => {}
        // Paid meanwhile (a double click): nothing more to do.
        Some("collected") => return Ok(amount),
        _ => return Err(PledgeError::NotLapsed),
    }
    let proposal = maintenance_contract(conn, &proposal_id).await?;
    let released = proposal
        .milestones
        .iter()
        .any(|m| m.position == period && m.status == "released");
    if !collecting(&proposal) || released {
        return Err(PledgeError::NotOpen);
    }
    let balance = ledger::balance(conn, &AccountId::wallet(&organisation_id)).await?;
    if balance < amount {
        return Err(PledgeError::InsufficientFunds { balance });
    }
    collect_one(conn, &principal.actor(), recurring_id, period, now)
        .await?
        .ok_or(PledgeError::InsufficientFunds { balance })?;
    audit::record(
        conn,
        &principal.actor(),
        "pledge.paid_late",
        &proposal_id,
        Some(&organisation_id),
        serde_json::json!({ "period": period, "amount": amount }),
    )
    .await?;
    Ok(amount)
}

/// Stops a recurring pledge: periods that have not started yet are not collected. The running
/// period (already started) is still owed.
pub async fn stop(
    conn: &mut AnyConnection,
    principal: &Principal,
    recurring_id: &str,
    now: i64,
) -> Result<(), PledgeError> {
    let organisation_id: String =
        sqlx::query_scalar("SELECT organisation_id FROM recurring_pledges WHERE id = $1")
            .bind(recurring_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(PledgeError::UnknownRecurring)?;
    authorize(
        principal,
        Action::PledgeForOrganisation {
            organisation_id: &organisation_id,
        },
    )?;
    end(
        conn,
        &principal.actor(),
        principal.person_id.as_deref(),
        recurring_id,
        now,
        "pledge.recurring_stopped",
    )
    .await?;
    Ok(())
}

/// Ends a recurring pledge as of `at`: the periods that have not started by then are not
/// collected; the period running at `at` is still owed. `stopped_by` is the person, or `None`
/// for the platform. Returns whether it ended now (false: it had ended already).
async fn end(
    conn: &mut AnyConnection,
    actor: &ledger::Actor,
    stopped_by: Option<&str>,
    recurring_id: &str,
    at: i64,
    audit_action: &str,
) -> Result<bool, PledgeError> {
    let row = sqlx::query(
        "SELECT proposal_id, organisation_id, first_period, last_period, stopped_at
         FROM recurring_pledges WHERE id = $1",
    )
    .bind(recurring_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(PledgeError::UnknownRecurring)?;
    if row.get::<Option<i64>, _>("stopped_at").is_some() {
        return Ok(false);
    }
    let organisation_id: String = row.get("organisation_id");
    let proposal_id: String = row.get("proposal_id");
    lock_proposal(conn, &proposal_id).await?;
    let proposal = maintenance_contract(conn, &proposal_id).await?;
    let first: i64 = row.get("first_period");
    let last: i64 = row.get("last_period");
    let tried: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(period), 0) AS BIGINT) FROM recurring_collections
         WHERE recurring_pledge_id = $1",
    )
    .bind(recurring_id)
    .fetch_one(&mut *conn)
    .await?;
    let new_last = tried.max(proposal.current_period(at)).clamp(first, last);
    let ended = sqlx::query(
        "UPDATE recurring_pledges SET last_period = $1, stopped_at = $2, stopped_by = $3
         WHERE id = $4 AND stopped_at IS NULL",
    )
    .bind(new_last)
    .bind(at)
    .bind(stopped_by)
    .bind(recurring_id)
    .execute(&mut *conn)
    .await?;
    if ended.rows_affected() != 1 {
        return Ok(false);
    }
    audit::record(
        conn,
        actor,
        audit_action,
        &proposal_id,
        Some(&organisation_id),
        serde_json::json!({ "recurring_pledge": recurring_id, "last_period": new_last }),
    )
    .await?;
    Ok(true)
}

/// A membership's end ends the organisation's recurring pledges with it (the statutes: a
/// member's running commitments end when it leaves): every recurring pledge made before the
/// exit at `exit_at` ends as of that moment, so no period that starts after the exit is
/// collected. One-off pledges stay until their proposal ends. Returns how many ended now.
pub async fn end_with_membership(
    conn: &mut AnyConnection,
    organisation_id: &str,
    exit_at: i64,
) -> Result<usize, PledgeError> {
    let running: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM recurring_pledges
         WHERE organisation_id = $1 AND stopped_at IS NULL AND created_at < $2
         ORDER BY created_at, id",
    )
    .bind(organisation_id)
    .bind(exit_at)
    .fetch_all(&mut *conn)
    .await?;
    let mut ended = 0;
    for recurring_id in running {
        if end(
            conn,
            &ledger::Actor::system(),
            None,
            &recurring_id,
            exit_at,
            "exit.recurring_ended",
        )
        .await?
        {
            ended += 1;
        }
    }
    Ok(ended)
}

/// An organisation's recurring pledge, as its admins see it on the proposal page.
#[derive(Clone, Debug, Serialize)]
pub struct RecurringPledge {
    pub id: String,
    pub organisation_id: String,
    pub organisation_name: String,
    pub amount: Money,
    pub first_period: i64,
    pub last_period: i64,
    pub stopped_at: Option<i64>,
    /// Periods whose collection lapsed and that can still be paid.
    pub lapsed: Vec<i64>,
}

/// The recurring pledges of the organisations in `organisation_ids` to a proposal.
pub async fn of_organisations(
    conn: &mut AnyConnection,
    proposal_id: &str,
    organisation_ids: &[String],
) -> Result<Vec<RecurringPledge>, sqlx::Error> {
    let mut list = Vec::new();
    for organisation_id in organisation_ids {
        let rows = sqlx::query(
            "SELECT rp.id, rp.amount, rp.first_period, rp.last_period, rp.stopped_at, o.legal_name
             FROM recurring_pledges rp JOIN organisations o ON o.id = rp.organisation_id
             WHERE rp.proposal_id = $1 AND rp.organisation_id = $2 ORDER BY rp.created_at",
        )
        .bind(proposal_id)
        .bind(organisation_id)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let id: String = row.get("id");
            let lapsed = sqlx::query_scalar(
                "SELECT period FROM recurring_collections
                 WHERE recurring_pledge_id = $1 AND status = 'lapsed' ORDER BY period",
            )
            .bind(&id)
            .fetch_all(&mut *conn)
            .await?;
            list.push(RecurringPledge {
                id,
                organisation_id: organisation_id.clone(),
                organisation_name: row.get("legal_name"),
                amount: Money::from_cents(row.get("amount")),
                first_period: row.get("first_period"),
                last_period: row.get("last_period"),
                stopped_at: row.get("stopped_at"),
                lapsed,
            });
        }
    }
    Ok(list)
}

/// How one period of a maintenance contract stands.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeriodCoverage {
    pub position: i64,
    pub title: String,
    pub starts_at: i64,
    pub amount: Money,
    /// Paid to the maintainer, or held in escrow for this period.
    pub covered: Money,
    /// Promised by recurring pledges and not yet collected.
    pub promised: Money,
    /// Instalments for this period that lapsed and were not paid.
    pub lapsed: Money,
    pub released: bool,
    pub is_covered: bool,
}

/// Coverage per period. Escrow is one account, so its money covers the unreleased periods in
/// order (they are released in that order); a released period counts as covered by what was
/// released for it.
pub async fn coverage(
    conn: &mut AnyConnection,
    proposal: &Proposal,
) -> Result<Vec<PeriodCoverage>, sqlx::Error> {
    let escrow = ledger::balance(conn, &AccountId::escrow(&proposal.id))
        .await
        .unwrap_or(Money::ZERO);
    let mut left = escrow.cents();
    let rows = sqlx::query(
        "SELECT m.position,
                CAST(COALESCE((SELECT SUM(rp.amount) FROM recurring_pledges rp
                      WHERE rp.proposal_id = m.proposal_id
                        AND rp.first_period <= m.position AND rp.last_period >= m.position
                        AND NOT EXISTS (SELECT 1 FROM recurring_collections rc
                                        WHERE rc.recurring_pledge_id = rp.id AND rc.period = m.position)), 0) AS BIGINT) AS promised,
                CAST(COALESCE((SELECT SUM(rp.amount) FROM recurring_pledges rp
                      JOIN recurring_collections rc ON rc.recurring_pledge_id = rp.id
                      WHERE rp.proposal_id = m.proposal_id AND rc.period = m.position
                        AND rc.status = 'lapsed'), 0) AS BIGINT) AS lapsed
         FROM milestones m WHERE m.proposal_id = $1 ORDER BY m.position",
    )
    .bind(&proposal.id)
    .fetch_all(&mut *conn)
    .await?;
    let mut periods = Vec::new();
    for (milestone, row) in proposal.milestones.iter().zip(rows) {
        let released = milestone.status == "released";
        let amount = milestone.amount.cents();
        let covered = if released {
            amount
        } else {
            let take = left.min(amount);
            left -= take;
            take
        };
        periods.push(PeriodCoverage {
            position: milestone.position,
            title: milestone.title.clone(),
            starts_at: proposal
                .period_start(milestone.position)
                .unwrap_or_default(),
            amount: milestone.amount,
            covered: Money::from_cents(covered),
            promised: Money::from_cents(row.get("promised")),
            lapsed: Money::from_cents(row.get("lapsed")),
            released,
            is_covered: covered >= amount,
        });
    }
    Ok(periods)
}
