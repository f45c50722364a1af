//! Voting rounds on the pool: the board opens a round (budget, candidates with their frozen
//! costs, ballot type, rule, times), member organisations cast one ballot each until the
//! close, and the close runs the rule once and gives each winner from the pool what it still
//! needs (`coop:pool → proposal:<id>:escrow`, a pool pledge), funding it when that reaches the
//! goal, all in one transaction. Rounds import and export Pabulib files. The rules themselves
//! are pure, in [`crate::voting::round`]; priority polls are in [`polls`].

pub mod polls;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::new_id;
use crate::i18n::Locale;
use crate::ledger::{self, AccountId, LedgerError, NewTransaction, TxKind};
use crate::money::Money;
use crate::people::FieldErrors;
use crate::pledges::{self, PledgeError};
use crate::proposals::lifecycle::State;
use crate::proposals::{self, ProposalError};
use crate::voting::pabulib::{self, ParseError};
use crate::voting::round::{
    self, BallotProblem, BallotType, Candidate, CandidateResult, Explanation, ImportProblem,
    Outcome, PbCandidate, RoundRule, Summary,
};
use crate::voting::{Choice, Profile, ProfileError};

pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("no such round or poll")]
    Unknown,
    #[error("the round is not open yet")]
    NotOpen,
    #[error("the round is closed")]
    Closed,
    #[error("the organisation is not a member of the cooperative")]
    NotMember,
    #[error("the organisation's membership began after the round opened")]
    JoinedAfterOpening,
    #[error("invalid ballot: {0}")]
    Ballot(#[from] BallotProblem),
    #[error("the form has problems")]
    Invalid(FieldErrors),
    #[error("the pool can promise {available:?}")]
    BudgetTooLarge { available: Money },
    #[error("the file cannot be read: {0}")]
    File(#[from] ParseError),
    #[error("the file cannot become a round: {0}")]
    Import(#[from] ImportProblem),
    #[error("the round cannot be counted: {0}")]
    Count(#[from] ProfileError),
    #[error("the close is not due yet")]
    NotDue,
    #[error("the organisation's membership ends before the close")]
    LeavesBeforeClose,
    #[error("the ballots changed while the round was counted")]
    ChangedWhileCounting,
    #[error("the count was stopped")]
    CountingStopped,
    #[error("the operating system gave no random numbers")]
    NoRandomness,
    #[error(transparent)]
    Pledge(#[from] PledgeError),
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("stored data: {0}")]
    Json(#[from] serde_json::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A round as pages show it.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub id: String,
    pub title: String,
    pub description: String,
    pub budget: Money,
    pub ballot_type: &'static str,
    /// Most approvals, or the points' total.
    pub ballot_limit: Option<i64>,
    pub rule: &'static str,
    pub status: String,
    pub imported: bool,
    pub opens_at: i64,
    pub closes_at: i64,
    pub closed_at: Option<i64>,
    pub fingerprint: Option<String>,
    /// scheduled, open, counting (closing time passed, the close job has not run) or closed.
    pub phase: &'static str,
    /// Ballots cast so far.
    pub turnout: i64,
    #[serde(skip)]
    pub kind: BallotType,
    #[serde(skip)]
    pub rule_kind: RoundRule,
    #[serde(skip)]
    outcome: Option<String>,
}

impl Round {
    fn phase_at(status: &str, opens_at: i64, closes_at: i64, now: i64) -> &'static str {
        match status {
            "closed" => "closed",
            _ if status == "scheduled" || now < opens_at => "scheduled",
            _ if now >= closes_at => "counting",
            _ => "open",
        }
    }
}

/// A candidate of a round.
#[derive(Clone, Debug, Serialize)]
pub struct RoundCandidate {
    pub position: i64,
    pub candidate_id: String,
    pub proposal_id: Option<String>,
    pub title: String,
    pub cost: Money,
    pub allocated: Money,
}

/// The turnout column: ballots that count, those of organisations that are members at the
/// closing time (or at `now`, the parameter `now`, before it); an imported round's voters are
/// the file's.
fn turnout_sql(now: &str) -> String {
    let at = format!("CASE WHEN r.closes_at < {now} THEN r.closes_at ELSE {now} END");
    format!(
        "(SELECT CAST(COUNT(*) AS BIGINT) FROM round_ballots b WHERE b.round_id = r.id
           AND (r.imported = 1 OR EXISTS (SELECT 1 FROM memberships m
                WHERE m.organisation_id = b.voter AND m.joined_at <= {at}
                  AND (m.left_at IS NULL OR m.left_at > {at}))))"
    )
}

async fn find_row(conn: &mut AnyConnection, id: &str, now: i64) -> Result<Round, RoundError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT r.id, r.title, r.description, r.budget, r.ballot_type, r.ballot_limit, r.rule,
                r.status, r.imported, r.opens_at, r.closes_at, r.closed_at, r.fingerprint,
                r.outcome,
                {} AS turnout
         FROM rounds r WHERE r.id = $1",
        turnout_sql("$2")
    )))
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(RoundError::Unknown)?;
    Ok(round_from_row(&row, now))
}

