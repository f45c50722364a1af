//! Background jobs: a table of what is due, claimed by workers with a conditional UPDATE (safe
//! with several instances), retried with backoff when they fail. Jobs here: a proposal whose
//! funding deadline passed expires and every pledge goes back; backers are reminded three days
//! before a deadline; recurring maintenance pledges are collected at each period's start, and
//! organisations whose wallet will not cover a collection are told three days before; voting
//! rounds open, remind members a day before their close, and close; a member's exit takes
//! effect (its recurring pledges end). Time comes from a [`Clock`], so tests move it instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::authz::Principal;
use crate::db::{Db, new_id};
use crate::proposals::lifecycle::Transition;
use crate::proposals::{self, TransitionInput};

/// How long a claimed job is reserved for its worker.
pub const CLAIM_MS: i64 = 5 * 60_000;
/// After this many failures a job gives up: it is no longer tried by itself, the board is
/// mailed once, and it stays visible on the board's and the admins' page until someone has it
/// tried again.
pub const MAX_ATTEMPTS: i64 = 10;
const DAY_MS: i64 = 86_400_000;

/// The time: the system's, or one the tests set.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::db::now_ms()
    }
}

/// A clock that stands still until moved.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Schedules a job; with a `unique_key`, scheduling it again does nothing.
pub async fn schedule(
    conn: &mut AnyConnection,
    kind: &str,
    payload: serde_json::Value,
    run_at: i64,
    unique_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, kind, payload, unique_key, run_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (unique_key) DO NOTHING",
    )
    .bind(new_id())
    .bind(kind)
    .bind(payload.to_string())
    .bind(unique_key)
    .bind(run_at)
    .bind(crate::db::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Schedules what open proposals need: expiry at the deadline, a reminder three days before.
/// Cheap and idempotent (unique keys), so the worker runs it on every round; proposals that
/// opened before the worker existed are covered too.
pub async fn schedule_deadlines(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let rows = sqlx::query(
        "SELECT id, funding_deadline FROM proposals
         WHERE status = 'open' AND funding_deadline IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let id: String = row.get("id");
        let deadline: i64 = row.get("funding_deadline");
        let payload = serde_json::json!({ "proposal": id });
        schedule(
            &mut tx,
            "proposal.expire",
            payload.clone(),
            deadline,
            Some(&format!("expire:{id}:{deadline}")),
        )
        .await?;
        schedule(
            &mut tx,
            "proposal.deadline_reminder",
            payload,
            deadline - 3 * DAY_MS,
            Some(&format!("remind:{id}:{deadline}")),
        )
        .await?;
    }
    tx.commit().await
}

/// Claims up to `limit` due jobs for `worker`: only one worker gets each.
async fn claim(
    db: &Db,
    worker: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM jobs
         WHERE done_at IS NULL AND attempts < $1 AND run_at <= $2
           AND (locked_until IS NULL OR locked_until < $2)
         ORDER BY run_at, id LIMIT $3",
    )
    .bind(MAX_ATTEMPTS)
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut claimed = Vec::new();
    for id in due {
        let mut tx = db.begin().await?;
        let taken = sqlx::query(
            "UPDATE jobs SET locked_by = $1, locked_until = $2
             WHERE id = $3 AND done_at IS NULL AND (locked_until IS NULL OR locked_until < $4)",
        )
        .bind(worker)
        .bind(now + CLAIM_MS)
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 1 {
            let row = sqlx::query("SELECT kind, payload, attempts FROM jobs WHERE id = $1")
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
            claimed.push((id, row.get("kind"), row.get("payload"), row.get("attempts")));
        }
        tx.commit().await?;
    }
    Ok(claimed)
}

/// How long to wait before trying a failed job again: 1 min, 4 min, 16 min, … up to a day.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    (60_000_i64 * 4_i64.pow(exponent)).min(DAY_MS)
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Round {
    pub done: usize,
    pub failed: usize,
}

