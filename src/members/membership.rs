//! Cooperative membership: applications (with the statutes accepted), admission or rejection
//! by the board, the member list with entries, shares, paid-in amounts and exits, members'
//! obligations (shares, annual dues), and the CSV export.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::statutes::Statutes;
use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::{new_id, now_ms};
use crate::i18n::{self, Locale};
use crate::mail;
use crate::money::Money;
use crate::people::FieldErrors;

/// At most this many shares in one application (a typo guard; more can be subscribed later).
pub const MAX_SHARES: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("the form has problems: {0:?}")]
    Invalid(FieldErrors),
    #[error("the statutes changed while the form was open")]
    StatutesChanged,
    #[error("the organisation is a member already")]
    AlreadyMember,
    #[error("the organisation has applied already")]
    AlreadyApplied,
    #[error("no such application")]
    UnknownApplication,
    #[error("no such membership")]
    UnknownMembership,
    #[error("notice was given already")]
    AlreadyLeaving,
    #[error(transparent)]
    Money(#[from] crate::money::MoneyError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error(transparent)]
    Pledge(#[from] crate::pledges::PledgeError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Prices set in the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Terms {
    pub share_price: Money,
    pub annual_dues: Money,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ApplicationForm {
    #[serde(default)]
    pub shares: String,
    /// The checkbox: present when ticked.
    #[serde(default)]
    pub accept_statutes: Option<String>,
    /// The statutes' version shown with the form.
    #[serde(default)]
    pub statutes_version: String,
    #[serde(default)]
    pub note: String,
}

impl ApplicationForm {
    fn shares(&self) -> Option<i64> {
        self.shares
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_SHARES).contains(n))
    }

    pub fn problems(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        if self.shares().is_none() {
            errors.insert("shares", "membership.shares_invalid");
        }
        if self.accept_statutes.is_none() {
            errors.insert("accept_statutes", "membership.statutes_not_accepted");
        }
        crate::text::check(&mut errors, &[(&crate::text::APPLICATION_NOTE, &self.note)]);
        errors
    }
}

async fn is_member(conn: &mut AnyConnection, organisation_id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM memberships WHERE organisation_id = $1 AND (left_at IS NULL OR left_at > $2)",
    )
    .bind(organisation_id)
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// An org admin applies for the organisation, having accepted the statutes shown.
pub async fn apply(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
    form: &ApplicationForm,
    statutes: &Statutes,
) -> Result<(), MembershipError> {
    authorize(
        principal,
        Action::ActForOrganisationInCooperative { organisation_id },
    )?;
    let problems = form.problems();
    if !problems.is_empty() {
        return Err(MembershipError::Invalid(problems));
    }
    if form.statutes_version != statutes.version {
        return Err(MembershipError::StatutesChanged);
    }
    if is_member(conn, organisation_id).await? {
        return Err(MembershipError::AlreadyMember);
    }
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let id = new_id();
    let now = now_ms();
    let shares = form.shares().unwrap_or(1);
    let inserted = sqlx::query(
        "INSERT INTO membership_applications
             (id, organisation_id, shares, statutes_version, statutes_accepted_at, applied_by, note, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $5)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(shares)
    .bind(&statutes.version)
    .bind(now)
    .bind(person_id)
    .bind(form.note.trim())
    .execute(&mut *conn)
    .await;
    match inserted {
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(MembershipError::AlreadyApplied);
        }
        other => other?,
    };
    audit::record(
        conn,
        &principal.actor(),
        "membership.applied",
        &id,
        Some(organisation_id),
        serde_json::json!({ "shares": shares, "statutes_version": statutes.version }),
    )
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct Application {
    pub id: String,
    pub organisation_id: String,
    pub organisation_name: String,
    pub organisation_slug: String,
    pub organisation_kind: String,
    pub city: String,
    pub shares: i64,
    pub statutes_accepted_at: i64,
    pub applied_by_name: String,
    pub note: String,
    pub created_at: i64,
}

const APPLICATION_SELECT: &str =
    "SELECT a.id, a.organisation_id, o.legal_name, o.slug, o.kind, o.city,
        a.shares, a.statutes_accepted_at, p.name AS applied_by_name, a.note, a.created_at
     FROM membership_applications a
     JOIN organisations o ON o.id = a.organisation_id
     JOIN people p ON p.id = a.applied_by";

fn application_from_row(row: &sqlx::any::AnyRow) -> Application {
    Application {
        id: row.get("id"),
        organisation_id: row.get("organisation_id"),
        organisation_name: row.get("legal_name"),
        organisation_slug: row.get("slug"),
        organisation_kind: row.get("kind"),
        city: row.get("city"),
        shares: row.get("shares"),
        statutes_accepted_at: row.get("statutes_accepted_at"),
        applied_by_name: row.get("applied_by_name"),
        note: row.get("note"),
        created_at: row.get("created_at"),
    }
}

/// Applications waiting for the board, oldest first.
pub async fn pending(
    conn: &mut AnyConnection,
    principal: &Principal,
) -> Result<Vec<Application>, MembershipError> {
    authorize(principal, Action::DecideApplications)?;
    let sql = format!("{APPLICATION_SELECT} ORDER BY a.created_at");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(application_from_row)
        .collect())
}

