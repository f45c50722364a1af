//! Milestone delivery and review: a maintainer submits a milestone with evidence; the backers
//! review it, weighted by their share of the proposal's money (the board for the pool's share);
//! more than half accepting releases it, more than half rejecting sends it back (the second
//! rejection opens a dispute the board decides); silence until the window ends counts as
//! acceptance. The release itself is in [`release`].

pub mod release;

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::new_id;
use crate::i18n::Locale;
use crate::ledger::Actor;
use crate::money::{Money, MoneyError};
use crate::people::FieldErrors;
use crate::proposals::lifecycle::{State, Transition};
use crate::proposals::{self, ProposalError, TransitionInput};

/// The reviewer name of the pool's share (decided by the board).
pub const POOL: &str = "pool";

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("no such milestone or submission")]
    Unknown,
    #[error("the proposal is not funded or in progress")]
    NotInProgress,
    #[error("the milestone cannot be submitted now (it is {status})")]
    NotSubmittable { status: String },
    #[error("the form has problems")]
    Invalid(FieldErrors),
    #[error("the milestone is not under review (any more)")]
    NotUnderReview,
    #[error("the organisation did not back this proposal")]
    NotABacker,
    #[error("the milestone has no open dispute")]
    NoDispute,
    #[error("the amount must be more than zero and at most {max:?}")]
    PartialAmount { max: Money },
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What a maintainer submits.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize)]
pub struct SubmissionForm {
    #[serde(default)]
    pub summary: String,
    /// Links, one per line.
    #[serde(default)]
    pub evidence: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub security_fixes: String,
    #[serde(default)]
    pub releases: String,
    #[serde(default)]
    pub issues_handled: String,
    #[serde(default)]
    pub hours_spent: String,
}

impl SubmissionForm {
    /// Checks the form; a maintenance period needs its report.
    fn check(&self, maintenance: bool) -> Result<(Vec<String>, Option<i64>), FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.summary.trim().is_empty() {
            errors.insert("summary", "form.required");
        }
        use crate::text;
        text::check(
            &mut errors,
            &[
                (&text::SUBMISSION_SUMMARY, &self.summary),
                (&text::SUBMISSION_EVIDENCE, &self.evidence),
                (&text::SUBMISSION_NOTES, &self.notes),
                (&text::SUBMISSION_SECURITY_FIXES, &self.security_fixes),
                (&text::SUBMISSION_RELEASES, &self.releases),
                (&text::SUBMISSION_ISSUES_HANDLED, &self.issues_handled),
            ],
        );
        let links: Vec<String> = self
            .evidence
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if links.is_empty() {
            errors.insert("evidence", "submission.evidence_missing");
        } else if links.len() > 50
            || links.iter().any(|l| {
                url::Url::parse(l)
                    .map(|u| !matches!(u.scheme(), "http" | "https") || u.host().is_none())
                    .unwrap_or(true)
            })
        {
            errors.insert("evidence", "submission.evidence_invalid");
        }
        let mut hours = None;
        if maintenance {
            if self.issues_handled.trim().is_empty() {
                errors.insert("issues_handled", "form.required");
            }
            match self.hours_spent.trim().parse::<i64>() {
                Ok(h) if (0..=10_000).contains(&h) => hours = Some(h),
                _ => {
                    errors.insert("hours_spent", "submission.hours_invalid");
                }
            }
        }
        if errors.is_empty() {
            Ok((links, hours))
        } else {
            Err(errors)
        }
    }
}

/// A milestone with its proposal's facts, as the rules need them.
struct MilestoneFacts {
    id: String,
    proposal_id: String,
    project_id: String,
    kind: String,
    title: String,
    proposal_title: String,
    amount: Money,
    status: String,
    proposal_status: String,
}

