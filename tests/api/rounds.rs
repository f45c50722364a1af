//! Voting rounds and priority polls: a round from opening to allocation with the ledger to the
//! cent, ballots refused with their reasons, a second ballot replacing the first, the close
//! racing with a pledge, a close run twice, the explained results page, `.pb` export and
//! import, and a Schulze poll.

use allmende::jobs::{self, Clock};
use allmende::ledger::{self, AccountId, Actor, NewTransaction, TxKind};
use allmende::money::Money;

use crate::helpers::{Browser, TestApp, location, spawn_app};

const DAY: i64 = 86_400_000;

fn in_days(app: &TestApp, days: i64) -> String {
    allmende::proposals::date_value(app.clock.now_ms() + days * DAY)
}

struct Stage {
    app: TestApp,
    board: Browser,
    maintainer: Browser,
    project_slug: String,
}

async fn stage() -> Stage {
    let app = spawn_app().await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (_, maintainer) = app.person("Lea", "lea@werk.example", &[]).await;
    let (project_slug, _) = app.project(&maintainer, "Werkzeug").await;
    Stage {
        app,
        board,
        maintainer,
        project_slug,
    }
}

impl Stage {
    /// An open proposal with one milestone of `goal` euros; returns its id.
    async fn proposal(&self, title: &str, goal: &str) -> String {
        let due = in_days(&self.app, 90);
        let fields = [
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
        ];
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
        let deadline = in_days(&self.app, 30);
        let agreed = self
            .maintainer
            .post(&path, &[("transition", "agree"), ("deadline", &deadline)])
            .await;
        assert_eq!(agreed.status(), 303);
        id
    }

    /// A member organisation (joined a year ago unless `joined_at` says otherwise) with its
    /// admin, logged in; returns (browser, organisation id).
    async fn member(&self, name: &str, email: &str, joined_at: Option<i64>) -> (Browser, String) {
        let (_, admin) = self.app.person(name, email, &[]).await;
        let (_, org) = self
            .app
            .organisation(&admin, &format!("{name} e. V."))
            .await;
        if let Some(joined) = joined_at.or(Some(self.app.clock.now_ms() - 365 * DAY)) {
            admit(&self.app, &org, joined).await;
        }
        (admin, org)
    }

