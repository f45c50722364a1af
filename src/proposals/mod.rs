//! Proposals: feature requests and offers split into milestones, maintenance contracts whose
//! periods are milestones, the lifecycle (in [`lifecycle`]), text revisions after opening, and
//! the discussion.

pub mod comments;
pub mod lifecycle;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, PlatformRole, Principal, authorize};
use crate::db::{new_id, now_ms};
use crate::i18n::{self, Locale};
use crate::ledger::{self, AccountId, AccountKind, Actor, NewTransaction, TxKind};
use crate::mail;
use crate::money::{Money, MoneyError};
use crate::people::FieldErrors;
use lifecycle::{Role, State, Transition};

/// Rows of milestone fields a feature form offers (blank rows are ignored).
pub const MILESTONE_ROWS: usize = 6;
/// The longest funding period a maintainer may set.
pub const MAX_DEADLINE_DAYS: i64 = 366;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("the form has problems: {0:?}")]
    Invalid(FieldErrors),
    #[error("no such proposal")]
    UnknownProposal,
    #[error("no such project")]
    UnknownProject,
    #[error("{transition:?} is not possible from {from:?}")]
    IllegalTransition { from: State, transition: Transition },
    #[error("milestones and amounts cannot change after funding opened")]
    TermsFrozen,
    #[error("the proposal changed meanwhile; reload and try again")]
    Conflict,
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The cooperative's fee on a released amount: rounded down, so rounding never costs the
/// maintainer. Applied per milestone at release.
pub fn fee_of(amount: Money, basis_points: u32) -> Money {
    let cents = i128::from(amount.cents()) * i128::from(basis_points) / 10_000;
    Money::from_cents(i64::try_from(cents).unwrap_or(i64::MAX))
}

#[derive(Clone, Debug, Serialize)]
pub struct Milestone {
    pub id: String,
    pub position: i64,
    pub title: String,
    pub acceptance_criteria: String,
    pub amount: Money,
    pub due_at: i64,
    pub status: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Proposal {
    pub id: String,
    pub project_id: String,
    pub project_slug: String,
    pub project_name: String,
    pub kind: String,
    pub title: String,
    pub summary: String,
    pub problem: String,
    pub desired_outcome: String,
    pub security_response_hours: Option<i64>,
    pub releases: String,
    pub support: String,
    pub period_amount: Option<Money>,
    pub period: Option<String>,
    pub term_periods: Option<i64>,
    pub starts_at: Option<i64>,
    pub status: State,
    pub funding_goal: Money,
    pub funding_deadline: Option<i64>,
    pub origin: String,
    pub proposed_by: Option<String>,
    pub proposer_name: Option<String>,
    pub organisation_id: Option<String>,
    pub organisation_name: Option<String>,
    pub agreed_at: Option<i64>,
    pub created_at: i64,
    /// Committed and not refunded, with the instalments recurring pledges have promised and
    /// not yet collected.
    pub pledged: Money,
    pub percent: i64,
    pub milestones: Vec<Milestone>,
}

const PROPOSAL_SELECT: &str =
    "SELECT pr.id, pr.project_id, pj.slug AS project_slug, pj.name AS project_name,
        pr.kind, pr.title, pr.summary, pr.problem, pr.desired_outcome, pr.security_response_hours,
        pr.releases, pr.support, pr.period_amount, pr.period, pr.term_periods, pr.starts_at,
        pr.status, pr.funding_goal, pr.funding_deadline, pr.origin, pr.proposed_by,
        pe.name AS proposer_name, pr.organisation_id, o.legal_name AS organisation_name,
        pr.agreed_at, pr.created_at,
        CAST(COALESCE((SELECT SUM(pl.committed - pl.refunded) FROM pledges pl
                       WHERE pl.proposal_id = pr.id), 0)
           + COALESCE((SELECT SUM(rp.amount * (rp.last_period - rp.first_period + 1
                         - (SELECT COUNT(*) FROM recurring_collections rc
                            WHERE rc.recurring_pledge_id = rp.id)))
                       FROM recurring_pledges rp WHERE rp.proposal_id = pr.id), 0) AS BIGINT) AS pledged
     FROM proposals pr
     JOIN projects pj ON pj.id = pr.project_id
     LEFT JOIN people pe ON pe.id = pr.proposed_by
     LEFT JOIN organisations o ON o.id = pr.organisation_id";

fn proposal_from_row(row: &sqlx::any::AnyRow) -> Proposal {
    let status: String = row.get("status");
    let goal: i64 = row.get("funding_goal");
    let pledged: i64 = row.get("pledged");
    let period_amount: Option<i64> = row.get("period_amount");
    Proposal {
        id: row.get("id"),
        project_id: row.get("project_id"),
        project_slug: row.get("project_slug"),
        project_name: row.get("project_name"),
        kind: row.get("kind"),
        title: row.get("title"),
        summary: row.get("summary"),
        problem: row.get("problem"),
        desired_outcome: row.get("desired_outcome"),
        security_response_hours: row.get("security_response_hours"),
        releases: row.get("releases"),
        support: row.get("support"),
        period_amount: period_amount.map(Money::from_cents),
        period: row.get("period"),
        term_periods: row.get("term_periods"),
        starts_at: row.get("starts_at"),
        // Statuses are written only through this module.
        status: State::parse(&status).unwrap_or(State::Draft),
        funding_goal: Money::from_cents(goal),
        funding_deadline: row.get("funding_deadline"),
        origin: row.get("origin"),
        proposed_by: row.get("proposed_by"),
        proposer_name: row.get("proposer_name"),
        organisation_id: row.get("organisation_id"),
        organisation_name: row.get("organisation_name"),
        agreed_at: row.get("agreed_at"),
        created_at: row.get("created_at"),
        pledged: Money::from_cents(pledged),
        percent: crate::cooperative::percent(pledged, goal),
        milestones: Vec::new(),
    }
}

async fn milestones_of(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<Milestone>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, position, title, acceptance_criteria, amount, due_at, status
         FROM milestones WHERE proposal_id = $1 ORDER BY position",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Milestone {
            id: row.get("id"),
            position: row.get("position"),
            title: row.get("title"),
            acceptance_criteria: row.get("acceptance_criteria"),
            amount: Money::from_cents(row.get("amount")),
            due_at: row.get("due_at"),
            status: row.get("status"),
        })
        .collect())
}

pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Proposal>, sqlx::Error> {
    let sql = format!("{PROPOSAL_SELECT} WHERE pr.id = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let mut proposal = proposal_from_row(&row);
    proposal.milestones = milestones_of(conn, id).await?;
    Ok(Some(proposal))
}

/// What the proposals page asks for.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub state: String,
    /// deadline, newest, funded
    #[serde(default)]
    pub sort: String,
}

/// Proposals that anyone may see (drafts stay with their authors and the maintainers),
/// filtered and sorted.
pub async fn list(conn: &mut AnyConnection, filter: &Filter) -> Result<Vec<Proposal>, sqlx::Error> {
    let mut conditions = vec!["pr.status NOT IN ('draft', 'awaiting_maintainer')".to_owned()];
    let mut binds = Vec::new();
    if !filter.project.is_empty() {
        binds.push(filter.project.clone());
        conditions.push(format!("pj.slug = ${}", binds.len()));
    }
    if matches!(filter.kind.as_str(), "feature" | "maintenance") {
        binds.push(filter.kind.clone());
        conditions.push(format!("pr.kind = ${}", binds.len()));
    }
    if let Some(state) = State::parse(&filter.state) {
        binds.push(state.as_str().to_owned());
        conditions.push(format!("pr.status = ${}", binds.len()));
    }
    let order = match filter.sort.as_str() {
        "newest" => "pr.created_at DESC, pr.id DESC",
        "funded" => "pledged DESC, pr.id",
        // Soonest deadline first; those without one last.
        _ => "CASE WHEN pr.funding_deadline IS NULL THEN 1 ELSE 0 END, pr.funding_deadline, pr.id",
    };
    let sql = format!(
        "SELECT * FROM ({PROPOSAL_SELECT} WHERE {}) listed ORDER BY {}",
        conditions.join(" AND "),
        order
            .replace("pr.", "listed.")
            .replace("pledged", "listed.pledged")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    Ok(query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(proposal_from_row)
        .collect())
}

/// Proposals of a project that `principal` may see ([`may_see`]: drafts only for their
/// authors, the requesting organisation and the project's maintainers).
pub async fn of_project(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
) -> Result<Vec<Proposal>, sqlx::Error> {
    let sql = format!("{PROPOSAL_SELECT} WHERE pr.project_id = $1 ORDER BY pr.created_at DESC");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(proposal_from_row)
        .filter(|p| may_see(principal, p))
        .collect())
}

/// How `principal` stands to a proposal.
pub fn roles_of(principal: &Principal, proposal: &Proposal) -> Vec<Role> {
    let mut roles = Vec::new();
    let person = principal.person_id.as_deref();
    let proposer = person.is_some() && person == proposal.proposed_by.as_deref();
    let org_admin = proposal
        .organisation_id
        .as_deref()
        .is_some_and(|org| principal.is_admin_of(org));
    if proposer || org_admin {
        roles.push(Role::Proposer);
    }
    if principal.maintains(&proposal.project_id) {
        roles.push(Role::Maintainer);
    }
    if principal.has(PlatformRole::Board) {
        roles.push(Role::Board);
    }
    roles
}

/// Proposals that have not opened for funding are private: drafts to their authors, the
/// requesting organisation and the maintainers; once submitted, the board sees them too (the
/// rule is `authz::Action::ViewUnopenedProposal`).
pub fn may_see(principal: &Principal, proposal: &Proposal) -> bool {
    if !matches!(proposal.status, State::Draft | State::AwaitingMaintainer) {
        return true;
    }
    authorize(
        principal,
        Action::ViewUnopenedProposal {
            project_id: &proposal.project_id,
            organisation_id: proposal.organisation_id.as_deref(),
            proposed_by: proposal.proposed_by.as_deref(),
            submitted: proposal.status == State::AwaitingMaintainer,
        },
    )
    .is_ok()
}