async fn milestone_facts(
    conn: &mut AnyConnection,
    milestone_id: &str,
) -> Result<MilestoneFacts, ReviewError> {
    let row = sqlx::query(
        "SELECT m.id, m.proposal_id, p.project_id, p.kind, m.title, p.title AS proposal_title,
                m.amount, m.status, p.status AS proposal_status
         FROM milestones m JOIN proposals p ON p.id = m.proposal_id WHERE m.id = $1",
    )
    .bind(milestone_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ReviewError::Unknown)?;
    Ok(MilestoneFacts {
        id: row.get("id"),
        proposal_id: row.get("proposal_id"),
        project_id: row.get("project_id"),
        kind: row.get("kind"),
        title: row.get("title"),
        proposal_title: row.get("proposal_title"),
        amount: Money::from_cents(row.get("amount")),
        status: row.get("status"),
        proposal_status: row.get("proposal_status"),
    })
}

/// Everyone who submitted the milestone, in any round: none of them may judge it (four-eyes
/// rule, with the maintainer history in `authz`).
async fn submitters(
    conn: &mut AnyConnection,
    milestone_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT submitted_by FROM milestone_submissions WHERE milestone_id = $1",
    )
    .bind(milestone_id)
    .fetch_all(&mut *conn)
    .await
}

/// What a submission needs from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ReviewSettings<'a> {
    pub window_ms: i64,
    /// The fee that applies if the window's end accepts the milestone by silence.
    pub fee_basis_points: u32,
    pub base_url: &'a str,
}

/// A maintainer submits a milestone of a funded proposal (which starts the work if it had not
/// started) and a review window opens; the backers are told.
pub async fn submit(
    conn: &mut AnyConnection,
    principal: &Principal,
    milestone_id: &str,
    form: &SubmissionForm,
    now: i64,
    settings: ReviewSettings<'_>,
) -> Result<String, ReviewError> {
    let ReviewSettings {
        window_ms,
        fee_basis_points,
        base_url,
    } = settings;
    let facts = milestone_facts(conn, milestone_id).await?;
    authorize(
        principal,
        Action::MaintainProject {
            project_id: &facts.project_id,
        },
    )?;
    crate::pledges::lock_proposal(conn, &facts.proposal_id)
        .await
        .map_err(|_| ReviewError::Unknown)?;
    let facts = milestone_facts(conn, milestone_id).await?;
    match State::parse(&facts.proposal_status) {
        Some(State::Funded) => {
            proposals::transition(
                conn,
                principal,
                &facts.proposal_id,
                Transition::Start,
                &TransitionInput::default(),
                false,
            )
            .await?;
        }
        Some(State::InProgress) => {}
        _ => return Err(ReviewError::NotInProgress),
    }
    if !matches!(
        facts.status.as_str(),
        "planned" | "rejected" | "changes_requested"
    ) {
        return Err(ReviewError::NotSubmittable {
            status: facts.status,
        });
    }
    let (links, hours) = form
        .check(facts.kind == "maintenance")
        .map_err(ReviewError::Invalid)?;
    let updated = sqlx::query(
        "UPDATE milestones SET status = 'submitted'
         WHERE id = $1 AND status IN ('planned', 'rejected', 'changes_requested')",
    )
    .bind(milestone_id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(ReviewError::NotSubmittable {
            status: "submitted".into(),
        });
    }
    let round: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) + 1 FROM milestone_submissions WHERE milestone_id = $1",
    )
    .bind(milestone_id)
    .fetch_one(&mut *conn)
    .await?;
    let id = new_id();
    let ends = now + window_ms;
    sqlx::query(
        "INSERT INTO milestone_submissions (id, milestone_id, round, summary, evidence, notes,
             security_fixes, releases, issues_handled, hours_spent, submitted_by, submitted_at, review_ends_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&id)
    .bind(milestone_id)
    .bind(round)
    .bind(form.summary.trim())
    .bind(links.join("\n"))
    .bind(form.notes.trim())
    .bind(form.security_fixes.trim())
    .bind(form.releases.trim())
    .bind(form.issues_handled.trim())
    .bind(hours)
    .bind(principal.person_id.as_deref())
    .bind(now)
    .bind(ends)
    .execute(&mut *conn)
    .await?;
    crate::jobs::schedule(
        conn,
        "submission.window_end",
        serde_json::json!({ "submission": id, "fee_basis_points": fee_basis_points }),
        ends,
        Some(&format!("review-window:{id}")),
    )
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "milestone.submitted",
        &facts.proposal_id,
        None,
        serde_json::json!({ "milestone": milestone_id, "round": round }),
    )
    .await?;
    let url = format!(
        "{}/proposals/{}#milestone-{}",
        base_url.trim_end_matches('/'),
        facts.proposal_id,
        milestone_id
    );
    for (email, locale) in reviewer_addresses(conn, &facts.proposal_id).await? {
        let mail = crate::mail::compose(
            &email,
            locale,
            "milestone_submitted",
            "mail.milestone_submitted",
            &[
                ("title", &facts.proposal_title),
                ("milestone", &facts.title),
                ("date", &crate::i18n::format_date(ends, locale)),
            ],
            Some(url.clone()),
        );
        crate::mail::enqueue(conn, &mail).await?;
    }
    Ok(id)
}