fn round_from_row(row: &sqlx::any::AnyRow, now: i64) -> Round {
    let type_name: String = row.get("ballot_type");
    let limit: Option<i64> = row.get("ballot_limit");
    let kind = BallotType::from_parts(&type_name, limit.and_then(|l| u64::try_from(l).ok()))
        .unwrap_or(BallotType::Approval { max: None });
    let rule_name: String = row.get("rule");
    let rule_kind = RoundRule::parse(&rule_name).unwrap_or_default();
    let status: String = row.get("status");
    let opens_at: i64 = row.get("opens_at");
    let closes_at: i64 = row.get("closes_at");
    Round {
        id: row.get("id"),
        title: row.get("title"),
        description: row.get("description"),
        budget: Money::from_cents(row.get("budget")),
        ballot_type: kind.name(),
        ballot_limit: limit,
        rule: rule_kind.name(),
        phase: Round::phase_at(&status, opens_at, closes_at, now),
        status,
        imported: row.get::<i64, _>("imported") != 0,
        opens_at,
        closes_at,
        closed_at: row.get("closed_at"),
        fingerprint: row.get("fingerprint"),
        turnout: row.get("turnout"),
        kind,
        rule_kind,
        outcome: row.get("outcome"),
    }
}

/// A round, as anyone may see it.
pub async fn find(conn: &mut AnyConnection, id: &str, now: i64) -> Result<Round, RoundError> {
    find_row(conn, id, now).await
}

/// Every round, newest first.
pub async fn list(conn: &mut AnyConnection, now: i64) -> Result<Vec<Round>, RoundError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT r.id, r.title, r.description, r.budget, r.ballot_type, r.ballot_limit, r.rule,
                r.status, r.imported, r.opens_at, r.closes_at, r.closed_at, r.fingerprint,
                NULL AS outcome,
                {} AS turnout
         FROM rounds r ORDER BY r.closes_at DESC, r.id DESC",
        turnout_sql("$1")
    )))
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|r| round_from_row(r, now)).collect())
}

pub async fn candidates_of(
    conn: &mut AnyConnection,
    round_id: &str,
) -> Result<Vec<RoundCandidate>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT position, candidate_id, proposal_id, title, cost, allocated FROM round_candidates
         WHERE round_id = $1 ORDER BY position",
    )
    .bind(round_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| RoundCandidate {
            position: row.get("position"),
            candidate_id: row.get("candidate_id"),
            proposal_id: row.get("proposal_id"),
            title: row.get("title"),
            cost: Money::from_cents(row.get("cost")),
            allocated: Money::from_cents(row.get("allocated")),
        })
        .collect())
}

/// A proposal open for funding, as a possible candidate (or poll option).
#[derive(Clone, Debug, Serialize)]
pub struct OpenProposal {
    pub id: String,
    pub title: String,
    pub project_name: String,
    pub status: String,
    pub still_needed: Money,
}

/// The proposals open for funding now, with what each still needs.
pub async fn open_proposals(
    conn: &mut AnyConnection,
    now: i64,
) -> Result<Vec<OpenProposal>, RoundError> {
    let rows = sqlx::query(
        "SELECT p.id, p.title, p.status, j.name FROM proposals p JOIN projects j ON j.id = p.project_id
         WHERE p.status = 'open' AND p.funding_deadline > $1 ORDER BY p.id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let id: String = row.get("id");
        let still_needed = pledges::still_needed(conn, &id).await?;
        out.push(OpenProposal {
            id,
            title: row.get("title"),
            project_name: row.get("name"),
            status: row.get("status"),
            still_needed,
        });
    }
    Ok(out)
}

/// What the pool can still promise: its balance less the budgets of rounds not yet closed.
pub async fn available_budget(conn: &mut AnyConnection) -> Result<Money, RoundError> {
    let pool = ledger::balance(conn, &AccountId::pool())
        .await
        .unwrap_or(Money::ZERO);
    let promised: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(budget), 0) AS BIGINT) FROM rounds
         WHERE status IN ('scheduled', 'open') AND imported = 0",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Money::from_cents((pool.cents() - promised).max(0)))
}

/// The board's form for a new round, as entered.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct RoundForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub budget: String,
    /// approval, points, ranking
    #[serde(default)]
    pub ballot_type: String,
    /// Approval: the most approvals (empty: any number). Points: the total.
    #[serde(default)]
    pub ballot_limit: String,
    #[serde(default)]
    pub rule: String,
    /// YYYY-MM-DD; empty: now.
    #[serde(default)]
    pub opens: String,
    /// YYYY-MM-DD: the round closes at the end of that day.
    #[serde(default)]
    pub closes: String,
    /// Proposal ids.
    #[serde(default)]
    pub candidates: Vec<String>,
}

struct NewRound {
    budget: Money,
    kind: BallotType,
    rule: RoundRule,
    opens_at: i64,
    closes_at: i64,
}

impl RoundForm {
    /// Reads the form's fields (`candidates` may repeat).
    pub fn from_fields(fields: &[(String, String)]) -> RoundForm {
        let mut form = RoundForm::default();
        for (key, value) in fields {
            let value = value.clone();
            match key.as_str() {
                "title" => form.title = value,
                "description" => form.description = value,
                "budget" => form.budget = value,
                "ballot_type" => form.ballot_type = value,
                "ballot_limit" => form.ballot_limit = value,
                "rule" => form.rule = value,
                "opens" => form.opens = value,
                "closes" => form.closes = value,
                "candidates" => form.candidates.push(value),
                _ => {}
            }
        }
        form
    }

