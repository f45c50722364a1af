//! Milestone delivery: review weights and thresholds (including silence, a changed decision,
//! the pool's weight and the four-eyes rule), two rejections and the board's decisions, with
//! the ledger and every pledge's released and refunded cents exact; a release raced twice.

use allmende::ledger::{self, AccountId, Actor, NewTransaction, TxKind};
use allmende::money::Money;

use crate::helpers::{Browser, TestApp, location, spawn_app};

const DAY: i64 = 86_400_000;

fn in_days(days: i64) -> String {
    allmende::proposals::date_value(allmende::db::now_ms() + days * DAY)
}

pub(crate) struct Stage {
    pub(crate) app: TestApp,
    pub(crate) lea: Browser,
    pub(crate) board: Browser,
    pub(crate) proposal: String,
    pub(crate) project: String,
    pub(crate) m1: String,
    pub(crate) m2: String,
    /// Admin browser and organisation id of A, B and C.
    pub(crate) orgs: Vec<(Browser, String)>,
}

/// A funded feature proposal of Lea's project: milestone 1 of 600 €, milestone 2 of 400 €;
/// backed by the pool (300 €, decided by the board) and by A, B and C with awkward amounts.
async fn stage(amounts: [&str; 3]) -> Stage {
    stage_in(spawn_app().await, amounts).await
}

/// The same stage on a server started by the caller (with Stripe, say).
pub(crate) async fn stage_in(app: TestApp, amounts: [&str; 3]) -> Stage {
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (_, board) = app.person("Vera", "vera@coop.example", &["board"]).await;
    let (slug, project) = app.project(&lea, "Werkzeug").await;
    let created = lea
        .post(
            &format!("/projects/{slug}/proposals"),
            &[
                ("kind", "feature"),
                ("organisation_id", ""),
                ("title", "Export"),
                ("summary", "CSV-Export"),
                ("problem", "Kein Export"),
                ("desired_outcome", "Export"),
                ("m1_title", "Datenmodell"),
                ("m1_criteria", "Tests"),
                ("m1_amount", "600"),
                ("m1_due", &in_days(60)),
                ("m2_title", "Oberfläche"),
                ("m2_criteria", "Tests"),
                ("m2_amount", "400"),
                ("m2_due", &in_days(90)),
            ],
        )
        .await;
    let proposal = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    lea.post(
        &format!("/proposals/{proposal}/transitions"),
        &[("transition", "submit")],
    )
    .await;
    let agreed = lea
        .post(
            &format!("/proposals/{proposal}/transitions"),
            &[("transition", "agree"), ("deadline", &in_days(30))],
        )
        .await;
    assert_eq!(agreed.status(), 303);
    pool_pledge(&app, &proposal, 30_000).await;
    let mut orgs = Vec::new();
    for (name, amount) in ["Verein A", "Verein B", "Verein C"]
        .into_iter()
        .zip(amounts)
    {
        let email = format!("{}@verein.example", name.to_lowercase().replace(' ', "-"));
        let (_, admin) = app.person(name, &email, &[]).await;
        let (_, org) = app.organisation(&admin, name).await;
        app.funded_wallet(&org, 100_000).await;
        let pledged = admin
            .post(
                &format!("/proposals/{proposal}/pledges"),
                &[
                    ("organisation_id", org.as_str()),
                    ("amount", amount),
                    ("key", &format!("{org}-pledge")),
                    ("show_publicly", "yes"),
                ],
            )
            .await;
        assert_eq!(pledged.status(), 303);
        orgs.push((admin, org));
    }
    assert_eq!(app.proposal_state(&proposal).await, "funded");
    let milestones: Vec<String> =
        sqlx::query_scalar("SELECT id FROM milestones WHERE proposal_id = $1 ORDER BY position")
            .bind(&proposal)
            .fetch_all(&mut *app.conn().await)
            .await
            .unwrap();
    Stage {
        app,
        lea,
        board,
        proposal,
        project,
        m1: milestones[0].clone(),
        m2: milestones[1].clone(),
        orgs,
    }
}