/// A proposal as `principal` may see it.
pub async fn visible(
    conn: &mut AnyConnection,
    principal: &Principal,
    id: &str,
) -> Result<Proposal, ProposalError> {
    let proposal = find(conn, id)
        .await?
        .ok_or(ProposalError::UnknownProposal)?;
    if may_see(principal, &proposal) {
        Ok(proposal)
    } else {
        // A draft is not there for anyone else: the same answer as an unknown id.
        Err(ProposalError::UnknownProposal)
    }
}

/// The proposal form: the fields of both kinds (the kind says which count) and the milestone
/// rows, as entered.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProposalForm {
    pub kind: String,
    pub title: String,
    pub summary: String,
    pub problem: String,
    pub desired_outcome: String,
    /// For a request: the organisation it is made for (empty for a maintainer's offer).
    pub organisation_id: String,
    pub security_response_hours: String,
    pub releases: String,
    pub support: String,
    pub period_amount: String,
    pub period: String,
    pub term_periods: String,
    /// YYYY-MM-DD
    pub start_date: String,
    pub milestones: Vec<MilestoneForm>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct MilestoneForm {
    pub title: String,
    pub acceptance_criteria: String,
    pub amount: String,
    /// YYYY-MM-DD
    pub due: String,
}

impl MilestoneForm {
    fn is_blank(&self) -> bool {
        self.title.trim().is_empty()
            && self.acceptance_criteria.trim().is_empty()
            && self.amount.trim().is_empty()
            && self.due.trim().is_empty()
    }
}