    fn check(&self, now: i64, max_amount: Money) -> Result<NewRound, FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.title.trim().is_empty() {
            errors.insert("title", "round.title_missing");
        }
        crate::text::check(
            &mut errors,
            &[
                (&crate::text::ROUND_TITLE, &self.title),
                (&crate::text::ROUND_DESCRIPTION, &self.description),
            ],
        );
        let budget = match Money::parse(&self.budget, max_amount) {
            Ok(b) if b.is_positive() => b,
            Ok(_) => {
                errors.insert("budget", "milestone.amount_zero");
                Money::ZERO
            }
            Err(e) => {
                errors.insert("budget", proposals::money_message_key(&e));
                Money::ZERO
            }
        };
        let limit = self.ballot_limit.trim();
        let limit: Option<u64> = if limit.is_empty() {
            None
        } else {
            match limit.parse::<u64>() {
                Ok(l) if l > 0 && l <= 1_000_000 => Some(l),
                _ => {
                    errors.insert("ballot_limit", "round.limit_invalid");
                    None
                }
            }
        };
        let kind = match self.ballot_type.as_str() {
            "points" if limit.is_none() => {
                errors.insert("ballot_limit", "round.points_total_missing");
                BallotType::Ranking
            }
            other => BallotType::from_parts(other, limit).unwrap_or_else(|| {
                errors.insert("ballot_type", "round.ballot_type_invalid");
                BallotType::Ranking
            }),
        };
        let rule = RoundRule::parse(&self.rule).unwrap_or_else(|| {
            errors.insert("rule", "round.rule_invalid");
            RoundRule::EqualShares
        });
        let opens_at = if self.opens.trim().is_empty() {
            now
        } else {
            match proposals::parse_date(&self.opens) {
                Some(day) => day.max(now),
                None => {
                    errors.insert("opens", "round.date_invalid");
                    now
                }
            }
        };
        let closes_at = match proposals::parse_date(&self.closes) {
            // The end of the chosen day.
            Some(day) if day + DAY_MS - 1 > opens_at => day + DAY_MS - 1,
            Some(_) => {
                errors.insert("closes", "round.closes_before_opening");
                0
            }
            None => {
                errors.insert("closes", "round.date_invalid");
                0
            }
        };
        if self.candidates.is_empty() {
            errors.insert("candidates", "round.no_candidates");
        }
        if errors.is_empty() {
            Ok(NewRound {
                budget,
                kind,
                rule,
                opens_at,
                closes_at,
            })
        } else {
            Err(errors)
        }
    }
}