/// The admins of the backing organisations, and the board when the pool is a backer.
async fn reviewer_addresses(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<(String, Locale)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT p.email, p.locale FROM pledges pl
         JOIN organisation_people op ON op.organisation_id = pl.organisation_id AND op.role = 'admin'
         JOIN people p ON p.id = op.person_id
         WHERE pl.proposal_id = $1 AND pl.committed > pl.refunded
         UNION
         SELECT DISTINCT p.email, p.locale FROM pledges pl
         JOIN platform_roles r ON r.role = 'board'
         JOIN people p ON p.id = r.person_id
         WHERE pl.proposal_id = $1 AND pl.organisation_id IS NULL AND pl.committed > pl.refunded",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get("email"),
                Locale::from_tag(&row.get::<String, _>("locale")).unwrap_or_default(),
            )
        })
        .collect())
}

/// Each backer's weight: what it put into the proposal and did not get back (cents); the pool
/// as [`POOL`].
pub async fn weights(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT COALESCE(organisation_id, 'pool') AS reviewer,
                CAST(SUM(committed - refunded) AS BIGINT) AS weight
         FROM pledges WHERE proposal_id = $1
         GROUP BY COALESCE(organisation_id, 'pool')",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get::<String, _>("reviewer"),
                row.get::<i64, _>("weight"),
            )
        })
        .filter(|(_, weight)| *weight > 0)
        .collect())
}

/// Where the decisions stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub accept: i64,
    pub reject: i64,
    pub total: i64,
    /// For the page: whole percent of the weight.
    pub accept_percent: i64,
    pub reject_percent: i64,
}

impl Tally {
    /// Accepted as soon as accept-weight exceeds half.
    pub fn accepted(&self) -> bool {
        self.total > 0 && self.accept * 2 > self.total
    }

    /// Rejected as soon as reject-weight exceeds half.
    pub fn rejected(&self) -> bool {
        self.total > 0 && self.reject * 2 > self.total
    }
}

pub async fn tally(
    conn: &mut AnyConnection,
    submission_id: &str,
    proposal_id: &str,
) -> Result<Tally, sqlx::Error> {
    let weights = weights(conn, proposal_id).await?;
    let decisions: Vec<(String, String)> =
        sqlx::query_as("SELECT reviewer, decision FROM milestone_reviews WHERE submission_id = $1")
            .bind(submission_id)
            .fetch_all(&mut *conn)
            .await?;
    let mut tally = Tally {
        total: weights.values().sum(),
        ..Tally::default()
    };
    for (reviewer, decision) in decisions {
        let weight = weights.get(&reviewer).copied().unwrap_or(0);
        match decision.as_str() {
            "accept" => tally.accept += weight,
            _ => tally.reject += weight,
        }
    }
    tally.accept_percent = crate::cooperative::percent(tally.accept, tally.total);
    tally.reject_percent = crate::cooperative::percent(tally.reject, tally.total);
    Ok(tally)
}

/// A backer's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject,
}

