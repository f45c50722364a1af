//! Releasing an accepted milestone: in one transaction, `escrow → maintainer payable` for the
//! amount less the fee and the fee `→ coop:fees`, the fee that applied stored with the release;
//! the pledges are consumed pro rata (largest remainder, oldest first on ties: money rule 5).
//! A milestone is released once, whatever races or retries happen. The proposal completes with
//! its last release, and what escrow still holds then goes back to the backers.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::ReviewError;
use crate::audit;
use crate::db::new_id;
use crate::ledger::{self, AccountId, AccountKind, Actor, NewTransaction, TxKind};
use crate::money::{Money, split_pro_rata};
use crate::proposals::lifecycle::Transition;
use crate::proposals::{self, TransitionInput, fee_of};

/// The pledges with money open in a proposal's escrow, oldest first, and what each has open.
async fn open_pledges(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, source_account, committed - released - refunded AS open FROM pledges
         WHERE proposal_id = $1 AND committed - released - refunded > 0
         ORDER BY created_at, id",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("id"), row.get("source_account"), row.get("open")))
        .collect())
}

/// Releases an accepted milestone: `amount` (at most what escrow holds) goes out of escrow.
/// Returns the release's id, or `None` when the milestone was released already (or is not
/// accepted): a second call changes nothing.
pub async fn release(
    conn: &mut AnyConnection,
    milestone_id: &str,
    amount: Money,
    fee_basis_points: u32,
    now: i64,
) -> Result<Option<String>, ReviewError> {
    // The conditional update is the guard: of two racing releases only one gets the row.
    let taken = sqlx::query(
        "UPDATE milestones SET status = 'released' WHERE id = $1 AND status = 'accepted'",
    )
    .bind(milestone_id)
    .execute(&mut *conn)
    .await?;
    if taken.rows_affected() != 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT m.proposal_id, m.title, p.project_id, p.title AS proposal_title FROM milestones m
         JOIN proposals p ON p.id = m.proposal_id WHERE m.id = $1",
    )
    .bind(milestone_id)
    .fetch_one(&mut *conn)
    .await?;
    let proposal_id: String = row.get("proposal_id");
    let project_id: String = row.get("project_id");
    let escrow_account = AccountId::escrow(&proposal_id);
    let escrow = ledger::balance(conn, &escrow_account).await?;
    // A maintenance period whose instalments lapsed releases what it has.
    let gross = amount.min(escrow);
    let fee = fee_of(gross, fee_basis_points);
    let net = gross.checked_sub(fee)?;
    let release_id = new_id();
    let mut transaction_id = None;
    if gross.is_positive() {
        let payable = AccountId::payable(&project_id);
        ledger::open_account(conn, &payable, AccountKind::Payable).await?;
        let mut new = NewTransaction::new(
            format!("release:{milestone_id}"),
            TxKind::Release,
            format!("milestone released: {}", row.get::<String, _>("title")),
            Actor::system(),
        )
        .posting(escrow_account.clone(), gross.checked_neg()?)
        .for_proposal(&proposal_id);
        if net.is_positive() {
            new = new.posting(payable, net);
        }
        if fee.is_positive() {
            new = new.posting(AccountId::fees(), fee);
        }
        transaction_id = Some(ledger::post(conn, new).await?.into_transaction().id);
    }
    sqlx::query(
        "INSERT INTO releases (id, milestone_id, proposal_id, project_id, amount, fee,
                               fee_basis_points, transaction_id, released_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&release_id)
    .bind(milestone_id)
    .bind(&proposal_id)
    .bind(&project_id)
    .bind(gross.cents())
    .bind(fee.cents())
    .bind(i64::from(fee_basis_points))
    .bind(transaction_id.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let pledges = open_pledges(conn, &proposal_id).await?;
    let weights: Vec<i64> = pledges.iter().map(|p| p.2).collect();
    let shares = split_pro_rata(gross, &weights)?;
    for ((pledge_id, _, _), share) in pledges.iter().zip(shares) {
        if share.is_zero() {
            continue;
        }
        sqlx::query("UPDATE pledges SET released = released + $1 WHERE id = $2")
            .bind(share.cents())
            .bind(pledge_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO release_pledges (release_id, pledge_id, amount) VALUES ($1, $2, $3)",
        )
        .bind(&release_id)
        .bind(pledge_id)
        .bind(share.cents())
        .execute(&mut *conn)
        .await?;
    }
    audit::record(
        conn,
        &Actor::system(),
        "milestone.released",
        &proposal_id,
        None,
        serde_json::json!({ "milestone": milestone_id, "amount": gross, "fee": fee, "fee_basis_points": fee_basis_points }),
    )
    .await?;
    let title: String = row.get("proposal_title");
    let milestone: String = row.get("title");
    for (email, locale) in crate::catalogue::maintainer_addresses(conn, &project_id).await? {
        let mail = crate::mail::compose(
            &email,
            locale,
            "milestone_released",
            "mail.milestone_released",
            &[
                ("title", &title),
                ("milestone", &milestone),
                ("amount", &net.format(locale)),
                ("fee", &fee.format(locale)),
            ],
            None,
        );
        crate::mail::enqueue(conn, &mail).await?;
    }
    let unreleased: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM milestones WHERE proposal_id = $1 AND status <> 'released'",
    )
    .bind(&proposal_id)
    .fetch_one(&mut *conn)
    .await?;
    if unreleased == 0 {
        proposals::transition(
            conn,
            &crate::authz::Principal::visitor(),
            &proposal_id,
            Transition::Complete,
            &TransitionInput::default(),
            true,
        )
        .await?;
    }
    Ok(Some(release_id))
}