/// The board opens a round. When it opens now, the candidates' costs are frozen and members
/// are mailed at once; otherwise a job does both at the opening time.
pub async fn create(
    conn: &mut AnyConnection,
    principal: &Principal,
    form: &RoundForm,
    now: i64,
    max_amount: Money,
) -> Result<String, RoundError> {
    authorize(principal, Action::ManageRounds)?;
    let new = form.check(now, max_amount).map_err(RoundError::Invalid)?;
    let mut ids = form.candidates.clone();
    ids.sort();
    ids.dedup();
    let open: Vec<OpenProposal> = open_proposals(conn, now).await?;
    let mut chosen = Vec::new();
    for id in &ids {
        match open.iter().find(|p| &p.id == id) {
            Some(p) => chosen.push(p.clone()),
            None => {
                let mut errors = FieldErrors::new();
                errors.insert("candidates", "round.candidate_not_open");
                return Err(RoundError::Invalid(errors));
            }
        }
    }
    // Rounds that are not closed hold their budgets: two boards opening rounds at once queue
    // on the pool's row, so together they never promise more than it holds.
    sqlx::query("UPDATE accounts SET id = id WHERE id = $1")
        .bind(AccountId::pool().as_str())
        .execute(&mut *conn)
        .await?;
    let available = available_budget(conn).await?;
    if new.budget > available {
        return Err(RoundError::BudgetTooLarge { available });
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO rounds (id, title, description, budget, ballot_type, ballot_limit, rule, status,
                             imported, opens_at, closes_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', 0, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(form.title.trim())
    .bind(form.description.trim())
    .bind(new.budget.cents())
    .bind(new.kind.name())
    .bind(new.kind.limit().and_then(|l| i64::try_from(l).ok()))
    .bind(new.rule.name())
    .bind(new.opens_at)
    .bind(new.closes_at)
    .bind(principal.person_id.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for (position, p) in chosen.iter().enumerate() {
        insert_candidate(
            conn,
            &id,
            position,
            &p.id,
            Some(&p.id),
            &p.title,
            p.still_needed.cents(),
        )
        .await?;
    }
    let payload = serde_json::json!({ "round": id });
    crate::jobs::schedule(
        conn,
        "round.close",
        payload.clone(),
        new.closes_at,
        Some(&format!("round-close:{id}")),
    )
    .await?;
    if new.closes_at - DAY_MS > new.opens_at {
        crate::jobs::schedule(
            conn,
            "round.closing_reminder",
            payload.clone(),
            new.closes_at - DAY_MS,
            Some(&format!("round-remind:{id}")),
        )
        .await?;
    }
    audit::record(
        conn,
        &principal.actor(),
        "round.created",
        &id,
        None,
        serde_json::json!({ "budget": new.budget, "candidates": chosen.len() }),
    )
    .await?;
    if new.opens_at <= now {
        open_round(conn, &id, now).await?;
    } else {
        crate::jobs::schedule(
            conn,
            "round.open",
            payload,
            new.opens_at,
            Some(&format!("round-open:{id}")),
        )
        .await?;
    }
    Ok(id)
}

async fn insert_candidate(
    conn: &mut AnyConnection,
    round_id: &str,
    position: usize,
    candidate_id: &str,
    proposal_id: Option<&str>,
    title: &str,
    cost: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO round_candidates (round_id, position, candidate_id, proposal_id, title, cost)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(round_id)
    .bind(i64::try_from(position).unwrap_or(i64::MAX))
    .bind(candidate_id)
    .bind(proposal_id)
    .bind(title)
    .bind(cost)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the round's row for the rest of the transaction: ballots, the opening and the close
/// of one round happen one after another.
async fn lock_round(conn: &mut AnyConnection, id: &str) -> Result<(), RoundError> {
    let locked = sqlx::query("UPDATE rounds SET id = id WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(RoundError::Unknown);
    }
    Ok(())
}

/// Opens a scheduled round (safe to run twice): freezes each candidate's cost at what it
/// still needs now, drops candidates no longer open for funding, and mails the members.
pub async fn open_round(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), RoundError> {
    lock_round(conn, id).await?;
    let round = find_row(conn, id, now).await?;
    if round.status != "scheduled" {
        return Ok(());
    }
    let candidates = candidates_of(conn, id).await?;
    sqlx::query("DELETE FROM round_candidates WHERE round_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let open = open_proposals(conn, now).await?;
    let mut position = 0;
    for c in candidates {
        let Some(p) = open.iter().find(|p| Some(&p.id) == c.proposal_id.as_ref()) else {
            continue;
        };
        insert_candidate(
            conn,
            id,
            position,
            &c.candidate_id,
            Some(&p.id),
            &c.title,
            p.still_needed.cents(),
        )
        .await?;
        position += 1;
    }
    sqlx::query("UPDATE rounds SET status = 'open' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let url = format!("/rounds/{id}");
    for (email, locale) in member_admins(conn, now, None).await? {
        let closes = crate::i18n::format_datetime(round.closes_at, locale);
        let budget = round.budget.format(locale);
        let mail = crate::mail::compose(
            &email,
            locale,
            "round_opened",
            "mail.round_opened",
            &[
                ("title", &round.title),
                ("budget", &budget),
                ("closes", &closes),
            ],
            Some(url.clone()),
        );
        crate::mail::enqueue(conn, &mail).await?;
    }
    Ok(())
}

/// The admins of the organisations that are members at `at`, optionally only those whose
/// organisation has not voted in `round`.
async fn member_admins(
    conn: &mut AnyConnection,
    at: i64,
    not_voted_in: Option<&str>,
) -> Result<Vec<(String, Locale)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT p.email, p.locale FROM memberships m
         JOIN organisation_people op ON op.organisation_id = m.organisation_id AND op.role = 'admin'
         JOIN people p ON p.id = op.person_id
         WHERE m.joined_at <= $1 AND (m.left_at IS NULL OR m.left_at > $1)
           AND ($2 IS NULL OR m.organisation_id NOT IN
                (SELECT voter FROM round_ballots WHERE round_id = $2))
         ORDER BY p.email",
    )
    .bind(at)
    .bind(not_voted_in)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let locale: String = row.get("locale");
            (
                row.get("email"),
                Locale::from_tag(&locale).unwrap_or_default(),
            )
        })
        .collect())
}

/// A day before the close: the admins of members that have not voted yet are reminded.
pub async fn remind(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), RoundError> {
    let round = find_row(conn, id, now).await?;
    if round.phase != "open" {
        return Ok(());
    }
    let url = format!("/rounds/{id}");
    for (email, locale) in member_admins(conn, now, Some(id)).await? {
        let closes = crate::i18n::format_datetime(round.closes_at, locale);
        let mail = crate::mail::compose(
            &email,
            locale,
            "round_closing",
            "mail.round_closing",
            &[("title", &round.title), ("closes", &closes)],
            Some(url.clone()),
        );
        crate::mail::enqueue(conn, &mail).await?;
    }
    Ok(())
}

/// Whether `organisation_id` may vote in something that opened at `opened_at`: a member now,
/// and already a member when it opened.
pub(crate) async fn check_member(
    conn: &mut AnyConnection,
    organisation_id: &str,
    opened_at: i64,
    now: i64,
) -> Result<(), RoundError> {
    let rows = sqlx::query("SELECT joined_at, left_at FROM memberships WHERE organisation_id = $1")
        .bind(organisation_id)
        .fetch_all(&mut *conn)
        .await?;
    let current: Vec<i64> = rows
        .iter()
        .filter(|row| {
            row.get::<Option<i64>, _>("left_at")
                .is_none_or(|left| left > now)
                && row.get::<i64, _>("joined_at") <= now
        })
        .map(|row| row.get("joined_at"))
        .collect();
    match current.iter().min() {
        None => Err(RoundError::NotMember),
        Some(&joined) if joined > opened_at => Err(RoundError::JoinedAfterOpening),
        Some(_) => Ok(()),
    }
}

/// Whether `organisation_id` is a member at `at` (its exit, if any, takes effect later).
pub(crate) async fn member_at(
    conn: &mut AnyConnection,
    organisation_id: &str,
    at: i64,
) -> Result<bool, RoundError> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM memberships WHERE organisation_id = $1 AND joined_at <= $2
           AND (left_at IS NULL OR left_at > $2)",
    )
    .bind(organisation_id)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// An organisation's ballot, cast by one of its admins. A second ballot replaces the first.