impl Decision {
    pub fn parse(text: &str) -> Option<Decision> {
        match text {
            "accept" => Some(Decision::Accept),
            "reject" => Some(Decision::Reject),
            _ => None,
        }
    }
}

/// What a review or the window's end led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Open,
    Accepted,
    Rejected,
    Disputed,
}

struct SubmissionFacts {
    milestone_id: String,
    review_ends_at: i64,
    outcome: Option<String>,
}

async fn submission_facts(
    conn: &mut AnyConnection,
    submission_id: &str,
) -> Result<SubmissionFacts, ReviewError> {
    let row = sqlx::query(
        "SELECT milestone_id, review_ends_at, outcome FROM milestone_submissions WHERE id = $1",
    )
    .bind(submission_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ReviewError::Unknown)?;
    Ok(SubmissionFacts {
        milestone_id: row.get("milestone_id"),
        review_ends_at: row.get("review_ends_at"),
        outcome: row.get("outcome"),
    })
}

/// Records (or changes) a backer's decision on a submission and decides the milestone as soon
/// as one side has more than half of the weight. `reviewer` is an organisation id or [`POOL`].
#[allow(clippy::too_many_arguments)]
pub async fn review(
    conn: &mut AnyConnection,
    principal: &Principal,
    submission_id: &str,
    reviewer: &str,
    decision: Decision,
    reason: &str,
    now: i64,
    fee_basis_points: u32,
) -> Result<Outcome, ReviewError> {
    let submission = submission_facts(conn, submission_id).await?;
    let facts = milestone_facts(conn, &submission.milestone_id).await?;
    let submitted_by = submitters(conn, &facts.id).await?;
    authorize(
        principal,
        Action::ReviewMilestone {
            organisation_id: (reviewer != POOL).then_some(reviewer),
            project_id: &facts.project_id,
            submitted_by: &submitted_by,
        },
    )?;
    if decision == Decision::Reject && reason.trim().is_empty() {
        let mut errors = FieldErrors::new();
        errors.insert("reason", "review.reason_missing");
        return Err(ReviewError::Invalid(errors));
    }
    crate::text::checked(&[(&crate::text::REVIEW_REASON, reason)]).map_err(ReviewError::Invalid)?;
    crate::pledges::lock_proposal(conn, &facts.proposal_id)
        .await
        .map_err(|_| ReviewError::Unknown)?;
    let submission = submission_facts(conn, submission_id).await?;
    let facts = milestone_facts(conn, &submission.milestone_id).await?;
    // A cancelled proposal's milestones are not decided any more.
    if submission.outcome.is_some()
        || now >= submission.review_ends_at
        || facts.proposal_status != State::InProgress.as_str()
    {
        return Err(ReviewError::NotUnderReview);
    }
    if !weights(conn, &facts.proposal_id)
        .await?
        .contains_key(reviewer)
    {
        return Err(ReviewError::NotABacker);
    }
    sqlx::query(
        "INSERT INTO milestone_reviews (submission_id, reviewer, decision, reason, decided_by, decided_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (submission_id, reviewer) DO UPDATE
         SET decision = excluded.decision, reason = excluded.reason,
             decided_by = excluded.decided_by, decided_at = excluded.decided_at",
    )
    .bind(submission_id)
    .bind(reviewer)
    .bind(match decision {
        Decision::Accept => "accept",
        Decision::Reject => "reject",
    })
    .bind(reason.trim())
    .bind(principal.person_id.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        match decision {
            Decision::Accept => "milestone.review_accept",
            Decision::Reject => "milestone.review_reject",
        },
        &facts.proposal_id,
        (reviewer != POOL).then_some(reviewer),
        serde_json::json!({ "milestone": facts.id, "submission": submission_id }),
    )
    .await?;
    decide(conn, submission_id, &facts, now, false, fee_basis_points).await
}

