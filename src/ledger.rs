//! The ledger: accounts, balanced transactions and their postings, reversals, statements.
//!
//! Every movement of money is one transaction of two or more postings that sum to zero. A
//! posting's amount is added to its account's balance (negative takes money out). Balances live
//! in the account row and change only here, by conditional `UPDATE`s in the caller's database
//! transaction, so an overdraft fails the whole transaction on SQLite and PostgreSQL alike.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::db::{new_id, now_ms};
use crate::money::{Money, MoneyError};

/// What an account is for; only external accounts (money outside the cooperative) may go
/// below zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    External,
    Wallet,
    Pool,
    Capital,
    Fees,
    Escrow,
    Payable,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::External => "external",
            AccountKind::Wallet => "wallet",
            AccountKind::Pool => "pool",
            AccountKind::Capital => "capital",
            AccountKind::Fees => "fees",
            AccountKind::Escrow => "escrow",
            AccountKind::Payable => "payable",
        }
    }

    pub fn parse(text: &str) -> Option<AccountKind> {
        Some(match text {
            "external" => AccountKind::External,
            "wallet" => AccountKind::Wallet,
            "pool" => AccountKind::Pool,
            "capital" => AccountKind::Capital,
            "fees" => AccountKind::Fees,
            "escrow" => AccountKind::Escrow,
            "payable" => AccountKind::Payable,
            _ => return None,
        })
    }

    pub fn may_go_negative(self) -> bool {
        self == AccountKind::External
    }
}

/// An account's id, as DESIGN.md names them: `coop:pool`, `org:<id>:wallet`, ...
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn external_stripe() -> Self {
        Self("external:stripe".into())
    }
    pub fn external_bank() -> Self {
        Self("external:bank".into())
    }
    pub fn external_payouts() -> Self {
        Self("external:payouts".into())
    }
    pub fn pool() -> Self {
        Self("coop:pool".into())
    }
    pub fn capital() -> Self {
        Self("coop:capital".into())
    }
    pub fn fees() -> Self {
        Self("coop:fees".into())
    }
    pub fn wallet(organisation_id: &str) -> Self {
        Self(format!("org:{organisation_id}:wallet"))
    }
    pub fn escrow(proposal_id: &str) -> Self {
        Self(format!("proposal:{proposal_id}:escrow"))
    }
    pub fn payable(project_id: &str) -> Self {
        Self(format!("maintainer:{project_id}:payable"))
    }
    /// An id read back from the database.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why money moved. Stored as text; later features add their kinds here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxKind {
    TopUp,
    Shares,
    Dues,
    Pledge,
    Withdrawal,
    Refund,
    PoolAllocation,
    Release,
    Payout,
    Reversal,
}