pub async fn cast(
    conn: &mut AnyConnection,
    principal: &Principal,
    round_id: &str,
    organisation_id: &str,
    choice: Choice,
    now: i64,
) -> Result<(), RoundError> {
    authorize(principal, Action::VoteForOrganisation { organisation_id })?;
    lock_round(conn, round_id).await?;
    let round = find_row(conn, round_id, now).await?;
    if round.imported {
        return Err(RoundError::Closed);
    }
    match round.phase {
        "open" => {}
        "scheduled" => return Err(RoundError::NotOpen),
        _ => return Err(RoundError::Closed),
    }
    check_member(conn, organisation_id, round.opens_at, now).await?;
    if !member_at(conn, organisation_id, round.closes_at).await? {
        // Only members at the close count: a ballot that would not count is not taken.
        return Err(RoundError::LeavesBeforeClose);
    }
    let candidates = candidates_of(conn, round_id).await?;
    let choice = round::check_ballot(round.kind, candidates.len(), choice)?;
    sqlx::query(
        "INSERT INTO round_ballots (id, round_id, voter, choice, cast_by, cast_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (round_id, voter) DO UPDATE
         SET choice = excluded.choice, cast_by = excluded.cast_by, cast_at = excluded.cast_at",
    )
    .bind(new_id())
    .bind(round_id)
    .bind(organisation_id)
    .bind(serde_json::to_string(&choice)?)
    .bind(principal.person_id.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Who voted is recorded; how is not (the ballot is secret).
    audit::record(
        conn,
        &principal.actor(),
        "round.ballot_cast",
        round_id,
        Some(organisation_id),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// An organisation's own ballot in a round, if it cast one.
pub async fn ballot_of(
    conn: &mut AnyConnection,
    round_id: &str,
    organisation_id: &str,
) -> Result<Option<Choice>, RoundError> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT choice FROM round_ballots WHERE round_id = $1 AND voter = $2")
            .bind(round_id)
            .bind(organisation_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match stored {
        Some(json) => Some(serde_json::from_str(&json)?),
        None => None,
    })
}

/// The ballots a round counts, in a canonical order (by what they say, never by who cast
/// them or when): those of organisations that are members at `at` (the closing time), or
/// every ballot of an imported round. The order is part of the fingerprint and of the stored
/// outcome, so it must not reveal the order in which the members joined.
async fn counted_ballots(
    conn: &mut AnyConnection,
    round: &Round,
    at: i64,
) -> Result<Vec<Choice>, RoundError> {
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT b.choice FROM round_ballots b WHERE b.round_id = $1
           AND ($2 = 1 OR EXISTS (SELECT 1 FROM memberships m
                WHERE m.organisation_id = b.voter AND m.joined_at <= $3
                  AND (m.left_at IS NULL OR m.left_at > $3)))",
    )
    .bind(&round.id)
    .bind(i64::from(round.imported))
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    let choices = stored
        .iter()
        .map(|json| serde_json::from_str(json).map_err(RoundError::from))
        .collect::<Result<Vec<Choice>, RoundError>>()?;
    canonical(choices)
}

/// Ballots sorted by their JSON form: the order of the rules' input depends on nothing but
/// the ballots themselves.
fn canonical(choices: Vec<Choice>) -> Result<Vec<Choice>, RoundError> {
    let mut keyed = choices
        .into_iter()
        .map(|c| Ok((serde_json::to_string(&c)?, c)))
        .collect::<Result<Vec<(String, Choice)>, serde_json::Error>>()?;
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, c)| c).collect())
}

/// Every stored ballot in the order of the voters' ids: how rounds closed before the count
/// took only members at the close were fingerprinted (checked so their results still match).
async fn ballots_by_voter(
    conn: &mut AnyConnection,
    round_id: &str,
) -> Result<Vec<Choice>, RoundError> {
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT choice FROM round_ballots WHERE round_id = $1 ORDER BY voter")
            .bind(round_id)
            .fetch_all(&mut *conn)
            .await?;
    stored
        .iter()
        .map(|json| serde_json::from_str(json).map_err(RoundError::from))
        .collect()
}

fn profile_from(round: &Round, candidates: &[RoundCandidate], ballots: &[Choice]) -> Profile {
    let inputs: Vec<Candidate> = candidates
        .iter()
        .map(|c| Candidate {
            id: c.candidate_id.clone(),
            cost: u64::try_from(c.cost.cents()).unwrap_or(0),
        })
        .collect();
    let budget = u64::try_from(round.budget.cents()).unwrap_or(0);
    round::profile(budget, &inputs, ballots)
}

/// The rules' input of a round: its candidates and the ballots of members at the close.
async fn profile_of(
    conn: &mut AnyConnection,
    round: &Round,
) -> Result<(Profile, Vec<RoundCandidate>), RoundError> {
    let candidates = candidates_of(conn, &round.id).await?;
    let ballots = counted_ballots(conn, round, round.closes_at).await?;
    Ok((profile_from(round, &candidates, &ballots), candidates))
}

/// Counting takes CPU time (equal shares may run thousands of times): it runs on the blocking
/// threads, never on the async ones that answer requests, one count at a time, and never
/// inside a write transaction.
static COUNTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Runs `work` (a count) off the async threads, one at a time.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RoundError> {
    let _permit = COUNTING
        .acquire()
        .await
        .map_err(|_| RoundError::CountingStopped)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| RoundError::CountingStopped)
}

/// What a close counts: the rule and its input, read before the count.
#[derive(Clone, Debug)]
pub struct CloseInputs {
    pub rule: RoundRule,
    pub profile: Profile,
    pub fingerprint: String,
}

impl CloseInputs {
    fn new(rule: RoundRule, profile: Profile) -> CloseInputs {
        CloseInputs {
            fingerprint: round::fingerprint(rule, &profile),
            rule,
            profile,
        }
    }

    /// Runs the rule (pure and possibly slow: call it through [`off_thread`]).
    pub fn count(&self) -> Result<Outcome, ProfileError> {
        round::run(self.rule, &self.profile)
    }
}

/// What a close did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closed {
    /// The round was closed before: nothing happened.
    pub already: bool,
    /// Cents the pool gave in total.
    pub allocated: i64,
}