    async fn fund_pool(&self, cents: i64) {
        let mut tx = self.app.db.begin().await.unwrap();
        ledger::post(
            &mut tx,
            NewTransaction::transfer(
                format!("test:dues:{}", allmende::db::new_id()),
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

    /// The board opens an approval round closing in 7 days; returns its id.
    async fn open_round(
        &self,
        budget: &str,
        candidates: &[&str],
        extra: &[(&str, &str)],
    ) -> String {
        let closes = in_days(&self.app, 7);
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
        for (k, v) in extra {
            fields.retain(|(key, _)| key != k);
            fields.push((k, v));
        }
        let response = self.board.post("/board/rounds", &fields).await;
        let status = response.status();
        let at = location(&response);
        assert_eq!(status, 303, "{}", response.text().await.unwrap());
        at.trim_start_matches("/rounds/").to_owned()
    }

    /// Moves the server's clock past the round's close and runs the due jobs.
    async fn close(&self, round: &str) {
        let closes_at: i64 = sqlx::query_scalar("SELECT closes_at FROM rounds WHERE id = $1")
            .bind(round)
            .fetch_one(&mut *self.app.conn().await)
            .await
            .unwrap();
        let now = self.app.clock.now_ms();
        if closes_at >= now {
            self.app.clock.advance(closes_at + 1 - now);
        }
        let done = jobs::run_due(&self.app.db, self.app.clock.as_ref(), "test")
            .await
            .unwrap();
        assert_eq!(done.failed, 0);
    }
}

async fn admit(app: &TestApp, organisation_id: &str, joined_at: i64) {
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
    .bind(joined_at)
    .execute(&mut *app.conn().await)
    .await
    .unwrap();
}

async fn vote(admin: &Browser, round: &str, org: &str, positions: &[&str]) -> reqwest::Response {
    let mut fields = vec![("organisation_id", org)];
    for p in positions {
        fields.push(("approve", p));
    }
    admin
        .post(&format!("/rounds/{round}/ballots"), &fields)
        .await
}

async fn position_of(app: &TestApp, round: &str, proposal: &str) -> String {
    let position: i64 = sqlx::query_scalar(
        "SELECT position FROM round_candidates WHERE round_id = $1 AND proposal_id = $2",
    )
    .bind(round)
    .bind(proposal)
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    position.to_string()
}

#[tokio::test]
async fn a_round_from_opening_to_allocation_pays_the_winners_from_the_pool() {
    let stage = stage().await;
    let app = &stage.app;
    stage.fund_pool(100_000).await;
    let a = stage.proposal("Export", "300").await;
    let b = stage.proposal("Import", "300").await;
    let c = stage.proposal("Karten", "300").await;
    let (one, org1) = stage.member("Eins", "eins@verein.example", None).await;
    let (two, org2) = stage.member("Zwei", "zwei@verein.example", None).await;
    let (three, org3) = stage.member("Drei", "drei@verein.example", None).await;
    let (four, org4) = stage.member("Vier", "vier@verein.example", None).await;
    let (_five, _org5) = stage.member("Fünf", "fuenf@verein.example", None).await;
    // Org 1 pledged 100 € to A before the round: A's frozen cost is what it still needs.
    app.funded_wallet(&org1, 20_000).await;
    let pledged = one
        .post(
            &format!("/proposals/{a}/pledges"),
            &[("organisation_id", &org1), ("amount", "100"), ("key", "a1")],
        )
        .await;
    assert_eq!(pledged.status(), 303);

    let too_much = stage
        .board
        .post(
            "/board/rounds",
            &[
                ("title", "Zu groß"),
                ("budget", "1.000,01"),
                ("ballot_type", "approval"),
                ("rule", "equal_shares"),
                ("closes", &in_days(app, 7)),
                ("candidates", &a),
            ],
        )
        .await;
    assert_eq!(too_much.status(), 422);
    assert!(too_much.text().await.unwrap().contains("1.000,00"));

    let round = stage.open_round("500", &[&a, &b, &c], &[]).await;
    let costs: Vec<i64> = sqlx::query_scalar(
        "SELECT cost FROM round_candidates WHERE round_id = $1 ORDER BY position",
    )
    .bind(&round)
    .fetch_all(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(
        costs,
        vec![20_000, 30_000, 30_000],
        "costs frozen at what each still needs"
    );
    assert!(
        app.last_mail("fuenf@verein.example", "round_opened")
            .await
            .is_some(),
        "members are told when it opens"
    );
    let (pa, pb, pc) = (
        position_of(app, &round, &a).await,
        position_of(app, &round, &b).await,
        position_of(app, &round, &c).await,
    );
    // Org 1 first votes for C, then changes its mind: the second ballot replaces the first.
    assert_eq!(vote(&one, &round, &org1, &[&pc]).await.status(), 303);
    assert_eq!(vote(&one, &round, &org1, &[&pa, &pb]).await.status(), 303);
    assert_eq!(vote(&two, &round, &org2, &[&pa, &pb]).await.status(), 303);
    assert_eq!(vote(&three, &round, &org3, &[&pb, &pa]).await.status(), 303);
    assert_eq!(vote(&four, &round, &org4, &[&pc]).await.status(), 303);
    let ballots: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM round_ballots WHERE round_id = $1",
    )
    .bind(&round)
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(ballots, 4, "one ballot per organisation");
    let own = one.page(&format!("/rounds/{round}")).await;
    assert!(
        own.contains("4 Organisationen haben abgestimmt"),
        "turnout shown"
    );
    assert!(
        own.contains("hat abgestimmt. Sie können"),
        "the organisation sees it voted"
    );
    let visitor = app.browser().page(&format!("/rounds/{round}")).await;
    assert!(
        !visitor.contains("Bezahlt von"),
        "no result before the close"
    );

    // Meanwhile org 2 pledges 50 € to B: at the close B needs only 250 €.
    app.funded_wallet(&org2, 5_000).await;
    let pledged = two
        .post(
            &format!("/proposals/{b}/pledges"),
            &[("organisation_id", &org2), ("amount", "50"), ("key", "b2")],
        )
        .await;
    assert_eq!(pledged.status(), 303);

    // A day before the close, the member that has not voted is reminded.
    let closes_at: i64 = sqlx::query_scalar("SELECT closes_at FROM rounds WHERE id = $1")
        .bind(&round)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    app.clock.advance(closes_at - DAY + 1 - app.clock.now_ms());
    jobs::run_due(&app.db, app.clock.as_ref(), "test")
        .await
        .unwrap();
    assert!(
        app.last_mail("fuenf@verein.example", "round_closing")
            .await
            .is_some()
    );
    assert!(
        app.last_mail("eins@verein.example", "round_closing")
            .await
            .is_none(),
        "those who voted are not reminded"
    );

    stage.close(&round).await;
    // Equal shares: A and B (their three supporters pay), C's lone supporter cannot.
    assert_eq!(app.balance(&AccountId::escrow(&a)).await, 30_000);
    assert_eq!(app.balance(&AccountId::escrow(&b)).await, 30_000);
    assert_eq!(app.balance(&AccountId::escrow(&c)).await, 0);
    assert_eq!(
        app.balance(&AccountId::pool()).await,
        100_000 - 20_000 - 25_000,
        "the pool gave A 200 € and B only the 250 € it still needed"
    );
    assert_eq!(app.proposal_state(&a).await, "funded");
    assert_eq!(app.proposal_state(&b).await, "funded");
    assert_eq!(app.proposal_state(&c).await, "open");
    let pool_pledges: Vec<(Option<String>, String, i64)> = sqlx::query_as(
        "SELECT organisation_id, source_account, committed FROM pledges
         WHERE proposal_id = $1 ORDER BY committed",
    )
    .bind(&b)
    .fetch_all(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(
        pool_pledges,
        vec![
            (
                Some(org2.clone()),
                AccountId::wallet(&org2).as_str().to_owned(),
                5_000
            ),
            (None, "coop:pool".to_owned(), 25_000)
        ]
    );

    let page = app.browser().page(&format!("/rounds/{round}")).await;
    assert!(page.contains("Bezahlt von 3 Unterstützern"), "{page}");
    assert!(
        page.contains("3 × 66,67\u{a0}€"),
        "each supporter's payment for A"
    );
    assert!(page.contains("<svg"), "a chart");
    assert!(page.contains("chart-desc"), "with a text alternative");
    assert!(
        page.contains("Passte nicht mehr") || page.contains("reichten nicht"),
        "why C lost"
    );
    assert!(
        page.contains("der Topf gab nur, was fehlte"),
        "B needed less"
    );

    // A ballot after the close is refused.
    let late = vote(&one, &round, &org1, &[&pc]).await;
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("Die Runde ist beendet"));

    // Running the close again changes nothing.
    let mut tx = app.db.begin().await.unwrap();
    let again = allmende::rounds::close(&mut tx, &round, app.clock.now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(again.already);
    jobs::run_due(&app.db, app.clock.as_ref(), "test")
        .await
        .unwrap();
    assert_eq!(app.balance(&AccountId::pool()).await, 55_000);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn ballots_are_refused_with_reasons() {
    let stage = stage().await;
    let app = &stage.app;
    stage.fund_pool(50_000).await;
    let a = stage.proposal("Export", "300").await;
    let b = stage.proposal("Import", "300").await;
    let (admin, org) = stage.member("Eins", "eins@verein.example", None).await;
    let (outsider, outsider_org) = stage.member("Fremd", "fremd@verein.example", Some(0)).await;
    sqlx::query("DELETE FROM memberships WHERE organisation_id = $1")
        .bind(&outsider_org)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    let round = stage
        .open_round("300", &[&a, &b], &[("ballot_limit", "1")])
        .await;
    let (pa, pb) = (
        position_of(app, &round, &a).await,
        position_of(app, &round, &b).await,
    );
    let (late_joiner, late_org) = stage
        .member("Neu", "neu@verein.example", Some(app.clock.now_ms() + 1))
        .await;
    // A person who is only a member (not an admin) of an organisation.
    let (person, plain) = app.person("Otto", "otto@verein.example", &[]).await;
    sqlx::query(
        "INSERT INTO organisation_people (organisation_id, person_id, role, added_at) VALUES ($1, $2, 'member', 1)",
    )
    .bind(&org)
    .bind(&person)
    .execute(&mut *app.conn().await)
    .await
    .unwrap();
    app.clock.advance(1000);

    let response = vote(&outsider, &round, &outsider_org, &[&pa]).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("kein Mitglied"));
    let response = vote(&late_joiner, &round, &late_org, &[&pa]).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("nach dem Beginn"));
    let response = vote(&plain, &round, &org, &[&pa]).await;
    assert_eq!(
        response.status(),
        403,
        "only the organisation's admins vote"
    );
    let response = vote(&admin, &round, &org, &[&pa, &pb]).await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("höchstens 1 Vorhaben")
    );
    let response = vote(&admin, &round, &org, &["7"]).await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("nicht zur Wahl"));
    let response = vote(&admin, &round, &org, &[]).await;
    assert_eq!(response.status(), 422);
    let response = admin
        .post(
            &format!("/rounds/{round}/ballots"),
            &[("organisation_id", &org), ("approve", "x")],
        )
        .await;
    assert_eq!(response.status(), 422);
    let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM round_ballots")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was stored");