/// The organisation's pending application, if any (for its own pages).
pub async fn application_of(
    conn: &mut AnyConnection,
    organisation_id: &str,
) -> Result<Option<Application>, sqlx::Error> {
    let sql = format!("{APPLICATION_SELECT} WHERE a.organisation_id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(organisation_id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(application_from_row))
}

async fn find_application(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Application, MembershipError> {
    let sql = format!("{APPLICATION_SELECT} WHERE a.id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(application_from_row)
        .ok_or(MembershipError::UnknownApplication)
}

/// The board admits: the organisation becomes a member with the next member number, owes its
/// shares and this year's dues, and its admins are told.
pub async fn admit(
    conn: &mut AnyConnection,
    principal: &Principal,
    application_id: &str,
    terms: Terms,
) -> Result<MemberEntry, MembershipError> {
    authorize(principal, Action::DecideApplications)?;
    // One admission at a time, so member numbers are handed out without gaps or clashes.
    sqlx::query("UPDATE accounts SET id = id WHERE id = 'coop:capital'")
        .execute(&mut *conn)
        .await?;
    let application = find_application(conn, application_id).await?;
    if is_member(conn, &application.organisation_id).await? {
        return Err(MembershipError::AlreadyMember);
    }
    let statutes_version: String =
        sqlx::query_scalar("SELECT statutes_version FROM membership_applications WHERE id = $1")
            .bind(application_id)
            .fetch_one(&mut *conn)
            .await?;
    let number: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(member_number), 0) + 1 AS BIGINT) FROM memberships",
    )
    .fetch_one(&mut *conn)
    .await?;
    let membership_id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO memberships
             (id, organisation_id, member_number, shares, joined_at, statutes_version, admitted_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&membership_id)
    .bind(&application.organisation_id)
    .bind(number)
    .bind(application.shares)
    .bind(now)
    .bind(&statutes_version)
    .bind(principal.actor().as_str())
    .execute(&mut *conn)
    .await?;
    let year = year_of(now);
    add_obligation(
        conn,
        &membership_id,
        "shares",
        year,
        terms.share_price.checked_mul(application.shares)?,
    )
    .await?;
    add_obligation(conn, &membership_id, "dues", year, terms.annual_dues).await?;
    sqlx::query("DELETE FROM membership_applications WHERE id = $1")
        .bind(application_id)
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        &principal.actor(),
        "membership.admitted",
        &membership_id,
        Some(&application.organisation_id),
        serde_json::json!({ "member_number": number, "shares": application.shares }),
    )
    .await?;
    let number_text = number.to_string();
    super::mail_admins(
        conn,
        &application.organisation_id,
        "membership_admitted",
        "mail.membership_admitted",
        &[
            ("organisation", &application.organisation_name),
            ("number", &number_text),
        ],
    )
    .await?;
    entry_of(conn, &application.organisation_id)
        .await?
        .ok_or(MembershipError::UnknownMembership)
}