/// The close's input, read without writing; `None` if the round is closed already. A round
/// that never opened has to be opened first ([`open_round`]), which freezes its costs.
pub async fn close_inputs(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<Option<CloseInputs>, RoundError> {
    let round = find_row(conn, id, now).await?;
    if round.status == "closed" {
        return Ok(None);
    }
    if now < round.closes_at {
        return Err(RoundError::NotDue);
    }
    let (profile, _) = profile_of(conn, &round).await?;
    Ok(Some(CloseInputs::new(round.rule_kind, profile)))
}

/// Closes a round in the caller's transaction, counting in it: for the demo and tests. The
/// `round.close` job uses [`close_job`], which counts outside any transaction.
pub async fn close(conn: &mut AnyConnection, id: &str, now: i64) -> Result<Closed, RoundError> {
    lock_round(conn, id).await?;
    let round = find_row(conn, id, now).await?;
    if round.status == "scheduled" && now >= round.closes_at {
        open_round(conn, id, now).await?;
    }
    let Some(inputs) = close_inputs(conn, id, now).await? else {
        return Ok(Closed {
            already: true,
            allocated: 0,
        });
    };
    let outcome = inputs.count()?;
    close_counted(conn, id, now, &inputs, &outcome).await
}

/// The `round.close` job: reads the inputs, counts off the async threads with no transaction
/// open, then records the outcome and pays the winners in one short transaction that checks
/// that the round is still open and its inputs are still those counted (else counts again).
pub async fn close_job(db: &crate::db::Db, id: &str, now: i64) -> Result<Closed, RoundError> {
    for _ in 0..3 {
        let inputs = {
            let mut conn = db.pool().acquire().await?;
            let round = find_row(&mut conn, id, now).await?;
            if round.status == "scheduled" && now >= round.closes_at {
                drop(conn);
                // Never opened (the opening job did not run): open it so that costs are frozen.
                let mut tx = db.begin().await?;
                open_round(&mut tx, id, now).await?;
                tx.commit().await?;
                conn = db.pool().acquire().await?;
            }
            close_inputs(&mut conn, id, now).await?
        };
        let Some(inputs) = inputs else {
            return Ok(Closed {
                already: true,
                allocated: 0,
            });
        };
        let counted = inputs.clone();
        let outcome = off_thread(move || counted.count()).await??;
        let mut tx = db.begin().await?;
        match close_counted(&mut tx, id, now, &inputs, &outcome).await {
            Ok(closed) => {
                tx.commit().await?;
                return Ok(closed);
            }
            Err(RoundError::ChangedWhileCounting) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(RoundError::ChangedWhileCounting)
}

/// Records a round's outcome, counted from `inputs` (safe to run twice): checks that the round
/// is still open and its input still gives the counted fingerprint, stores the outcome with
/// it, and gives each winner from the pool the lesser of its frozen cost and what it still
/// needs now, as a pool pledge, funding it when that reaches the goal. A winner funded,
/// expired or cancelled meanwhile gets only what it still needs, possibly nothing.
/// Everything commits together or not at all.
pub async fn close_counted(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
    inputs: &CloseInputs,
    outcome: &Outcome,
) -> Result<Closed, RoundError> {
    lock_round(conn, id).await?;
    let round = find_row(conn, id, now).await?;
    if round.status == "closed" {
        return Ok(Closed {
            already: true,
            allocated: 0,
        });
    }
    if now < round.closes_at {
        return Err(RoundError::NotDue);
    }
    if round.status == "scheduled" {
        // Opening freezes the costs: what was counted is not the input any more.
        return Err(RoundError::ChangedWhileCounting);
    }
    let (profile, candidates) = profile_of(conn, &round).await?;
    let fingerprint = round::fingerprint(round.rule_kind, &profile);
    if fingerprint != inputs.fingerprint || round.rule_kind != inputs.rule {
        return Err(RoundError::ChangedWhileCounting);
    }
    let mut allocated = 0;
    if !round.imported {
        for &winner in outcome.selected() {
            let Some(candidate) = candidates.get(winner) else {
                continue;
            };
            let Some(proposal_id) = &candidate.proposal_id else {
                continue;
            };
            let given = allocate(conn, id, candidate, proposal_id, now).await?;
            allocated += given;
        }
    }
    let updated = sqlx::query(
        "UPDATE rounds SET status = 'closed', closed_at = $1, fingerprint = $2, outcome = $3
         WHERE id = $4 AND status <> 'closed'",
    )
    .bind(now)
    .bind(&fingerprint)
    .bind(serde_json::to_string(outcome)?)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        // Another close got there first (the row lock makes this unreachable): write nothing.
        return Err(RoundError::ChangedWhileCounting);
    }
    audit::record(
        conn,
        &crate::ledger::Actor::system(),
        "round.closed",
        id,
        None,
        serde_json::json!({ "fingerprint": fingerprint, "allocated": allocated,
                            "selected": outcome.selected().len() }),
    )
    .await?;
    Ok(Closed {
        already: false,
        allocated,
    })
}

/// The pool's pledge to one winner: `min(frozen cost, still needed now)`, nothing if the
/// proposal is no longer open. Locks the proposal like a pledge does.
async fn allocate(
    conn: &mut AnyConnection,
    round_id: &str,
    candidate: &RoundCandidate,
    proposal_id: &str,
    now: i64,
) -> Result<i64, RoundError> {
    pledges::lock_proposal(conn, proposal_id).await?;
    let row = sqlx::query(
        "SELECT status, funding_deadline, funding_goal, project_id FROM proposals WHERE id = $1",
    )
    .bind(proposal_id)
    .fetch_one(&mut *conn)
    .await?;
    let status: String = row.get("status");
    let deadline: Option<i64> = row.get("funding_deadline");
    let goal: i64 = row.get("funding_goal");
    let project_id: String = row.get("project_id");
    if State::parse(&status) != Some(State::Open) || deadline.is_none_or(|d| d <= now) {
        return Ok(0);
    }
    let needed = pledges::still_needed(conn, proposal_id).await?;
    let amount = Money::from_cents(candidate.cost.cents().min(needed.cents()));
    if !amount.is_positive() {
        return Ok(0);
    }
    // A platform key: clients' keys live under `user:` (see `pledges::user_key`) and can never
    // take it, so no pledge can make the close fail on this unique key.
    let key = format!("round:{round_id}:{}", candidate.position);
    let transaction = ledger::post(
        conn,
        NewTransaction::transfer(
            key.clone(),
            TxKind::PoolAllocation,
            "voting round",
            crate::ledger::Actor::system(),
            AccountId::pool(),
            AccountId::escrow(proposal_id),
            amount,
        )?
        .for_proposal(proposal_id),
    )
    .await?
    .into_transaction();
    sqlx::query(
        "INSERT INTO pledges (id, proposal_id, organisation_id, source_account, committed, show_publicly,
                              transaction_id, created_at, idempotency_key, pledged_by)
         VALUES ($1, $2, NULL, $3, $4, 1, $5, $6, $7, NULL)",
    )
    .bind(new_id())
    .bind(proposal_id)
    .bind(AccountId::pool().as_str())
    .bind(amount.cents())
    .bind(&transaction.id)
    .bind(now)
    .bind(&key)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE round_candidates SET allocated = $1 WHERE round_id = $2 AND position = $3")
        .bind(amount.cents())
        .bind(round_id)
        .bind(candidate.position)
        .execute(&mut *conn)
        .await?;
    if amount == needed && goal > 0 {
        pledges::fund(conn, &Principal::visitor(), proposal_id, &project_id).await?;
    }
    Ok(amount.cents())
}

/// One candidate on the results page.
#[derive(Clone, Debug, Serialize)]
pub struct CandidateLine {
    pub candidate: RoundCandidate,
    pub result: CandidateResult,
    /// Bar lengths for the chart, 0 to 400 (cost and allocation, scaled to the largest cost).
    pub cost_bar: i64,
    pub allocated_bar: i64,
}

/// A closed round's result with its explanation.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub lines: Vec<CandidateLine>,
    pub summary: Summary,
    /// The inputs still give the stored fingerprint.
    pub fingerprint_matches: bool,
}