/// The job at a review window's end: a submission still open is accepted by silence (unless
/// more than half rejected, which a review would already have decided).
pub async fn close_window(
    conn: &mut AnyConnection,
    submission_id: &str,
    now: i64,
    fee_basis_points: u32,
) -> Result<Outcome, ReviewError> {
    let submission = submission_facts(conn, submission_id).await?;
    let facts = milestone_facts(conn, &submission.milestone_id).await?;
    crate::pledges::lock_proposal(conn, &facts.proposal_id)
        .await
        .map_err(|_| ReviewError::Unknown)?;
    let submission = submission_facts(conn, submission_id).await?;
    let facts = milestone_facts(conn, &submission.milestone_id).await?;
    if submission.outcome.is_some()
        || now < submission.review_ends_at
        || facts.proposal_status != State::InProgress.as_str()
    {
        return Ok(Outcome::Open);
    }
    decide(conn, submission_id, &facts, now, true, fee_basis_points).await
}

/// Decides the submission if the tally (or the window's end) says so.
async fn decide(
    conn: &mut AnyConnection,
    submission_id: &str,
    facts: &MilestoneFacts,
    now: i64,
    window_over: bool,
    fee_basis_points: u32,
) -> Result<Outcome, ReviewError> {
    let tally = tally(conn, submission_id, &facts.proposal_id).await?;
    let outcome = if tally.rejected() {
        "rejected"
    } else if tally.accepted() {
        "accepted"
    } else if window_over {
        "accepted_by_silence"
    } else {
        return Ok(Outcome::Open);
    };
    let updated = sqlx::query(
        "UPDATE milestone_submissions SET outcome = $1, decided_at = $2
         WHERE id = $3 AND outcome IS NULL",
    )
    .bind(outcome)
    .bind(now)
    .bind(submission_id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(Outcome::Open);
    }
    audit::record(
        conn,
        &Actor::system(),
        &format!("milestone.{outcome}"),
        &facts.proposal_id,
        None,
        serde_json::json!({ "milestone": facts.id, "submission": submission_id, "tally": tally }),
    )
    .await?;
    if outcome != "rejected" {
        accept(conn, facts, facts.amount, now, fee_basis_points).await?;
        return Ok(Outcome::Accepted);
    }
    let rejections: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM milestone_submissions
         WHERE milestone_id = $1 AND outcome = 'rejected'",
    )
    .bind(&facts.id)
    .fetch_one(&mut *conn)
    .await?;
    let disputed = rejections >= 2;
    sqlx::query("UPDATE milestones SET status = $1 WHERE id = $2")
        .bind(if disputed { "disputed" } else { "rejected" })
        .bind(&facts.id)
        .execute(&mut *conn)
        .await?;
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM milestone_reviews WHERE submission_id = $1 AND decision = 'reject'
         ORDER BY decided_at",
    )
    .bind(submission_id)
    .fetch_all(&mut *conn)
    .await?;
    let reasons = reasons.join("\n\n");
    let mut recipients = crate::catalogue::maintainer_addresses(conn, &facts.project_id).await?;
    if disputed {
        sqlx::query("INSERT INTO disputes (id, milestone_id, opened_at) VALUES ($1, $2, $3)")
            .bind(new_id())
            .bind(&facts.id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        let board = sqlx::query(
            "SELECT p.email, p.locale FROM people p JOIN platform_roles r ON r.person_id = p.id
             WHERE r.role = 'board'",
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in board {
            recipients.push((
                row.get("email"),
                Locale::from_tag(&row.get::<String, _>("locale")).unwrap_or_default(),
            ));
        }
    }
    let kind = if disputed {
        "milestone_disputed"
    } else {
        "milestone_rejected"
    };
    for (email, locale) in recipients {
        let mail = crate::mail::compose(
            &email,
            locale,
            kind,
            &format!("mail.{kind}"),
            &[
                ("title", &facts.proposal_title),
                ("milestone", &facts.title),
                ("reasons", &reasons),
            ],
            None,
        );
        crate::mail::enqueue(conn, &mail).await?;
    }
    Ok(if disputed {
        Outcome::Disputed
    } else {
        Outcome::Rejected
    })
}

/// Marks the milestone accepted and releases `amount` of it.
async fn accept(
    conn: &mut AnyConnection,
    facts: &MilestoneFacts,
    amount: Money,
    now: i64,
    fee_basis_points: u32,
) -> Result<(), ReviewError> {
    sqlx::query(
        "UPDATE milestones SET status = 'accepted'
         WHERE id = $1 AND status IN ('submitted', 'disputed')",
    )
    .bind(&facts.id)
    .execute(&mut *conn)
    .await?;
    release::release(conn, &facts.id, amount, fee_basis_points, now).await?;
    Ok(())
}

/// What the board decides in a dispute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisputeDecision {
    /// Release the whole milestone.
    Accept,
    /// Release part of it; the rest stays in escrow for later milestones, or goes back to the
    /// backers pro rata.
    AcceptPartly { amount: Money, refund_rest: bool },
    /// The maintainer improves and submits again (a new window).
    RequestChanges,
    /// Cancel the proposal: the remaining escrow goes back pro rata.
    Cancel,
}