/// A date as a date input sends it, as the start of that day (UTC).
pub fn parse_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// The date input's value for a time.
pub fn date_value(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// `months` calendar months after `ms` (same day, clamped to the month's end).
pub(crate) fn add_months(ms: i64, months: i64) -> Option<i64> {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()?;
    let index = i64::from(at.year()) * 12 + i64::from(u8::from(at.month())) - 1 + months;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = at.day().min(time::util::days_in_month(month, year));
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// The months in a maintenance contract's period.
pub fn period_months(period: Option<&str>) -> Option<i64> {
    match period? {
        "month" => Some(1),
        "quarter" => Some(3),
        _ => None,
    }
}

impl Proposal {
    /// When a maintenance contract's period `position` (1-based) starts.
    pub fn period_start(&self, position: i64) -> Option<i64> {
        let months = period_months(self.period.as_deref())?;
        add_months(self.starts_at?, (position - 1) * months)
    }

    /// The maintenance period running at `now`: the first before the contract starts, the last
    /// after it ends.
    pub fn current_period(&self, now: i64) -> i64 {
        let term = self.term_periods.unwrap_or(1).max(1);
        (1..=term)
            .rev()
            .find(|p| self.period_start(*p).is_some_and(|start| start <= now))
            .unwrap_or(1)
    }
}

/// The terms a valid form describes: the milestones with their amounts and due dates.
struct Terms {
    milestones: Vec<(String, String, Money, i64)>,
    security_response_hours: Option<i64>,
    period_amount: Option<Money>,
    period: Option<String>,
    term_periods: Option<i64>,
    starts_at: Option<i64>,
}

/// The texts of a proposal and whether they are required (before kind-specific rules): one
/// list for creating, editing before opening, and clarifying after. Their limits are in the
/// platform's one list of text fields, [`crate::text::FIELDS`].
const TEXT_LIMITS: [(&str, &crate::text::Field, bool); 6] = [
    ("title", &crate::text::PROPOSAL_TITLE, true),
    ("summary", &crate::text::PROPOSAL_SUMMARY, true),
    ("problem", &crate::text::PROPOSAL_PROBLEM, false),
    (
        "desired_outcome",
        &crate::text::PROPOSAL_DESIRED_OUTCOME,
        false,
    ),
    ("releases", &crate::text::PROPOSAL_RELEASES, false),
    ("support", &crate::text::PROPOSAL_SUPPORT, false),
];

/// What is wrong with a text field's value, if anything.
fn text_problem(field: &str, value: &str) -> Option<&'static str> {
    let (_, text, required) = TEXT_LIMITS.iter().find(|(name, _, _)| *name == field)?;
    if *required && value.trim().is_empty() {
        Some("form.required")
    } else {
        crate::text::problem(text, value)
    }
}

impl ProposalForm {
    /// The text fields, in the order of [`TEXT_LIMITS`].
    fn texts(&self) -> [(&'static str, &str); 6] {
        [
            ("title", self.title.as_str()),
            ("summary", self.summary.as_str()),
            ("problem", self.problem.as_str()),
            ("desired_outcome", self.desired_outcome.as_str()),
            ("releases", self.releases.as_str()),
            ("support", self.support.as_str()),
        ]
    }

    /// Reads the form's fields, including milestone rows `m1_title` … `m6_due`.
    pub fn from_fields(fields: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let milestones = (1..=MILESTONE_ROWS)
            .map(|i| MilestoneForm {
                title: get(&format!("m{i}_title")),
                acceptance_criteria: get(&format!("m{i}_criteria")),
                amount: get(&format!("m{i}_amount")),
                due: get(&format!("m{i}_due")),
            })
            .collect();
        Self {
            kind: get("kind"),
            title: get("title"),
            summary: get("summary"),
            problem: get("problem"),
            desired_outcome: get("desired_outcome"),
            organisation_id: get("organisation_id"),
            security_response_hours: get("security_response_hours"),
            releases: get("releases"),
            support: get("support"),
            period_amount: get("period_amount"),
            period: get("period"),
            term_periods: get("term_periods"),
            start_date: get("start_date"),
            milestones,
        }
    }

    /// The form for an existing proposal, with blank rows to add milestones.
    pub fn from_proposal(proposal: &Proposal, locale: Locale) -> Self {
        let mut milestones: Vec<MilestoneForm> = proposal
            .milestones
            .iter()
            .map(|m| MilestoneForm {
                title: m.title.clone(),
                acceptance_criteria: m.acceptance_criteria.clone(),
                amount: m.amount.format_plain(locale),
                due: date_value(m.due_at),
            })
            .collect();
        while milestones.len() < MILESTONE_ROWS {
            milestones.push(MilestoneForm::default());
        }
        Self {
            kind: proposal.kind.clone(),
            title: proposal.title.clone(),
            summary: proposal.summary.clone(),
            problem: proposal.problem.clone(),
            desired_outcome: proposal.desired_outcome.clone(),
            organisation_id: proposal.organisation_id.clone().unwrap_or_default(),
            security_response_hours: proposal
                .security_response_hours
                .map(|h| h.to_string())
                .unwrap_or_default(),
            releases: proposal.releases.clone(),
            support: proposal.support.clone(),
            period_amount: proposal
                .period_amount
                .map(|m| m.format_plain(locale))
                .unwrap_or_default(),
            period: proposal.period.clone().unwrap_or_default(),
            term_periods: proposal
                .term_periods
                .map(|t| t.to_string())
                .unwrap_or_default(),
            start_date: proposal.starts_at.map(date_value).unwrap_or_default(),
            milestones,
        }
    }

    /// Checks everything; on success returns the terms to store.
    fn check(&self, max_amount: Money, locale: Locale) -> Result<Terms, FieldErrors> {
        let mut errors = FieldErrors::new();
        for (field, value) in self.texts() {
            if let Some(problem) = text_problem(field, value) {
                errors.insert(field, problem);
            }
        }
        let today = now_ms() - DAY_MS;
        let mut terms = Terms {
            milestones: Vec::new(),
            security_response_hours: None,
            period_amount: None,
            period: None,
            term_periods: None,
            starts_at: None,
        };
        match self.kind.as_str() {
            "feature" => {
                if self.problem.trim().is_empty() {
                    errors.insert("problem", "form.required");
                }
                if self.desired_outcome.trim().is_empty() {
                    errors.insert("desired_outcome", "form.required");
                }
                for (i, row) in self.milestones.iter().enumerate() {
                    if row.is_blank() {
                        continue;
                    }
                    let n = i + 1;
                    let field = |name: &str| -> &'static str {
                        // Field names of the milestone rows, for the error summary's links.
                        const NAMES: [[&str; 4]; MILESTONE_ROWS] = [
                            ["m1_title", "m1_criteria", "m1_amount", "m1_due"],
                            ["m2_title", "m2_criteria", "m2_amount", "m2_due"],
                            ["m3_title", "m3_criteria", "m3_amount", "m3_due"],
                            ["m4_title", "m4_criteria", "m4_amount", "m4_due"],
                            ["m5_title", "m5_criteria", "m5_amount", "m5_due"],
                            ["m6_title", "m6_criteria", "m6_amount", "m6_due"],
                        ];
                        let column = match name {
                            "title" => 0,
                            "criteria" => 1,
                            "amount" => 2,
                            _ => 3,
                        };
                        NAMES[(n - 1).min(MILESTONE_ROWS - 1)][column]
                    };
                    if row.title.trim().is_empty() {
                        errors.insert(field("title"), "milestone.title_missing");
                    }
                    if row.acceptance_criteria.trim().is_empty() {
                        errors.insert(field("criteria"), "milestone.criteria_missing");
                    }
                    use crate::text::{MILESTONE_CRITERIA, MILESTONE_TITLE, check_as};
                    check_as(&mut errors, field("title"), &MILESTONE_TITLE, &row.title);
                    check_as(
                        &mut errors,
                        field("criteria"),
                        &MILESTONE_CRITERIA,
                        &row.acceptance_criteria,
                    );
                    let amount = match Money::parse(&row.amount, max_amount) {
                        Ok(amount) if amount.is_positive() => Some(amount),
                        Ok(_) => {
                            errors.insert(field("amount"), "milestone.amount_zero");
                            None
                        }
                        Err(error) => {
                            errors.insert(field("amount"), money_message_key(&error));
                            None
                        }
                    };
                    let due = parse_date(&row.due).filter(|d| *d >= today);
                    if due.is_none() {
                        errors.insert(field("due"), "milestone.due_invalid");
                    }
                    if let (Some(amount), Some(due)) = (amount, due) {
                        terms.milestones.push((
                            row.title.trim().to_owned(),
                            row.acceptance_criteria.trim().to_owned(),
                            amount,
                            due,
                        ));
                    }
                }
            }
            "maintenance" => {
                let hours = self.security_response_hours.trim().parse::<i64>().ok();
                match hours {
                    Some(h) if (1..=720).contains(&h) => terms.security_response_hours = Some(h),
                    _ => {
                        errors.insert("security_response_hours", "maintenance.hours_invalid");
                    }
                }
                let amount = match Money::parse(&self.period_amount, max_amount) {
                    Ok(amount) if amount.is_positive() => Some(amount),
                    Ok(_) => {
                        errors.insert("period_amount", "milestone.amount_zero");
                        None
                    }
                    Err(error) => {
                        errors.insert("period_amount", money_message_key(&error));
                        None
                    }
                };
                let months = match self.period.as_str() {
                    "month" => Some(1),
                    "quarter" => Some(3),
                    _ => {
                        errors.insert("period", "maintenance.period_invalid");
                        None
                    }
                };
                let term = self
                    .term_periods
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|t| (1..=36).contains(t));
                if term.is_none() {
                    errors.insert("term_periods", "maintenance.term_invalid");
                }
                let start = parse_date(&self.start_date).filter(|d| *d >= today);
                if start.is_none() {
                    errors.insert("start_date", "maintenance.start_invalid");
                }
                if self.support.trim().is_empty() {
                    errors.insert("support", "form.required");
                }
                if let (Some(amount), Some(months), Some(term), Some(start)) =
                    (amount, months, term, start)
                {
                    terms.period_amount = Some(amount);
                    terms.period = Some(self.period.clone());
                    terms.term_periods = Some(term);
                    terms.starts_at = Some(start);
                    for i in 0..term {
                        let from = add_months(start, i * months).unwrap_or(start);
                        let to = add_months(start, (i + 1) * months).unwrap_or(start) - DAY_MS;
                        let title = i18n::t_with(
                            locale,
                            "maintenance.period_title",
                            &[
                                ("n", &(i + 1).to_string()),
                                ("from", &i18n::format_date(from, locale)),
                                ("to", &i18n::format_date(to, locale)),
                            ],
                        );
                        let criteria = i18n::t(locale, "maintenance.period_criteria");
                        // A period's report is due at its end.
                        terms.milestones.push((title, criteria, amount, to));
                    }
                }
            }
            _ => {
                errors.insert("kind", "proposal.kind_missing");
            }
        }
        if errors.is_empty() && terms.milestones.len() > 36 {
            errors.insert("term_periods", "maintenance.term_invalid");
        }
        if errors.is_empty() {
            Ok(terms)
        } else {
            Err(errors)
        }
    }
}