/// The result of a closed round; `None` while it is not closed.
pub async fn results(
    conn: &mut AnyConnection,
    round: &Round,
) -> Result<Option<Results>, RoundError> {
    let Some(stored) = &round.outcome else {
        return Ok(None);
    };
    let outcome: Outcome = serde_json::from_str(stored)?;
    let (mut profile, candidates) = profile_of(conn, round).await?;
    let stored_fingerprint = |profile: &Profile| {
        round.fingerprint.as_deref() == Some(&round::fingerprint(round.rule_kind, profile))
    };
    let mut fingerprint_matches = stored_fingerprint(&profile);
    if !fingerprint_matches {
        // Rounds closed before the count took only members at the close, in canonical order.
        let legacy = profile_from(
            round,
            &candidates,
            &ballots_by_voter(conn, &round.id).await?,
        );
        if stored_fingerprint(&legacy) {
            fingerprint_matches = true;
            profile = legacy;
        }
    }
    let (results, summary) = round::explain(&profile, &outcome);
    let largest = candidates
        .iter()
        .map(|c| c.cost.cents())
        .max()
        .unwrap_or(0)
        .max(1);
    let bar =
        |cents: i64| i64::try_from(i128::from(cents) * 400 / i128::from(largest)).unwrap_or(0);
    let lines = candidates
        .into_iter()
        .zip(results)
        .map(|(candidate, result)| CandidateLine {
            cost_bar: bar(candidate.cost.cents()),
            allocated_bar: bar(if round.imported && result.selected {
                candidate.cost.cents()
            } else {
                candidate.allocated.cents()
            }),
            candidate,
            result,
        })
        .collect();
    Ok(Some(Results {
        lines,
        summary,
        fingerprint_matches,
    }))
}

/// Whether an explanation is of a winner (for templates that sort).
pub fn is_winner(explanation: &Explanation) -> bool {
    matches!(
        explanation,
        Explanation::Shared { .. }
            | Explanation::Free
            | Explanation::Completion
            | Explanation::Taken { .. }
    )
}

/// The round as a Pabulib file. Ballots are in it only once the round is closed (they are
/// secret before): those the close counted, shuffled afresh for every export with the
/// operating system's random numbers, and numbered in that order, so that neither the
/// numbers nor the order say which member cast which ballot (members' ids sort by when they
/// were created, which the member list shows).
pub async fn export(conn: &mut AnyConnection, id: &str, now: i64) -> Result<String, RoundError> {
    let round = find_row(conn, id, now).await?;
    let candidates = candidates_of(conn, id).await?;
    let ballots = if round.status == "closed" {
        shuffled(counted_ballots(conn, &round, round.closes_at).await?)?
    } else {
        Vec::new()
    };
    let meta = vec![
        ("description".to_owned(), round.title.clone()),
        ("currency".to_owned(), "EUR".to_owned()),
        ("rule".to_owned(), round.rule.to_owned()),
        (
            "date_begin".to_owned(),
            crate::proposals::date_value(round.opens_at),
        ),
        (
            "date_end".to_owned(),
            crate::proposals::date_value(round.closes_at),
        ),
    ];
    let pb: Vec<PbCandidate> = candidates
        .iter()
        .map(|c| PbCandidate {
            id: c.candidate_id.clone(),
            cost: u64::try_from(c.cost.cents()).unwrap_or(0),
            name: c.title.clone(),
        })
        .collect();
    let election = round::to_election(
        meta,
        u64::try_from(round.budget.cents()).unwrap_or(0),
        round.kind,
        &pb,
        &ballots,
    );
    Ok(pabulib::to_pb(&election))
}

