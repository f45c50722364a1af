//! Priority polls: non-binding rankings of the wish list (proposals open for funding and
//! requests waiting for a maintainer's quote). The board or anyone acting for a member
//! organisation starts one; each member organisation ranks once (changeable until the close,
//! secret until then); the result is the Schulze ranking with its pairwise preferences. A poll
//! moves no money.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{RoundError, check_member, member_at};
use crate::audit;
use crate::authz::{Action, PlatformRole, Principal, authorize};
use crate::db::new_id;
use crate::people::FieldErrors;
use crate::voting::round::BallotProblem;
use crate::voting::{Choice, RankedBallot, SchulzeResult, schulze};

#[derive(Clone, Debug, Serialize)]
pub struct Poll {
    pub id: String,
    pub title: String,
    pub description: String,
    pub opens_at: i64,
    pub closes_at: i64,
    /// open or closed
    pub phase: &'static str,
    pub turnout: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PollOption {
    pub position: i64,
    pub proposal_id: String,
    pub title: String,
}

fn poll_from_row(row: &sqlx::any::AnyRow, now: i64) -> Poll {
    let closes_at: i64 = row.get("closes_at");
    Poll {
        id: row.get("id"),
        title: row.get("title"),
        description: row.get("description"),
        opens_at: row.get("opens_at"),
        closes_at,
        phase: if now >= closes_at { "closed" } else { "open" },
        turnout: row.get("turnout"),
    }
}

/// The columns of a poll; the turnout counts the rankings of organisations that are members
/// at the close (or at `$now`, the query's now parameter, before it).
fn poll_columns(now: &str) -> String {
    let at = format!("CASE WHEN p.closes_at < {now} THEN p.closes_at ELSE {now} END");
    format!(
        "p.id, p.title, p.description, p.opens_at, p.closes_at,
         (SELECT CAST(COUNT(*) AS BIGINT) FROM poll_ballots b WHERE b.poll_id = p.id
            AND EXISTS (SELECT 1 FROM memberships m
                WHERE m.organisation_id = b.organisation_id AND m.joined_at <= {at}
                  AND (m.left_at IS NULL OR m.left_at > {at}))) AS turnout"
    )
}

pub async fn find(conn: &mut AnyConnection, id: &str, now: i64) -> Result<Poll, RoundError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM polls p WHERE p.id = $1",
        poll_columns("$2")
    )))
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(RoundError::Unknown)?;
    Ok(poll_from_row(&row, now))
}

pub async fn list(conn: &mut AnyConnection, now: i64) -> Result<Vec<Poll>, RoundError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM polls p ORDER BY p.closes_at DESC, p.id DESC",
        poll_columns("$1")
    )))
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|r| poll_from_row(r, now)).collect())
}

pub async fn options_of(
    conn: &mut AnyConnection,
    poll_id: &str,
) -> Result<Vec<PollOption>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT position, proposal_id, title FROM poll_options WHERE poll_id = $1 ORDER BY position",
    )
    .bind(poll_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| PollOption {
            position: row.get("position"),
            proposal_id: row.get("proposal_id"),
            title: row.get("title"),
        })
        .collect())
}

/// A proposal on the wish list.
#[derive(Clone, Debug, Serialize)]
pub struct Wish {
    pub id: String,
    pub title: String,
    pub project_name: String,
    pub status: String,
}

/// The wish list: proposals open for funding and requests waiting for a maintainer.
pub async fn wish_list(conn: &mut AnyConnection) -> Result<Vec<Wish>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.id, p.title, p.status, j.name FROM proposals p JOIN projects j ON j.id = p.project_id
         WHERE p.status IN ('open', 'awaiting_maintainer') ORDER BY p.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Wish {
            id: row.get("id"),
            title: row.get("title"),
            project_name: row.get("name"),
            status: row.get("status"),
        })
        .collect())
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PollForm {
    pub title: String,
    pub description: String,
    /// YYYY-MM-DD: the poll closes at the end of that day.
    pub closes: String,
    pub options: Vec<String>,
}

impl PollForm {
    pub fn from_fields(fields: &[(String, String)]) -> PollForm {
        let mut form = PollForm::default();
        for (key, value) in fields {
            match key.as_str() {
                "title" => form.title = value.clone(),
                "description" => form.description = value.clone(),
                "closes" => form.closes = value.clone(),
                "options" => form.options.push(value.clone()),
                _ => {}
            }
        }
        form
    }
}