async fn add_obligation(
    conn: &mut AnyConnection,
    membership_id: &str,
    kind: &str,
    year: i64,
    amount: Money,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO member_obligations (id, membership_id, kind, year, amount, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (membership_id, kind, year) DO NOTHING",
    )
    .bind(new_id())
    .bind(membership_id)
    .bind(kind)
    .bind(year)
    .bind(amount.cents())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The board rejects with a reason: the application and the personal data in it are deleted;
/// the organisation's admins are told why; the audit trail keeps only that it happened.
pub async fn reject(
    conn: &mut AnyConnection,
    principal: &Principal,
    application_id: &str,
    reason: &str,
) -> Result<(), MembershipError> {
    authorize(principal, Action::DecideApplications)?;
    crate::text::checked(&[(&crate::text::REJECTION_REASON, reason)])
        .map_err(MembershipError::Invalid)?;
    let reason = reason.trim();
    if reason.is_empty() {
        let mut errors = FieldErrors::new();
        errors.insert("reason", "membership.reason_missing");
        return Err(MembershipError::Invalid(errors));
    }
    let application = find_application(conn, application_id).await?;
    sqlx::query("DELETE FROM membership_applications WHERE id = $1")
        .bind(application_id)
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        &principal.actor(),
        "membership.rejected",
        application_id,
        Some(&application.organisation_id),
        serde_json::json!({}),
    )
    .await?;
    super::mail_admins(
        conn,
        &application.organisation_id,
        "membership_rejected",
        "mail.membership_rejected",
        &[
            ("organisation", &application.organisation_name),
            ("reason", reason),
        ],
    )
    .await?;
    Ok(())
}

/// A member's line in the member list.
#[derive(Clone, Debug, Serialize)]
pub struct MemberEntry {
    pub membership_id: String,
    pub organisation_id: String,
    pub organisation_name: String,
    pub organisation_slug: String,
    pub organisation_kind: String,
    pub member_number: i64,
    pub shares: i64,
    pub joined_at: i64,
    pub exit_notice_at: Option<i64>,
    pub left_at: Option<i64>,
    /// active, leaving (notice given, exit date ahead), left.
    pub status: &'static str,
    pub shares_owed: Money,
    pub shares_paid: Money,
    pub dues_owed: Money,
    pub dues_paid: Money,
}

const ENTRY_SELECT: &str = "SELECT m.id, m.organisation_id, o.legal_name, o.slug, o.kind,
        m.member_number, m.shares, m.joined_at, m.exit_notice_at, m.left_at,
        CAST(COALESCE((SELECT SUM(amount) FROM member_obligations b
                       WHERE b.membership_id = m.id AND b.kind = 'shares'), 0) AS BIGINT) AS shares_owed,
        CAST(COALESCE((SELECT SUM(paid) FROM member_obligations b
                       WHERE b.membership_id = m.id AND b.kind = 'shares'), 0) AS BIGINT) AS shares_paid,
        CAST(COALESCE((SELECT SUM(amount) FROM member_obligations b
                       WHERE b.membership_id = m.id AND b.kind = 'dues'), 0) AS BIGINT) AS dues_owed,
        CAST(COALESCE((SELECT SUM(paid) FROM member_obligations b
                       WHERE b.membership_id = m.id AND b.kind = 'dues'), 0) AS BIGINT) AS dues_paid
     FROM memberships m JOIN organisations o ON o.id = m.organisation_id";

fn entry_from_row(row: &sqlx::any::AnyRow, now: i64) -> MemberEntry {
    let left_at: Option<i64> = row.get("left_at");
    let status = match left_at {
        Some(at) if at <= now => "left",
        Some(_) => "leaving",
        None => "active",
    };
    MemberEntry {
        membership_id: row.get("id"),
        organisation_id: row.get("organisation_id"),
        organisation_name: row.get("legal_name"),
        organisation_slug: row.get("slug"),
        organisation_kind: row.get("kind"),
        member_number: row.get("member_number"),
        shares: row.get("shares"),
        joined_at: row.get("joined_at"),
        exit_notice_at: row.get("exit_notice_at"),
        left_at,
        status,
        shares_owed: Money::from_cents(row.get("shares_owed")),
        shares_paid: Money::from_cents(row.get("shares_paid")),
        dues_owed: Money::from_cents(row.get("dues_owed")),
        dues_paid: Money::from_cents(row.get("dues_paid")),
    }
}

