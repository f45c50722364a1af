//! Request keys (issue #20, items 15 and 16): a client's key is scoped to its organisation,
//! proposal and kind of request, so another organisation's key (or an empty one) never answers
//! "booked" for a request that booked nothing; the same key with a different amount is a
//! conflict; a key shaped like the platform's own (`round:<id>:0`) cannot stop a voting round
//! from closing; and a job that gives up is shown to the board and mailed to it once.

use allmende::jobs::{self, Clock, ManualClock};
use allmende::ledger::{self, AccountId, Actor, NewTransaction, TxKind};
use allmende::money::Money;

use crate::helpers::{Browser, TestApp, location, spawn_app};

const DAY: i64 = 86_400_000;

fn in_days(app: &TestApp, days: i64) -> String {
    allmende::proposals::date_value(app.clock.now_ms() + days * DAY)
}

struct Stage {
    app: TestApp,
    maintainer: Browser,
    project_slug: String,
}

async fn stage() -> Stage {
    let app = spawn_app().await;
    let (_, maintainer) = app.person("Lea", "lea@werk.example", &[]).await;
    let (project_slug, _) = app.project(&maintainer, "Werkzeug").await;
    Stage {
        app,
        maintainer,
        project_slug,
    }
}

impl Stage {
    /// An open feature proposal of `goal` euros, or a maintenance contract of `goal` euros a
    /// month for four months; returns its id.
    async fn proposal(&self, title: &str, goal: &str, maintenance: bool) -> String {
        let due = in_days(&self.app, 90);
        let start = in_days(&self.app, 10);
        let fields: Vec<(&str, &str)> = if maintenance {
            vec![
                ("kind", "maintenance"),
                ("organisation_id", ""),
                ("title", title),
                ("summary", "Sicherheitsupdates"),
                ("security_response_hours", "48"),
                ("releases", "monatlich"),
                ("support", "Forum"),
                ("period_amount", goal),
                ("period", "month"),
                ("term_periods", "4"),
                ("start_date", &start),
            ]
        } else {
            vec![
                ("kind", "feature"),
                ("organisation_id", ""),
                ("title", title),
                ("summary", "Zusammenfassung"),
                ("problem", "Problem"),
                ("desired_outcome", "Ergebnis"),
                ("m1_title", title),
                ("m1_criteria", "Tests"),
                ("m1_amount", goal),
                ("m1_due", &due),
            ]
        };
        let created = self
            .maintainer
            .post(
                &format!("/projects/{}/proposals", self.project_slug),
                &fields,
            )
            .await;
        assert_eq!(created.status(), 303, "create {title}");
        let id = location(&created)
            .trim_start_matches("/proposals/")
            .to_owned();
        let path = format!("/proposals/{id}/transitions");
        self.maintainer
            .post(&path, &[("transition", "submit")])
            .await;
        let deadline = in_days(&self.app, 5);
        let agreed = self
            .maintainer
            .post(&path, &[("transition", "agree"), ("deadline", &deadline)])
            .await;
        assert_eq!(agreed.status(), 303);
        id
    }

    /// An organisation with `cents` in its wallet and its admin, logged in.
    async fn backer(&self, name: &str, email: &str, cents: i64) -> (Browser, String) {
        let (_, admin) = self.app.person(name, email, &[]).await;
        let (_, org) = self.app.organisation(&admin, name).await;
        if cents > 0 {
            self.app.funded_wallet(&org, cents).await;
        }
        (admin, org)
    }

    async fn wallet(&self, org: &str) -> i64 {
        self.app.balance(&AccountId::wallet(org)).await
    }

    async fn escrow(&self, proposal: &str) -> i64 {
        self.app.balance(&AccountId::escrow(proposal)).await
    }
}