/// The board decides a milestone's open dispute.
pub async fn decide_dispute(
    conn: &mut AnyConnection,
    principal: &Principal,
    milestone_id: &str,
    decision: DisputeDecision,
    reason: &str,
    now: i64,
    fee_basis_points: u32,
) -> Result<(), ReviewError> {
    let facts = milestone_facts(conn, milestone_id).await?;
    let submitted_by = submitters(conn, milestone_id).await?;
    authorize(
        principal,
        Action::ArbitrateDispute {
            project_id: &facts.project_id,
            submitted_by: &submitted_by,
        },
    )?;
    if reason.trim().is_empty() {
        let mut errors = FieldErrors::new();
        errors.insert("reason", "review.reason_missing");
        return Err(ReviewError::Invalid(errors));
    }
    crate::text::checked(&[(&crate::text::DISPUTE_REASON, reason)])
        .map_err(ReviewError::Invalid)?;
    if let DisputeDecision::AcceptPartly { amount, .. } = decision
        && (!amount.is_positive() || amount > facts.amount)
    {
        return Err(ReviewError::PartialAmount { max: facts.amount });
    }
    crate::pledges::lock_proposal(conn, &facts.proposal_id)
        .await
        .map_err(|_| ReviewError::Unknown)?;
    if milestone_facts(conn, milestone_id).await?.proposal_status != State::InProgress.as_str() {
        return Err(ReviewError::NoDispute);
    }
    let (name, amount, rest) = match decision {
        DisputeDecision::Accept => ("accept", None, None),
        DisputeDecision::AcceptPartly {
            amount,
            refund_rest,
        } => (
            "accept_partly",
            Some(amount.cents()),
            Some(if refund_rest { "refund" } else { "keep" }),
        ),
        DisputeDecision::RequestChanges => ("request_changes", None, None),
        DisputeDecision::Cancel => ("cancel", None, None),
    };
    let updated = sqlx::query(
        "UPDATE disputes SET decision = $1, amount = $2, rest = $3, reason = $4, decided_by = $5,
             decided_at = $6
         WHERE milestone_id = $7 AND decided_at IS NULL",
    )
    .bind(name)
    .bind(amount)
    .bind(rest)
    .bind(reason.trim())
    .bind(principal.person_id.as_deref())
    .bind(now)
    .bind(milestone_id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(ReviewError::NoDispute);
    }
    audit::record(
        conn,
        &principal.actor(),
        &format!("dispute.{name}"),
        &facts.proposal_id,
        None,
        serde_json::json!({ "milestone": milestone_id, "amount": amount, "rest": rest, "reason": reason.trim() }),
    )
    .await?;
    match decision {
        DisputeDecision::Accept => {
            accept(conn, &facts, facts.amount, now, fee_basis_points).await?;
        }
        DisputeDecision::AcceptPartly {
            amount,
            refund_rest,
        } => {
            if refund_rest {
                // The rest goes back before the release, so that completing the proposal (the
                // release of its last milestone) finds the books as the board decided.
                let rest = facts.amount.checked_sub(amount)?;
                release::refund_pro_rata(
                    conn,
                    &facts.proposal_id,
                    rest,
                    &format!("dispute:{milestone_id}"),
                    &principal.actor(),
                )
                .await?;
            }
            accept(conn, &facts, amount, now, fee_basis_points).await?;
        }
        DisputeDecision::RequestChanges => {
            sqlx::query("UPDATE milestones SET status = 'changes_requested' WHERE id = $1")
                .bind(milestone_id)
                .execute(&mut *conn)
                .await?;
        }
        DisputeDecision::Cancel => {
            proposals::transition(
                conn,
                principal,
                &facts.proposal_id,
                Transition::Cancel,
                &TransitionInput {
                    deadline: None,
                    reason: reason.trim().to_owned(),
                },
                false,
            )
            .await?;
        }
    }
    Ok(())
}