/// Every member, past and present, by member number (board and treasurer).
pub async fn member_list(
    conn: &mut AnyConnection,
    principal: &Principal,
) -> Result<Vec<MemberEntry>, MembershipError> {
    authorize(principal, Action::ViewMemberList)?;
    let sql = format!("{ENTRY_SELECT} ORDER BY m.member_number");
    let now = now_ms();
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| entry_from_row(row, now))
        .collect())
}

/// The organisation's latest membership entry, if it was ever a member.
pub async fn entry_of(
    conn: &mut AnyConnection,
    organisation_id: &str,
) -> Result<Option<MemberEntry>, sqlx::Error> {
    let sql =
        format!("{ENTRY_SELECT} WHERE m.organisation_id = $1 ORDER BY m.joined_at DESC LIMIT 1");
    let now = now_ms();
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(organisation_id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(|row| entry_from_row(row, now)))
}

#[derive(Clone, Debug, Serialize)]
pub struct Obligation {
    pub id: String,
    pub kind: String,
    pub year: i64,
    pub amount: Money,
    pub paid: Money,
    /// owed, partly_paid, paid.
    pub status: &'static str,
}

/// What a member owes and has paid, newest year first.
pub async fn obligations_of(
    conn: &mut AnyConnection,
    membership_id: &str,
) -> Result<Vec<Obligation>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, kind, year, amount, paid FROM member_obligations
         WHERE membership_id = $1 ORDER BY year DESC, kind DESC",
    )
    .bind(membership_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let amount: i64 = row.get("amount");
            let paid: i64 = row.get("paid");
            Obligation {
                id: row.get("id"),
                kind: row.get("kind"),
                year: row.get("year"),
                amount: Money::from_cents(amount),
                paid: Money::from_cents(paid),
                status: if paid >= amount {
                    "paid"
                } else if paid > 0 {
                    "partly_paid"
                } else {
                    "owed"
                },
            }
        })
        .collect())
}

/// The calendar year of a time (UTC).
pub fn year_of(ms: i64) -> i64 {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| i64::from(t.year()))
        .unwrap_or(1970)
}

/// The last millisecond of a calendar year (UTC).
fn end_of_year(year: i64) -> i64 {
    let next = i32::try_from(year + 1).unwrap_or(9999);
    time::Date::from_calendar_date(next, time::Month::January, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000 - 1)
        .unwrap_or(i64::MAX)
}

/// When notice given at `notice_ms` takes effect: the end of the business (calendar) year, if
/// at least three months remain (notice by 30 September), otherwise the end of the next one.
pub fn exit_date_for_notice(notice_ms: i64) -> i64 {
    let year = year_of(notice_ms);
    let deadline = time::Date::from_calendar_date(
        i32::try_from(year).unwrap_or(1970),
        time::Month::October,
        1,
    )
    .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
    .unwrap_or(i64::MAX);
    if notice_ms < deadline {
        end_of_year(year)
    } else {
        end_of_year(year + 1)
    }
}