/// The catalogue key for a refused amount.
pub fn money_message_key(error: &MoneyError) -> &'static str {
    match error.code() {
        "money.empty" => "money.empty",
        "money.negative" => "money.negative",
        "money.too_many_decimals" => "money.too_many_decimals",
        "money.ambiguous_separators" => "money.ambiguous_separators",
        "money.above_maximum" => "money.above_maximum",
        _ => "money.malformed",
    }
}

async fn write_milestones(
    conn: &mut AnyConnection,
    proposal_id: &str,
    milestones: &[(String, String, Money, i64)],
) -> Result<Money, ProposalError> {
    sqlx::query("DELETE FROM milestones WHERE proposal_id = $1")
        .bind(proposal_id)
        .execute(&mut *conn)
        .await?;
    for (i, (title, criteria, amount, due)) in milestones.iter().enumerate() {
        sqlx::query(
            "INSERT INTO milestones (id, proposal_id, position, title, acceptance_criteria, amount, due_at, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'planned')",
        )
        .bind(new_id())
        .bind(proposal_id)
        .bind(i64::try_from(i).unwrap_or(0) + 1)
        .bind(title)
        .bind(criteria)
        .bind(amount.cents())
        .bind(*due)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Money::checked_sum(milestones.iter().map(|m| m.2))?)
}

/// Creates a proposal as a draft: a maintainer's offer, or a request of an organisation the
/// person belongs to (a request may come without milestones: the maintainer quotes them).
pub async fn create(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
    form: &ProposalForm,
    max_amount: Money,
    locale: Locale,
) -> Result<String, ProposalError> {
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let origin = if form.organisation_id.is_empty() {
        authorize(principal, Action::MaintainProject { project_id })?;
        "offer"
    } else {
        authorize(
            principal,
            Action::RequestForOrganisation {
                organisation_id: &form.organisation_id,
            },
        )?;
        "request"
    };
    let terms = form
        .check(max_amount, locale)
        .map_err(ProposalError::Invalid)?;
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO proposals
             (id, project_id, kind, title, summary, status, funding_goal, created_at, problem,
              desired_outcome, security_response_hours, releases, support, period_amount, period,
              term_periods, starts_at, origin, proposed_by, organisation_id, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'draft', 0, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 $16, $17, $18, $6)",
    )
    .bind(&id)
    .bind(project_id)
    .bind(&form.kind)
    .bind(form.title.trim())
    .bind(form.summary.trim())
    .bind(now)
    .bind(form.problem.trim())
    .bind(form.desired_outcome.trim())
    .bind(terms.security_response_hours)
    .bind(form.releases.trim())
    .bind(form.support.trim())
    .bind(terms.period_amount.map(|m| m.cents()))
    .bind(terms.period.as_deref())
    .bind(terms.term_periods)
    .bind(terms.starts_at)
    .bind(origin)
    .bind(person_id)
    .bind((!form.organisation_id.is_empty()).then_some(form.organisation_id.as_str()))
    .execute(&mut *conn)
    .await?;
    let goal = write_milestones(conn, &id, &terms.milestones).await?;
    sqlx::query("UPDATE proposals SET funding_goal = $1 WHERE id = $2")
        .bind(goal.cents())
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        &principal.actor(),
        "proposal.created",
        &id,
        (!form.organisation_id.is_empty()).then_some(form.organisation_id.as_str()),
        serde_json::json!({ "kind": form.kind, "origin": origin, "goal": goal }),
    )
    .await?;
    Ok(id)
}

