//! Allmende: a cooperative in which organisations pool their money to fund the open-source
//! software they depend on.
//!
//! The crate's map (see DESIGN.md): settings in [`config`], the database and every difference
//! between SQLite and PostgreSQL in [`db`], money in [`money`], the ledger in [`ledger`] and its
//! invariants in [`verify`], languages in [`i18n`], the cooperative's overview in
//! [`cooperative`], the demo data in [`demo`], the voting rules in [`voting`], paying
//! maintainers in [`payouts`], the limits of typed text in [`text`], and HTTP in [`web`].

pub mod audit;
pub mod authz;
pub mod catalogue;
pub mod config;
pub mod cooperative;
pub mod db;
pub mod demo;
pub mod i18n;
pub mod jobs;
pub mod ledger;
pub mod mail;
pub mod markdown;
pub mod members;
pub mod money;
pub mod payments;
pub mod payouts;
pub mod people;
pub mod pledges;
pub mod proposals;
pub mod reviews;
pub mod rounds;
pub mod text;
pub mod verify;
pub mod voting;
pub mod web;

/// Deletes what has expired (sessions, old login attempts, old limit records) once an hour, until `stop` is true.
pub fn spawn_housekeeping(
    db: db::Db,
    session_idle_ms: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match db.begin().await {
                Ok(mut tx) => {
                    let purged = async {
                        people::sessions::purge_expired(&mut tx, session_idle_ms).await?;
                        people::login::purge_old_attempts(&mut tx).await?;
                        people::limits::purge_old(&mut tx, db::now_ms()).await?;
                        tx.commit().await
                    }
                    .await;
                    if let Err(error) = purged {
                        tracing::warn!(%error, "housekeeping failed; trying again later");
                    }
                }
                Err(error) => tracing::warn!(%error, "housekeeping: no database connection"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
    })
}
