//! Hardening of governance (issue #20): the four-eyes rule survives leaving the project (item
//! 3), drafts are their proposers' and not the board's (item 12), and an exit ends the
//! organisation's recurring pledges and tells the board what is open (item 26).

use allmende::jobs::{self, ManualClock};
use allmende::ledger::AccountId;

use crate::helpers::{Browser, TestApp, location, spawn_app};
use crate::membership::{applicant, application_id};
use crate::reviews::{Stage, stage_in};

const DAY: i64 = 86_400_000;

fn in_days(days: i64) -> String {
    allmende::proposals::date_value(allmende::db::now_ms() + days * DAY)
}

// ---------------------------------------------------------------------------------------------
// Item 3: four eyes.

/// Lea submitted `milestone`; now she hands the project to Max and leaves it.
async fn lea_hands_over_and_leaves(s: &Stage) -> Browser {
    let slug: String = sqlx::query_scalar("SELECT slug FROM projects WHERE id = $1")
        .bind(&s.project)
        .fetch_one(&mut *s.app.conn().await)
        .await
        .unwrap();
    let (_, max) = s.app.person("Max", "max@werk.example", &[]).await;
    let invited = s
        .lea
        .post(
            &format!("/projects/{slug}/maintainers"),
            &[("email", "max@werk.example")],
        )
        .await;
    assert_eq!(invited.status(), 303);
    let link = s
        .app
        .link_in_mail("max@werk.example", "maintainer_invitation")
        .await;
    assert_eq!(max.post(&link, &[]).await.status(), 303);
    let left = s.lea.post(&format!("/projects/{slug}/leave"), &[]).await;
    assert_eq!(left.status(), 303, "Lea is no maintainer any more");
    max
}

/// Someone else gives Lea a role: the board's, or an admin's in a backer.
async fn grant(app: &TestApp, email: &str, board: bool, admin_of: Option<&str>) {
    let person: String = sqlx::query_scalar("SELECT id FROM people WHERE email = $1")
        .bind(email)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    if board {
        sqlx::query(
            "INSERT INTO platform_roles (person_id, role, granted_by, granted_at) VALUES ($1, 'board', 'cli', 1)",
        )
        .bind(&person)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    }
    if let Some(org) = admin_of {
        sqlx::query(
            "INSERT INTO organisation_people (organisation_id, person_id, role, added_at)
             VALUES ($1, $2, 'admin', 1)",
        )
        .bind(org)
        .bind(&person)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    }
}

async fn submission(app: &TestApp, milestone: &str) -> String {
    sqlx::query_scalar(
        "SELECT id FROM milestone_submissions WHERE milestone_id = $1 ORDER BY round DESC",
    )
    .bind(milestone)
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap()
}

/// Nothing of the proposal was released: no release row, the project's payable and the fees
/// untouched, the escrow whole.
async fn assert_nothing_released(s: &Stage) {
    let releases: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM releases r JOIN milestones m ON m.id = r.milestone_id
         WHERE m.proposal_id = $1",
    )
    .bind(&s.proposal)
    .fetch_one(&mut *s.app.conn().await)
    .await
    .unwrap();
    assert_eq!(releases, 0, "no money released");
    assert_eq!(s.app.balance(&AccountId::payable(&s.project)).await, 0);
    assert_eq!(
        s.app.balance(&AccountId::escrow(&s.proposal)).await,
        100_000
    );
    s.app.assert_books_balance().await;
}

async fn released_cents(s: &Stage) -> i64 {
    s.app.balance(&AccountId::payable(&s.project)).await
}