/// Edits a proposal. Before funding opens, everything (the proposer in a draft, a maintainer
/// also while awaiting agreement). Afterwards only the texts, each change kept as a revision;
/// milestones and amounts stay as agreed.
pub async fn edit(
    conn: &mut AnyConnection,
    principal: &Principal,
    proposal_id: &str,
    form: &ProposalForm,
    max_amount: Money,
    locale: Locale,
) -> Result<(), ProposalError> {
    let proposal = visible(conn, principal, proposal_id).await?;
    let roles = roles_of(principal, &proposal);
    let may_edit = match proposal.status {
        State::Draft => roles.contains(&Role::Proposer) || roles.contains(&Role::Maintainer),
        State::AwaitingMaintainer => roles.contains(&Role::Maintainer),
        State::Open | State::Funded | State::InProgress => {
            roles.contains(&Role::Proposer) || roles.contains(&Role::Maintainer)
        }
        State::Completed | State::Expired | State::Cancelled => false,
    };
    if !may_edit {
        return Err(Denied::Forbidden.into());
    }
    let actor = principal.actor();
    if proposal.status.terms_editable() {
        let form = ProposalForm {
            kind: proposal.kind.clone(),
            organisation_id: proposal.organisation_id.clone().unwrap_or_default(),
            ..form.clone()
        };
        let terms = form
            .check(max_amount, locale)
            .map_err(ProposalError::Invalid)?;
        let goal = write_milestones(conn, proposal_id, &terms.milestones).await?;
        let updated = sqlx::query(
            "UPDATE proposals SET title = $1, summary = $2, problem = $3, desired_outcome = $4,
                 security_response_hours = $5, releases = $6, support = $7, period_amount = $8,
                 period = $9, term_periods = $10, starts_at = $11, funding_goal = $12, updated_at = $13
             WHERE id = $14 AND status = $15",
        )
        .bind(form.title.trim())
        .bind(form.summary.trim())
        .bind(form.problem.trim())
        .bind(form.desired_outcome.trim())
        .bind(terms.security_response_hours)
        .bind(form.releases.trim())
        .bind(form.support.trim())
        .bind(terms.period_amount.map(|m| m.cents()))
        .bind(terms.period.as_deref())
        .bind(terms.term_periods)
        .bind(terms.starts_at)
        .bind(goal.cents())
        .bind(now_ms())
        .bind(proposal_id)
        .bind(proposal.status.as_str())
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(ProposalError::Conflict);
        }
        audit::record(
            conn,
            &actor,
            "proposal.edited",
            proposal_id,
            proposal.organisation_id.as_deref(),
            serde_json::json!({ "goal": goal }),
        )
        .await?;
        return Ok(());
    }

    // After opening: texts only, each change a visible revision.
    let mut errors = FieldErrors::new();
    let old = ProposalForm::from_proposal(&proposal, locale);
    let changes: Vec<(&'static str, String, &str)> = old
        .texts()
        .into_iter()
        .zip(form.texts())
        .map(|((field, before), (_, after))| (field, before.to_owned(), after.trim()))
        .filter(|(_, before, after)| before != after)
        .filter(|(field, _, after)| match text_problem(field, after) {
            Some(problem) => {
                errors.insert(field, problem);
                false
            }
            None => true,
        })
        .collect();
    if !errors.is_empty() {
        return Err(ProposalError::Invalid(errors));
    }
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let now = now_ms();
    for (field, old, new) in &changes {
        sqlx::query(
            "INSERT INTO proposal_revisions (id, proposal_id, field, old_text, new_text, author_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(proposal_id)
        .bind(*field)
        .bind(old.as_str())
        .bind(*new)
        .bind(person_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // The column name comes from the fixed list above, never from input.
        let sql = format!("UPDATE proposals SET {field} = $1, updated_at = $2 WHERE id = $3");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(*new)
            .bind(now)
            .bind(proposal_id)
            .execute(&mut *conn)
            .await?;
    }
    if !changes.is_empty() {
        audit::record(
            conn,
            &actor,
            "proposal.clarified",
            proposal_id,
            proposal.organisation_id.as_deref(),
            serde_json::json!({ "fields": changes.iter().map(|c| c.0).collect::<Vec<_>>() }),
        )
        .await?;
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct Revision {
    pub field: String,
    pub old_text: String,
    pub new_text: String,
    pub author_name: String,
    pub created_at: i64,
}

pub async fn revisions_of(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<Revision>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.field, r.old_text, r.new_text, p.name, r.created_at
         FROM proposal_revisions r JOIN people p ON p.id = r.author_id
         WHERE r.proposal_id = $1 ORDER BY r.created_at, r.id",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Revision {
            field: row.get("field"),
            old_text: row.get("old_text"),
            new_text: row.get("new_text"),
            author_name: row.get("name"),
            created_at: row.get("created_at"),
        })
        .collect())
}

/// A step in a proposal's history (from the audit trail).
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub action: String,
    pub actor_name: Option<String>,
    pub created_at: i64,
}