/// What a voting round's allocation does: `coop:pool → escrow` with a pledge row of the pool.
async fn pool_pledge(app: &TestApp, proposal: &str, cents: i64) {
    let mut tx = app.db.begin().await.unwrap();
    let amount = Money::from_cents(cents);
    ledger::post(
        &mut tx,
        NewTransaction::transfer(
            format!("test:dues:{proposal}"),
            TxKind::Dues,
            "dues",
            Actor::system(),
            AccountId::external_bank(),
            AccountId::pool(),
            amount,
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let transaction = ledger::post(
        &mut tx,
        NewTransaction::transfer(
            format!("test:allocation:{proposal}"),
            TxKind::PoolAllocation,
            "allocation",
            Actor::system(),
            AccountId::pool(),
            AccountId::escrow(proposal),
            amount,
        )
        .unwrap()
        .for_proposal(proposal),
    )
    .await
    .unwrap()
    .into_transaction();
    sqlx::query(
        "INSERT INTO pledges (id, proposal_id, organisation_id, source_account, committed, transaction_id, created_at)
         VALUES ($1, $2, NULL, 'coop:pool', $3, $4, $5)",
    )
    .bind(allmende::db::new_id())
    .bind(proposal)
    .bind(cents)
    .bind(&transaction.id)
    .bind(allmende::db::now_ms())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

impl Stage {
    pub(crate) async fn submit(&self, milestone: &str) -> reqwest::Response {
        self.lea
            .post(
                &format!("/milestones/{milestone}/submissions"),
                &[
                    ("summary", "Das Datenmodell ist fertig."),
                    (
                        "evidence",
                        "https://git.example/werkzeug/merge_requests/12\nhttps://git.example/werkzeug/releases/1.2",
                    ),
                    ("notes", ""),
                ],
            )
            .await
    }

    async fn submission(&self, milestone: &str) -> String {
        sqlx::query_scalar(
            "SELECT id FROM milestone_submissions WHERE milestone_id = $1 ORDER BY round DESC",
        )
        .bind(milestone)
        .fetch_one(&mut *self.app.conn().await)
        .await
        .unwrap()
    }

    pub(crate) async fn review(
        &self,
        who: &Browser,
        reviewer: &str,
        decision: &str,
        reason: &str,
        milestone: &str,
    ) -> reqwest::Response {
        let submission = self.submission(milestone).await;
        who.post(
            &format!("/submissions/{submission}/reviews"),
            &[
                ("reviewer", reviewer),
                ("decision", decision),
                ("reason", reason),
            ],
        )
        .await
    }

    pub(crate) fn org(&self, i: usize) -> (&Browser, &str) {
        (&self.orgs[i].0, self.orgs[i].1.as_str())
    }

    async fn milestone_status(&self, milestone: &str) -> String {
        sqlx::query_scalar("SELECT status FROM milestones WHERE id = $1")
            .bind(milestone)
            .fetch_one(&mut *self.app.conn().await)
            .await
            .unwrap()
    }

    /// Each pledge's (source, committed, released, refunded) in the order they were made: A, B,
    /// C (on the server's clock, which stands at the test's start), then the pool.
    async fn pledges(&self) -> Vec<(String, i64, i64, i64)> {
        sqlx::query_as(
            "SELECT source_account, committed, released, refunded FROM pledges
             WHERE proposal_id = $1 ORDER BY created_at, id",
        )
        .bind(&self.proposal)
        .fetch_all(&mut *self.app.conn().await)
        .await
        .unwrap()
    }

    async fn reject_twice(&self, milestone: &str) {
        for round in 0..2 {
            assert_eq!(self.submit(milestone).await.status(), 303, "round {round}");
            for i in 0..2 {
                let (admin, org) = self.org(i);
                let rejected = self
                    .review(admin, org, "reject", "Tests fehlen", milestone)
                    .await;
                assert_eq!(rejected.status(), 303);
            }
        }
        assert_eq!(self.milestone_status(milestone).await, "disputed");
    }

    async fn decide(&self, milestone: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.board
            .post(&format!("/milestones/{milestone}/dispute"), fields)
            .await
    }
}

#[tokio::test]
async fn backers_review_by_weight_and_more_than_half_accepting_releases_the_milestone() {
    let s = stage(["300", "300", "100"]).await;
    // Lea is also an admin of C's organisation and on the board: she still may not review
    // her own project's milestone.
    let lea_id: String =
        sqlx::query_scalar("SELECT id FROM people WHERE email = 'lea@werk.example'")
            .fetch_one(&mut *s.app.conn().await)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO organisation_people (organisation_id, person_id, role, added_at) VALUES ($1, $2, 'admin', 0)",
    )
    .bind(&s.orgs[2].1)
    .bind(&lea_id)
    .execute(&mut *s.app.conn().await)
    .await
    .unwrap();

    let submitted = s.submit(&s.m1).await;
    assert_eq!(submitted.status(), 303);
    assert_eq!(s.app.proposal_state(&s.proposal).await, "in_progress");
    let (_, mail) = s
        .app
        .last_mail("verein-a@verein.example", "milestone_submitted")
        .await
        .expect("backers are asked to review");
    assert!(mail.contains("Datenmodell"), "{mail}");
    assert!(
        s.app
            .last_mail("vera@coop.example", "milestone_submitted")
            .await
            .is_some()
    );
    let page = s.orgs[0]
        .0
        .page(&format!("/proposals/{}", s.proposal))
        .await;
    assert!(
        page.contains("Schweigen als Zustimmung"),
        "the rule is on the page"
    );
    assert!(page.contains("merge_requests"), "the evidence is linked");

    let own = s.review(&s.lea, &s.orgs[2].1, "accept", "", &s.m1).await;
    assert_eq!(own.status(), 403, "four-eyes: a maintainer never reviews");
    let (a, a_org) = s.org(0);
    let no_reason = s.review(a, a_org, "reject", "  ", &s.m1).await;
    assert_eq!(no_reason.status(), 422);
    assert!(no_reason.text().await.unwrap().contains("Begründung"));
    let not_theirs = s.review(a, &s.orgs[1].1, "accept", "", &s.m1).await;
    assert_eq!(not_theirs.status(), 403, "A's admin cannot review for B");
    let pool_by_admin = s.review(a, "pool", "accept", "", &s.m1).await;
    assert_eq!(
        pool_by_admin.status(),
        403,
        "the pool's share is the board's"
    );

    // A accepts (30 %), C rejects (10 %), then changes its mind (40 % accept): still open.
    assert_eq!(s.review(a, a_org, "accept", "", &s.m1).await.status(), 303);
    let (c, c_org) = s.org(2);
    assert_eq!(
        s.review(c, c_org, "reject", "Doku fehlt", &s.m1)
            .await
            .status(),
        303
    );
    assert_eq!(s.review(c, c_org, "accept", "", &s.m1).await.status(), 303);
    assert_eq!(s.milestone_status(&s.m1).await, "submitted");
    assert_eq!(
        s.app.balance(&AccountId::escrow(&s.proposal)).await,
        100_000
    );

    // The board accepts for the pool (30 %): 70 % > half, released at once.
    assert_eq!(
        s.review(&s.board, "pool", "accept", "", &s.m1)
            .await
            .status(),
        303
    );
    assert_eq!(s.milestone_status(&s.m1).await, "released");
    assert_eq!(s.app.balance(&AccountId::escrow(&s.proposal)).await, 40_000);
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 57_000);
    assert_eq!(s.app.balance(&AccountId::fees()).await, 3_000);
    let fee_bp: i64 =
        sqlx::query_scalar("SELECT fee_basis_points FROM releases WHERE milestone_id = $1")
            .bind(&s.m1)
            .fetch_one(&mut *s.app.conn().await)
            .await
            .unwrap();
    assert_eq!(fee_bp, 500, "the fee that applied is kept with the release");
    // Pledges consumed pro rata: 30 / 30 / 10 / 30 % of 600 € (A, B, C, the pool).
    let released: Vec<i64> = s.pledges().await.iter().map(|p| p.2).collect();
    assert_eq!(released, vec![18_000, 18_000, 6_000, 18_000]);
    let late = s.review(a, a_org, "reject", "zu spät", &s.m1).await;
    assert_eq!(
        late.status(),
        409,
        "decided milestones take no more reviews"
    );
    assert!(
        s.app
            .last_mail("lea@werk.example", "milestone_released")
            .await
            .is_some()
    );
    s.app.assert_books_balance().await;

    // Milestone 2: nobody answers; at the window's end silence accepts and the proposal completes.
    assert_eq!(s.submit(&s.m2).await.status(), 303);
    let ends: i64 = sqlx::query_scalar(
        "SELECT review_ends_at FROM milestone_submissions WHERE milestone_id = $1",
    )
    .bind(&s.m2)
    .fetch_one(&mut *s.app.conn().await)
    .await
    .unwrap();
    let clock = allmende::jobs::ManualClock::at(ends - 1000);
    allmende::jobs::run_due(&s.app.db, clock.as_ref(), "w")
        .await
        .unwrap();
    assert_eq!(
        s.milestone_status(&s.m2).await,
        "submitted",
        "not before the end"
    );
    clock.advance(1000);
    allmende::jobs::run_due(&s.app.db, clock.as_ref(), "w")
        .await
        .unwrap();
    assert_eq!(s.milestone_status(&s.m2).await, "released");
    assert_eq!(s.app.proposal_state(&s.proposal).await, "completed");
    assert_eq!(s.app.balance(&AccountId::escrow(&s.proposal)).await, 0);
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 95_000);
    let outcome: String =
        sqlx::query_scalar("SELECT outcome FROM milestone_submissions WHERE milestone_id = $1")
            .bind(&s.m2)
            .fetch_one(&mut *s.app.conn().await)
            .await
            .unwrap();
    assert_eq!(outcome, "accepted_by_silence");
    s.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_partial_acceptance_refunds_the_rest_exactly_and_a_later_cancellation_returns_the_remainder()
 {
    let s = stage(["333,33", "333,33", "33,34"]).await;
    s.reject_twice(&s.m1).await;
    assert!(
        s.app
            .last_mail("vera@coop.example", "milestone_disputed")
            .await
            .is_some()
    );
    // The board member who maintains the project may not decide; give Lea the board role.
    let lea_id: String =
        sqlx::query_scalar("SELECT id FROM people WHERE email = 'lea@werk.example'")
            .fetch_one(&mut *s.app.conn().await)
            .await
            .unwrap();
    sqlx::query("INSERT INTO platform_roles (person_id, role, granted_by, granted_at) VALUES ($1, 'board', 'test', 0)")
        .bind(&lea_id)
        .execute(&mut *s.app.conn().await)
        .await
        .unwrap();
    let own = s
        .lea
        .post(
            &format!("/milestones/{}/dispute", s.m1),
            &[("decision", "accept"), ("reason", "passt")],
        )
        .await;
    assert_eq!(
        own.status(),
        403,
        "four-eyes: no arbitration of one's own project"
    );
    let too_much = s
        .decide(
            &s.m1,
            &[
                ("decision", "accept_partly"),
                ("amount", "600,01"),
                ("rest", "refund"),
                ("reason", "teils"),
            ],
        )
        .await;
    assert_eq!(too_much.status(), 422);

    let partly = s
        .decide(
            &s.m1,
            &[
                ("decision", "accept_partly"),
                ("amount", "450"),
                ("rest", "refund"),
                ("reason", "Doku fehlt"),
            ],
        )
        .await;
    assert_eq!(partly.status(), 303);
    assert_eq!(s.milestone_status(&s.m1).await, "released");
    // The rest (150 €) went back pro rata to 333,33 : 333,33 : 33,34 : 300 (A, B, C, the
    // pool), largest remainder: 50,00 / 50,00 / 5,00 / 45,00. The release (450 €) likewise
    // from what was left open.
    let pledges = s.pledges().await;
    let refunded: Vec<i64> = pledges.iter().map(|p| p.3).collect();
    assert_eq!(refunded, vec![5_000, 5_000, 500, 4_500]);
    let released: Vec<i64> = pledges.iter().map(|p| p.2).collect();
    assert_eq!(released.iter().sum::<i64>(), 45_000);
    assert_eq!(released, vec![15_000, 15_000, 1_500, 13_500]);
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 42_750);
    assert_eq!(s.app.balance(&AccountId::fees()).await, 2_250);
    assert_eq!(s.app.balance(&AccountId::escrow(&s.proposal)).await, 40_000);
    s.app.assert_books_balance().await;

    // The board cancels later (after the second milestone's two rejections): each backer gets
    // exactly its open rest; the pool's share goes back to the pool.
    s.reject_twice(&s.m2).await;
    let cancelled = s
        .decide(
            &s.m2,
            &[("decision", "cancel"), ("reason", "Projekt eingestellt")],
        )
        .await;
    assert_eq!(cancelled.status(), 303);
    assert_eq!(s.app.proposal_state(&s.proposal).await, "cancelled");
    assert_eq!(s.app.balance(&AccountId::escrow(&s.proposal)).await, 0);
    for (source, committed, released, refunded) in s.pledges().await {
        assert_eq!(
            released + refunded,
            committed,
            "{source}: nothing left open"
        );
    }
    let (_, a_org) = s.org(0);
    // A: 1.000 − 333,33 pledged + 50,00 + (333,33 − 50,00 − 150,00) back.
    assert_eq!(
        s.app.balance(&AccountId::wallet(a_org)).await,
        100_000 - 15_000
    );
    assert_eq!(s.app.balance(&AccountId::pool()).await, 30_000 - 13_500);
    s.app.assert_books_balance().await;
}

