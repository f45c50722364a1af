//! Pledges: refusals with their messages and nothing moved, idempotent pledging, funding in the
//! same transaction, withdrawals, and 100 pledges racing for the last euros.

use allmende::authz::{OrgRole, Principal};
use allmende::ledger::{self, AccountId, AccountKind};

use crate::helpers::{Browser, TestApp, location, spawn_app};

fn in_days(days: i64) -> String {
    allmende::proposals::date_value(allmende::db::now_ms() + days * 86_400_000)
}

struct Stage {
    app: TestApp,
    admin: Browser,
    org_id: String,
    proposal: String,
}

/// An open proposal (goal `goal` euros) and Erika, admin of Verein A with `wallet` euros.
async fn stage(goal: &str, wallet: i64) -> Stage {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (_, admin) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, _) = app.project(&lea, "Werkzeug").await;
    let (_, org_id) = app.organisation(&admin, "Verein A").await;
    let fields: Vec<(String, String)> = [
        ("kind", "feature"),
        ("organisation_id", ""),
        ("title", "Export"),
        ("summary", "CSV"),
        ("problem", "Kein Export"),
        ("desired_outcome", "Export"),
        ("m1_title", "Export"),
        ("m1_criteria", "Tests"),
        ("m1_amount", goal),
        ("m1_due", &in_days(60)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let created = lea
        .post(&format!("/projects/{slug}/proposals"), &borrowed)
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
    if wallet > 0 {
        app.funded_wallet(&org_id, wallet * 100).await;
    }
    Stage {
        app,
        admin,
        org_id,
        proposal,
    }
}

async fn pledge(stage: &Stage, amount: &str, key: &str) -> reqwest::Response {
    stage
        .admin
        .post(
            &format!("/proposals/{}/pledges", stage.proposal),
            &[
                ("organisation_id", &stage.org_id),
                ("amount", amount),
                ("key", key),
            ],
        )
        .await
}

#[tokio::test]
async fn refused_pledges_say_why_and_move_nothing() {
    let stage = stage("1.000,00", 300).await;
    let escrow = AccountId::escrow(&stage.proposal);
    let page = stage
        .admin
        .page(&format!("/proposals/{}", stage.proposal))
        .await;
    assert!(
        page.contains("value=\"300,00\""),
        "the form offers what the wallet can give"
    );
    for (amount, status, message) in [
        ("400", 422, "Es enthält 300,00\u{a0}€"),
        ("0", 422, "größer als null"),
        ("-5", 422, "nicht negativ"),
        ("zehn", 422, "kein Betrag"),
        ("1.000,01", 422, "noch braucht: 1.000,00\u{a0}€"),
    ] {
        let response = pledge(&stage, amount, &format!("k-{amount}")).await;
        assert_eq!(response.status(), status, "{amount}");
        let page = response.text().await.unwrap();
        assert!(page.contains(message), "{amount}: {message}");
        assert_eq!(stage.app.balance(&escrow).await, 0);
    }
    let (_, stranger) = stage.app.person("Otto", "otto@example.org", &[]).await;
    let response = stranger
        .post(
            &format!("/proposals/{}/pledges", stage.proposal),
            &[
                ("organisation_id", &stage.org_id),
                ("amount", "10"),
                ("key", "s"),
            ],
        )
        .await;
    assert_eq!(response.status(), 403, "only the organisation's admins");

    sqlx::query("UPDATE proposals SET funding_deadline = 1 WHERE id = $1")
        .bind(&stage.proposal)
        .execute(&mut *stage.app.conn().await)
        .await
        .unwrap();
    let late = pledge(&stage, "10", "late").await;
    assert_eq!(late.status(), 409);
    assert!(
        late.text()
            .await
            .unwrap()
            .contains("Finanzierungsfrist ist abgelaufen")
    );
    assert_eq!(
        stage.app.balance(&AccountId::wallet(&stage.org_id)).await,
        30_000
    );
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_double_click_pledges_once_and_the_goal_funds_the_proposal() {
    let stage = stage("500", 1_000).await;
    assert_eq!(pledge(&stage, "200", "click").await.status(), 303);
    assert_eq!(pledge(&stage, "200", "click").await.status(), 303);
    let escrow = AccountId::escrow(&stage.proposal);
    assert_eq!(stage.app.balance(&escrow).await, 20_000, "one pledge");
    let page = stage
        .admin
        .page(&format!("/proposals/{}", stage.proposal))
        .await;
    assert!(page.contains("Noch benötigt: 300,00\u{a0}€"));

    assert_eq!(pledge(&stage, "300", "rest").await.status(), 303);
    assert_eq!(stage.app.proposal_state(&stage.proposal).await, "funded");
    assert!(
        stage
            .app
            .last_mail("lea@werk.example", "proposal_funded")
            .await
            .is_some(),
        "the maintainer is told"
    );
    assert!(
        stage
            .app
            .last_mail("erika@verein.example", "proposal_funded")
            .await
            .is_some(),
        "the backer is told"
    );
    let more = pledge(&stage, "1", "more").await;
    assert_eq!(more.status(), 409, "a funded proposal takes no more");
    assert_eq!(stage.app.balance(&escrow).await, 50_000);
    let withdraw = stage
        .admin
        .post(
            &format!("/proposals/{}/withdrawals", stage.proposal),
            &[
                ("organisation_id", &stage.org_id),
                ("amount", "10"),
                ("key", "w"),
            ],
        )
        .await;
    assert_eq!(withdraw.status(), 409, "no withdrawal after funding");
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn pledges_can_be_taken_back_while_funding_is_open() {
    let stage = stage("1000", 500).await;
    pledge(&stage, "150", "a").await;
    pledge(&stage, "100", "b").await;
    let wallet = AccountId::wallet(&stage.org_id);
    assert_eq!(stage.app.balance(&wallet).await, 25_000);
    let path = format!("/proposals/{}/withdrawals", stage.proposal);
    let too_much = stage
        .admin
        .post(
            &path,
            &[
                ("organisation_id", &stage.org_id),
                ("amount", "300"),
                ("key", "w1"),
            ],
        )
        .await;
    assert_eq!(too_much.status(), 422);
    assert!(
        too_much
            .text()
            .await
            .unwrap()
            .contains("nur 250,00\u{a0}€ zugesagt")
    );
    assert_eq!(
        stage
            .admin
            .post(
                &path,
                &[
                    ("organisation_id", &stage.org_id),
                    ("amount", "120"),
                    ("key", "w2")
                ]
            )
            .await
            .status(),
        303
    );
    assert_eq!(
        stage
            .admin
            .post(
                &path,
                &[
                    ("organisation_id", &stage.org_id),
                    ("amount", "120"),
                    ("key", "w2")
                ]
            )
            .await
            .status(),
        303
    );
    assert_eq!(stage.app.balance(&wallet).await, 37_000, "taken back once");
    assert_eq!(
        stage.app.balance(&AccountId::escrow(&stage.proposal)).await,
        13_000
    );
    assert_eq!(
        stage
            .admin
            .post(
                &path,
                &[
                    ("organisation_id", &stage.org_id),
                    ("amount", "130"),
                    ("key", "w3")
                ]
            )
            .await
            .status(),
        303
    );
    assert_eq!(stage.app.balance(&wallet).await, 50_000, "all of it");
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_hundred_pledges_racing_for_the_last_euros_never_overfund() {
    let stage = stage("900", 0).await;
    let app = &stage.app;
    let mut principals = Vec::new();
    for i in 0..100 {
        let org = format!("org-{i:03}");
        sqlx::query("INSERT INTO organisations (id, slug, legal_name, kind, created_at) VALUES ($1, $1, $1, 'association', 1)")
            .bind(&org)
            .execute(&mut *app.conn().await)
            .await
            .unwrap();
        ledger::open_account(
            &mut *app.conn().await,
            &AccountId::wallet(&org),
            AccountKind::Wallet,
        )
        .await
        .unwrap();
        app.funded_wallet(&org, 1_000).await;
        let principal = Principal {
            person_id: Some(format!("person-{i}")),
            email_verified: true,
            organisations: [(org.clone(), OrgRole::Admin)].into_iter().collect(),
            ..Principal::default()
        };
        principals.push((org, principal));
    }
    let mut tasks = Vec::new();
    for (org, principal) in principals {
        let db = app.db.clone();
        let proposal = stage.proposal.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            let key = format!("race-{org}");
            let result = allmende::pledges::pledge(
                &mut tx,
                &principal,
                allmende::pledges::PledgeRequest {
                    proposal_id: &proposal,
                    organisation_id: &org,
                    amount: "10",
                    show_publicly: false,
                    key: &key,
                    max_amount: allmende::money::Money::from_cents(100_000_000),
                },
                allmende::db::now_ms(),
            )
            .await;
            match result {
                Ok(pledged) => {
                    tx.commit().await.unwrap();
                    (true, pledged.funded)
                }
                Err(
                    allmende::pledges::PledgeError::NotOpen
                    | allmende::pledges::PledgeError::ExceedsRemaining { .. },
                ) => (false, false),
                Err(other) => panic!("{other:?}"),
            }
        }));
    }
    let mut accepted = 0;
    let mut funded = 0;
    for task in tasks {
        let (ok, f) = task.await.unwrap();
        accepted += i32::from(ok);
        funded += i32::from(f);
    }
    assert_eq!(accepted, 90, "exactly the goal's worth");
    assert_eq!(funded, 1, "funded exactly once");
    assert_eq!(
        app.balance(&AccountId::escrow(&stage.proposal)).await,
        90_000
    );
    assert_eq!(app.proposal_state(&stage.proposal).await, "funded");
    let pledges: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM pledges WHERE proposal_id = $1")
            .bind(&stage.proposal)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(pledges, 90, "every accepted pledge booked once");
    app.assert_books_balance().await;
}

/// A second and third backer for the stage's proposal, each with its own wallet.
async fn backer(stage: &Stage, name: &str, email: &str, cents: i64) -> (Browser, String) {
    let (_, admin) = stage.app.person(name, email, &[]).await;
    let (_, org) = stage.app.organisation(&admin, name).await;
    stage.app.funded_wallet(&org, cents).await;
    (admin, org)
}

async fn pledge_as(stage: &Stage, admin: &Browser, org: &str, amount: &str) {
    let response = admin
        .post(
            &format!("/proposals/{}/pledges", stage.proposal),
            &[
                ("organisation_id", org),
                ("amount", amount),
                ("key", &format!("{org}-{amount}")),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
}

#[tokio::test]
async fn at_the_deadline_the_proposal_expires_and_every_pledge_goes_back_to_the_cent() {
    use allmende::jobs::{self, ManualClock};
    let stage = stage("1000", 100).await;
    let (b, b_org) = backer(&stage, "Verein B", "b@verein.example", 10_000).await;
    let (c, c_org) = backer(&stage, "Verein C", "c@verein.example", 10_000).await;
    pledge_as(&stage, &stage.admin, &stage.org_id, "33,33").await;
    pledge_as(&stage, &b, &b_org, "33,33").await;
    pledge_as(&stage, &c, &c_org, "33,34").await;
    assert_eq!(
        stage.app.balance(&AccountId::escrow(&stage.proposal)).await,
        10_000
    );

    let deadline: i64 = sqlx::query_scalar("SELECT funding_deadline FROM proposals WHERE id = $1")
        .bind(&stage.proposal)
        .fetch_one(&mut *stage.app.conn().await)
        .await
        .unwrap();
    let clock = ManualClock::at(deadline - 4 * 86_400_000);
    let round = jobs::run_due(&stage.app.db, clock.as_ref(), "w1")
        .await
        .unwrap();
    assert_eq!(round.done, 0, "nothing due yet");
    clock.advance(2 * 86_400_000);
    jobs::run_due(&stage.app.db, clock.as_ref(), "w1")
        .await
        .unwrap();
    assert!(
        stage
            .app
            .last_mail("b@verein.example", "deadline_reminder")
            .await
            .is_some(),
        "reminded three days before"
    );
    assert_eq!(stage.app.proposal_state(&stage.proposal).await, "open");

    clock.advance(3 * 86_400_000);
    // Past the deadline on the server's clock, pledges are refused even before the job ran.
    stage
        .app
        .clock
        .advance(deadline + 1 - allmende::jobs::Clock::now_ms(stage.app.clock.as_ref()));
    let late = stage
        .admin
        .post(
            &format!("/proposals/{}/pledges", stage.proposal),
            &[
                ("organisation_id", stage.org_id.as_str()),
                ("amount", "1"),
                ("key", "late"),
            ],
        )
        .await;
    assert_eq!(late.status(), 409);
    assert!(
        late.text()
            .await
            .unwrap()
            .contains("Finanzierungsfrist ist abgelaufen")
    );
    // Two workers at the same moment: the expiry runs once.
    let (one, two) = tokio::join!(
        jobs::run_due(&stage.app.db, clock.as_ref(), "w1"),
        jobs::run_due(&stage.app.db, clock.as_ref(), "w2"),
    );
    assert_eq!(one.unwrap().failed + two.unwrap().failed, 0);
    assert_eq!(stage.app.proposal_state(&stage.proposal).await, "expired");
    assert_eq!(
        stage.app.balance(&AccountId::escrow(&stage.proposal)).await,
        0
    );
    assert_eq!(
        stage.app.balance(&AccountId::wallet(&stage.org_id)).await,
        10_000
    );
    assert_eq!(stage.app.balance(&AccountId::wallet(&b_org)).await, 10_000);
    assert_eq!(stage.app.balance(&AccountId::wallet(&c_org)).await, 10_000);
    let expiries: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_events WHERE action = 'proposal.expire'",
    )
    .fetch_one(&mut *stage.app.conn().await)
    .await
    .unwrap();
    assert_eq!(expiries, 1);
    assert!(
        stage
            .app
            .last_mail("c@verein.example", "proposal_expired")
            .await
            .is_some(),
        "backers are told"
    );
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_failing_job_is_retried_later_and_shown_to_admins() {
    use allmende::jobs::{self, ManualClock};
    let app = spawn_app().await;
    let mut conn = app.conn().await;
    jobs::schedule(
        &mut conn,
        "no.such.kind",
        serde_json::json!({}),
        1_000,
        Some("broken"),
    )
    .await
    .unwrap();
    assert!(
        !jobs::schedule(
            &mut conn,
            "no.such.kind",
            serde_json::json!({}),
            1_000,
            Some("broken")
        )
        .await
        .unwrap(),
        "scheduled once"
    );
    drop(conn);
    let clock = ManualClock::at(2_000);
    let round = jobs::run_due(&app.db, clock.as_ref(), "w").await.unwrap();
    assert_eq!(round.failed, 1);
    let again = jobs::run_due(&app.db, clock.as_ref(), "w").await.unwrap();
    assert_eq!(again.failed, 0, "not before its backoff");
    clock.advance(jobs::backoff_ms(0));
    assert_eq!(
        jobs::run_due(&app.db, clock.as_ref(), "w")
            .await
            .unwrap()
            .failed,
        1
    );
    let failed = jobs::failed(&mut *app.conn().await).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 2);
    assert!(failed[0].last_error.contains("unknown job kind"));
    let (_, admin) = app.person("Ada", "root@coop.example", &["admin"]).await;
    let page = admin.page("/admin/jobs").await;
    assert!(page.contains("unknown job kind"), "admins see failed jobs");
    let (_, treasurer) = app
        .person("Karl", "kasse@coop.example", &["treasurer"])
        .await;
    assert_eq!(treasurer.get("/admin/jobs").await.status(), 403);
}

#[tokio::test]
async fn a_withdrawal_a_pledge_and_the_expiry_racing_keep_the_books_exact() {
    use allmende::jobs::{self, ManualClock};
    let stage = stage("1000", 500).await;
    let (b, b_org) = backer(&stage, "Verein B", "b@verein.example", 50_000).await;
    pledge_as(&stage, &stage.admin, &stage.org_id, "200").await;
    pledge_as(&stage, &b, &b_org, "100").await;
    let deadline: i64 = sqlx::query_scalar("SELECT funding_deadline FROM proposals WHERE id = $1")
        .bind(&stage.proposal)
        .fetch_one(&mut *stage.app.conn().await)
        .await
        .unwrap();
    let worker_clock = ManualClock::at(deadline + 1);
    let withdraw_form = [
        ("organisation_id", stage.org_id.as_str()),
        ("amount", "50"),
        ("key", "race-w"),
    ];
    let pledge_form = [
        ("organisation_id", b_org.as_str()),
        ("amount", "70"),
        ("key", "race-p"),
    ];
    let withdraw_path = format!("/proposals/{}/withdrawals", stage.proposal);
    let pledge_path = format!("/proposals/{}/pledges", stage.proposal);
    let withdraw = stage.admin.post(&withdraw_path, &withdraw_form);
    let more = b.post(&pledge_path, &pledge_form);
    let expiry = jobs::run_due(&stage.app.db, worker_clock.as_ref(), "racer");
    let (withdrawn, pledged, expired) = tokio::join!(withdraw, more, expiry);
    expired.unwrap();
    // Whatever order they ran in, each either happened fully or not at all.
    assert!(matches!(withdrawn.status().as_u16(), 303 | 409));
    assert!(matches!(pledged.status().as_u16(), 303 | 409));
    assert_eq!(stage.app.proposal_state(&stage.proposal).await, "expired");
    assert_eq!(
        stage.app.balance(&AccountId::escrow(&stage.proposal)).await,
        0
    );
    assert_eq!(
        stage.app.balance(&AccountId::wallet(&stage.org_id)).await,
        50_000,
        "every cent back"
    );
    assert_eq!(
        stage.app.balance(&AccountId::wallet(&b_org)).await,
        50_000,
        "every cent back"
    );
    stage.app.assert_books_balance().await;
}