/// Posts a pledge-like form (`pledges`, `withdrawals`, `recurring-pledges`).
async fn send(
    admin: &Browser,
    proposal: &str,
    what: &str,
    org: &str,
    amount: &str,
    key: &str,
) -> (u16, String) {
    let response = admin
        .post(
            &format!("/proposals/{proposal}/{what}"),
            &[("organisation_id", org), ("amount", amount), ("key", key)],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Runs what is due (the server's clock) and says how many jobs failed.
async fn run_jobs(app: &TestApp) -> usize {
    jobs::run_due(&app.db, app.clock.as_ref(), "test")
        .await
        .unwrap()
        .failed
}

async fn admit(app: &TestApp, organisation_id: &str) {
    let number: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) + 1 FROM memberships")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, organisation_id, member_number, shares, joined_at, statutes_version, admitted_by)
         VALUES ($1, $2, $3, 1, $4, 'test', 'cli')",
    )
    .bind(allmende::db::new_id())
    .bind(organisation_id)
    .bind(number)
    .bind(app.clock.now_ms() - 365 * DAY)
    .execute(&mut *app.conn().await)
    .await
    .unwrap();
}

async fn fund_pool(app: &TestApp, cents: i64) {
    let mut tx = app.db.begin().await.unwrap();
    ledger::post(
        &mut tx,
        NewTransaction::transfer(
            "test:dues:pool",
            TxKind::Dues,
            "dues",
            Actor::system(),
            AccountId::external_bank(),
            AccountId::pool(),
            Money::from_cents(cents),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The board opens an approval round on `candidates` closing in two days; returns its id.
async fn open_round(app: &TestApp, board: &Browser, budget: &str, candidates: &[&str]) -> String {
    let closes = in_days(app, 2);
    let mut fields: Vec<(&str, &str)> = vec![
        ("title", "Frühjahrsrunde"),
        ("description", "Wofür der Topf reicht"),
        ("budget", budget),
        ("ballot_type", "approval"),
        ("ballot_limit", ""),
        ("rule", "equal_shares"),
        ("opens", ""),
        ("closes", &closes),
    ];
    for c in candidates {
        fields.push(("candidates", c));
    }
    let response = board.post("/board/rounds", &fields).await;
    let at = location(&response);
    assert_eq!(response.status(), 303);
    at.trim_start_matches("/rounds/").to_owned()
}

/// Moves the server's clock past the round's close.
async fn past_close(app: &TestApp, round: &str) {
    let closes_at: i64 = sqlx::query_scalar("SELECT closes_at FROM rounds WHERE id = $1")
        .bind(round)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    let now = app.clock.now_ms();
    if closes_at >= now {
        app.clock.advance(closes_at + 1 - now);
    }
}

/// The attack of item 16: while a round is open, a member's admin pledges 1 € with the keys
/// the round's close uses for the pool's pledges (`round:<id>:<position>`, the id is in the
/// URL). The close still runs, the pool pays the winner, and the books balance.
#[tokio::test]
async fn a_pledge_keyed_like_a_rounds_allocation_cannot_stop_the_round_from_closing() {
    let s = stage().await;
    let app = &s.app;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    fund_pool(app, 100_000).await;
    let export = s.proposal("Export", "300", false).await;
    let (mallory, mallory_org) = s.backer("Mallory e. V.", "m@verein.example", 1_000).await;
    admit(app, &mallory_org).await;
    let round = open_round(app, &board, "500", &[&export]).await;
    let positions: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM round_candidates WHERE round_id = $1")
            .bind(&round)
            .fetch_all(&mut *app.conn().await)
            .await
            .unwrap();
    for position in [0, 1, 2].into_iter().chain(positions.iter().copied()) {
        let key = format!("round:{round}:{position}");
        let (status, page) = send(&mallory, &export, "pledges", &mallory_org, "1", &key).await;
        assert_eq!(status, 303, "an ordinary pledge: {page}");
    }
    let pledged = s.escrow(&export).await;
    assert!(pledged >= 300, "the planted pledges are booked as pledges");
    let position = positions[0].to_string();
    let voted = mallory
        .post(
            &format!("/rounds/{round}/ballots"),
            &[("organisation_id", &mallory_org), ("approve", &position)],
        )
        .await;
    assert_eq!(voted.status(), 303);

    past_close(app, &round).await;
    assert_eq!(run_jobs(app).await, 0, "the close does not fail");
    let status: String = sqlx::query_scalar("SELECT status FROM rounds WHERE id = $1")
        .bind(&round)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(status, "closed");
    assert_eq!(
        app.balance(&AccountId::pool()).await,
        100_000 - (30_000 - pledged),
        "the pool paid what the proposal still needed"
    );
    assert_eq!(s.escrow(&export).await, 30_000);
    assert_eq!(app.proposal_state(&export).await, "funded");
    app.assert_books_balance().await;
}

/// A key planted before the upgrade (stored as sent) is moved into the client namespace by
/// migration 0017, so it cannot block a round either.
#[tokio::test]
async fn the_migration_moves_keys_planted_before_it_out_of_the_platforms_way() {
    let s = stage().await;
    let app = &s.app;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    fund_pool(app, 100_000).await;
    let export = s.proposal("Export", "300", false).await;
    let (mallory, mallory_org) = s.backer("Mallory e. V.", "m@verein.example", 1_000).await;
    admit(app, &mallory_org).await;
    let round = open_round(app, &board, "500", &[&export]).await;
    let position: i64 =
        sqlx::query_scalar("SELECT position FROM round_candidates WHERE round_id = $1")
            .bind(&round)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    let (status, _) = send(&mallory, &export, "pledges", &mallory_org, "1", "planted").await;
    assert_eq!(status, 303);
    // As the old code stored it: the client's key as sent.
    sqlx::query("UPDATE pledges SET idempotency_key = $1 WHERE organisation_id = $2")
        .bind(format!("round:{round}:{position}"))
        .bind(&mallory_org)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("../../migrations/0017_user_request_keys.sql"))
        .execute(app.db.pool())
        .await
        .unwrap();
    let voted = mallory
        .post(
            &format!("/rounds/{round}/ballots"),
            &[
                ("organisation_id", &mallory_org),
                ("approve", &position.to_string()),
            ],
        )
        .await;
    assert_eq!(voted.status(), 303);
    past_close(app, &round).await;
    assert_eq!(run_jobs(app).await, 0, "the close does not fail");
    assert_eq!(s.escrow(&export).await, 30_000);
    assert_eq!(app.proposal_state(&export).await, "funded");
    app.assert_books_balance().await;
}

/// Item 15 for one-off pledges: another organisation's key books the second organisation's
/// pledge; an empty, overlong or control-character key is refused and books nothing; the same
/// key again is a replay only with the same amount, otherwise a conflict that books nothing.
#[tokio::test]
async fn pledge_keys_belong_to_their_organisation_and_proposal_and_never_fake_a_booking() {
    let s = stage().await;
    let export = s.proposal("Export", "1000", false).await;
    let import = s.proposal("Import", "1000", false).await;
    let (a, a_org) = s.backer("Verein A", "a@verein.example", 50_000).await;
    let (b, b_org) = s.backer("Verein B", "b@verein.example", 50_000).await;

    assert_eq!(
        send(&a, &export, "pledges", &a_org, "100", "k").await.0,
        303
    );
    // B sends A's key: B's 250 € are booked, not silently skipped.
    let (status, _) = send(&b, &export, "pledges", &b_org, "250", "k").await;
    assert_eq!(status, 303);
    assert_eq!(s.wallet(&b_org).await, 25_000, "B's pledge is booked");
    assert_eq!(s.escrow(&export).await, 35_000);
    // The same key on another proposal is another request.
    assert_eq!(
        send(&a, &import, "pledges", &a_org, "100", "k").await.0,
        303
    );
    assert_eq!(s.escrow(&import).await, 10_000);

    // Unusable keys: refused with a message, nothing booked.
    let long = "x".repeat(129);
    for key in ["", "zwei worte", "a\nb", "a\tb", long.as_str()] {
        let (status, page) = send(&b, &export, "pledges", &b_org, "10", key).await;
        assert_eq!(status, 400, "{key:?}");
        assert!(
            page.contains("ohne brauchbaren Anfrageschlüssel"),
            "{key:?}: {page}"
        );
    }
    assert_eq!(s.escrow(&export).await, 35_000, "nothing booked");
    let max = "y".repeat(128);
    assert_eq!(
        send(&b, &export, "pledges", &b_org, "1", &max).await.0,
        303,
        "128 characters are fine"
    );

    // A double click: the first answer, nothing more booked.
    assert_eq!(
        send(&a, &export, "pledges", &a_org, "100", "k").await.0,
        303
    );
    // The same key with another amount: a conflict, nothing booked.
    let (status, page) = send(&a, &export, "pledges", &a_org, "120", "k").await;
    assert_eq!(status, 409);
    assert!(
        page.contains("bereits für eine andere Anfrage verwendet"),
        "{page}"
    );
    assert_eq!(s.escrow(&export).await, 35_100);
    assert_eq!(s.wallet(&a_org).await, 30_000);
    // In the person's language.
    a.get("/?lang=en").await;
    let (status, page) = send(&a, &export, "pledges", &a_org, "120", "k").await;
    assert_eq!(status, 409);
    assert!(
        page.contains("already used for a different request"),
        "{page}"
    );
    s.app.assert_books_balance().await;
}

/// Item 15 for withdrawals: keys are scoped the same way.
#[tokio::test]
async fn withdrawal_keys_belong_to_their_organisation_and_a_changed_amount_is_a_conflict() {
    let s = stage().await;
    let export = s.proposal("Export", "1000", false).await;
    let (a, a_org) = s.backer("Verein A", "a@verein.example", 50_000).await;
    let (b, b_org) = s.backer("Verein B", "b@verein.example", 50_000).await;
    assert_eq!(
        send(&a, &export, "pledges", &a_org, "200", "pa").await.0,
        303
    );
    assert_eq!(
        send(&b, &export, "pledges", &b_org, "200", "pb").await.0,
        303
    );
    assert_eq!(
        send(&a, &export, "withdrawals", &a_org, "50", "w").await.0,
        303
    );
    assert_eq!(s.wallet(&a_org).await, 35_000);
    // B sends A's key: B's money comes back, not a false "withdrawn".
    assert_eq!(
        send(&b, &export, "withdrawals", &b_org, "70", "w").await.0,
        303
    );
    assert_eq!(s.wallet(&b_org).await, 37_000, "B's withdrawal is booked");
    // A's double click books once; another amount under the same key is a conflict.
    assert_eq!(
        send(&a, &export, "withdrawals", &a_org, "50", "w").await.0,
        303
    );
    let (status, page) = send(&a, &export, "withdrawals", &a_org, "60", "w").await;
    assert_eq!(status, 409);
    assert!(page.contains("bereits für eine andere Anfrage verwendet"));
    let (status, page) = send(&a, &export, "withdrawals", &a_org, "10", "").await;
    assert_eq!(status, 400);
    assert!(page.contains("ohne brauchbaren Anfrageschlüssel"));
    assert_eq!(s.wallet(&a_org).await, 35_000, "nothing more came back");
    assert_eq!(s.escrow(&export).await, 28_000);
    s.app.assert_books_balance().await;
}

/// Item 15 for recurring pledges.
#[tokio::test]
async fn recurring_pledge_keys_belong_to_their_organisation_and_a_changed_amount_is_a_conflict() {
    let s = stage().await;
    let contract = s.proposal("Wartung", "100", true).await;
    let (a, a_org) = s.backer("Verein A", "a@verein.example", 50_000).await;
    let (b, b_org) = s.backer("Verein B", "b@verein.example", 50_000).await;
    let path = "recurring-pledges";
    assert_eq!(send(&a, &contract, path, &a_org, "30", "r").await.0, 303);
    assert_eq!(s.escrow(&contract).await, 3_000);
    // B sends A's key: B's recurring pledge is made (its first instalment collected).
    assert_eq!(send(&b, &contract, path, &b_org, "20", "r").await.0, 303);
    assert_eq!(s.escrow(&contract).await, 5_000);
    assert_eq!(s.wallet(&b_org).await, 48_000);
    let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM recurring_pledges")
        .fetch_one(&mut *s.app.conn().await)
        .await
        .unwrap();
    assert_eq!(count, 2);
    // A's double click: nothing new; another amount: a conflict.
    assert_eq!(send(&a, &contract, path, &a_org, "30", "r").await.0, 303);
    let (status, page) = send(&a, &contract, path, &a_org, "40", "r").await;
    assert_eq!(status, 409);
    assert!(page.contains("bereits für eine andere Anfrage verwendet"));
    let (status, page) = send(&a, &contract, path, &a_org, "10", "").await;
    assert_eq!(status, 400);
    assert!(page.contains("ohne brauchbaren Anfrageschlüssel"));
    assert_eq!(s.escrow(&contract).await, 5_000, "nothing more booked");
    assert_eq!(s.wallet(&a_org).await, 47_000);
    s.app.assert_books_balance().await;
}

/// The treasurer's confirmation form has a key too: scoped to the payment.
#[tokio::test]
async fn a_confirmation_key_of_one_payment_never_answers_for_another() {
    let s = stage().await;
    let app = &s.app;
    let (admin, org) = s.backer("Verein A", "a@verein.example", 0).await;
    let slug: String = sqlx::query_scalar("SELECT slug FROM organisations WHERE id = $1")
        .bind(&org)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    let (_, treasurer) = app
        .person("Karl Kasse", "kasse@coop.example", &["treasurer"])
        .await;
    let mut payments = Vec::new();
    for amount in ["100", "200"] {
        let started = admin
            .post(
                &format!("/organisations/{slug}/payments"),
                &[
                    ("purpose", "top_up"),
                    ("amount", amount),
                    ("method", "bank_transfer"),
                ],
            )
            .await;
        assert_eq!(started.status(), 303);
        payments.push(
            location(&started)
                .trim_start_matches("/payments/")
                .to_owned(),
        );
    }
    let confirm = |id: &str, received: &str, key: &str| {
        let path = format!("/treasurer/payments/{id}/confirm");
        let fields = [
            ("received".to_owned(), received.to_owned()),
            ("form_key".to_owned(), key.to_owned()),
        ];
        let treasurer = &treasurer;
        async move {
            let borrowed: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let response = treasurer.post(&path, &borrowed).await;
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    assert_eq!(confirm(&payments[0], "100", "k").await.0, 303);
    assert_eq!(confirm(&payments[1], "200", "k").await.0, 303);
    assert_eq!(
        app.balance(&AccountId::wallet(&org)).await,
        30_000,
        "both payments booked"
    );
    assert_eq!(confirm(&payments[0], "100", "k").await.0, 303, "a replay");
    let (status, page) = confirm(&payments[0], "90", "k").await;
    assert_eq!(status, 409);
    assert!(page.contains("bereits für eine andere Anfrage verwendet"));
    let (status, page) = confirm(&payments[0], "100", "").await;
    assert_eq!(status, 400);
    assert!(page.contains("ohne brauchbaren Anfrageschlüssel"));
    assert_eq!(app.balance(&AccountId::wallet(&org)).await, 30_000);
    app.assert_books_balance().await;
}

/// Item 16's second half: a job that fails for good is shown to the board with its error and
/// what it concerns, and the board is mailed once.
#[tokio::test]
async fn a_job_that_gives_up_is_shown_to_the_board_and_mailed_to_it_once() {
    let app = spawn_app().await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (_, treasurer) = app
        .person("Karl", "kasse@coop.example", &["treasurer"])
        .await;
    let mut conn = app.conn().await;
    jobs::schedule(
        &mut conn,
        "round.close",
        serde_json::json!({ "round": "no-such-round" }),
        1_000,
        Some("broken-close"),
    )
    .await
    .unwrap();
    drop(conn);
    let clock = ManualClock::at(2_000);
    for attempt in 0..jobs::MAX_ATTEMPTS {
        let round = jobs::run_due(&app.db, clock.as_ref(), "w").await.unwrap();
        assert_eq!(round.failed, 1, "attempt {attempt}");
        let mails: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM mail_outbox WHERE kind = 'job_gave_up'",
        )
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
        let last = attempt + 1 == jobs::MAX_ATTEMPTS;
        assert_eq!(mails, i64::from(last), "mailed only when it gives up");
        clock.advance(jobs::backoff_ms(attempt));
    }
    clock.advance(10 * DAY);
    let after = jobs::run_due(&app.db, clock.as_ref(), "w").await.unwrap();
    assert_eq!(after.failed, 0, "not tried again");
    let mails: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM mail_outbox WHERE kind = 'job_gave_up'",
    )
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(mails, 1, "mailed once");
    let (subject, body) = app
        .last_mail("vorstand@coop.example", "job_gave_up")
        .await
        .expect("the board is mailed");
    assert!(subject.contains("aufgegeben"), "{subject}");
    assert!(body.contains("Letzter Fehler"), "{body}");

    let page = board.page("/board/jobs").await;
    assert!(page.contains("Aufgegeben"), "{page}");
    assert!(page.contains("no-such-round"), "what it concerns");
    assert!(page.contains("Letzter Fehler"));
    let home = board.page("/").await;
    assert!(
        home.contains("href=\"/board/jobs\""),
        "linked for the board"
    );
    assert_eq!(treasurer.get("/board/jobs").await.status(), 403);
    // Once its cause is seen to, the board can have it tried again; nobody else can.
    let job: String = sqlx::query_scalar("SELECT id FROM jobs WHERE unique_key = 'broken-close'")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    let retry = format!("/board/jobs/{job}/retry");
    assert_eq!(treasurer.post(&retry, &[]).await.status(), 403);
    let retried = board.post(&retry, &[]).await;
    assert_eq!(retried.status(), 303);
    assert_eq!(
        board.post(&retry, &[]).await.status(),
        409,
        "not given up now"
    );
    // It is due at once, by the server's clock.
    let again = jobs::run_due(&app.db, app.clock.as_ref(), "w")
        .await
        .unwrap();
    assert_eq!(again.failed, 1, "tried again");
    let visitor = app.browser().get("/board/jobs").await;
    assert_eq!(visitor.status(), 303);
    assert!(location(&visitor).starts_with("/login"), "log in first");
}