#[tokio::test]
async fn the_board_may_accept_or_ask_for_changes_in_a_dispute() {
    let s = stage(["300", "300", "100"]).await;
    s.reject_twice(&s.m1).await;
    let changes = s
        .decide(
            &s.m1,
            &[
                ("decision", "request_changes"),
                ("reason", "Tests nachreichen"),
            ],
        )
        .await;
    assert_eq!(changes.status(), 303);
    assert_eq!(s.milestone_status(&s.m1).await, "changes_requested");
    let again = s
        .decide(&s.m1, &[("decision", "accept"), ("reason", "doppelt")])
        .await;
    assert_eq!(again.status(), 409, "the dispute is decided");
    // A new window: this time the backers accept.
    assert_eq!(s.submit(&s.m1).await.status(), 303);
    for i in 0..2 {
        let (admin, org) = s.org(i);
        assert_eq!(
            s.review(admin, org, "accept", "", &s.m1).await.status(),
            303
        );
    }
    assert_eq!(s.milestone_status(&s.m1).await, "released");

    s.reject_twice(&s.m2).await;
    let accepted = s
        .decide(
            &s.m2,
            &[("decision", "accept"), ("reason", "Anforderungen erfüllt")],
        )
        .await;
    assert_eq!(accepted.status(), 303);
    assert_eq!(s.app.proposal_state(&s.proposal).await, "completed");
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 95_000);
    s.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_release_raced_twice_books_once() {
    let s = stage(["300", "300", "100"]).await;
    assert_eq!(s.submit(&s.m1).await.status(), 303);
    sqlx::query("UPDATE milestones SET status = 'accepted' WHERE id = $1")
        .bind(&s.m1)
        .execute(&mut *s.app.conn().await)
        .await
        .unwrap();
    let release = || async {
        let mut tx = s.app.db.begin().await.unwrap();
        let released = allmende::reviews::release::release(
            &mut tx,
            &s.m1,
            Money::from_cents(60_000),
            500,
            allmende::db::now_ms(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        released
    };
    let (one, two) = tokio::join!(release(), release());
    assert_eq!(
        [one.is_some(), two.is_some()]
            .iter()
            .filter(|r| **r)
            .count(),
        1,
        "exactly one release"
    );
    assert!(release().await.is_none(), "a retry changes nothing");
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 57_000);
    assert_eq!(s.app.balance(&AccountId::escrow(&s.proposal)).await, 40_000);
    s.app.assert_books_balance().await;
}

#[tokio::test]
async fn the_board_sets_the_fee_and_window_and_a_release_keeps_the_fee_that_applied() {
    let s = stage(["300", "300", "100"]).await;
    let (admin, _) = s.org(0);
    let refused = admin
        .post(
            "/board/settings",
            &[("fee_basis_points", "300"), ("review_window_days", "7")],
        )
        .await;
    assert_eq!(refused.status(), 403);
    let bad = s
        .board
        .post(
            "/board/settings",
            &[("fee_basis_points", "10001"), ("review_window_days", "0")],
        )
        .await;
    assert_eq!(bad.status(), 422);
    let page = bad.text().await.unwrap();
    assert!(page.contains("0 bis 10000") && page.contains("1 und 90"));
    let saved = s
        .board
        .post(
            "/board/settings",
            &[("fee_basis_points", "300"), ("review_window_days", "7")],
        )
        .await;
    assert_eq!(saved.status(), 303);

    assert_eq!(s.submit(&s.m1).await.status(), 303);
    let (submitted, ends): (i64, i64) = sqlx::query_as(
        "SELECT submitted_at, review_ends_at FROM milestone_submissions WHERE milestone_id = $1",
    )
    .bind(&s.m1)
    .fetch_one(&mut *s.app.conn().await)
    .await
    .unwrap();
    assert_eq!(ends - submitted, 7 * DAY, "the board's window");
    for i in 0..2 {
        let (admin, org) = s.org(i);
        assert_eq!(
            s.review(admin, org, "accept", "", &s.m1).await.status(),
            303
        );
    }
    // 3 % of 600 € = 18 €.
    assert_eq!(s.app.balance(&AccountId::fees()).await, 1_800);
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 58_200);
    let fee_bp: i64 =
        sqlx::query_scalar("SELECT fee_basis_points FROM releases WHERE milestone_id = $1")
            .bind(&s.m1)
            .fetch_one(&mut *s.app.conn().await)
            .await
            .unwrap();
    assert_eq!(fee_bp, 300);
    s.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_proposal_cancelled_during_review_takes_no_more_decisions() {
    let s = stage(["300", "300", "100"]).await;
    assert_eq!(s.submit(&s.m1).await.status(), 303);
    let cancelled = s
        .board
        .post(
            &format!("/proposals/{}/transitions", s.proposal),
            &[("transition", "cancel"), ("reason", "Projekt eingestellt")],
        )
        .await;
    assert_eq!(cancelled.status(), 303);
    assert_eq!(s.app.proposal_state(&s.proposal).await, "cancelled");
    let (a, a_org) = s.org(0);
    let late = s.review(a, a_org, "accept", "", &s.m1).await;
    assert_eq!(late.status(), 409);
    let ends: i64 = sqlx::query_scalar(
        "SELECT review_ends_at FROM milestone_submissions WHERE milestone_id = $1",
    )
    .bind(&s.m1)
    .fetch_one(&mut *s.app.conn().await)
    .await
    .unwrap();
    let clock = allmende::jobs::ManualClock::at(ends + 1);
    let round = allmende::jobs::run_due(&s.app.db, clock.as_ref(), "w")
        .await
        .unwrap();
    assert_eq!(round.failed, 0, "the window's end does nothing");
    assert_eq!(s.milestone_status(&s.m1).await, "submitted");
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 0);
    assert_eq!(s.app.balance(&AccountId::escrow(&s.proposal)).await, 0);
    s.app.assert_books_balance().await;
}
