//! Pledges: an organisation commits money from its wallet to a proposal open for funding
//! (`wallet → escrow`, with the pledge row, in one database transaction), withdraws it while
//! funding is open, and the proposal becomes funded in the same transaction as the pledge that
//! reaches its goal.

pub mod recurring;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::new_id;
use crate::ledger::{self, AccountId, LedgerError, NewTransaction, TxKind};
use crate::money::{Money, MoneyError};
use crate::proposals::lifecycle::{State, Transition};
use crate::proposals::{self, ProposalError, TransitionInput};

#[derive(Debug, thiserror::Error)]
pub enum PledgeError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not an amount: {0}")]
    Amount(MoneyError),
    #[error("the amount must be more than zero")]
    Zero,
    #[error("the wallet holds {balance:?}")]
    InsufficientFunds { balance: Money },
    #[error("the proposal still needs {remaining:?}")]
    ExceedsRemaining { remaining: Money },
    #[error("the proposal is not open for funding")]
    NotOpen,
    #[error("the funding deadline has passed")]
    DeadlinePassed,
    #[error("no such proposal")]
    UnknownProposal,
    #[error("the proposal still needs {per_period:?} per period for {periods} periods")]
    ExceedsRemainingPerPeriod { per_period: Money, periods: i64 },
    #[error("recurring pledges are for maintenance contracts")]
    NotMaintenance,
    #[error("no such recurring pledge")]
    UnknownRecurring,
    #[error("that period's collection did not lapse")]
    NotLapsed,
    #[error("the organisation has pledged {pledged:?} to this proposal")]
    ExceedsPledged { pledged: Money },
    #[error("the request key is missing or not usable")]
    InvalidKey,
    #[error("this request key was used for a different request")]
    KeyConflict,
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What a pledge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pledged {
    pub pledge_id: String,
    /// This pledge reached the goal: the proposal is funded now.
    pub funded: bool,
    /// The same form was sent before: nothing new was booked.
    pub replay: bool,
}

pub(crate) fn amount_of(text: &str, max_amount: Money) -> Result<Money, PledgeError> {
    let amount = Money::parse(text, max_amount).map_err(PledgeError::Amount)?;
    if amount.is_positive() {
        Ok(amount)
    } else {
        Err(PledgeError::Zero)
    }
}