/// Starts a poll: the board, or a person acting for a member organisation.
pub async fn create(
    conn: &mut AnyConnection,
    principal: &Principal,
    form: &PollForm,
    now: i64,
) -> Result<String, RoundError> {
    authorize(principal, Action::StartPoll)?;
    if !principal.has(PlatformRole::Board) {
        let mut member = false;
        for organisation_id in principal.organisations.keys() {
            if check_member(conn, organisation_id, now, now).await.is_ok() {
                member = true;
            }
        }
        if !member {
            return Err(RoundError::NotMember);
        }
    }
    let mut errors = FieldErrors::new();
    if form.title.trim().is_empty() {
        errors.insert("title", "round.title_missing");
    }
    crate::text::check(
        &mut errors,
        &[
            (&crate::text::POLL_TITLE, &form.title),
            (&crate::text::POLL_DESCRIPTION, &form.description),
        ],
    );
    let closes_at = match crate::proposals::parse_date(&form.closes) {
        Some(day) if day + super::DAY_MS - 1 > now => day + super::DAY_MS - 1,
        Some(_) => {
            errors.insert("closes", "round.closes_before_opening");
            0
        }
        None => {
            errors.insert("closes", "round.date_invalid");
            0
        }
    };
    let wishes = wish_list(conn).await?;
    let mut asked = form.options.clone();
    asked.sort();
    asked.dedup();
    let chosen: Vec<&Wish> = wishes.iter().filter(|w| asked.contains(&w.id)).collect();
    // At least two options, each on the wish list.
    if chosen.len() < 2 || chosen.len() != asked.len() {
        errors.insert("options", "poll.options_missing");
    }
    if !errors.is_empty() {
        return Err(RoundError::Invalid(errors));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO polls (id, title, description, opens_at, closes_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $4)",
    )
    .bind(&id)
    .bind(form.title.trim())
    .bind(form.description.trim())
    .bind(now)
    .bind(closes_at)
    .bind(principal.person_id.as_deref())
    .execute(&mut *conn)
    .await?;
    for (position, wish) in chosen.iter().enumerate() {
        sqlx::query(
            "INSERT INTO poll_options (poll_id, position, proposal_id, title) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&wish.id)
        .bind(&wish.title)
        .execute(&mut *conn)
        .await?;
    }
    audit::record(
        conn,
        &principal.actor(),
        "poll.created",
        &id,
        None,
        serde_json::json!({ "options": chosen.len() }),
    )
    .await?;
    Ok(id)
}

/// An organisation's ranking (option positions, best first); a second replaces the first.
pub async fn cast(
    conn: &mut AnyConnection,
    principal: &Principal,
    poll_id: &str,
    organisation_id: &str,
    ranking: Vec<usize>,
    now: i64,
) -> Result<(), RoundError> {
    authorize(principal, Action::VoteForOrganisation { organisation_id })?;
    let locked = sqlx::query("UPDATE polls SET id = id WHERE id = $1")
        .bind(poll_id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(RoundError::Unknown);
    }
    let poll = find(conn, poll_id, now).await?;
    if poll.phase == "closed" {
        return Err(RoundError::Closed);
    }
    check_member(conn, organisation_id, poll.opens_at, now).await?;
    if !member_at(conn, organisation_id, poll.closes_at).await? {
        // Only members at the close count: a ranking that would not count is not taken.
        return Err(RoundError::LeavesBeforeClose);
    }
    let options = options_of(conn, poll_id).await?;
    let Choice::Ranking(ranking) = crate::voting::round::check_ballot(
        crate::voting::round::BallotType::Ranking,
        options.len(),
        Choice::Ranking(ranking),
    )?
    else {
        return Err(BallotProblem::WrongType.into());
    };
    sqlx::query(
        "INSERT INTO poll_ballots (id, poll_id, organisation_id, ranking, cast_by, cast_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (poll_id, organisation_id) DO UPDATE
         SET ranking = excluded.ranking, cast_by = excluded.cast_by, cast_at = excluded.cast_at",
    )
    .bind(new_id())
    .bind(poll_id)
    .bind(organisation_id)
    .bind(serde_json::to_string(&ranking)?)
    .bind(principal.person_id.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "poll.ballot_cast",
        poll_id,
        Some(organisation_id),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

pub async fn ballot_of(
    conn: &mut AnyConnection,
    poll_id: &str,
    organisation_id: &str,
) -> Result<Option<Vec<usize>>, RoundError> {
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT ranking FROM poll_ballots WHERE poll_id = $1 AND organisation_id = $2",
    )
    .bind(poll_id)
    .bind(organisation_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match stored {
        Some(json) => Some(serde_json::from_str(&json)?),
        None => None,
    })
}

/// The Schulze count of a poll's ballots (each organisation one voter): the rankings of
/// organisations that are members at the poll's close; an organisation that left before
/// does not count, whenever it ranked.
pub async fn count(
    conn: &mut AnyConnection,
    poll: &Poll,
    options: usize,
) -> Result<SchulzeResult, RoundError> {
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT b.ranking FROM poll_ballots b WHERE b.poll_id = $1
           AND EXISTS (SELECT 1 FROM memberships m
                WHERE m.organisation_id = b.organisation_id AND m.joined_at <= $2
                  AND (m.left_at IS NULL OR m.left_at > $2))
         ORDER BY b.ranking",
    )
    .bind(&poll.id)
    .bind(poll.closes_at)
    .fetch_all(&mut *conn)
    .await?;
    let mut ballots = Vec::new();
    for json in stored {
        let ranking: Vec<usize> = serde_json::from_str(&json)?;
        ballots.push(RankedBallot::strict(ranking));
    }
    schulze(options, &ballots).map_err(|_| RoundError::Ballot(BallotProblem::UnknownCandidate))
}