pub async fn history_of(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT e.action, p.name, e.created_at FROM audit_events e
         LEFT JOIN people p ON e.actor = 'person:' || p.id
         WHERE e.subject = $1 ORDER BY e.created_at, e.id",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| HistoryEntry {
            action: row.get("action"),
            actor_name: row.get("name"),
            created_at: row.get("created_at"),
        })
        .collect())
}

/// Backers who chose to be shown, with what they committed (and did not get back).
#[derive(Clone, Debug, Serialize)]
pub struct Backer {
    pub name: String,
    pub amount: Money,
}

pub async fn public_backers(
    conn: &mut AnyConnection,
    proposal_id: &str,
) -> Result<Vec<Backer>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.legal_name, CAST(SUM(pl.committed - pl.refunded) AS BIGINT) AS amount
         FROM pledges pl JOIN organisations o ON o.id = pl.organisation_id
         WHERE pl.proposal_id = $1 AND pl.show_publicly = 1
         GROUP BY o.legal_name ORDER BY amount DESC, o.legal_name",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Backer {
            name: row.get("legal_name"),
            amount: Money::from_cents(row.get("amount")),
        })
        .collect())
}

/// What a transition may need: the funding deadline when a maintainer agrees, a reason when
/// something is cancelled or returned.
#[derive(Clone, Debug, Default)]
pub struct TransitionInput {
    pub deadline: Option<i64>,
    pub reason: String,
}

/// Makes a transition, if the lifecycle allows it from the proposal's state and the actor's
/// roles allow them to make it. The state changes with a conditional UPDATE, so two requests
/// racing cannot both make a transition from the same state. `system` marks the platform's own
/// transitions (funding, expiry, completion).
pub async fn transition(
    conn: &mut AnyConnection,
    principal: &Principal,
    proposal_id: &str,
    transition: Transition,
    input: &TransitionInput,
    system: bool,
) -> Result<State, ProposalError> {
    let proposal = if system {
        find(conn, proposal_id)
            .await?
            .ok_or(ProposalError::UnknownProposal)?
    } else {
        if principal.person_id.is_none() {
            return Err(Denied::NotLoggedIn.into());
        }
        visible(conn, principal, proposal_id).await?
    };
    crate::text::checked(&[(&crate::text::TRANSITION_REASON, &input.reason)])
        .map_err(ProposalError::Invalid)?;
    let from = proposal.status;
    let to = lifecycle::target(from, transition)
        .ok_or(ProposalError::IllegalTransition { from, transition })?;
    let roles = if system {
        vec![Role::System]
    } else {
        roles_of(principal, &proposal)
    };
    if !lifecycle::may(from, transition, &roles) {
        return Err(Denied::Forbidden.into());
    }
    let now = now_ms();
    match transition {
        Transition::Agree => {
            let mut errors = FieldErrors::new();
            if proposal.milestones.is_empty() {
                errors.insert("milestones", "proposal.no_milestones");
            }
            match input.deadline {
                Some(deadline)
                    if deadline > now && deadline <= now + MAX_DEADLINE_DAYS * DAY_MS =>
                {
                    if proposal.milestones.iter().any(|m| m.due_at < deadline) {
                        errors.insert("deadline", "proposal.deadline_after_due");
                    }
                }
                _ => {
                    errors.insert("deadline", "proposal.deadline_invalid");
                }
            }
            if !errors.is_empty() {
                return Err(ProposalError::Invalid(errors));
            }
        }
        Transition::Cancel | Transition::ReturnToProposer
            if input.reason.trim().is_empty() && !system =>
        {
            let mut errors = FieldErrors::new();
            errors.insert("reason", "proposal.reason_missing");
            return Err(ProposalError::Invalid(errors));
        }
        _ => {}
    }
    let updated = sqlx::query(
        "UPDATE proposals SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(proposal_id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(ProposalError::Conflict);
    }
    if transition == Transition::Agree {
        sqlx::query(
            "UPDATE proposals SET funding_deadline = $1, agreed_by = $2, agreed_at = $3 WHERE id = $4",
        )
        .bind(input.deadline)
        .bind(principal.person_id.as_deref())
        .bind(now)
        .bind(proposal_id)
        .execute(&mut *conn)
        .await?;
        ledger::open_account(conn, &AccountId::escrow(proposal_id), AccountKind::Escrow).await?;
    }
    // Completion returns what escrow still holds (a partly accepted milestone's rest, say).
    if matches!(
        transition,
        Transition::Cancel | Transition::Expire | Transition::Complete
    ) {
        refund_open_pledges(conn, proposal_id, transition, &principal.actor()).await?;
    }
    let actor = if system {
        Actor::system()
    } else {
        principal.actor()
    };
    audit::record(
        conn,
        &actor,
        &format!("proposal.{}", transition.as_str()),
        proposal_id,
        proposal.organisation_id.as_deref(),
        serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "reason": input.reason.trim() }),
    )
    .await?;
    Ok(to)
}