/// Locks the proposal's row for the rest of the transaction, so that pledges, withdrawals and
/// the deadline's expiry of one proposal happen one after another, each seeing the others.
pub(crate) async fn lock_proposal(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<(), PledgeError> {
    let locked = sqlx::query("UPDATE proposals SET id = id WHERE id = $1")
        .bind(proposal_id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(PledgeError::UnknownProposal);
    }
    Ok(())
}

/// The goal of a proposal that is open for funding now; refuses one that is not.
pub(crate) async fn open_goal(
    conn: &mut AnyConnection,
    proposal_id: &str,
    now: i64,
) -> Result<(Money, String), PledgeError> {
    let row = sqlx::query(
        "SELECT status, funding_goal, funding_deadline, project_id FROM proposals WHERE id = $1",
    )
    .bind(proposal_id)
    .fetch_one(&mut *conn)
    .await?;
    let status: String = row.get("status");
    let deadline: Option<i64> = row.get("funding_deadline");
    if State::parse(&status) != Some(State::Open) {
        return Err(PledgeError::NotOpen);
    }
    if deadline.is_none_or(|d| d <= now) {
        return Err(PledgeError::DeadlinePassed);
    }
    Ok((
        Money::from_cents(row.get("funding_goal")),
        row.get("project_id"),
    ))
}

/// What the proposal still needs: its goal less what its escrow holds and what recurring
/// pledges have promised and not yet collected (maintenance contracts).
pub async fn still_needed(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Money, PledgeError> {
    let goal: i64 = sqlx::query_scalar("SELECT funding_goal FROM proposals WHERE id = $1")
        .bind(proposal_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(PledgeError::UnknownProposal)?;
    let escrow = ledger::balance(conn, &AccountId::escrow(proposal_id))
        .await
        .unwrap_or(Money::ZERO);
    let promised = recurring::promised(conn, proposal_id, None).await?;
    Ok(Money::from_cents(
        (goal - escrow.cents() - promised.cents()).max(0),
    ))
}

/// The longest request key a client may send.
pub const MAX_REQUEST_KEY_CHARS: usize = 128;

/// A client's request key is usable: 1 to [`MAX_REQUEST_KEY_CHARS`] visible ASCII characters
/// (no spaces, no control characters). The forms send a random token.
pub fn request_key_is_valid(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_REQUEST_KEY_CHARS
        && key.chars().all(|c| c.is_ascii_graphic())
}

/// What a client's request key is about; part of its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Pledge,
    Recurring,
    Withdrawal,
}

impl RequestKind {
    fn as_str(self) -> &'static str {
        match self {
            RequestKind::Pledge => "pledge",
            RequestKind::Recurring => "recurring",
            RequestKind::Withdrawal => "withdrawal",
        }
    }
}

/// Where a client's request key is stored (the pledge's or recurring pledge's key, and the key
/// of the ledger transaction it causes): `user:<organisation>:<proposal>:<kind>:<key>`. The
/// key is scoped to the organisation, the proposal and the kind of request, so one
/// organisation's key never answers for another's request, and no key of the platform (which
/// never starts with `user:`) can be taken by a client. Organisation and proposal ids are the
/// platform's (no `:`), so different requests never share a stored key.
pub fn user_key(
    organisation_id: &str,
    proposal_id: &str,
    kind: RequestKind,
    key: &str,
) -> Result<String, PledgeError> {
    if !request_key_is_valid(key) {
        return Err(PledgeError::InvalidKey);
    }
    Ok(format!(
        "user:{organisation_id}:{proposal_id}:{}:{key}",
        kind.as_str()
    ))
}

/// What a pledge form asks for.
#[derive(Clone, Copy, Debug)]
pub struct PledgeRequest<'a> {
    pub proposal_id: &'a str,
    pub organisation_id: &'a str,
    /// As entered.
    pub amount: &'a str,
    pub show_publicly: bool,
    /// From the form: the same key again (for the same organisation, proposal and kind of
    /// request, with the same amount) returns the first result and books nothing; the same key
    /// with a different amount is a [`PledgeError::KeyConflict`].
    pub key: &'a str,
    pub max_amount: Money,
}

/// An organisation admin pledges from the organisation's wallet, at `now` (the clock's time:
/// the deadline is checked against it).
pub async fn pledge(
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
    let key = user_key(organisation_id, proposal_id, RequestKind::Pledge, key)?;
    let amount = amount_of(amount_text, max_amount)?;
    // The key is checked after the lock: a double click waits for the first request, then
    // finds its pledge (even if that pledge closed the funding).
    lock_proposal(conn, proposal_id).await?;
    let existing = sqlx::query(
        "SELECT id, committed, organisation_id, proposal_id FROM pledges WHERE idempotency_key = $1",
    )
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = existing {
        let same = row.get::<i64, _>("committed") == amount.cents()
            && row.get::<Option<String>, _>("organisation_id").as_deref() == Some(organisation_id)
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
    let (goal, project_id) = open_goal(conn, proposal_id, now).await?;
    let remaining = still_needed(conn, proposal_id).await?;
    if amount > remaining {
        return Err(PledgeError::ExceedsRemaining { remaining });
    }
    let wallet = AccountId::wallet(organisation_id);
    let balance = ledger::balance(conn, &wallet).await?;
    if balance < amount {
        return Err(PledgeError::InsufficientFunds { balance });
    }
    let transaction = ledger::post(
        conn,
        NewTransaction::transfer(
            key.clone(),
            TxKind::Pledge,
            "pledge",
            principal.actor(),
            wallet.clone(),
            AccountId::escrow(proposal_id),
            amount,
        )
        .map_err(PledgeError::Ledger)?
        .for_proposal(proposal_id),
    )
    .await
    .map_err(|error| match error {
        // Another request spent the wallet meanwhile: the conditional update refused.
        LedgerError::InsufficientFunds { balance, .. } => {
            PledgeError::InsufficientFunds { balance }
        }
        LedgerError::KeyConflict(_) => PledgeError::KeyConflict,
        other => PledgeError::Ledger(other),
    })?;
    if transaction.is_replay() {
        // The pledge row and its transaction are written together: a transaction without a
        // pledge row under this key is not this request's.
        return Err(PledgeError::KeyConflict);
    }
    let transaction = transaction.into_transaction();
    let pledge_id = new_id();
    sqlx::query(
        "INSERT INTO pledges (id, proposal_id, organisation_id, source_account, committed, show_publicly,
                              transaction_id, created_at, idempotency_key, pledged_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&pledge_id)
    .bind(proposal_id)
    .bind(organisation_id)
    .bind(wallet.as_str())
    .bind(amount.cents())
    .bind(i64::from(show_publicly))
    .bind(&transaction.id)
    .bind(now)
    .bind(&key)
    .bind(principal.person_id.as_deref())
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "pledge.made",
        proposal_id,
        Some(organisation_id),
        serde_json::json!({ "amount": amount }),
    )
    .await?;
    let funded = amount == remaining && goal.is_positive();
    if funded {
        fund(conn, principal, proposal_id, &project_id).await?;
    }
    Ok(Pledged {
        pledge_id,
        funded,
        replay: false,
    })
}