/// An org admin gives notice for the organisation; the exit takes effect as the statutes say.
/// At the exit the organisation's recurring pledges end (a job at the exit date), and the board
/// is told now, with every open commitment of the organisation. Returns the exit date.
pub async fn give_notice(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
    now: i64,
    base_url: &str,
) -> Result<i64, MembershipError> {
    authorize(
        principal,
        Action::ActForOrganisationInCooperative { organisation_id },
    )?;
    let entry = entry_of(conn, organisation_id)
        .await?
        .filter(|e| e.status != "left")
        .ok_or(MembershipError::UnknownMembership)?;
    if entry.exit_notice_at.is_some() || entry.left_at.is_some() {
        return Err(MembershipError::AlreadyLeaving);
    }
    let exit = exit_date_for_notice(now);
    let updated = sqlx::query(
        "UPDATE memberships SET exit_notice_at = $1, left_at = $2 WHERE id = $3 AND left_at IS NULL",
    )
    .bind(now)
    .bind(exit)
    .bind(&entry.membership_id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(MembershipError::AlreadyLeaving);
    }
    audit::record(
        conn,
        &principal.actor(),
        "membership.notice_given",
        &entry.membership_id,
        Some(organisation_id),
        serde_json::json!({ "exit_at": exit }),
    )
    .await?;
    exit_scheduled(conn, &entry.membership_id, exit, base_url).await?;
    Ok(exit)
}

/// The board records an exit it decided (exclusion, dissolution of the member) on a date; as
/// with a notice, the recurring pledges end at the exit and the board is told what is open.
pub async fn record_exit(
    conn: &mut AnyConnection,
    principal: &Principal,
    membership_id: &str,
    exit_ms: i64,
    now: i64,
    base_url: &str,
) -> Result<(), MembershipError> {
    authorize(principal, Action::ManageMembers)?;
    let organisation_id: Option<String> =
        sqlx::query_scalar("SELECT organisation_id FROM memberships WHERE id = $1")
            .bind(membership_id)
            .fetch_optional(&mut *conn)
            .await?;
    let organisation_id = organisation_id.ok_or(MembershipError::UnknownMembership)?;
    let updated = sqlx::query(
        "UPDATE memberships SET left_at = $1, exit_notice_at = COALESCE(exit_notice_at, $2)
         WHERE id = $3 AND (left_at IS NULL OR left_at > $2)",
    )
    .bind(exit_ms)
    .bind(now)
    .bind(membership_id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(MembershipError::AlreadyLeaving);
    }
    audit::record(
        conn,
        &principal.actor(),
        "membership.exit_recorded",
        membership_id,
        Some(&organisation_id),
        serde_json::json!({ "exit_at": exit_ms }),
    )
    .await?;
    exit_scheduled(conn, membership_id, exit_ms, base_url).await?;
    Ok(())
}