/// Every pledge's open amount back to where it came from (money rule 5: each backer gets back
/// exactly its unreleased share), each as its own ledger transaction with a key that makes a
/// retry harmless.
async fn refund_open_pledges(
    conn: &mut AnyConnection,
    proposal_id: &str,
    transition: Transition,
    actor: &Actor,
) -> Result<(), ProposalError> {
    let rows = sqlx::query(
        "SELECT id, source_account, committed - released - refunded AS open FROM pledges
         WHERE proposal_id = $1 AND committed - released - refunded > 0 ORDER BY created_at, id",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let pledge_id: String = row.get("id");
        let source: String = row.get("source_account");
        let open: i64 = row.get("open");
        ledger::post(
            conn,
            NewTransaction::transfer(
                format!("refund:{}:{pledge_id}", transition.as_str()),
                TxKind::Refund,
                format!("proposal {}: pledge returned", transition.as_str()),
                actor.clone(),
                AccountId::escrow(proposal_id),
                AccountId::from_stored(source),
                Money::from_cents(open),
            )?
            .for_proposal(proposal_id),
        )
        .await?;
        sqlx::query("UPDATE pledges SET refunded = refunded + $1 WHERE id = $2")
            .bind(open)
            .bind(&pledge_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The transitions `principal` could make now, for the proposal page's buttons.
pub fn available_transitions(principal: &Principal, proposal: &Proposal) -> Vec<Transition> {
    let roles = roles_of(principal, proposal);
    Transition::ALL
        .into_iter()
        .filter(|t| lifecycle::target(proposal.status, *t).is_some())
        .filter(|t| lifecycle::may(proposal.status, *t, &roles))
        .collect()
}

/// The kinds' and states' names in the reader's language, for filters.
pub fn state_names(locale: Locale) -> Vec<(String, String)> {
    State::ALL
        .iter()
        .filter(|s| !matches!(s, State::Draft | State::AwaitingMaintainer))
        .map(|s| {
            (
                s.as_str().to_owned(),
                i18n::t(locale, &format!("state.{}", s.as_str())),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fee_rounds_in_the_maintainers_favour() {
        assert_eq!(
            fee_of(Money::from_cents(900_000), 500),
            Money::from_cents(45_000)
        );
        assert_eq!(fee_of(Money::from_cents(199), 500), Money::from_cents(9));
        assert_eq!(fee_of(Money::from_cents(1), 500), Money::ZERO);
    }

    #[test]
    fn months_are_added_by_the_calendar() {
        let jan31 = parse_date("2027-01-31").unwrap_or_default();
        assert_eq!(
            add_months(jan31, 1).map(date_value),
            Some("2027-02-28".into())
        );
        assert_eq!(
            add_months(jan31, 12).map(date_value),
            Some("2028-01-31".into())
        );
        assert_eq!(
            add_months(jan31, -1).map(date_value),
            Some("2026-12-31".into())
        );
    }

    #[test]
    fn a_maintenance_contract_becomes_one_milestone_per_period() {
        let form = ProposalForm {
            kind: "maintenance".into(),
            title: "Wartung".into(),
            summary: "Sicherheitsupdates".into(),
            security_response_hours: "72".into(),
            support: "Tickets".into(),
            period_amount: "2.400,00".into(),
            period: "quarter".into(),
            term_periods: "4".into(),
            start_date: date_value(now_ms() + 40 * DAY_MS),
            ..ProposalForm::default()
        };
        let terms = form
            .check(Money::from_cents(100_000_000), Locale::De)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(terms.milestones.len(), 4);
        assert!(
            terms
                .milestones
                .iter()
                .all(|m| m.2 == Money::from_cents(240_000))
        );
        assert!(
            terms.milestones[0].0.starts_with("Zeitraum 1"),
            "{}",
            terms.milestones[0].0
        );
        let due: Vec<i64> = terms.milestones.iter().map(|m| m.3).collect();
        assert!(due.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn blank_milestone_rows_are_ignored_and_bad_ones_named() {
        let mut form = ProposalForm {
            kind: "feature".into(),
            title: "Export".into(),
            summary: "CSV".into(),
            problem: "No export".into(),
            desired_outcome: "Export".into(),
            milestones: vec![MilestoneForm::default(); MILESTONE_ROWS],
            ..ProposalForm::default()
        };
        form.milestones[1] = MilestoneForm {
            title: "Export".into(),
            acceptance_criteria: "Tests".into(),
            amount: "1,2,3".into(),
            due: "morgen".into(),
        };
        let errors = form
            .check(Money::from_cents(100_000_000), Locale::De)
            .err()
            .unwrap_or_default();
        assert_eq!(errors.get("m2_amount"), Some(&"money.malformed"));
        assert_eq!(errors.get("m2_due"), Some(&"milestone.due_invalid"));
        assert!(
            !errors.contains_key("m1_title"),
            "blank rows are not errors"
        );
    }
}