impl TxKind {
    pub const ALL: [TxKind; 10] = [
        TxKind::TopUp,
        TxKind::Shares,
        TxKind::Dues,
        TxKind::Pledge,
        TxKind::Withdrawal,
        TxKind::Refund,
        TxKind::PoolAllocation,
        TxKind::Release,
        TxKind::Payout,
        TxKind::Reversal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::TopUp => "top_up",
            TxKind::Shares => "shares",
            TxKind::Dues => "dues",
            TxKind::Pledge => "pledge",
            TxKind::Withdrawal => "withdrawal",
            TxKind::Refund => "refund",
            TxKind::PoolAllocation => "pool_allocation",
            TxKind::Release => "release",
            TxKind::Payout => "payout",
            TxKind::Reversal => "reversal",
        }
    }

    pub fn parse(text: &str) -> Option<TxKind> {
        TxKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Who caused a movement: `system` (jobs), `cli`, or `person:<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Actor(String);

impl Actor {
    pub fn system() -> Self {
        Self("system".into())
    }
    pub fn cli() -> Self {
        Self("cli".into())
    }
    pub fn person(person_id: &str) -> Self {
        Self(format!("person:{person_id}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Posting {
    pub account: AccountId,
    /// Added to the account's balance: negative takes money out of it.
    pub amount: Money,
}

/// A transaction to be posted.
#[derive(Clone, Debug)]
pub struct NewTransaction {
    pub idempotency_key: String,
    pub kind: TxKind,
    pub memo: String,
    pub actor: Actor,
    pub proposal_id: Option<String>,
    pub postings: Vec<Posting>,
    reverses_id: Option<String>,
}

impl NewTransaction {
    pub fn new(
        idempotency_key: impl Into<String>,
        kind: TxKind,
        memo: impl Into<String>,
        actor: Actor,
    ) -> Self {
        Self {
            idempotency_key: idempotency_key.into(),
            kind,
            memo: memo.into(),
            actor,
            proposal_id: None,
            postings: Vec::new(),
            reverses_id: None,
        }
    }

    /// The common case: `amount` from one account to another.
    pub fn transfer(
        idempotency_key: impl Into<String>,
        kind: TxKind,
        memo: impl Into<String>,
        actor: Actor,
        from: AccountId,
        to: AccountId,
        amount: Money,
    ) -> Result<Self, LedgerError> {
        Ok(Self::new(idempotency_key, kind, memo, actor)
            .posting(from, amount.checked_neg()?)
            .posting(to, amount))
    }

    pub fn posting(mut self, account: AccountId, amount: Money) -> Self {
        self.postings.push(Posting { account, amount });
        self
    }

    pub fn for_proposal(mut self, proposal_id: impl Into<String>) -> Self {
        self.proposal_id = Some(proposal_id.into());
        self
    }
}

/// A posted transaction as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transaction {
    pub id: String,
    pub idempotency_key: String,
    pub kind: String,
    pub memo: String,
    pub actor: String,
    pub proposal_id: Option<String>,
    pub reverses_id: Option<String>,
    pub created_at: i64,
    pub postings: Vec<Posting>,
}

/// The outcome of posting: new, or the transaction that already had this key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    New(Transaction),
    Replayed(Transaction),
}

impl Posted {
    pub fn transaction(&self) -> &Transaction {
        match self {
            Posted::New(t) | Posted::Replayed(t) => t,
        }
    }

    pub fn into_transaction(self) -> Transaction {
        match self {
            Posted::New(t) | Posted::Replayed(t) => t,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self, Posted::Replayed(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("a transaction needs at least two postings")]
    TooFewPostings,
    #[error("a posting of zero moves nothing")]
    ZeroPosting,
    #[error("the postings sum to {sum:?}, not zero")]
    Unbalanced { sum: Money },
    #[error("no account {0}")]
    UnknownAccount(AccountId),
    #[error("account {account} holds {balance:?}, less than the {needed:?} to take out")]
    InsufficientFunds {
        account: AccountId,
        balance: Money,
        needed: Money,
    },
    /// The new balance would leave the range a balance can hold (`i64` cents, about ±92 million
    /// billion euros): no real movement does that, so the input is wrong (a bank file, a typo).
    #[error("the balance of {account} would leave the range of whole cents")]
    Overflow { account: AccountId },
    #[error("idempotency key {0} was already used for a different transaction")]
    KeyConflict(String),
    #[error("no transaction {0}")]
    UnknownTransaction(String),
    #[error("transaction {0} was already reversed")]
    AlreadyReversed(String),
    #[error("a reversal cannot itself be reversed; post a new transaction instead")]
    ReversalOfReversal,
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub balance: Money,
}

/// Opens an account if it does not exist yet (wallets, escrows, payables).
pub async fn open_account(
    conn: &mut AnyConnection,
    id: &AccountId,
    kind: AccountKind,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO accounts (id, kind, may_go_negative, balance, created_at)
         VALUES ($1, $2, $3, 0, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(kind.as_str())
    .bind(i64::from(kind.may_go_negative()))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn find_account(
    conn: &mut AnyConnection,
    id: &AccountId,
) -> Result<Option<Account>, LedgerError> {
    let row = sqlx::query("SELECT id, kind, balance FROM accounts WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| account_from_row(&row)).transpose()
}

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<Account, LedgerError> {
    let kind: String = row.try_get("kind")?;
    Ok(Account {
        id: AccountId(row.try_get("id")?),
        // Kinds are written only by this module; an unknown one would be a bug, shown as external.
        kind: AccountKind::parse(&kind).unwrap_or(AccountKind::External),
        // `try_get`: a balance that is not a whole number (a row written by hand, or an
        // overflow on SQLite before the guard below existed) is an error, never a panic.
        balance: Money::from_cents(row.try_get("balance")?),
    })
}

/// The balance of an account; an unknown account is an error, not zero.
pub async fn balance(conn: &mut AnyConnection, id: &AccountId) -> Result<Money, LedgerError> {
    find_account(conn, id)
        .await?
        .map(|a| a.balance)
        .ok_or_else(|| LedgerError::UnknownAccount(id.clone()))
}

/// Posts a transaction inside the caller's database transaction.
///
/// The same idempotency key again returns the first transaction ([`Posted::Replayed`]) and
/// moves nothing; the same key with different postings is a [`LedgerError::KeyConflict`].
/// On any error the caller must roll its transaction back (dropping it does).
pub async fn post(conn: &mut AnyConnection, new: NewTransaction) -> Result<Posted, LedgerError> {
    check_balanced(&new.postings)?;

    if let Some(existing) = find_by_key(conn, &new.idempotency_key).await? {
        return replay(existing, &new);
    }
    // A savepoint: a refused posting (a balance that would go negative) leaves nothing behind in
    // the caller's transaction, so the caller may go on (a lapsed collection, say).
    let mut scope = sqlx::Connection::begin(&mut *conn).await?;
    match post_new(&mut scope, new).await {
        Ok(posted) => {
            scope.commit().await?;
            Ok(posted)
        }
        Err(error) => {
            scope.rollback().await?;
            Err(error)
        }
    }
}

async fn post_new(conn: &mut AnyConnection, new: NewTransaction) -> Result<Posted, LedgerError> {
    let id = new_id();
    let created_at = now_ms();
    // ON CONFLICT: a concurrent request with the same key that committed first wins; this one
    // then replays it instead of failing (PostgreSQL waits for the other transaction here).
    let inserted = sqlx::query(
        "INSERT INTO ledger_transactions
             (id, idempotency_key, kind, memo, actor, proposal_id, reverses_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&id)
    .bind(&new.idempotency_key)
    .bind(new.kind.as_str())
    .bind(&new.memo)
    .bind(new.actor.as_str())
    .bind(new.proposal_id.as_deref())
    .bind(new.reverses_id.as_deref())
    .bind(created_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| match &new.reverses_id {
        Some(original) if crate::db::is_unique_violation(&e) => {
            LedgerError::AlreadyReversed(original.clone())
        }
        _ => LedgerError::Db(e),
    })?;
    if inserted.rows_affected() == 0 {
        let existing = find_by_key(conn, &new.idempotency_key)
            .await?
            .ok_or_else(|| LedgerError::KeyConflict(new.idempotency_key.clone()))?;
        return replay(existing, &new);
    }

    // Net change per account, applied in account order so that two transactions touching the
    // same accounts lock them in the same order (no deadlock on PostgreSQL).
    let mut net: BTreeMap<&AccountId, Money> = BTreeMap::new();
    for posting in &new.postings {
        let entry = net.entry(&posting.account).or_insert(Money::ZERO);
        *entry = entry.checked_add(posting.amount)?;
    }
    for (account, change) in net {
        if change.is_zero() {
            continue;
        }
        let bounds = BalanceBounds::for_change(change).ok_or_else(|| LedgerError::Overflow {
            account: account.clone(),
        })?;
        // Every condition compares the stored balance with bounds computed above, so nothing
        // is added before the row is known to take the change: `balance + $1` runs only where
        // it stays within BIGINT. (SQLite would silently turn an overflowing sum into a float,
        // PostgreSQL would fail the statement with an untyped error.)
        let updated = sqlx::query(
            "UPDATE accounts SET balance = balance + $1
             WHERE id = $2 AND balance <= $3 AND balance >= $4
               AND (may_go_negative = 1 OR balance >= $5)",
        )
        .bind(change.cents())
        .bind(account.as_str())
        .bind(bounds.at_most)
        .bind(bounds.at_least)
        .bind(bounds.to_stay_non_negative)
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(match find_account(conn, account).await? {
                None => LedgerError::UnknownAccount(account.clone()),
                Some(found) if found.balance.checked_add(change).is_err() => {
                    LedgerError::Overflow {
                        account: account.clone(),
                    }
                }
                Some(found) => LedgerError::InsufficientFunds {
                    account: account.clone(),
                    balance: found.balance,
                    needed: change.checked_neg()?,
                },
            });
        }
    }

    for (line, posting) in new.postings.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ledger_postings (transaction_id, line, account_id, amount)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(i64::try_from(line).unwrap_or(i64::MAX))
        .bind(posting.account.as_str())
        .bind(posting.amount.cents())
        .execute(&mut *conn)
        .await?;
    }

    Ok(Posted::New(Transaction {
        id,
        idempotency_key: new.idempotency_key,
        kind: new.kind.as_str().to_owned(),
        memo: new.memo,
        actor: new.actor.as_str().to_owned(),
        proposal_id: new.proposal_id,
        reverses_id: new.reverses_id,
        created_at,
        postings: new.postings,
    }))
}

/// The balances an account may have before `change` is added to it, computed with checked
/// arithmetic so that the `UPDATE` only compares and never overflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BalanceBounds {
    /// The largest balance that can take the change without passing `i64::MAX`.
    at_most: i64,
    /// The smallest balance that can take the change without passing `i64::MIN`.
    at_least: i64,
    /// The smallest balance an account that may not go negative needs for the change.
    to_stay_non_negative: i64,
}

impl BalanceBounds {
    /// `None` for a change no balance can take (`i64::MIN`, whose negation overflows).
    fn for_change(change: Money) -> Option<BalanceBounds> {
        let cents = change.cents();
        Some(BalanceBounds {
            at_most: i64::MAX.checked_sub(cents.max(0))?,
            at_least: i64::MIN.checked_sub(cents.min(0))?,
            to_stay_non_negative: cents.checked_neg()?,
        })
    }
}

fn check_balanced(postings: &[Posting]) -> Result<(), LedgerError> {
    if postings.len() < 2 {
        return Err(LedgerError::TooFewPostings);
    }
    if postings.iter().any(|p| p.amount.is_zero()) {
        return Err(LedgerError::ZeroPosting);
    }
    let sum = Money::checked_sum(postings.iter().map(|p| p.amount))?;
    if !sum.is_zero() {
        return Err(LedgerError::Unbalanced { sum });
    }
    Ok(())
}

fn replay(existing: Transaction, new: &NewTransaction) -> Result<Posted, LedgerError> {
    if existing.kind == new.kind.as_str() && existing.postings == new.postings {
        Ok(Posted::Replayed(existing))
    } else {
        Err(LedgerError::KeyConflict(new.idempotency_key.clone()))
    }
}

/// Reverses a transaction by a new one with every posting negated. A transaction is reversed
/// at most once; the reversal can fail with [`LedgerError::InsufficientFunds`] when the money
/// was spent meanwhile (the caller decides what to do about the shortfall).
pub async fn reverse(
    conn: &mut AnyConnection,
    transaction_id: &str,
    idempotency_key: impl Into<String>,
    actor: Actor,
    memo: impl Into<String>,
) -> Result<Posted, LedgerError> {
    let original = find_transaction(conn, transaction_id)
        .await?
        .ok_or_else(|| LedgerError::UnknownTransaction(transaction_id.to_owned()))?;
    if original.reverses_id.is_some() {
        return Err(LedgerError::ReversalOfReversal);
    }
    let mut new = NewTransaction::new(idempotency_key, TxKind::Reversal, memo, actor);
    new.proposal_id = original.proposal_id.clone();
    new.reverses_id = Some(original.id.clone());
    for posting in &original.postings {
        new = new.posting(posting.account.clone(), posting.amount.checked_neg()?);
    }
    // A replay of this same reversal comes back through the key; a different key for an
    // already reversed transaction is refused.
    if find_by_key(conn, &new.idempotency_key).await?.is_none() {
        let reversed: Option<String> =
            sqlx::query_scalar("SELECT id FROM ledger_transactions WHERE reverses_id = $1")
                .bind(&original.id)
                .fetch_optional(&mut *conn)
                .await?;
        if reversed.is_some() {
            return Err(LedgerError::AlreadyReversed(original.id));
        }
    }
    post(conn, new).await
}

const TRANSACTION_COLUMNS: &str =
    "id, idempotency_key, kind, memo, actor, proposal_id, reverses_id, created_at";

async fn find_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<Transaction>, LedgerError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM ledger_transactions WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    match id {
        Some(id) => find_transaction(conn, &id).await,
        None => Ok(None),
    }
}

pub async fn find_transaction(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Transaction>, LedgerError> {
    let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM ledger_transactions WHERE id = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let mut transaction = transaction_from_row(&row);
    transaction.postings = postings_of(conn, &transaction.id).await?;
    Ok(Some(transaction))
}

fn transaction_from_row(row: &sqlx::any::AnyRow) -> Transaction {
    Transaction {
        id: row.get("id"),
        idempotency_key: row.get("idempotency_key"),
        kind: row.get("kind"),
        memo: row.get("memo"),
        actor: row.get("actor"),
        proposal_id: row.get("proposal_id"),
        reverses_id: row.get("reverses_id"),
        created_at: row.get("created_at"),
        postings: Vec::new(),
    }
}

async fn postings_of(
    conn: &mut AnyConnection,
    transaction_id: &str,
) -> Result<Vec<Posting>, LedgerError> {
    let rows = sqlx::query(
        "SELECT account_id, amount FROM ledger_postings WHERE transaction_id = $1 ORDER BY line",
    )
    .bind(transaction_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Posting {
                account: AccountId(row.try_get("account_id")?),
                amount: Money::from_cents(row.try_get("amount")?),
            })
        })
        .collect()
}

/// Every transaction that concerns a proposal, oldest first, with their postings.
pub async fn transactions_of_proposal(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<Transaction>, LedgerError> {
    let sql = format!(
        "SELECT {TRANSACTION_COLUMNS} FROM ledger_transactions
         WHERE proposal_id = $1 ORDER BY created_at, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(proposal_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut transactions: Vec<Transaction> = rows.iter().map(transaction_from_row).collect();
    for transaction in &mut transactions {
        transaction.postings = postings_of(conn, &transaction.id).await?;
    }
    Ok(transactions)
}

/// One line of an account statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatementLine {
    pub transaction_id: String,
    pub created_at: i64,
    pub kind: String,
    pub memo: String,
    pub amount: Money,
    /// The account's balance right after this line.
    pub balance_after: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub account: Account,
    /// Newest first.
    pub lines: Vec<StatementLine>,
    pub page: u32,
    pub per_page: u32,
    pub total_lines: i64,
}

/// An account's postings, newest first, `per_page` at a time (pages count from 1), each with
/// the balance after it.
pub async fn statement(
    conn: &mut AnyConnection,
    id: &AccountId,
    page: u32,
    per_page: u32,
) -> Result<Statement, LedgerError> {
    let account = find_account(conn, id)
        .await?
        .ok_or_else(|| LedgerError::UnknownAccount(id.clone()))?;
    let page = page.max(1);
    let per_page = per_page.clamp(1, 500);
    let offset = i64::from(page - 1) * i64::from(per_page);

    let total_lines: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_postings WHERE account_id = $1",
    )
    .bind(id.as_str())
    .fetch_one(&mut *conn)
    .await?;
    // What the lines on earlier (newer) pages added: the balance after this page's first line
    // is the current balance less that.
    let newer: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM (
             SELECT p.amount FROM ledger_postings p
             JOIN ledger_transactions t ON t.id = p.transaction_id
             WHERE p.account_id = $1
             ORDER BY t.created_at DESC, t.id DESC, p.line DESC
             LIMIT $2
         ) newer",
    )
    .bind(id.as_str())
    .bind(offset)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT t.id, t.created_at, t.kind, t.memo, p.amount
         FROM ledger_postings p
         JOIN ledger_transactions t ON t.id = p.transaction_id
         WHERE p.account_id = $1
         ORDER BY t.created_at DESC, t.id DESC, p.line DESC
         LIMIT $2 OFFSET $3",
    )
    .bind(id.as_str())
    .bind(i64::from(per_page))
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;

    let mut balance_after = account.balance.checked_sub(Money::from_cents(newer))?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let amount = Money::from_cents(row.try_get("amount")?);
        lines.push(StatementLine {
            transaction_id: row.get("id"),
            created_at: row.get("created_at"),
            kind: row.get("kind"),
            memo: row.get("memo"),
            amount,
            balance_after,
        });
        balance_after = balance_after.checked_sub(amount)?;
    }
    Ok(Statement {
        account,
        lines,
        page,
        per_page,
        total_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_bounds_keep_every_sum_inside_i64() {
        let up = BalanceBounds::for_change(Money::from_cents(100)).unwrap_or_else(|| panic!());
        assert_eq!(up.at_most, i64::MAX - 100);
        assert_eq!(up.at_least, i64::MIN);
        assert_eq!(up.to_stay_non_negative, -100);
        let down = BalanceBounds::for_change(Money::from_cents(-100)).unwrap_or_else(|| panic!());
        assert_eq!(down.at_most, i64::MAX);
        assert_eq!(down.at_least, i64::MIN + 100);
        assert_eq!(down.to_stay_non_negative, 100);
        let most = BalanceBounds::for_change(Money::MAX).unwrap_or_else(|| panic!());
        assert_eq!((most.at_most, most.at_least), (0, i64::MIN));
        assert_eq!(BalanceBounds::for_change(Money::from_cents(i64::MIN)), None);
    }
}
