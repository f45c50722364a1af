//! The cooperative at a glance: the numbers on the home page.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::ledger::{self, AccountId, LedgerError};
use crate::money::Money;

#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    pub pool: Money,
    pub capital: Money,
    pub members: i64,
    pub projects: i64,
    pub proposals_open: i64,
    pub proposals_funded: i64,
    pub in_escrow: Money,
    /// Everything ever released to maintainers (before payout).
    pub released: Money,
    pub open_proposals: Vec<FundingProgress>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FundingProgress {
    pub id: String,
    pub title: String,
    pub kind: String,
    pub project_name: String,
    pub funding_goal: Money,
    pub pledged: Money,
    /// Whole percent, 0 to 100, rounded down (so 100 means reached).
    pub percent: i64,
    pub funding_deadline: Option<i64>,
}

pub async fn overview(conn: &mut AnyConnection) -> Result<Overview, LedgerError> {
    let pool = ledger::balance(conn, &AccountId::pool()).await?;
    let capital = ledger::balance(conn, &AccountId::capital()).await?;
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let members: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(DISTINCT organisation_id) AS BIGINT) FROM memberships
         WHERE left_at IS NULL OR left_at > $1",
    )
    .bind(crate::db::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    let projects = count("SELECT CAST(COUNT(*) AS BIGINT) FROM projects")
        .fetch_one(&mut *conn)
        .await?;
    let proposals_open =
        count("SELECT CAST(COUNT(*) AS BIGINT) FROM proposals WHERE status = 'open'")
            .fetch_one(&mut *conn)
            .await?;
    let proposals_funded = count(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM proposals
         WHERE status IN ('funded', 'in_progress', 'completed')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let in_escrow = count(
        "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts WHERE kind = 'escrow'",
    )
    .fetch_one(&mut *conn)
    .await?;
    let released = count(
        "SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT)
         FROM ledger_postings p JOIN accounts a ON a.id = p.account_id
         WHERE a.kind = 'payable' AND p.amount > 0",
    )
    .fetch_one(&mut *conn)
    .await?;

    let rows = sqlx::query(
        "SELECT pr.id, pr.title, pr.kind, pj.name AS project_name, pr.funding_goal,
                pr.funding_deadline,
                CAST(COALESCE((SELECT SUM(pl.committed - pl.refunded) FROM pledges pl
                               WHERE pl.proposal_id = pr.id), 0) AS BIGINT) AS pledged
         FROM proposals pr JOIN projects pj ON pj.id = pr.project_id
         WHERE pr.status = 'open'
         ORDER BY pr.funding_deadline, pr.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let open_proposals = rows
        .iter()
        .map(|row| {
            let goal: i64 = row.get("funding_goal");
            let pledged: i64 = row.get("pledged");
            FundingProgress {
                id: row.get("id"),
                title: row.get("title"),
                kind: row.get("kind"),
                project_name: row.get("project_name"),
                funding_goal: Money::from_cents(goal),
                pledged: Money::from_cents(pledged),
                percent: percent(pledged, goal),
                funding_deadline: row.get("funding_deadline"),
            }
        })
        .collect();

    Ok(Overview {
        pool,
        capital,
        members,
        projects,
        proposals_open,
        proposals_funded,
        in_escrow: Money::from_cents(in_escrow),
        released: Money::from_cents(released),
        open_proposals,
    })
}

/// `part` of `whole` in whole percent, rounded down, within 0..=100.
pub fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    let p = i128::from(part.max(0)) * 100 / i128::from(whole);
    i64::try_from(p.min(100)).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_rounds_down_and_stays_in_range() {
        assert_eq!(super::percent(1, 3), 33);
        assert_eq!(super::percent(999, 1000), 99);
        assert_eq!(super::percent(1000, 1000), 100);
        assert_eq!(super::percent(5000, 1000), 100);
        assert_eq!(super::percent(5, 0), 0);
    }
}

/// The terms that apply now: the board's settings, else the configuration's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Terms {
    /// The fee on released milestones (500 = 5 %).
    pub fee_basis_points: u32,
    /// How long backers review a submitted milestone.
    pub review_window_days: u32,
}

async fn setting(conn: &mut AnyConnection, key: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM cooperative_settings WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
}

/// The terms, with `configured` as the defaults.
pub async fn terms(conn: &mut AnyConnection, configured: Terms) -> Result<Terms, sqlx::Error> {
    let fee = setting(conn, "fee_basis_points").await?;
    let window = setting(conn, "review_window_days").await?;
    Ok(Terms {
        fee_basis_points: fee
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(configured.fee_basis_points),
        review_window_days: window
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(configured.review_window_days),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TermsError {
    #[error(transparent)]
    Denied(#[from] crate::authz::Denied),
    #[error("the form has problems")]
    Invalid(crate::people::FieldErrors),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The board sets the fee (whole basis points, 0 to 10,000) and the review window (1 to 90
/// days). A release keeps the fee that applied to it; a window already open keeps its end.
pub async fn set_terms(
    conn: &mut AnyConnection,
    principal: &crate::authz::Principal,
    fee_basis_points: &str,
    review_window_days: &str,
    now: i64,
) -> Result<Terms, TermsError> {
    crate::authz::authorize(principal, crate::authz::Action::SetCooperativeTerms)?;
    let mut errors = crate::people::FieldErrors::new();
    let fee = fee_basis_points
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|bp| *bp <= 10_000);
    if fee.is_none() {
        errors.insert("fee_basis_points", "settings.fee_invalid");
    }
    let window = review_window_days
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|d| (1..=90).contains(d));
    if window.is_none() {
        errors.insert("review_window_days", "settings.window_invalid");
    }
    let (Some(fee), Some(window)) = (fee, window) else {
        return Err(TermsError::Invalid(errors));
    };
    for (key, value) in [
        ("fee_basis_points", i64::from(fee)),
        ("review_window_days", i64::from(window)),
    ] {
        sqlx::query(
            "INSERT INTO cooperative_settings (key, value, updated_by, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(principal.actor().as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    crate::audit::record(
        conn,
        &principal.actor(),
        "settings.terms",
        "cooperative",
        None,
        serde_json::json!({ "fee_basis_points": fee, "review_window_days": window }),
    )
    .await?;
    Ok(Terms {
        fee_basis_points: fee,
        review_window_days: window,
    })
}