/// A submission as the proposal page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SubmissionView {
    pub id: String,
    pub round: i64,
    pub summary: String,
    pub evidence: Vec<String>,
    pub notes: String,
    pub security_fixes: String,
    pub releases: String,
    pub issues_handled: String,
    pub hours_spent: Option<i64>,
    pub submitted_at: i64,
    pub review_ends_at: i64,
    pub outcome: Option<String>,
    pub tally: Tally,
    pub reviews: Vec<ReviewView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReviewView {
    pub reviewer: String,
    /// The organisation's name if it shows itself as a backer; the pool; or empty (a backer).
    pub name: String,
    pub decision: String,
    pub reason: String,
    pub decided_at: i64,
}

/// A backer the person may review for, with its weight and current decision.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewerOption {
    pub reviewer: String,
    pub name: String,
    pub percent: i64,
    pub decision: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DisputeView {
    pub opened_at: i64,
    pub decision: Option<String>,
    pub amount: Option<Money>,
    pub rest: Option<String>,
    pub reason: String,
    pub decided_at: Option<i64>,
}

/// Everything about one milestone's delivery, for the proposal page.
#[derive(Clone, Debug, Serialize)]
pub struct MilestoneView {
    pub id: String,
    pub submissions: Vec<SubmissionView>,
    pub may_submit: bool,
    /// The backers `principal` may review the open submission for.
    pub review_options: Vec<ReviewerOption>,
    pub dispute: Option<DisputeView>,
    pub may_arbitrate: bool,
    pub released: Option<(Money, Money)>,
}