#[tokio::test]
async fn a_maintainer_who_left_cannot_accept_their_own_milestone_as_a_backers_admin() {
    // A holds 55 % of the weight: its acceptance alone releases the milestone.
    let s = stage_in(spawn_app().await, ["550", "100", "50"]).await;
    assert_eq!(s.submit(&s.m1).await.status(), 303);
    lea_hands_over_and_leaves(&s).await;
    let (_, org_a) = s.org(0);
    grant(&s.app, "lea@werk.example", false, Some(org_a)).await;

    let page = s.lea.page(&format!("/proposals/{}", s.proposal)).await;
    assert!(
        !page.contains(&format!(
            "/submissions/{}/reviews",
            submission(&s.app, &s.m1).await
        )),
        "no review form for her own work"
    );
    let own = s.review(&s.lea, org_a, "accept", "", &s.m1).await;
    assert_eq!(
        own.status(),
        403,
        "she submitted it and maintained the project"
    );
    assert_nothing_released(&s).await;

    // A's own admin may accept: four eyes, not none.
    let (admin_a, _) = s.org(0);
    let accepted = s.review(admin_a, org_a, "accept", "", &s.m1).await;
    assert_eq!(accepted.status(), 303);
    assert!(
        released_cents(&s).await > 0,
        "released on another's acceptance"
    );
    s.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_maintainer_who_left_cannot_tip_a_review_with_a_board_role() {
    // A (30 %) accepts; the pool's 30 % would tip it over half.
    let s = stage_in(spawn_app().await, ["300", "300", "100"]).await;
    assert_eq!(s.submit(&s.m1).await.status(), 303);
    let (admin_a, org_a) = s.org(0);
    let accepted = s.review(admin_a, org_a, "accept", "", &s.m1).await;
    assert_eq!(accepted.status(), 303);
    lea_hands_over_and_leaves(&s).await;
    grant(&s.app, "lea@werk.example", true, None).await;

    let own = s.review(&s.lea, "pool", "accept", "", &s.m1).await;
    assert_eq!(own.status(), 403, "not for the pool either");
    assert_nothing_released(&s).await;

    let board = s.review(&s.board, "pool", "accept", "", &s.m1).await;
    assert_eq!(board.status(), 303);
    assert!(released_cents(&s).await > 0);
    s.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_maintainer_who_left_cannot_decide_the_dispute_over_their_milestone() {
    let s = stage_in(spawn_app().await, ["300", "300", "100"]).await;
    for round in 0..2 {
        assert_eq!(s.submit(&s.m1).await.status(), 303, "round {round}");
        for i in 0..2 {
            let (admin, org) = s.org(i);
            let rejected = s.review(admin, org, "reject", "Tests fehlen", &s.m1).await;
            assert_eq!(rejected.status(), 303);
        }
    }
    let status: String = sqlx::query_scalar("SELECT status FROM milestones WHERE id = $1")
        .bind(&s.m1)
        .fetch_one(&mut *s.app.conn().await)
        .await
        .unwrap();
    assert_eq!(status, "disputed");
    lea_hands_over_and_leaves(&s).await;
    grant(&s.app, "lea@werk.example", true, None).await;

    let page = s.lea.page(&format!("/proposals/{}", s.proposal)).await;
    assert!(
        !page.contains(&format!("/milestones/{}/dispute", s.m1)),
        "no dispute form for her"
    );
    let dispute = format!("/milestones/{}/dispute", s.m1);
    let accept = [("decision", "accept"), ("reason", "Passt.")];
    assert_eq!(s.lea.post(&dispute, &accept).await.status(), 403);
    assert_nothing_released(&s).await;
    let decided: Option<String> =
        sqlx::query_scalar("SELECT decision FROM disputes WHERE milestone_id = $1")
            .bind(&s.m1)
            .fetch_one(&mut *s.app.conn().await)
            .await
            .unwrap();
    assert_eq!(decided, None, "the dispute is still open");

    assert_eq!(s.board.post(&dispute, &accept).await.status(), 303);
    assert!(released_cents(&s).await > 0);
    s.app.assert_books_balance().await;
}

// ---------------------------------------------------------------------------------------------
// Item 12: drafts.

#[tokio::test]
async fn the_board_does_not_see_drafts_but_sees_a_proposal_once_submitted() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (emil_id, emil) = app.person("Emil", "emil@verein.example", &[]).await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (_, treasurer) = app
        .person("Tina", "kasse@coop.example", &["treasurer"])
        .await;
    let (_, stranger) = app.person("Otto", "otto@example.org", &[]).await;
    let (slug, _) = app.project(&lea, "Vereinskasse").await;
    let (_, org) = app.organisation(&erika, "Verein A").await;
    sqlx::query(
        "INSERT INTO organisation_people (organisation_id, person_id, role, added_at)
         VALUES ($1, $2, 'member', 1)",
    )
    .bind(&org)
    .bind(&emil_id)
    .execute(&mut *app.conn().await)
    .await
    .unwrap();
    let title = "Geheimer Entwurf: Mahnwesen";
    let created = erika
        .post(
            &format!("/projects/{slug}/proposals"),
            &[
                ("kind", "feature"),
                ("organisation_id", &org),
                ("title", title),
                ("summary", "Mahnungen verschicken."),
                ("problem", "Wir mahnen von Hand."),
                ("desired_outcome", "Ein Knopf."),
                ("m1_title", "Mahnlauf"),
                ("m1_criteria", "Tests"),
                ("m1_amount", "800"),
                ("m1_due", &in_days(60)),
            ],
        )
        .await;
    assert_eq!(created.status(), 303);
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    assert_eq!(app.proposal_state(&id).await, "draft");
    let commented = erika
        .post(
            &format!("/proposals/{id}/comments"),
            &[("body", "Noch nicht fertig.")],
        )
        .await;
    assert_eq!(commented.status(), 303);
    let comment: String = sqlx::query_scalar("SELECT id FROM comments WHERE proposal_id = $1")
        .bind(&id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();

    // The author, the requesting organisation's people and the maintainers see the draft.
    for (who, browser) in [("author", &erika), ("member", &emil), ("maintainer", &lea)] {
        let response = browser.get(&format!("/proposals/{id}")).await;
        assert_eq!(response.status(), 200, "{who}");
        assert!(response.text().await.unwrap().contains(title), "{who}");
        assert!(
            browser
                .page(&format!("/projects/{slug}"))
                .await
                .contains(title),
            "{who} sees it on the project page"
        );
    }
    // The board, the treasurer, strangers and visitors do not: not on its page, not in any list.
    let visitor = app.browser();
    for (who, browser) in [
        ("board", &board),
        ("treasurer", &treasurer),
        ("stranger", &stranger),
        ("visitor", &visitor),
    ] {
        assert_eq!(
            browser.get(&format!("/proposals/{id}")).await.status(),
            404,
            "{who}: the same answer as an unknown proposal"
        );
        assert!(
            !browser
                .page(&format!("/projects/{slug}"))
                .await
                .contains(title),
            "{who}: not on the project page"
        );
        assert!(
            !browser.page("/proposals").await.contains(title),
            "{who}: not in the list"
        );
    }
    assert_eq!(
        board
            .post(
                &format!("/proposals/{id}/comments"),
                &[("body", "Vorstand hier.")]
            )
            .await
            .status(),
        404,
        "the board cannot join a draft's discussion"
    );
    assert_eq!(
        board
            .post(&format!("/comments/{comment}/hide"), &[])
            .await
            .status(),
        404,
        "nor moderate it"
    );
    let hidden: Option<i64> = sqlx::query_scalar("SELECT hidden_at FROM comments WHERE id = $1")
        .bind(&comment)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(hidden, None);

    // Submitted to the maintainers: the board sees it (visitors still do not).
    let submitted = erika
        .post(
            &format!("/proposals/{id}/transitions"),
            &[("transition", "submit")],
        )
        .await;
    assert_eq!(submitted.status(), 303);
    assert_eq!(app.proposal_state(&id).await, "awaiting_maintainer");
    let response = board.get(&format!("/proposals/{id}")).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains(title));
    assert!(
        board
            .page(&format!("/projects/{slug}"))
            .await
            .contains(title)
    );
    assert_eq!(visitor.get(&format!("/proposals/{id}")).await.status(), 404);
    assert_eq!(
        treasurer.get(&format!("/proposals/{id}")).await.status(),
        404
    );
}

// ---------------------------------------------------------------------------------------------
// Item 26: an exit ends recurring pledges and tells the board.

struct Leaving {
    app: TestApp,
    erika: Browser,
    board: Browser,
    slug: String,
    org: String,
    proposal: String,
}

/// Lea's maintenance contract (100 € a quarter for eight quarters, from in ten days), fully
/// promised by the recurring pledge of Erika's member organisation, which then gives notice.
async fn member_with_recurring_pledge_gives_notice() -> Leaving {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (slug, org) = applicant(&app, &erika, "1").await;
    let application = application_id(&app, &org).await;
    let admitted = board
        .post(&format!("/board/applications/{application}/admit"), &[])
        .await;
    assert_eq!(admitted.status(), 303);
    let (project_slug, _) = app.project(&lea, "Werkzeug").await;
    let created = lea
        .post(
            &format!("/projects/{project_slug}/proposals"),
            &[
                ("kind", "maintenance"),
                ("organisation_id", ""),
                ("title", "Wartung Werkzeug"),
                ("summary", "Sicherheitsupdates"),
                ("security_response_hours", "48"),
                ("releases", "vierteljährlich"),
                ("support", "Forum"),
                ("period_amount", "100"),
                ("period", "quarter"),
                ("term_periods", "8"),
                ("start_date", &in_days(10)),
            ],
        )
        .await;
    assert_eq!(created.status(), 303);
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
            &[("transition", "agree"), ("deadline", &in_days(5))],
        )
        .await;
    assert_eq!(agreed.status(), 303);
    app.funded_wallet(&org, 100_000).await;
    let pledged = erika
        .post(
            &format!("/proposals/{proposal}/recurring-pledges"),
            &[
                ("organisation_id", org.as_str()),
                ("amount", "100"),
                ("key", "erika-quarterly"),
            ],
        )
        .await;
    assert_eq!(pledged.status(), 303);
    assert_eq!(app.proposal_state(&proposal).await, "funded");

    let notice = erika
        .post(&format!("/organisations/{slug}/membership/notice"), &[])
        .await;
    assert_eq!(notice.status(), 303);
    Leaving {
        app,
        erika,
        board,
        slug,
        org,
        proposal,
    }
}