/// The goal is reached: the proposal becomes funded (in the caller's transaction) and the
/// maintainers and the backers' admins are told.
pub(crate) async fn fund(
    conn: &mut AnyConnection,
    principal: &Principal,
    proposal_id: &str,
    project_id: &str,
) -> Result<(), PledgeError> {
    proposals::transition(
        conn,
        principal,
        proposal_id,
        Transition::Fund,
        &TransitionInput::default(),
        true,
    )
    .await?;
    let title: String = sqlx::query_scalar("SELECT title FROM proposals WHERE id = $1")
        .bind(proposal_id)
        .fetch_one(&mut *conn)
        .await?;
    let mut recipients = crate::catalogue::maintainer_addresses(conn, project_id).await?;
    recipients.extend(backer_addresses(conn, proposal_id).await?);
    recipients.sort_by(|a, b| a.0.cmp(&b.0));
    recipients.dedup_by(|a, b| a.0 == b.0);
    for (email, locale) in recipients {
        let mail = crate::mail::compose(
            &email,
            locale,
            "proposal_funded",
            "mail.proposal_funded",
            &[("title", &title)],
            None,
        );
        crate::mail::enqueue(conn, &mail).await?;
    }
    Ok(())
}

/// The admins of the organisations that pledged to a proposal.
pub(crate) async fn backer_addresses(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<(String, crate::i18n::Locale)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT p.email, p.locale FROM pledges pl
         JOIN organisation_people op ON op.organisation_id = pl.organisation_id AND op.role = 'admin'
         JOIN people p ON p.id = op.person_id
         WHERE pl.proposal_id = $1",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let locale: String = row.get("locale");
            (
                row.get("email"),
                crate::i18n::Locale::from_tag(&locale).unwrap_or_default(),
            )
        })
        .collect())
}

/// What an organisation has pledged to a proposal and not got back.
pub async fn pledged_by(
    conn: &mut AnyConnection,
    proposal_id: &str,
    organisation_id: &str,
) -> Result<Money, sqlx::Error> {
    let open: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(committed - released - refunded), 0) AS BIGINT) FROM pledges
         WHERE proposal_id = $1 AND organisation_id = $2",
    )
    .bind(proposal_id)
    .bind(organisation_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Money::from_cents(open))
}