/// The ballots in a uniformly random order (Fisher–Yates with the operating system's random
/// numbers, rejection sampling so that no order is more likely than another).
fn shuffled(mut ballots: Vec<Choice>) -> Result<Vec<Choice>, RoundError> {
    let random = |below: u64| -> Result<u64, RoundError> {
        // The largest multiple of `below` that fits: values from it up would favour some.
        let zone = u64::MAX - (u64::MAX % below);
        loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|_| RoundError::NoRandomness)?;
            let value = u64::from_le_bytes(bytes);
            if value < zone {
                return Ok(value % below);
            }
        }
    };
    for i in (1..ballots.len()).rev() {
        let j = random(i as u64 + 1)?;
        ballots.swap(i, usize::try_from(j).unwrap_or(0));
    }
    Ok(ballots)
}

/// A `.pb` file read and counted, ready to become a round.
#[derive(Clone, Debug)]
pub struct PreparedImport {
    imported: round::Imported,
    inputs: CloseInputs,
    outcome: Outcome,
}

/// Reads a `.pb` file and counts it with `rule`, before anything is written (pure and
/// possibly slow: call it through [`off_thread`]). The count is bounded
/// ([`crate::voting::equal_shares::MAX_RUNS`]); a file that would need more is refused.
pub fn prepare_import(text: &str, rule: RoundRule) -> Result<PreparedImport, RoundError> {
    let election = pabulib::parse(text)?;
    let imported = round::from_election(&election)?;
    let candidates: Vec<Candidate> = imported
        .candidates
        .iter()
        .map(|c| Candidate {
            id: c.id.clone(),
            cost: c.cost,
        })
        .collect();
    let ballots = canonical(imported.ballots.clone())?;
    let inputs = CloseInputs::new(
        rule,
        round::profile(imported.budget_cents, &candidates, &ballots),
    );
    let outcome = inputs.count()?;
    Ok(PreparedImport {
        imported,
        inputs,
        outcome,
    })
}

/// The board imports a `.pb` file as a new round, counted beforehand by [`prepare_import`].
/// Projects whose id is that of a proposal are linked to it; the rest are candidates of their
/// own. An imported round never moves money: its ballots were not cast by this cooperative's
/// members.
pub async fn import(
    conn: &mut AnyConnection,
    principal: &Principal,
    prepared: &PreparedImport,
    now: i64,
) -> Result<String, RoundError> {
    authorize(principal, Action::ManageRounds)?;
    let imported = &prepared.imported;
    let rule = prepared.inputs.rule;
    let id = new_id();
    sqlx::query(
        "INSERT INTO rounds (id, title, description, budget, ballot_type, ballot_limit, rule, status,
                             imported, opens_at, closes_at, created_by, created_at)
         VALUES ($1, $2, '', $3, $4, $5, $6, 'open', 1, $7, $8, $9, $7)",
    )
    .bind(&id)
    .bind(&imported.title)
    .bind(i64::try_from(imported.budget_cents).map_err(|_| ImportProblem::TooLarge)?)
    .bind(imported.kind.name())
    .bind(imported.kind.limit().and_then(|l| i64::try_from(l).ok()))
    .bind(rule.name())
    .bind(now - 1)
    .bind(now)
    .bind(principal.person_id.as_deref())
    .execute(&mut *conn)
    .await?;
    for (position, c) in imported.candidates.iter().enumerate() {
        let proposal: Option<String> = sqlx::query_scalar("SELECT id FROM proposals WHERE id = $1")
            .bind(&c.id)
            .fetch_optional(&mut *conn)
            .await?;
        insert_candidate(
            conn,
            &id,
            position,
            &c.id,
            proposal.as_deref(),
            &c.name,
            i64::try_from(c.cost).map_err(|_| ImportProblem::TooLarge)?,
        )
        .await?;
    }
    for (i, choice) in imported.ballots.iter().enumerate() {
        sqlx::query(
            "INSERT INTO round_ballots (id, round_id, voter, choice, cast_by, cast_at)
             VALUES ($1, $2, $3, $4, NULL, $5)",
        )
        .bind(new_id())
        .bind(&id)
        .bind(format!("pb:{:08}", i + 1))
        .bind(serde_json::to_string(choice)?)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    audit::record(
        conn,
        &principal.actor(),
        "round.imported",
        &id,
        None,
        serde_json::json!({ "projects": imported.candidates.len(), "ballots": imported.ballots.len() }),
    )
    .await?;
    close_counted(conn, &id, now, &prepared.inputs, &prepared.outcome).await?;
    Ok(id)
}

/// The organisations a person may cast a ballot for (their admin roles), with whether each is
/// entitled in something that opened at `opened_at`.
#[derive(Clone, Debug, Serialize)]
pub struct VoterOption {
    pub organisation_id: String,
    pub name: String,
    /// Why it may not vote (a message key), if it may not.
    pub refusal: Option<&'static str>,
}

pub async fn voter_options(
    conn: &mut AnyConnection,
    principal: &Principal,
    opened_at: i64,
    closes_at: i64,
    now: i64,
) -> Result<Vec<VoterOption>, RoundError> {
    let mut out = Vec::new();
    for (organisation_id, role) in &principal.organisations {
        if *role != crate::authz::OrgRole::Admin {
            continue;
        }
        let name: Option<String> =
            sqlx::query_scalar("SELECT legal_name FROM organisations WHERE id = $1")
                .bind(organisation_id)
                .fetch_optional(&mut *conn)
                .await?;
        let refusal = match check_member(conn, organisation_id, opened_at, now).await {
            Ok(()) if !member_at(conn, organisation_id, closes_at).await? => {
                Some("hardening.voting.leaves_before_close")
            }
            Ok(()) => None,
            Err(RoundError::NotMember) => Some("round.not_member"),
            Err(RoundError::JoinedAfterOpening) => Some("round.joined_after_opening"),
            Err(other) => return Err(other),
        };
        out.push(VoterOption {
            organisation_id: organisation_id.clone(),
            name: name.unwrap_or_default(),
            refusal,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