/// The delivery state of every milestone of a proposal, as `principal` may act on it.
pub async fn milestone_views(
    conn: &mut AnyConnection,
    principal: &Principal,
    proposal: &proposals::Proposal,
    now: i64,
    locale: Locale,
) -> Result<Vec<MilestoneView>, sqlx::Error> {
    let weights = weights(conn, &proposal.id).await?;
    let total: i64 = weights.values().sum();
    let names: BTreeMap<String, (String, bool)> = sqlx::query(
        "SELECT o.id, o.legal_name, CAST(MAX(pl.show_publicly) AS BIGINT) AS public
         FROM pledges pl JOIN organisations o ON o.id = pl.organisation_id
         WHERE pl.proposal_id = $1 GROUP BY o.id, o.legal_name",
    )
    .bind(&proposal.id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        (
            row.get::<String, _>("id"),
            (
                row.get::<String, _>("legal_name"),
                row.get::<i64, _>("public") != 0,
            ),
        )
    })
    .collect();
    let pool_name = crate::i18n::t(locale, "review.pool");
    let display = |reviewer: &str, for_self: bool| -> String {
        if reviewer == POOL {
            return pool_name.clone();
        }
        match names.get(reviewer) {
            Some((name, public)) if *public || for_self => name.clone(),
            _ => String::new(),
        }
    };
    let maintains = principal.maintains(&proposal.project_id);
    let in_work = matches!(proposal.status, State::Funded | State::InProgress);
    let mut views = Vec::new();
    for milestone in &proposal.milestones {
        let rows = sqlx::query(
            "SELECT id, round, summary, evidence, notes, security_fixes, releases, issues_handled,
                    hours_spent, submitted_at, review_ends_at, outcome
             FROM milestone_submissions WHERE milestone_id = $1 ORDER BY round",
        )
        .bind(&milestone.id)
        .fetch_all(&mut *conn)
        .await?;
        let mut submissions = Vec::new();
        for row in rows {
            let id: String = row.get("id");
            let reviews = sqlx::query(
                "SELECT reviewer, decision, reason, decided_at FROM milestone_reviews
                 WHERE submission_id = $1 ORDER BY decided_at",
            )
            .bind(&id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                let reviewer: String = r.get("reviewer");
                ReviewView {
                    name: display(&reviewer, false),
                    reviewer,
                    decision: r.get("decision"),
                    reason: r.get("reason"),
                    decided_at: r.get("decided_at"),
                }
            })
            .collect();
            submissions.push(SubmissionView {
                tally: tally(conn, &id, &proposal.id).await?,
                id,
                round: row.get("round"),
                summary: row.get("summary"),
                evidence: row
                    .get::<String, _>("evidence")
                    .lines()
                    .map(str::to_owned)
                    .collect(),
                notes: row.get("notes"),
                security_fixes: row.get("security_fixes"),
                releases: row.get("releases"),
                issues_handled: row.get("issues_handled"),
                hours_spent: row.get("hours_spent"),
                submitted_at: row.get("submitted_at"),
                review_ends_at: row.get("review_ends_at"),
                outcome: row.get("outcome"),
                reviews,
            });
        }
        let submitted_by = submitters(conn, &milestone.id).await?;
        let open = submissions.last().filter(|s| {
            s.outcome.is_none() && now < s.review_ends_at && proposal.status == State::InProgress
        });
        let mut review_options = Vec::new();
        if let Some(open) = open {
            for (reviewer, weight) in &weights {
                let organisation = (reviewer != POOL).then_some(reviewer.as_str());
                let allowed = authorize(
                    principal,
                    Action::ReviewMilestone {
                        organisation_id: organisation,
                        project_id: &proposal.project_id,
                        submitted_by: &submitted_by,
                    },
                )
                .is_ok();
                if allowed {
                    review_options.push(ReviewerOption {
                        reviewer: reviewer.clone(),
                        name: display(reviewer, true),
                        percent: crate::cooperative::percent(*weight, total),
                        decision: open
                            .reviews
                            .iter()
                            .find(|r| &r.reviewer == reviewer)
                            .map(|r| r.decision.clone()),
                    });
                }
            }
        }
        let dispute = sqlx::query(
            "SELECT opened_at, decision, amount, rest, reason, decided_at FROM disputes
             WHERE milestone_id = $1 ORDER BY opened_at DESC",
        )
        .bind(&milestone.id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| DisputeView {
            opened_at: row.get("opened_at"),
            decision: row.get("decision"),
            amount: row.get::<Option<i64>, _>("amount").map(Money::from_cents),
            rest: row.get("rest"),
            reason: row.get("reason"),
            decided_at: row.get("decided_at"),
        });
        let may_arbitrate = milestone.status == "disputed"
            && authorize(
                principal,
                Action::ArbitrateDispute {
                    project_id: &proposal.project_id,
                    submitted_by: &submitted_by,
                },
            )
            .is_ok();
        let released = sqlx::query("SELECT amount, fee FROM releases WHERE milestone_id = $1")
            .bind(&milestone.id)
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| {
                (
                    Money::from_cents(row.get("amount")),
                    Money::from_cents(row.get("fee")),
                )
            });
        views.push(MilestoneView {
            id: milestone.id.clone(),
            may_submit: maintains
                && in_work
                && matches!(
                    milestone.status.as_str(),
                    "planned" | "rejected" | "changes_requested"
                ),
            submissions,
            review_options,
            dispute,
            may_arbitrate,
            released,
        });
    }
    Ok(views)
}