/// What an exit sets going when it is recorded: the job that makes it take effect at
/// `exit_at` (a moved exit date gets a job of its own; the job checks the date), and a mail to
/// the board with the effective date and every open commitment of the organisation.
async fn exit_scheduled(
    conn: &mut AnyConnection,
    membership_id: &str,
    exit_at: i64,
    base_url: &str,
) -> Result<(), MembershipError> {
    crate::jobs::schedule(
        conn,
        "exit.take_effect",
        serde_json::json!({ "membership": membership_id }),
        exit_at,
        Some(&format!("membership-exit:{membership_id}:{exit_at}")),
    )
    .await?;
    let row = sqlx::query(
        "SELECT o.id, o.legal_name, o.slug FROM memberships m
         JOIN organisations o ON o.id = m.organisation_id WHERE m.id = $1",
    )
    .bind(membership_id)
    .fetch_one(&mut *conn)
    .await?;
    let organisation_id: String = row.get("id");
    let name: String = row.get("legal_name");
    let slug: String = row.get("slug");
    let commitments = commitments_of(conn, &organisation_id, Some(membership_id)).await?;
    let url = format!(
        "{}/organisations/{slug}#commitments",
        base_url.trim_end_matches('/')
    );
    let board = sqlx::query(
        "SELECT p.email, p.locale FROM people p JOIN platform_roles r ON r.person_id = p.id
         WHERE r.role = 'board' ORDER BY p.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in board {
        let locale = Locale::from_tag(&row.get::<String, _>("locale")).unwrap_or_default();
        let mail = mail::compose(
            row.get::<String, _>("email"),
            locale,
            "member_leaving",
            "hardening.governance.leaving_mail",
            &[
                ("organisation", &name),
                ("date", &i18n::format_date(exit_at, locale)),
                ("commitments_lines", &commitments.as_text(locale)),
            ],
            Some(url.clone()),
        );
        mail::enqueue(conn, &mail).await?;
    }
    Ok(())
}

/// The exit's job: once the exit date has come, the organisation's recurring pledges end as of
/// that date (periods that start after it are not collected). Nothing happens for a job whose
/// date was moved. Returns how many recurring pledges ended.
pub async fn take_effect(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> Result<usize, MembershipError> {
    let row = sqlx::query("SELECT organisation_id, left_at FROM memberships WHERE id = $1")
        .bind(membership_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(MembershipError::UnknownMembership)?;
    let Some(exit_at) = row.get::<Option<i64>, _>("left_at").filter(|at| *at <= now) else {
        return Ok(0);
    };
    let organisation_id: String = row.get("organisation_id");
    Ok(crate::pledges::recurring::end_with_membership(conn, &organisation_id, exit_at).await?)
}

/// A one-off pledge's money still in escrow, per proposal.
#[derive(Clone, Debug, Serialize)]
pub struct OpenPledge {
    pub proposal_id: String,
    pub proposal_title: String,
    pub proposal_status: String,
    pub open: Money,
}

/// A recurring pledge of a contract that still runs.
#[derive(Clone, Debug, Serialize)]
pub struct RunningRecurring {
    pub id: String,
    pub proposal_id: String,
    pub proposal_title: String,
    pub amount: Money,
    pub first_period: i64,
    pub last_period: i64,
    /// Periods of its term not collected (nor lapsed) yet.
    pub periods_left: i64,
    pub stopped_at: Option<i64>,
}

/// Everything an organisation still has running with money: what the board looks at when a
/// member leaves.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Commitments {
    /// Pledges (one-off, and instalments already collected) with money in escrow: they stay
    /// until their proposal ends.
    pub pledges: Vec<OpenPledge>,
    /// Recurring pledges of contracts that still collect; they end at the exit.
    pub recurring: Vec<RunningRecurring>,
    /// Shares and dues not paid in full.
    pub obligations: Vec<Obligation>,
}

impl Commitments {
    pub fn is_empty(&self) -> bool {
        self.pledges.is_empty() && self.recurring.is_empty() && self.obligations.is_empty()
    }

    /// One line per commitment, for the board's mail.
    pub fn as_text(&self, locale: Locale) -> String {
        // One item a line: each is made a single line, so no title can start a line of its own.
        let t = |key: &str, args: &[(&str, &str)]| {
            crate::mail::one_line(&i18n::t_with(
                locale,
                &format!("hardening.governance.{key}"),
                args,
            ))
        };
        let mut lines = Vec::new();
        for p in &self.pledges {
            lines.push(t(
                "line_pledge",
                &[
                    ("title", &p.proposal_title),
                    ("amount", &p.open.format(locale)),
                ],
            ));
        }
        for r in &self.recurring {
            let (from, to, left) = (
                r.first_period.to_string(),
                r.last_period.to_string(),
                r.periods_left.to_string(),
            );
            lines.push(t(
                "line_recurring",
                &[
                    ("title", &r.proposal_title),
                    ("amount", &r.amount.format(locale)),
                    ("from", &from),
                    ("to", &to),
                    ("left", &left),
                ],
            ));
        }
        for o in &self.obligations {
            let kind = i18n::t(locale, &format!("members.kind.{}", o.kind));
            let year = o.year.to_string();
            let owed = Money::from_cents(o.amount.cents().saturating_sub(o.paid.cents()));
            lines.push(t(
                "line_obligation",
                &[
                    ("kind", &kind),
                    ("year", &year),
                    ("amount", &owed.format(locale)),
                ],
            ));
        }
        if lines.is_empty() {
            t("line_none", &[])
        } else {
            lines.join("\n")
        }
    }
}

/// The organisation's open commitments: pledges with money in escrow, recurring pledges of
/// contracts that still collect, and (with a membership) unpaid shares and dues.
pub async fn commitments_of(
    conn: &mut AnyConnection,
    organisation_id: &str,
    membership_id: Option<&str>,
) -> Result<Commitments, sqlx::Error> {
    let pledges = sqlx::query(
        "SELECT pl.proposal_id, pr.title, pr.status,
                CAST(SUM(pl.committed - pl.released - pl.refunded) AS BIGINT) AS open
         FROM pledges pl JOIN proposals pr ON pr.id = pl.proposal_id
         WHERE pl.organisation_id = $1
         GROUP BY pl.proposal_id, pr.title, pr.status
         HAVING SUM(pl.committed - pl.released - pl.refunded) > 0
         ORDER BY pr.title, pl.proposal_id",
    )
    .bind(organisation_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| OpenPledge {
        proposal_id: row.get("proposal_id"),
        proposal_title: row.get("title"),
        proposal_status: row.get("status"),
        open: Money::from_cents(row.get("open")),
    })
    .collect();
    let recurring = sqlx::query(
        "SELECT rp.id, rp.proposal_id, pr.title, rp.amount, rp.first_period, rp.last_period,
                rp.stopped_at,
                CAST(rp.last_period - rp.first_period + 1
                     - (SELECT COUNT(*) FROM recurring_collections rc
                        WHERE rc.recurring_pledge_id = rp.id) AS BIGINT) AS periods_left
         FROM recurring_pledges rp JOIN proposals pr ON pr.id = rp.proposal_id
         WHERE rp.organisation_id = $1 AND pr.status IN ('open', 'funded', 'in_progress')
         ORDER BY rp.created_at, rp.id",
    )
    .bind(organisation_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| RunningRecurring {
        id: row.get("id"),
        proposal_id: row.get("proposal_id"),
        proposal_title: row.get("title"),
        amount: Money::from_cents(row.get("amount")),
        first_period: row.get("first_period"),
        last_period: row.get("last_period"),
        periods_left: row.get("periods_left"),
        stopped_at: row.get("stopped_at"),
    })
    .collect();
    let obligations = match membership_id {
        Some(membership_id) => obligations_of(conn, membership_id)
            .await?
            .into_iter()
            .filter(|o| o.status != "paid")
            .collect(),
        None => Vec::new(),
    };
    Ok(Commitments {
        pledges,
        recurring,
        obligations,
    })
}

/// Records the year's dues as owed by every member that is a member in that year; running it
/// again adds nothing. Returns how many were added.
pub async fn record_dues(
    conn: &mut AnyConnection,
    principal: &Principal,
    year: i64,
    terms: Terms,
) -> Result<u64, MembershipError> {
    authorize(principal, Action::ManageMembers)?;
    if !(2000..=2200).contains(&year) {
        let mut errors = FieldErrors::new();
        errors.insert("year", "membership.year_invalid");
        return Err(MembershipError::Invalid(errors));
    }
    let start = end_of_year(year - 1) + 1;
    let end = end_of_year(year);
    let memberships: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM memberships WHERE joined_at <= $1 AND (left_at IS NULL OR left_at >= $2)",
    )
    .bind(end)
    .bind(start)
    .fetch_all(&mut *conn)
    .await?;
    let mut added = 0;
    for membership_id in &memberships {
        if add_obligation(conn, membership_id, "dues", year, terms.annual_dues).await? {
            added += 1;
        }
    }
    audit::record(
        conn,
        &principal.actor(),
        "membership.dues_recorded",
        &year.to_string(),
        None,
        serde_json::json!({ "year": year, "added": added, "amount": terms.annual_dues }),
    )
    .await?;
    Ok(added)
}

/// The member list as CSV for spreadsheets: `;` and decimal commas in German, `,` and decimal
/// points in English; ISO dates; cells that a spreadsheet would run as a formula are defused.
pub fn member_list_csv(entries: &[MemberEntry], locale: Locale) -> String {
    let separator = match locale {
        Locale::De => ';',
        Locale::En => ',',
    };
    let date = |ms: Option<i64>| -> String {
        ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok())
            .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
            .unwrap_or_default()
    };
    let header = [
        "member_number",
        "organisation",
        "kind",
        "joined",
        "shares",
        "shares_amount",
        "shares_paid",
        "dues_owed",
        "dues_paid",
        "exit_notice",
        "exit",
        "status",
    ]
    .map(|key| i18n::t(locale, &format!("members.csv.{key}")));
    let mut out = String::from("\u{feff}");
    push_row(&mut out, separator, header.iter().map(String::as_str));
    for e in entries {
        let cells = [
            e.member_number.to_string(),
            e.organisation_name.clone(),
            i18n::t(
                locale,
                &format!("organisation.kind.{}", e.organisation_kind),
            ),
            date(Some(e.joined_at)),
            e.shares.to_string(),
            csv_amount(e.shares_owed, locale),
            csv_amount(e.shares_paid, locale),
            csv_amount(e.dues_owed, locale),
            csv_amount(e.dues_paid, locale),
            date(e.exit_notice_at),
            date(e.left_at),
            i18n::t(locale, &format!("member_status.{}", e.status)),
        ];
        push_row(&mut out, separator, cells.iter().map(String::as_str));
    }
    out
}