impl Leaving {
    async fn exit_at(&self) -> i64 {
        sqlx::query_scalar("SELECT left_at FROM memberships WHERE organisation_id = $1")
            .bind(&self.org)
            .fetch_one(&mut *self.app.conn().await)
            .await
            .unwrap()
    }

    async fn contract(&self) -> allmende::proposals::Proposal {
        allmende::proposals::find(&mut *self.app.conn().await, &self.proposal)
            .await
            .unwrap()
            .unwrap()
    }

    /// The first period that starts after the exit.
    async fn first_period_after_exit(&self) -> (i64, i64) {
        let exit = self.exit_at().await;
        let contract = self.contract().await;
        (1..=8)
            .filter_map(|p| contract.period_start(p).map(|start| (p, start)))
            .find(|(_, start)| *start > exit)
            .expect("the contract runs past the exit")
    }

    async fn run_jobs_at(&self, at: i64) {
        let clock = ManualClock::at(at);
        let round = jobs::run_due(&self.app.db, clock.as_ref(), "w")
            .await
            .unwrap();
        assert_eq!(round.failed, 0);
    }

    async fn wallet(&self) -> i64 {
        self.app.balance(&AccountId::wallet(&self.org)).await
    }

    /// (last period, stopped at) of the recurring pledge.
    async fn recurring(&self) -> (i64, Option<i64>) {
        sqlx::query_as(
            "SELECT last_period, stopped_at FROM recurring_pledges WHERE organisation_id = $1",
        )
        .bind(&self.org)
        .fetch_one(&mut *self.app.conn().await)
        .await
        .unwrap()
    }