/// Returns `amount` of a proposal's escrow to the pledges' sources, pro rata to what each has
/// open; `key` makes each pledge's refund a transaction booked once.
pub async fn refund_pro_rata(
    conn: &mut AnyConnection,
    proposal_id: &str,
    amount: Money,
    key: &str,
    actor: &Actor,
) -> Result<(), ReviewError> {
    let pledges = open_pledges(conn, proposal_id).await?;
    let open: i64 = pledges.iter().map(|p| p.2).sum();
    let amount = amount.min(Money::from_cents(open));
    let weights: Vec<i64> = pledges.iter().map(|p| p.2).collect();
    let shares = split_pro_rata(amount, &weights)?;
    for ((pledge_id, source, _), share) in pledges.iter().zip(shares) {
        if share.is_zero() {
            continue;
        }
        ledger::post(
            conn,
            NewTransaction::transfer(
                format!("refund:{key}:{pledge_id}"),
                TxKind::Refund,
                "returned by the board's decision",
                actor.clone(),
                AccountId::escrow(proposal_id),
                AccountId::from_stored(source.clone()),
                share,
            )?
            .for_proposal(proposal_id),
        )
        .await?;
        sqlx::query("UPDATE pledges SET refunded = refunded + $1 WHERE id = $2")
            .bind(share.cents())
            .bind(pledge_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A release as maintainers and backers see it.
#[derive(Clone, Debug, Serialize)]
pub struct Release {
    pub id: String,
    pub milestone_id: String,
    pub milestone_title: String,
    pub proposal_id: String,
    pub proposal_title: String,
    pub amount: Money,
    pub fee: Money,
    pub fee_basis_points: i64,
    pub released_at: i64,
    /// For a backer's view: what of its money this release used.
    pub from_backer: Money,
}

/// A project's releases, newest first.
pub async fn of_project(
    conn: &mut AnyConnection,
    project_id: &str,
) -> Result<Vec<Release>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.id, r.milestone_id, m.title AS milestone_title, r.proposal_id,
                p.title AS proposal_title, r.amount, r.fee, r.fee_basis_points, r.released_at
         FROM releases r JOIN milestones m ON m.id = r.milestone_id
         JOIN proposals p ON p.id = r.proposal_id
         WHERE r.project_id = $1 ORDER BY r.released_at DESC, r.id DESC",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|row| release_from_row(row, 0)).collect())
}

/// The releases an organisation's pledges paid for, with its part of each.
pub async fn paid_by_organisation(
    conn: &mut AnyConnection,
    organisation_id: &str,
) -> Result<Vec<Release>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.id, r.milestone_id, m.title AS milestone_title, r.proposal_id,
                p.title AS proposal_title, r.amount, r.fee, r.fee_basis_points, r.released_at,
                CAST(SUM(rp.amount) AS BIGINT) AS from_backer
         FROM release_pledges rp JOIN pledges pl ON pl.id = rp.pledge_id
         JOIN releases r ON r.id = rp.release_id
         JOIN milestones m ON m.id = r.milestone_id
         JOIN proposals p ON p.id = r.proposal_id
         WHERE pl.organisation_id = $1
         GROUP BY r.id, r.milestone_id, m.title, r.proposal_id, p.title, r.amount, r.fee,
                  r.fee_basis_points, r.released_at
         ORDER BY r.released_at DESC, r.id",
    )
    .bind(organisation_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| release_from_row(row, row.get("from_backer")))
        .collect())
}

fn release_from_row(row: &sqlx::any::AnyRow, from_backer: i64) -> Release {
    Release {
        id: row.get("id"),
        milestone_id: row.get("milestone_id"),
        milestone_title: row.get("milestone_title"),
        proposal_id: row.get("proposal_id"),
        proposal_title: row.get("proposal_title"),
        amount: Money::from_cents(row.get("amount")),
        fee: Money::from_cents(row.get("fee")),
        fee_basis_points: row.get("fee_basis_points"),
        released_at: row.get("released_at"),
        from_backer: Money::from_cents(from_backer),
    }
}