/// Money cells: no thousands separators, the locale's decimal mark.
fn csv_amount(amount: Money, locale: Locale) -> String {
    let decimal = amount.to_decimal_string();
    match locale {
        Locale::De => decimal.replace('.', ","),
        Locale::En => decimal,
    }
}

fn push_row<'a>(out: &mut String, separator: char, cells: impl Iterator<Item = &'a str>) {
    let mut first = true;
    for cell in cells {
        if !first {
            out.push(separator);
        }
        first = false;
        let defused =
            if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err() {
                format!("'{cell}")
            } else {
                cell.to_owned()
            };
        if defused.contains([separator, '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&defused.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&defused);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i32, m: u8, d: u8) -> i64 {
        let month = time::Month::try_from(m).unwrap_or(time::Month::January);
        time::Date::from_calendar_date(y, month, d)
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
            .unwrap_or(0)
    }

    #[test]
    fn notice_takes_effect_at_the_end_of_the_year_with_three_months_notice() {
        let end_2026 = ms(2027, 1, 1) - 1;
        let end_2027 = ms(2028, 1, 1) - 1;
        assert_eq!(exit_date_for_notice(ms(2026, 3, 15)), end_2026);
        assert_eq!(exit_date_for_notice(ms(2026, 9, 30)), end_2026);
        assert_eq!(exit_date_for_notice(ms(2026, 10, 1)), end_2027);
        assert_eq!(exit_date_for_notice(ms(2026, 12, 31)), end_2027);
    }

    fn entry(name: &str) -> MemberEntry {
        MemberEntry {
            membership_id: "m".into(),
            organisation_id: "o".into(),
            organisation_name: name.into(),
            organisation_slug: "s".into(),
            organisation_kind: "association".into(),
            member_number: 7,
            shares: 3,
            joined_at: ms(2026, 2, 1),
            exit_notice_at: None,
            left_at: None,
            status: "active",
            shares_owed: Money::from_cents(30_000),
            shares_paid: Money::from_cents(10_005),
            dues_owed: Money::from_cents(12_000),
            dues_paid: Money::ZERO,
        }
    }

    #[test]
    fn csv_follows_the_readers_spreadsheet_conventions() {
        let de = member_list_csv(&[entry("Verein \"Offene Daten\"; Leipzig")], Locale::De);
        let line = de.lines().nth(1).unwrap_or_default();
        assert!(de.starts_with('\u{feff}'));
        assert!(
            line.starts_with("7;\"Verein \"\"Offene Daten\"\"; Leipzig\";"),
            "{line}"
        );
        assert!(
            line.contains(";2026-02-01;3;300,00;100,05;120,00;0,00;;;"),
            "{line}"
        );
        let en = member_list_csv(&[entry("Open Data")], Locale::En);
        assert!(
            en.lines()
                .nth(1)
                .unwrap_or_default()
                .contains(",300.00,100.05,"),
            "{en}"
        );
    }

    #[test]
    fn csv_defuses_formulas() {
        let csv = member_list_csv(&[entry("=HYPERLINK(\"x\")")], Locale::En);
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
    }
}