/// One round of the worker: schedule what is needed, run what is due.
pub async fn run_due(db: &Db, clock: &dyn Clock, worker: &str) -> Result<Round, sqlx::Error> {
    schedule_deadlines(db).await?;
    let now = clock.now_ms();
    let mut round = Round::default();
    for (id, kind, payload, attempts) in claim(db, worker, now, 50).await? {
        let result = run_one(db, &kind, &payload, now).await;
        let mut tx = db.begin().await?;
        match result {
            Ok(()) => {
                sqlx::query("UPDATE jobs SET done_at = $1, locked_until = NULL WHERE id = $2 AND locked_by = $3")
                    .bind(now)
                    .bind(&id)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?;
                round.done += 1;
            }
            Err(error) => {
                let error = error.chars().take(1000).collect::<String>();
                let gives_up = attempts + 1 >= MAX_ATTEMPTS;
                if gives_up {
                    tracing::error!(job = %id, %kind, %error, "job failed for the last time; giving up");
                } else {
                    tracing::warn!(job = %id, %kind, %error, "job failed; will try again");
                }
                let recorded = sqlx::query(
                    "UPDATE jobs SET attempts = attempts + 1, last_error = $1, run_at = $2,
                         locked_by = NULL, locked_until = NULL
                     WHERE id = $3 AND locked_by = $4",
                )
                .bind(&error)
                .bind(now + backoff_ms(attempts))
                .bind(&id)
                .bind(worker)
                .execute(&mut *tx)
                .await?;
                // The last attempt: nobody will claim the job again, so the board hears of it
                // once (only the worker that recorded the failure writes the mail).
                if gives_up && recorded.rows_affected() == 1 {
                    tell_board_job_gave_up(&mut tx, &kind, &error, now).await?;
                }
                round.failed += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(round)
}

/// Mails every board member that a job gave up: what it was, when, and its last error. The
/// board's page of failed jobs shows the same.
async fn tell_board_job_gave_up(
    conn: &mut AnyConnection,
    kind: &str,
    error: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let board = sqlx::query(
        "SELECT DISTINCT p.email, p.locale FROM people p
         JOIN platform_roles r ON r.person_id = p.id
         WHERE r.role = 'board' ORDER BY p.email",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in board {
        let email: String = row.get("email");
        let locale =
            crate::i18n::Locale::from_tag(&row.get::<String, _>("locale")).unwrap_or_default();
        let job = crate::i18n::t(locale, &format!("audit.action.{kind}"));
        // One quoted line, whatever the error contains.
        let error: String = error
            .split(char::is_control)
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(300)
            .collect();
        let mail = crate::mail::compose(
            &email,
            locale,
            "job_gave_up",
            "hardening.keys.mail_job_gave_up",
            &[
                ("job", &job),
                ("attempts", &MAX_ATTEMPTS.to_string()),
                ("date", &crate::i18n::format_date(now, locale)),
                ("error", &error),
            ],
            Some("/board/jobs".to_owned()),
        );
        if let Err(mail_error) = crate::mail::enqueue(conn, &mail).await {
            // One unusable address must not keep the failure from being recorded.
            tracing::warn!(%email, error = %mail_error, "could not write the job failure mail");
        }
    }
    Ok(())
}

/// Runs one job in a transaction of its own; what it does commits with it or not at all.
async fn run_one(db: &Db, kind: &str, payload: &str, now: i64) -> Result<(), String> {
    let payload: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let proposal_id = payload["proposal"].as_str().unwrap_or_default().to_owned();
    if kind == "round.close" {
        // Counts outside any transaction (it may take a while), then writes in a short one.
        let round = payload["round"].as_str().unwrap_or_default();
        return crate::rounds::close_job(db, round, now)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    match kind {
        "proposal.expire" => expire(&mut tx, &proposal_id, now).await?,
        "proposal.deadline_reminder" => remind(&mut tx, &proposal_id).await?,
        "instalment.collect" => {
            let period = payload["period"].as_i64().unwrap_or_default();
            crate::pledges::recurring::collect_period(&mut tx, &proposal_id, period, now)
                .await
                .map_err(|e| e.to_string())?;
        }
        "submission.window_end" => {
            let submission = payload["submission"].as_str().unwrap_or_default();
            // The configured fee came with the job; a fee the board set since applies.
            let configured = payload["fee_basis_points"]
                .as_u64()
                .and_then(|bp| u32::try_from(bp).ok())
                .unwrap_or(0);
            let fee = crate::cooperative::terms(
                &mut tx,
                crate::cooperative::Terms {
                    fee_basis_points: configured,
                    review_window_days: 14,
                },
            )
            .await
            .map_err(|e| e.to_string())?
            .fee_basis_points;
            crate::reviews::close_window(&mut tx, submission, now, fee)
                .await
                .map_err(|e| e.to_string())?;
        }
        "exit.take_effect" => {
            let membership = payload["membership"].as_str().unwrap_or_default();
            crate::members::membership::take_effect(&mut tx, membership, now)
                .await
                .map_err(|e| e.to_string())?;
        }
        "instalment.wallet_reminder" => {
            let period = payload["period"].as_i64().unwrap_or_default();
            crate::pledges::recurring::remind_short_wallets(&mut tx, &proposal_id, period)
                .await
                .map_err(|e| e.to_string())?;
        }
        "round.open" | "round.closing_reminder" => {
            let round = payload["round"].as_str().unwrap_or_default();
            let done = match kind {
                "round.open" => crate::rounds::open_round(&mut tx, round, now).await,
                _ => crate::rounds::remind(&mut tx, round, now).await,
            };
            done.map_err(|e| e.to_string())?;
        }
        other => return Err(format!("unknown job kind {other}")),
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// A proposal still open at its deadline expires: every pledge's open amount goes back to
/// where it came from (the lifecycle's Expire does the refunds), and the backers are told.
async fn expire(conn: &mut AnyConnection, proposal_id: &str, now: i64) -> Result<(), String> {
    let row = sqlx::query("SELECT status, funding_deadline, title FROM proposals WHERE id = $1")
        .bind(proposal_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = row else { return Ok(()) };
    let status: String = row.get("status");
    let deadline: Option<i64> = row.get("funding_deadline");
    if status != "open" || deadline.is_none_or(|d| d > now) {
        // Funded, cancelled, or the deadline was moved: nothing to do.
        return Ok(());
    }
    let title: String = row.get("title");
    let backers = crate::pledges::backer_addresses(conn, proposal_id)
        .await
        .map_err(|e| e.to_string())?;
    proposals::transition(
        conn,
        &Principal::visitor(),
        proposal_id,
        Transition::Expire,
        &TransitionInput::default(),
        true,
    )
    .await
    .map_err(|e| e.to_string())?;
    for (email, locale) in backers {
        let mail = crate::mail::compose(
            &email,
            locale,
            "proposal_expired",
            "mail.proposal_expired",
            &[("title", &title)],
            None,
        );
        crate::mail::enqueue(conn, &mail)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn remind(conn: &mut AnyConnection, proposal_id: &str) -> Result<(), String> {
    let row = sqlx::query("SELECT status, title FROM proposals WHERE id = $1")
        .bind(proposal_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = row else { return Ok(()) };
    let status: String = row.get("status");
    if status != "open" {
        return Ok(());
    }
    let title: String = row.get("title");
    for (email, locale) in crate::pledges::backer_addresses(conn, proposal_id)
        .await
        .map_err(|e| e.to_string())?
    {
        let mail = crate::mail::compose(
            &email,
            locale,
            "deadline_reminder",
            "mail.deadline_reminder",
            &[("title", &title)],
            None,
        );
        crate::mail::enqueue(conn, &mail)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Jobs that failed at least once and are not done, for the board and the platform's admins.
#[derive(Clone, Debug, Serialize)]
pub struct FailedJob {
    pub id: String,
    pub kind: String,
    pub attempts: i64,
    pub last_error: String,
    pub run_at: i64,
    /// Failed [`MAX_ATTEMPTS`] times: it is not tried again.
    pub given_up: bool,
    /// The page of what the job was about (a voting round, a proposal), if any.
    pub subject_url: Option<String>,
}

/// The page a job's payload is about.
fn subject_url(payload: &str) -> Option<String> {
    let payload: serde_json::Value = serde_json::from_str(payload).ok()?;
    let id_in = |field: &str| {
        payload[field]
            .as_str()
            .filter(|id| {
                !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            .map(str::to_owned)
    };
    id_in("round")
        .map(|id| format!("/rounds/{id}"))
        .or_else(|| id_in("proposal").map(|id| format!("/proposals/{id}")))
}

/// Why the failed jobs could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Denied(#[from] crate::authz::Denied),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The failed jobs for a person who may read them (the board, the platform's admins).
pub async fn failed_for(
    conn: &mut AnyConnection,
    principal: &Principal,
) -> Result<Vec<FailedJob>, JobsError> {
    crate::authz::authorize(principal, crate::authz::Action::ViewFailedJobs)?;
    Ok(failed(conn).await?)
}

/// A job that gave up is tried again from `now` (the board or an admin saw to its cause).
/// Returns false when the job is done, unknown, or has not given up.
pub async fn retry(
    conn: &mut AnyConnection,
    principal: &Principal,
    job_id: &str,
    now: i64,
) -> Result<bool, JobsError> {
    crate::authz::authorize(principal, crate::authz::Action::RetryFailedJobs)?;
    let row = sqlx::query("SELECT kind, attempts, last_error FROM jobs WHERE id = $1 AND done_at IS NULL AND attempts >= $2")
        .bind(job_id)
        .bind(MAX_ATTEMPTS)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(false) };
    let updated = sqlx::query(
        "UPDATE jobs SET attempts = 0, run_at = $1, locked_by = NULL, locked_until = NULL
         WHERE id = $2 AND done_at IS NULL AND attempts >= $3",
    )
    .bind(now)
    .bind(job_id)
    .bind(MAX_ATTEMPTS)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    crate::audit::record(
        conn,
        &principal.actor(),
        "job.retried",
        job_id,
        None,
        serde_json::json!({
            "kind": row.get::<String, _>("kind"),
            "attempts": row.get::<i64, _>("attempts"),
            "last_error": row.get::<Option<String>, _>("last_error"),
        }),
    )
    .await?;
    Ok(true)
}

/// The failed jobs, those given up first.
pub async fn failed(conn: &mut AnyConnection) -> Result<Vec<FailedJob>, sqlx::Error> {
    failed_jobs(conn).await
}

async fn failed_jobs(conn: &mut AnyConnection) -> Result<Vec<FailedJob>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, kind, payload, attempts, last_error, run_at FROM jobs
         WHERE done_at IS NULL AND attempts > 0
         ORDER BY CASE WHEN attempts >= $1 THEN 0 ELSE 1 END, run_at, id",
    )
    .bind(MAX_ATTEMPTS)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let attempts: i64 = row.get("attempts");
            FailedJob {
                id: row.get("id"),
                kind: row.get("kind"),
                attempts,
                last_error: row
                    .get::<Option<String>, _>("last_error")
                    .unwrap_or_default(),
                run_at: row.get("run_at"),
                given_up: attempts >= MAX_ATTEMPTS,
                subject_url: subject_url(&row.get::<String, _>("payload")),
            }
        })
        .collect())
}

/// The worker loop of `allmende serve` and `allmende worker`: a round every `every` until
/// `stop` turns true. Errors are logged; the loop goes on.
pub fn spawn_worker(
    db: Db,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let worker = format!("worker-{}", new_id());
    tokio::spawn(async move {
        loop {
            if let Err(error) = run_due(&db, clock.as_ref(), &worker).await {
                tracing::warn!(%error, "job round failed; trying again later");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn failed_jobs_wait_longer_each_time_up_to_a_day() {
        assert_eq!(super::backoff_ms(0), 60_000);
        assert_eq!(super::backoff_ms(1), 240_000);
        assert_eq!(super::backoff_ms(9), 86_400_000);
    }
}