    // A round that opens later refuses ballots until then.
    let later = stage
        .open_round(
            "100",
            &[&a],
            &[("opens", &in_days(app, 2)), ("closes", &in_days(app, 9))],
        )
        .await;
    let response = vote(&admin, &later, &org, &["0"]).await;
    assert_eq!(response.status(), 409);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("noch nicht begonnen")
    );
    // Points must add up; the form says so.
    let points = stage
        .open_round(
            "100",
            &[&a, &b],
            &[("ballot_type", "points"), ("ballot_limit", "10")],
        )
        .await;
    let response = admin
        .post(
            &format!("/rounds/{points}/ballots"),
            &[
                ("organisation_id", &org),
                ("points_0", "3"),
                ("points_1", "4"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("zusammen 10 ergeben, nicht 7")
    );
    let response = admin
        .post(
            &format!("/rounds/{points}/ballots"),
            &[
                ("organisation_id", &org),
                ("points_0", "3"),
                ("points_1", "7"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    // Budgets of rounds not yet closed are promised: 300 + 100 + 100 of 500.
    let page = stage.board.page("/board/rounds/new").await;
    assert!(page.contains("noch 0,00\u{a0}€ versprechen"), "{page}");
    // Only the board opens rounds.
    assert_eq!(admin.get("/board/rounds/new").await.status(), 403);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn the_close_racing_with_a_pledge_never_overfunds() {
    let stage = stage().await;
    let app = &stage.app;
    stage.fund_pool(50_000).await;
    let a = stage.proposal("Export", "300").await;
    let (admin, org) = stage.member("Eins", "eins@verein.example", None).await;
    app.funded_wallet(&org, 30_000).await;
    let round = stage.open_round("300", &[&a], &[]).await;
    assert_eq!(vote(&admin, &round, &org, &["0"]).await.status(), 303);
    let closes_at: i64 = sqlx::query_scalar("SELECT closes_at FROM rounds WHERE id = $1")
        .bind(&round)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    let worker_clock = jobs::ManualClock::at(closes_at + 1);
    let path = format!("/proposals/{a}/pledges");
    let form = [
        ("organisation_id", org.as_str()),
        ("amount", "300"),
        ("key", "race"),
    ];
    let (closed, pledged) = tokio::join!(
        jobs::run_due(&app.db, worker_clock.as_ref(), "racer"),
        admin.post(&path, &form),
    );
    assert_eq!(closed.unwrap().failed, 0);
    let status = pledged.status().as_u16();
    assert!(matches!(status, 303 | 409 | 422), "{status}");
    assert_eq!(app.proposal_state(&a).await, "funded");
    assert_eq!(
        app.balance(&AccountId::escrow(&a)).await,
        30_000,
        "never more than the goal"
    );
    let pool = app.balance(&AccountId::pool()).await;
    let wallet = app.balance(&AccountId::wallet(&org)).await;
    if status == 303 {
        assert_eq!(
            (pool, wallet),
            (50_000, 0),
            "the pledge came first: the pool gave nothing"
        );
    } else {
        assert_eq!((pool, wallet), (20_000, 30_000), "the pool came first");
    }
    let allocated: i64 =
        sqlx::query_scalar("SELECT allocated FROM round_candidates WHERE round_id = $1")
            .bind(&round)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(allocated, 50_000 - pool);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn rounds_export_to_pabulib_and_import_back() {
    let stage = stage().await;
    let app = &stage.app;
    stage.fund_pool(60_000).await;
    let a = stage.proposal("Export", "300").await;
    let b = stage.proposal("Import", "300").await;
    let c = stage.proposal("Karten", "300").await;
    let mut voters = Vec::new();
    for (i, name) in ["Eins", "Zwei", "Drei", "Vier", "Fünf"].iter().enumerate() {
        voters.push(
            stage
                .member(name, &format!("v{i}@verein.example"), None)
                .await,
        );
    }
    let round = stage.open_round("600", &[&a, &b, &c], &[]).await;
    let (pa, pb, pc) = (
        position_of(app, &round, &a).await,
        position_of(app, &round, &b).await,
        position_of(app, &round, &c).await,
    );
    for (i, (admin, org)) in voters.iter().enumerate() {
        let choice: Vec<&str> = if i < 3 { vec![&pa, &pb] } else { vec![&pc] };
        assert_eq!(vote(admin, &round, org, &choice).await.status(), 303);
    }
    let open_export = app
        .get(&format!("/rounds/{round}/export.pb"))
        .await
        .text()
        .await
        .unwrap();
    assert!(open_export.contains("PROJECTS"));
    assert!(
        !open_export.contains("\n1;"),
        "no ballots while the round is open"
    );
    stage.close(&round).await;
    let exported = app.get(&format!("/rounds/{round}/export.pb")).await;
    assert_eq!(exported.status(), 200);
    let text = exported.text().await.unwrap();
    assert!(text.contains("unit;cent"));
    assert!(text.contains("vote_type;approval"));
    assert!(!text.contains(&voters[0].1), "voters are anonymous");

    let import = |body: String| {
        let board = &stage.board;
        async move {
            let token = board.csrf().await;
            let form = reqwest::multipart::Form::new()
                .text("csrf_token", token.clone())
                .text("rule", "equal_shares")
                .part(
                    "file",
                    reqwest::multipart::Part::text(body).file_name("round.pb"),
                );
            board
                .client
                .post(board.url("/board/rounds/import"))
                .multipart(form)
                .send()
                .await
                .unwrap()
        }
    };
    let response = import(text.clone()).await;
    assert_eq!(response.status(), 303);
    let copy = location(&response)
        .trim_start_matches("/rounds/")
        .to_owned();
    let winners = |id: String| async move {
        sqlx::query_scalar::<_, String>("SELECT outcome FROM rounds WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap()
    };
    let original: serde_json::Value = serde_json::from_str(&winners(round.clone()).await).unwrap();
    let imported: serde_json::Value = serde_json::from_str(&winners(copy.clone()).await).unwrap();
    assert_eq!(original, imported, "the same outcome from the file");
    assert_eq!(
        app.get(&format!("/rounds/{copy}/export.pb"))
            .await
            .text()
            .await
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("date_"))
            .count(),
        text.lines().filter(|l| !l.starts_with("date_")).count(),
        "the copy exports the same file"
    );
    let page = app
        .get(&format!("/rounds/{copy}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("bewegt kein Geld"));
    assert_eq!(
        app.balance(&AccountId::pool()).await,
        0,
        "only the original round paid"
    );

    let broken = import("META\nkey;value\nbudget;zehn\n".to_owned()).await;
    assert_eq!(broken.status(), 422);
    assert!(broken.text().await.unwrap().contains("Zeile 3"));
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_priority_poll_ranks_by_schulze_and_moves_no_money() {
    let stage = stage().await;
    let app = &stage.app;
    let x = stage.proposal("X", "100").await;
    let y = stage.proposal("Y", "100").await;
    let z = stage.proposal("Z", "100").await;
    let (one, org1) = stage.member("Eins", "eins@verein.example", None).await;
    let (two, org2) = stage.member("Zwei", "zwei@verein.example", None).await;
    let (three, org3) = stage.member("Drei", "drei@verein.example", None).await;
    let closes = in_days(app, 3);
    let started = one
        .post(
            "/polls",
            &[
                ("title", "Was zuerst?"),
                ("closes", &closes),
                ("options", &x),
                ("options", &y),
                ("options", &z),
            ],
        )
        .await;
    assert_eq!(started.status(), 303, "any member may start a poll");
    let poll = location(&started);
    // Options are in proposal order: x, y, z (ids sort by creation).
    // Org 1: X > Y > Z; org 2: Y > Z > X; org 3: X > Z > Y.
    assert_eq!(rank(&poll, &one, &org1, ["1", "2", "3"]).await, 303);
    assert_eq!(rank(&poll, &two, &org2, ["3", "1", "2"]).await, 303);
    assert_eq!(rank(&poll, &three, &org3, ["1", "3", "2"]).await, 303);
    assert_eq!(
        rank(&poll, &three, &org3, ["1", "1", "2"]).await,
        422,
        "equal ranks are refused"
    );
    let during = app.get(&poll).await.text().await.unwrap();
    assert!(during.contains("3 Organisationen haben abgestimmt"));
    assert!(!during.contains("Paarweise"), "no result before the close");
    app.clock.advance(4 * DAY);
    let page = app.get(&poll).await.text().await.unwrap();
    assert!(page.contains("bewegt kein Geld"));
    let (px, py, pz) = (
        page.find(">X</a>").unwrap(),
        page.find(">Y</a>").unwrap(),
        page.find(">Z</a>").unwrap(),
    );
    assert!(px < py && py < pz, "Schulze order X, Y, Z");
    assert!(page.contains("Paarweise Vorlieben"));
    let late = rank(&poll, &one, &org1, ["3", "2", "1"]).await;
    assert_eq!(late, 409);
    app.assert_books_balance().await;
}

/// Ranks a poll's three options for an organisation; returns the status.
async fn rank(poll: &str, admin: &Browser, org: &str, order: [&str; 3]) -> u16 {
    admin
        .post(
            &format!("{poll}/ballots"),
            &[
                ("organisation_id", org),
                ("rank_0", order[0]),
                ("rank_1", order[1]),
                ("rank_2", order[2]),
            ],
        )
        .await
        .status()
        .as_u16()
}

/// The board imports a `.pb` file (multipart, as the form sends it).
async fn import_pb(board: &Browser, text: &str, rule: &str) -> reqwest::Response {
    let token = board.csrf().await;
    let form = reqwest::multipart::Form::new()
        .text("rule", rule.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::text(text.to_owned()).file_name("round.pb"),
        );
    board
        .client
        .post(board.url("/board/rounds/import"))
        .header("X-CSRF-Token", token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The 200-byte file that stalled the server: a budget of 3,000,000 € and a project costing
/// 1 € less, wanted by one of two voters. Stepping the shares up by a euro, equal shares
/// needed about 1.5 million runs, on the request thread, inside the write transaction. Now
/// the count runs off the async threads before any transaction, jumps to the share where
/// the outcome changes, and the health check answers all along.
#[tokio::test]
async fn a_huge_budget_in_a_pabulib_file_neither_stalls_the_server_nor_the_count() {
    let stage = stage().await;
    let app = &stage.app;
    let text = "META\nkey;value\ndescription;Stau\nnum_projects;2\nnum_votes;2\nbudget;3000000\n\
                vote_type;approval\nPROJECTS\nproject_id;cost\nbig;2999999\nsmall;1\n\
                VOTES\nvoter_id;vote\n1;big\n2;small\n";
    let import = import_pb(&stage.board, text, "equal_shares");
    tokio::pin!(import);
    let mut health_answers = 0;
    let response = loop {
        tokio::select! {
            response = &mut import => break response,
            health = app.get("/healthz") => {
                assert_eq!(health.status(), 200, "the health check answers meanwhile");
                health_answers += 1;
            }
        }
    };
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(app.get("/healthz").await.status(), 200);
    println!("{health_answers} health checks answered during the import");
    let round = location(&response)
        .trim_start_matches("/rounds/")
        .to_owned();
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM rounds WHERE id = $1")
        .bind(&round)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    let outcome: serde_json::Value = serde_json::from_str(&outcome).unwrap();
    let mes = &outcome["equal_shares"];
    // pabutools' outcome: both, when the big project's supporter's share reaches its cost
    // (150,000,000 + k × 100 cents ≥ 299,999,900).
    assert_eq!(mes["selected"], serde_json::json!([0, 1]));
    assert_eq!(mes["increments"], 1_499_999);
    let runs = mes["runs"].as_u64().unwrap();
    assert!(runs <= 20, "bounded work: {runs} runs");
    let page = app
        .get(&format!("/rounds/{round}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("bewegt kein Geld"));
    app.assert_books_balance().await;
}

/// The public `.pb` file numbers voters in a fresh random order for every export, never in
/// the order of the organisations' ids (their creation order, which the member list shows),
/// and it still counts to the same outcome when imported.
#[tokio::test]
async fn exported_ballots_do_not_reveal_which_member_cast_them() {
    let stage = stage().await;
    let app = &stage.app;
    stage.fund_pool(90_000).await;
    let a = stage.proposal("Export", "300").await;
    let b = stage.proposal("Import", "300").await;
    let c = stage.proposal("Karten", "300").await;
    let round = stage.open_round("900", &[&a, &b, &c], &[]).await;
    let (pa, pb, pc) = (
        position_of(app, &round, &a).await,
        position_of(app, &round, &b).await,
        position_of(app, &round, &c).await,
    );
    // Six members, each with a ballot of its own, cast in the order they joined.
    let ballots: [Vec<&str>; 6] = [
        vec![&pa],
        vec![&pb],
        vec![&pc],
        vec![&pa, &pb],
        vec![&pa, &pc],
        vec![&pb, &pc],
    ];
    let mut members = Vec::new();
    for (i, choice) in ballots.iter().enumerate() {
        let (admin, org) = stage
            .member(&format!("Verein{i}"), &format!("v{i}@verein.example"), None)
            .await;
        assert_eq!(vote(&admin, &round, &org, choice).await.status(), 303);
        members.push(org);
    }
    stage.close(&round).await;
    let mut orders = Vec::new();
    let mut text = String::new();
    for _ in 0..4 {
        text = app
            .get(&format!("/rounds/{round}/export.pb"))
            .await
            .text()
            .await
            .unwrap();
        for org in &members {
            assert!(!text.contains(org.as_str()), "no organisation id");
        }
        // The ballots in the order of the file's voters 1..6 (their votes, as project ids).
        let votes = votes_in(&text);
        assert_eq!(votes.len(), 6);
        orders.push(votes);
    }
    // Six distinct ballots in four independent random orders: all four equal has a
    // probability of (1/720)³.
    assert!(
        orders.iter().any(|o| o != &orders[0]),
        "every export shuffles anew: {orders:?}"
    );
    let mut sorted: Vec<Vec<String>> = orders.clone();
    for o in &mut sorted {
        o.sort();
    }
    assert!(sorted.iter().all(|o| o == &sorted[0]), "the same ballots");

    let response = import_pb(&stage.board, &text, "equal_shares").await;
    assert_eq!(response.status(), 303);
    let copy = location(&response)
        .trim_start_matches("/rounds/")
        .to_owned();
    let stored = |id: String| async move {
        sqlx::query_as::<_, (String, String)>(
            "SELECT outcome, fingerprint FROM rounds WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap()
    };
    let (original, original_print) = stored(round.clone()).await;
    let (imported, imported_print) = stored(copy).await;
    assert_eq!(
        original, imported,
        "the same outcome from the shuffled file"
    );
    assert_eq!(original_print, imported_print, "from the same input");
    app.assert_books_balance().await;
}

/// The votes of a `.pb` file, in the file's order (each as its list of project ids).
fn votes_in(text: &str) -> Vec<String> {
    let votes = text.split("\nVOTES\n").nth(1).unwrap_or_default();
    votes
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(';').nth(1).unwrap_or_default().to_owned())
        .collect()
}

/// The member whose id is `organisation_id` leaves at the end of `date` (the board records it).
async fn record_exit(stage: &Stage, organisation_id: &str, date: &str) {
    let membership: String =
        sqlx::query_scalar("SELECT id FROM memberships WHERE organisation_id = $1")
            .bind(organisation_id)
            .fetch_one(&mut *stage.app.conn().await)
            .await
            .unwrap();
    let exit = stage
        .board
        .post(&format!("/members/{membership}/exit"), &[("date", date)])
        .await;
    assert_eq!(exit.status(), 303);
}

/// An organisation that voted and then left before the close is not counted: not in the
/// outcome, not in the shares, not in the pool's allocation, not in the turnout and not in
/// `export.pb`.
#[tokio::test]
async fn a_ballot_of_a_member_that_left_before_the_close_does_not_count() {
    let stage = stage().await;
    let app = &stage.app;
    stage.fund_pool(100_000).await;
    let a = stage.proposal("Export", "300").await;
    let b = stage.proposal("Import", "300").await;
    let (one, org1) = stage.member("Eins", "eins@verein.example", None).await;
    let (two, org2) = stage.member("Zwei", "zwei@verein.example", None).await;
    let (three, org3) = stage.member("Drei", "drei@verein.example", None).await;
    let (four, org4) = stage.member("Vier", "vier@verein.example", None).await;
    let round = stage.open_round("300", &[&a, &b], &[]).await;
    let (pa, pb) = (
        position_of(app, &round, &a).await,
        position_of(app, &round, &b).await,
    );
    // Two for A, two for B: with all four, A and B tie and A (the older) wins. Without org 1,
    // B's two supporters pay for B.
    assert_eq!(vote(&one, &round, &org1, &[&pa]).await.status(), 303);
    assert_eq!(vote(&two, &round, &org2, &[&pa]).await.status(), 303);
    assert_eq!(vote(&three, &round, &org3, &[&pb]).await.status(), 303);
    assert_eq!(vote(&four, &round, &org4, &[&pb]).await.status(), 303);
    let page = app
        .get(&format!("/rounds/{round}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("4 Organisationen haben abgestimmt"));
    // Org 1 leaves in three days, before the close in seven.
    record_exit(&stage, &org1, &in_days(app, 3)).await;
    // Org 2 stays and may still change its ballot; org 1, leaving before the close, may not
    // vote any more, and its page says why.
    assert_eq!(vote(&two, &round, &org2, &[&pa]).await.status(), 303);
    let own = one.page(&format!("/rounds/{round}")).await;
    assert!(
        own.contains("endet vor dem Ende dieser Abstimmung"),
        "{own}"
    );
    let refused = vote(&one, &round, &org1, &[&pb]).await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("endet vor dem Ende dieser Abstimmung")
    );
    app.clock.advance(4 * DAY);
    let page = app
        .get(&format!("/rounds/{round}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("3 Organisationen haben abgestimmt"),
        "the turnout counts members only"
    );

    stage.close(&round).await;
    assert_eq!(app.balance(&AccountId::escrow(&b)).await, 30_000, "B won");
    assert_eq!(app.balance(&AccountId::escrow(&a)).await, 0);
    assert_eq!(app.balance(&AccountId::pool()).await, 70_000);
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM rounds WHERE id = $1")
        .bind(&round)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    let outcome: serde_json::Value = serde_json::from_str(&outcome).unwrap();
    assert_eq!(outcome["equal_shares"]["voters"], 3, "three equal shares");
    let page = app
        .get(&format!("/rounds/{round}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("3 Organisationen haben abgestimmt"));
    let export = app
        .get(&format!("/rounds/{round}/export.pb"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(votes_in(&export).len(), 3, "{export}");
    app.assert_books_balance().await;
}

/// The same for a priority poll: the Schulze count and the turnout take only organisations
/// that are members at the poll's close.
#[tokio::test]
async fn a_ranking_of_a_member_that_left_before_a_poll_closes_does_not_count() {
    let stage = stage().await;
    let app = &stage.app;
    let x = stage.proposal("X", "100").await;
    let y = stage.proposal("Y", "100").await;
    let z = stage.proposal("Z", "100").await;
    let (one, org1) = stage.member("Eins", "eins@verein.example", None).await;
    let (two, org2) = stage.member("Zwei", "zwei@verein.example", None).await;
    let (three, org3) = stage.member("Drei", "drei@verein.example", None).await;
    let started = stage
        .board
        .post(
            "/polls",
            &[
                ("title", "Was zuerst?"),
                ("closes", &in_days(app, 3)),
                ("options", &x),
                ("options", &y),
                ("options", &z),
            ],
        )
        .await;
    assert_eq!(started.status(), 303);
    let poll = location(&started);
    let poll_id = poll.trim_start_matches("/polls/").to_owned();
    // Orgs 1 and 2: Y > X > Z; org 3: X > Y > Z. With all three, Y is first.
    assert_eq!(rank(&poll, &one, &org1, ["2", "1", "3"]).await, 303);
    assert_eq!(rank(&poll, &two, &org2, ["2", "1", "3"]).await, 303);
    assert_eq!(rank(&poll, &three, &org3, ["1", "2", "3"]).await, 303);
    // Org 1 leaves tomorrow, before the close.
    record_exit(&stage, &org1, &in_days(app, 1)).await;
    assert_eq!(rank(&poll, &one, &org1, ["1", "2", "3"]).await, 403);
    app.clock.advance(4 * DAY);
    let page = app.get(&poll).await.text().await.unwrap();
    assert!(
        page.contains("2 Organisationen haben abgestimmt"),
        "the turnout counts members only"
    );
    let mut conn = app.conn().await;
    let found = allmende::rounds::polls::find(&mut conn, &poll_id, app.clock.now_ms())
        .await
        .unwrap();
    let counted = allmende::rounds::polls::count(&mut conn, &found, 3)
        .await
        .unwrap();
    // Org 2 (Y > X) against org 3 (X > Y): X and Y tie, no longer Y alone.
    assert_eq!(counted.tiers[0], vec![0, 1], "{counted:?}");
    app.assert_books_balance().await;
}

/// A file too large for the jumps (600 distinct ballots) that would need millions of steps
/// is refused after a bounded count, with a message that says what to do; nothing is stored.
#[tokio::test]
async fn a_pabulib_file_that_needs_too_many_steps_is_refused_with_a_message() {
    let stage = stage().await;
    let app = &stage.app;
    let mut text = String::from(
        "META\nkey;value\nbudget;3000000\nvote_type;cumulative\nPROJECTS\nproject_id;cost\n\
         big;2999999\nsmall;1\nVOTES\nvoter_id;vote;points\n1;big;1\n",
    );
    for voter in 2..=601 {
        text.push_str(&format!("{voter};small;{}\n", voter - 1));
    }
    let response = import_pb(&stage.board, &text, "equal_shares").await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("nicht in 10000 Schritten"), "{page}");
    let rounds: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM rounds")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(rounds, 0, "nothing was stored");
    assert_eq!(app.get("/healthz").await.status(), 200);
}