/// Takes back (part of) what an organisation pledged, while funding is open at `now`:
/// `escrow → wallet`, newest pledges first. The request's key makes a double submission
/// harmless (`show_publicly` does not apply).
pub async fn withdraw(
    conn: &mut AnyConnection,
    principal: &Principal,
    request: PledgeRequest<'_>,
    now: i64,
) -> Result<Money, PledgeError> {
    let PledgeRequest {
        proposal_id,
        organisation_id,
        amount: amount_text,
        key,
        max_amount,
        ..
    } = request;
    authorize(principal, Action::PledgeForOrganisation { organisation_id })?;
    let ledger_key = user_key(organisation_id, proposal_id, RequestKind::Withdrawal, key)?;
    let amount = amount_of(amount_text, max_amount)?;
    lock_proposal(conn, proposal_id).await?;
    // A withdrawal is its ledger transaction: the same key again is a replay when that
    // transaction gave this amount back to this organisation's wallet from this proposal.
    let seen = sqlx::query(
        "SELECT t.proposal_id,
                CAST(COALESCE((SELECT SUM(p.amount) FROM ledger_postings p
                      WHERE p.transaction_id = t.id AND p.account_id = $2), 0) AS BIGINT) AS back
         FROM ledger_transactions t WHERE t.idempotency_key = $1",
    )
    .bind(&ledger_key)
    .bind(AccountId::wallet(organisation_id).as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = seen {
        let same = row.get::<i64, _>("back") == amount.cents()
            && row.get::<Option<String>, _>("proposal_id").as_deref() == Some(proposal_id);
        if !same {
            return Err(PledgeError::KeyConflict);
        }
        return Ok(amount);
    }
    open_goal(conn, proposal_id, now).await?;
    let pledged = pledged_by(conn, proposal_id, organisation_id).await?;
    if amount > pledged {
        return Err(PledgeError::ExceedsPledged { pledged });
    }
    ledger::post(
        conn,
        NewTransaction::transfer(
            ledger_key,
            TxKind::Withdrawal,
            "pledge withdrawn",
            principal.actor(),
            AccountId::escrow(proposal_id),
            AccountId::wallet(organisation_id),
            amount,
        )?
        .for_proposal(proposal_id),
    )
    .await
    .map_err(|error| match error {
        LedgerError::KeyConflict(_) => PledgeError::KeyConflict,
        other => PledgeError::Ledger(other),
    })?;
    // Spread over the organisation's pledges, newest first, so each keeps its own numbers.
    let rows = sqlx::query(
        "SELECT id, committed - released - refunded AS open FROM pledges
         WHERE proposal_id = $1 AND organisation_id = $2 AND committed - released - refunded > 0
         ORDER BY created_at DESC, id DESC",
    )
    .bind(proposal_id)
    .bind(organisation_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut left = amount.cents();
    for row in rows {
        if left == 0 {
            break;
        }
        let open: i64 = row.get("open");
        let take = open.min(left);
        sqlx::query("UPDATE pledges SET refunded = refunded + $1 WHERE id = $2")
            .bind(take)
            .bind(row.get::<String, _>("id"))
            .execute(&mut *conn)
            .await?;
        left -= take;
    }
    audit::record(
        conn,
        &principal.actor(),
        "pledge.withdrawn",
        proposal_id,
        Some(organisation_id),
        serde_json::json!({ "amount": amount }),
    )
    .await?;
    Ok(amount)
}

/// The organisations a person may pledge for, with their wallets and what each has pledged to
/// the proposal.
#[derive(Clone, Debug, Serialize)]
pub struct PledgeOption {
    pub organisation_id: String,
    pub name: String,
    pub wallet: Money,
    pub pledged: Money,
}

pub async fn options_for(
    conn: &mut AnyConnection,
    principal: &Principal,
    proposal_id: &str,
) -> Result<Vec<PledgeOption>, sqlx::Error> {
    let mut options = Vec::new();
    for (organisation_id, role) in &principal.organisations {
        if *role != crate::authz::OrgRole::Admin {
            continue;
        }
        let name: Option<String> =
            sqlx::query_scalar("SELECT legal_name FROM organisations WHERE id = $1")
                .bind(organisation_id)
                .fetch_optional(&mut *conn)
                .await?;
        let wallet = ledger::balance(conn, &AccountId::wallet(organisation_id))
            .await
            .unwrap_or(Money::ZERO);
        options.push(PledgeOption {
            organisation_id: organisation_id.clone(),
            name: name.unwrap_or_default(),
            wallet,
            pledged: pledged_by(conn, proposal_id, organisation_id).await?,
        });
    }
    options.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(options)
}