    async fn collections_from(&self, period: i64) -> i64 {
        sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM recurring_collections rc
             JOIN recurring_pledges rp ON rp.id = rc.recurring_pledge_id
             WHERE rp.organisation_id = $1 AND rc.period >= $2",
        )
        .bind(&self.org)
        .bind(period)
        .fetch_one(&mut *self.app.conn().await)
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn an_exit_ends_the_recurring_pledges_and_the_board_is_told_what_is_open() {
    let l = member_with_recurring_pledge_gives_notice().await;
    let exit = l.exit_at().await;

    // The board is mailed at once: who leaves, when, and every open commitment.
    let (subject, text) = l
        .app
        .last_mail("vorstand@coop.example", "member_leaving")
        .await
        .expect("the board is told of the notice");
    let date = allmende::i18n::format_date(exit, allmende::i18n::Locale::De);
    assert!(subject.contains("Offene Daten e. V."), "{subject}");
    assert!(subject.contains(&date), "{subject}");
    assert!(
        text.contains("Wiederkehrende Zusage für „Wartung Werkzeug“: 100,00\u{a0}€ je Zeitraum"),
        "{text}"
    );
    assert!(
        text.contains("Zusage für „Wartung Werkzeug“: 100,00\u{a0}€ in Treuhand"),
        "the first instalment is in escrow: {text}"
    );
    assert!(text.contains("Jahresbeitrag"), "unpaid dues: {text}");
    assert!(
        text.contains(&format!("/organisations/{}#commitments", l.slug)),
        "{text}"
    );

    // The board sees the same on the member's page, linked from the member list.
    let members = l.board.page("/members").await;
    assert!(members.contains(&format!("/organisations/{}#commitments", l.slug)));
    let page = l.board.page(&format!("/organisations/{}", l.slug)).await;
    assert!(page.contains("Offene Verpflichtungen"));
    assert!(page.contains("Endet mit dem Ausscheiden."), "{page}");
    assert!(
        !l.app
            .browser()
            .page(&format!("/organisations/{}", l.slug))
            .await
            .contains("Offene Verpflichtungen"),
        "not for visitors"
    );
    assert!(
        l.erika
            .page(&format!("/organisations/{}", l.slug))
            .await
            .contains("Offene Verpflichtungen"),
        "the organisation sees what stays open"
    );

    // Up to the exit, instalments are collected as promised; at the exit the pledge ends.
    let (after_exit, start_after_exit) = l.first_period_after_exit().await;
    l.run_jobs_at(exit - 1).await;
    assert_eq!(l.recurring().await.1, None, "running until the exit");
    l.run_jobs_at(exit).await;
    let (last, stopped) = l.recurring().await;
    assert_eq!(stopped, Some(exit), "ended as of the exit date");
    assert_eq!(
        last,
        after_exit - 1,
        "the period running at the exit is the last"
    );
    let wallet = l.wallet().await;

    // The next collection takes no money.
    l.run_jobs_at(start_after_exit + 1).await;
    assert_eq!(l.wallet().await, wallet, "nothing collected after the exit");
    assert_eq!(l.collections_from(after_exit).await, 0);
    let page = l.board.page(&format!("/organisations/{}", l.slug)).await;
    assert!(page.contains("Beendet am"), "the pledge shows ended");
    let trail: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_events WHERE action = 'exit.recurring_ended'",
    )
    .fetch_one(&mut *l.app.conn().await)
    .await
    .unwrap();
    assert_eq!(trail, 1);
    l.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_collection_after_the_exit_takes_no_money_even_when_the_exit_job_did_not_run() {
    let l = member_with_recurring_pledge_gives_notice().await;
    // The exit's job is lost (or keeps failing): the collection itself checks membership.
    sqlx::query("DELETE FROM jobs WHERE kind = 'exit.take_effect'")
        .execute(&mut *l.app.conn().await)
        .await
        .unwrap();
    let exit = l.exit_at().await;
    let (after_exit, start_after_exit) = l.first_period_after_exit().await;
    l.run_jobs_at(exit - 1).await;
    assert_eq!(l.recurring().await.1, None, "nothing ended it yet");
    let wallet = l.wallet().await;

    l.run_jobs_at(start_after_exit + 1).await;
    assert_eq!(l.wallet().await, wallet, "nothing collected after the exit");
    assert_eq!(l.collections_from(after_exit).await, 0);
    let (last, stopped) = l.recurring().await;
    assert_eq!(stopped, Some(exit));
    assert_eq!(last, after_exit - 1);
    l.app.assert_books_balance().await;
}
