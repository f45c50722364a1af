//! Proposals: requests and offers, maintenance contracts, the lifecycle per role, editing
//! rules, cancellation with refunds, the discussion, and the list.

use allmende::ledger::{self, AccountId, Actor, NewTransaction, TxKind};
use allmende::money::Money;

use crate::helpers::{Browser, TestApp, location, spawn_app};

fn in_days(days: i64) -> String {
    allmende::proposals::date_value(allmende::db::now_ms() + days * 86_400_000)
}

/// A feature form with `milestones` rows of (title, amount, due in days).
fn feature(organisation_id: &str, milestones: &[(&str, &str, i64)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = vec![
        ("kind", "feature"),
        ("organisation_id", organisation_id),
        ("title", "CSV-Export der Mitgliederliste"),
        ("summary", "Die Mitgliederliste als CSV exportieren."),
        ("problem", "Kassenwarte tippen die Liste ab."),
        ("desired_outcome", "Ein Knopf, eine CSV-Datei."),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (i, (title, amount, due)) in milestones.iter().enumerate() {
        let n = i + 1;
        fields.push((format!("m{n}_title"), (*title).to_owned()));
        fields.push((
            format!("m{n}_criteria"),
            "Tests laufen, Doku ist da.".to_owned(),
        ));
        fields.push((format!("m{n}_amount"), (*amount).to_owned()));
        fields.push((format!("m{n}_due"), in_days(*due)));
    }
    fields
}

async fn post_owned(
    browser: &Browser,
    path: &str,
    fields: &[(String, String)],
) -> reqwest::Response {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post(path, &borrowed).await
}

async fn transition(
    browser: &Browser,
    id: &str,
    transition: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = vec![("transition", transition)];
    fields.extend_from_slice(extra);
    browser
        .post(&format!("/proposals/{id}/transitions"), &fields)
        .await
}

struct Cast {
    app: TestApp,
    maintainer: Browser,
    requester: Browser,
    org_id: String,
    slug: String,
}

/// A project maintained by Lea, and Erika acting for Verein A.
async fn cast() -> Cast {
    let app = spawn_app().await;
    let (_, maintainer) = app.person("Lea Lange", "lea@werk.example", &[]).await;
    let (_, requester) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, _) = app.project(&maintainer, "Vereinskasse").await;
    let (_, org_id) = app.organisation(&requester, "Verein A").await;
    Cast {
        app,
        maintainer,
        requester,
        org_id,
        slug,
    }
}

#[tokio::test]
async fn a_request_is_quoted_agreed_and_opened_for_funding() {
    let Cast {
        app,
        maintainer,
        requester,
        org_id,
        slug,
    } = cast().await;
    let created = post_owned(
        &requester,
        &format!("/projects/{slug}/proposals"),
        &feature(&org_id, &[]),
    )
    .await;
    assert_eq!(created.status(), 303);
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    assert_eq!(app.proposal_state(&id).await, "draft");
    assert_eq!(
        app.browser()
            .get(&format!("/proposals/{id}"))
            .await
            .status(),
        404,
        "drafts are private"
    );

    assert_eq!(
        transition(&requester, &id, "submit", &[]).await.status(),
        303
    );
    assert_eq!(app.proposal_state(&id).await, "awaiting_maintainer");
    // The requester may no longer change the terms; the maintainer quotes them.
    let mut quote = feature(
        &org_id,
        &[("Export", "1.500,00", 60), ("Import", "2500", 90)],
    );
    quote.retain(|(k, _)| k != "organisation_id");
    assert_eq!(
        post_owned(&requester, &format!("/proposals/{id}/edit"), &quote)
            .await
            .status(),
        403
    );
    assert_eq!(
        post_owned(&maintainer, &format!("/proposals/{id}/edit"), &quote)
            .await
            .status(),
        303
    );

    let without_deadline = transition(&maintainer, &id, "agree", &[("deadline", "")]).await;
    assert_eq!(without_deadline.status(), 422);
    assert!(
        without_deadline
            .text()
            .await
            .unwrap()
            .contains("Datum in der Zukunft")
    );
    let too_late = transition(&maintainer, &id, "agree", &[("deadline", &in_days(75))]).await;
    assert_eq!(
        too_late.status(),
        422,
        "the deadline must come before the first due milestone"
    );
    assert_eq!(
        transition(&requester, &id, "agree", &[("deadline", &in_days(30))])
            .await
            .status(),
        403
    );
    assert_eq!(
        transition(&maintainer, &id, "agree", &[("deadline", &in_days(30))])
            .await
            .status(),
        303
    );
    assert_eq!(app.proposal_state(&id).await, "open");

    let page = app.browser().page(&format!("/proposals/{id}")).await;
    assert!(page.contains("In der Finanzierung"));
    assert!(
        page.contains("4.000,00\u{a0}€"),
        "the goal is the sum of the milestones"
    );
    assert!(page.contains("200,00\u{a0}€"), "the 5 % fee is shown");
    assert!(
        page.contains("3.800,00\u{a0}€"),
        "what the project receives"
    );
    assert!(page.contains("Angefragt von Verein A"));
    assert_eq!(
        app.balance(&AccountId::escrow(&id)).await,
        0,
        "an escrow account exists"
    );

    // After opening: amounts stay, texts change as visible revisions.
    let mut changed = feature(&org_id, &[("Export", "9.999,00", 60)]);
    changed.retain(|(k, _)| k != "organisation_id");
    for (k, v) in changed.iter_mut() {
        if k == "summary" {
            *v = "Die Mitgliederliste als CSV und als ODS exportieren.".into();
        }
    }
    assert_eq!(
        post_owned(&requester, &format!("/proposals/{id}/edit"), &changed)
            .await
            .status(),
        303
    );
    let goal: i64 = sqlx::query_scalar("SELECT funding_goal FROM proposals WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(goal, 400_000, "amounts are frozen once funding opened");
    let page = app.browser().page(&format!("/proposals/{id}")).await;
    assert!(page.contains("als CSV und als ODS"));
    assert!(page.contains("Klarstellungen"));
    assert!(
        page.contains("Die Mitgliederliste als CSV exportieren."),
        "the old text stays visible"
    );
    assert!(
        page.contains("Maintainer hat zugestimmt; Finanzierung eröffnet"),
        "the history"
    );
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_maintenance_contract_turns_its_periods_into_milestones() {
    let Cast {
        app,
        maintainer,
        slug,
        ..
    } = cast().await;
    let fields: Vec<(String, String)> = [
        ("kind", "maintenance"),
        ("organisation_id", ""),
        ("title", "Wartung 2027"),
        ("summary", "Sicherheitsupdates und Releases"),
        ("security_response_hours", "48"),
        ("releases", "Ein Release pro Monat"),
        ("support", "Forum und E-Mail"),
        ("period_amount", "800"),
        ("period", "month"),
        ("term_periods", "12"),
        ("start_date", &in_days(40)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let created = post_owned(&maintainer, &format!("/projects/{slug}/proposals"), &fields).await;
    assert_eq!(created.status(), 303);
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    let (count, goal): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(amount) AS BIGINT) FROM milestones WHERE proposal_id = $1",
    )
    .bind(&id)
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!((count, goal), (12, 960_000));
    let page = maintainer.page(&format!("/proposals/{id}")).await;
    assert!(page.contains("Zeitraum 1:"));
    assert!(page.contains("Zeitraum 12:"));
    assert!(page.contains("Angeboten von Lea Lange"));

    let bad = post_owned(
        &maintainer,
        &format!("/projects/{slug}/proposals"),
        &fields
            .iter()
            .map(|(k, v)| match k.as_str() {
                "term_periods" => (k.clone(), "0".to_owned()),
                "period_amount" => (k.clone(), "1,2,3".to_owned()),
                _ => (k.clone(), v.clone()),
            })
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let page = bad.text().await.unwrap();
    assert!(page.contains("Laufzeit von 1 bis 36"));
    assert!(page.contains("Das ist kein Betrag"));
}

#[tokio::test]
async fn milestone_amounts_are_checked_with_clear_messages() {
    // `_app` (not `_`) keeps the server running until the test ends.
    let Cast {
        app: _app,
        maintainer,
        slug,
        ..
    } = cast().await;
    let response = post_owned(
        &maintainer,
        &format!("/projects/{slug}/proposals"),
        &feature(
            "",
            &[
                ("Export", "-5", 30),
                ("Import", "1,234", 30),
                ("Doku", "0", 30),
            ],
        ),
    )
    .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("nicht negativ"));
    assert!(page.contains("mehrdeutig"));
    assert!(page.contains("größer als null"));
    assert!(page.contains("value=\"1,234\""), "entered values are kept");
}

/// The lifecycle through the pages, for every role: each allowed transition works, and the
/// forbidden ones are refused without a change.
#[tokio::test]
async fn each_role_may_make_exactly_its_transitions() {
    let Cast {
        app,
        maintainer,
        requester,
        org_id,
        slug,
    } = cast().await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (_, stranger) = app.person("Otto", "otto@example.org", &[]).await;
    let visitor = app.browser();
    let created = post_owned(
        &requester,
        &format!("/projects/{slug}/proposals"),
        &feature(&org_id, &[("Export", "1000", 60)]),
    )
    .await;
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();

    let set = |state: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            sqlx::query("UPDATE proposals SET status = $1 WHERE id = $2")
                .bind(state)
                .bind(&id)
                .execute(&mut *app.conn().await)
                .await
                .unwrap();
        }
    };
    let deadline = in_days(30);
    let extra = |t: &str| -> Vec<(&str, String)> {
        match t {
            "agree" => vec![("deadline", deadline.clone())],
            "cancel" | "return_to_proposer" => vec![("reason", "Weil.".to_owned())],
            _ => vec![],
        }
    };
    // (from, transition, role, expected status, state afterwards)
    let cases: Vec<(&str, &str, &Browser, u16, &str)> = vec![
        ("draft", "submit", &requester, 303, "awaiting_maintainer"),
        ("draft", "submit", &maintainer, 303, "awaiting_maintainer"),
        ("draft", "submit", &stranger, 404, "draft"),
        // A draft is its proposer's: the board does not see it (issue #20, item 12).
        ("draft", "submit", &board, 404, "draft"),
        ("draft", "agree", &maintainer, 409, "draft"),
        ("draft", "withdraw", &requester, 303, "cancelled"),
        (
            "awaiting_maintainer",
            "return_to_proposer",
            &maintainer,
            303,
            "draft",
        ),
        (
            "awaiting_maintainer",
            "return_to_proposer",
            &requester,
            403,
            "awaiting_maintainer",
        ),
        (
            "awaiting_maintainer",
            "agree",
            &requester,
            403,
            "awaiting_maintainer",
        ),
        ("awaiting_maintainer", "agree", &maintainer, 303, "open"),
        (
            "awaiting_maintainer",
            "withdraw",
            &maintainer,
            303,
            "cancelled",
        ),
        ("open", "cancel", &requester, 403, "open"),
        ("open", "cancel", &stranger, 403, "open"),
        ("open", "cancel", &maintainer, 303, "cancelled"),
        ("open", "cancel", &board, 303, "cancelled"),
        ("open", "fund", &board, 403, "open"),
        ("open", "expire", &maintainer, 403, "open"),
        ("open", "start", &maintainer, 409, "open"),
        ("open", "submit", &requester, 409, "open"),
        ("funded", "start", &maintainer, 303, "in_progress"),
        ("funded", "start", &requester, 403, "funded"),
        ("funded", "cancel", &maintainer, 303, "cancelled"),
        ("in_progress", "cancel", &maintainer, 403, "in_progress"),
        ("in_progress", "cancel", &board, 303, "cancelled"),
        ("in_progress", "complete", &board, 403, "in_progress"),
        ("completed", "cancel", &board, 409, "completed"),
        ("expired", "agree", &maintainer, 409, "expired"),
        ("cancelled", "submit", &requester, 409, "cancelled"),
        ("open", "cancel", &visitor, 303, "open"),
    ];
    let mut wrong = Vec::new();
    for (from, name, browser, status, after) in cases {
        set(from).await;
        let fields: Vec<(&str, String)> = extra(name);
        let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = transition(browser, &id, name, &borrowed).await;
        let got = response.status().as_u16();
        let state = app.proposal_state(&id).await;
        if got != status || state != after {
            wrong.push(format!(
                "{from} --{name}--> expected {status}/{after}, got {got}/{state}"
            ));
        }
    }
    assert!(wrong.is_empty(), "lifecycle:\n{}", wrong.join("\n"));
    let without_reason = {
        set("open").await;
        transition(&board, &id, "cancel", &[]).await
    };
    assert_eq!(
        without_reason.status(),
        422,
        "a cancellation needs a reason"
    );
    let refused = transition(&maintainer, &id, "fly_to_the_moon", &[]).await;
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn cancelling_returns_every_pledge_to_its_wallet() {
    let Cast {
        app,
        maintainer,
        requester,
        org_id,
        slug,
    } = cast().await;
    let created = post_owned(
        &requester,
        &format!("/projects/{slug}/proposals"),
        &feature(&org_id, &[("Export", "1000", 60)]),
    )
    .await;
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    transition(&requester, &id, "submit", &[]).await;
    transition(&maintainer, &id, "agree", &[("deadline", &in_days(30))]).await;
    assert_eq!(app.proposal_state(&id).await, "open");

    // Two backers pledge (the pledge pages come with the pledges feature; the ledger is the same).
    let mut pledges = Vec::new();
    for (org, cents) in [("org-b", 30_000), ("org-c", 12_345)] {
        let wallet = app.funded_wallet(org, 50_000).await;
        let mut tx = app.db.begin().await.unwrap();
        let posted = ledger::post(
            &mut tx,
            NewTransaction::transfer(
                format!("pledge:{org}"),
                TxKind::Pledge,
                "Zusage",
                Actor::system(),
                wallet.clone(),
                AccountId::escrow(&id),
                Money::from_cents(cents),
            )
            .unwrap()
            .for_proposal(&id),
        )
        .await
        .unwrap()
        .into_transaction();
        sqlx::query(
            "INSERT INTO pledges (id, proposal_id, source_account, committed, transaction_id, created_at)
             VALUES ($1, $2, $3, $4, $5, 1)",
        )
        .bind(format!("p-{org}"))
        .bind(&id)
        .bind(wallet.as_str())
        .bind(cents)
        .bind(&posted.id)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        pledges.push(wallet);
    }
    assert_eq!(app.balance(&AccountId::escrow(&id)).await, 42_345);
    app.assert_books_balance().await;

    let cancelled = transition(
        &maintainer,
        &id,
        "cancel",
        &[("reason", "Die Bibliothek wird eingestellt.")],
    )
    .await;
    assert_eq!(cancelled.status(), 303);
    assert_eq!(app.proposal_state(&id).await, "cancelled");
    assert_eq!(app.balance(&AccountId::escrow(&id)).await, 0);
    for wallet in &pledges {
        assert_eq!(app.balance(wallet).await, 50_000, "every cent back");
    }
    app.assert_books_balance().await;
    let page = app.browser().page(&format!("/proposals/{id}")).await;
    assert!(page.contains("Abgebrochen; Zusagen zurückgezahlt"));
}

#[tokio::test]
async fn the_discussion_renders_safely_shows_edits_and_lets_the_board_hide() {
    let Cast {
        app,
        maintainer,
        requester,
        org_id,
        slug,
    } = cast().await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let created = post_owned(
        &requester,
        &format!("/projects/{slug}/proposals"),
        &feature(&org_id, &[("Export", "1000", 60)]),
    )
    .await;
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    transition(&requester, &id, "submit", &[]).await;
    transition(&maintainer, &id, "agree", &[("deadline", &in_days(30))]).await;

    let empty = requester
        .post(&format!("/proposals/{id}/comments"), &[("body", "  ")])
        .await;
    assert_eq!(empty.status(), 422);
    let posted = requester
        .post(
            &format!("/proposals/{id}/comments"),
            &[("body", "**Danke!** <script>alert(1)</script>")],
        )
        .await;
    assert_eq!(posted.status(), 303);
    let comment = location(&posted)
        .rsplit("#comment-")
        .next()
        .unwrap()
        .to_owned();
    let page = app.browser().page(&format!("/proposals/{id}")).await;
    assert!(page.contains("<strong>Danke!</strong>"));
    assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));

    assert_eq!(
        maintainer
            .post(&format!("/comments/{comment}/edit"), &[("body", "Fremd")])
            .await
            .status(),
        403
    );
    assert_eq!(
        requester
            .post(
                &format!("/comments/{comment}/edit"),
                &[("body", "Danke sehr!")]
            )
            .await
            .status(),
        303
    );
    let page = app.browser().page(&format!("/proposals/{id}")).await;
    assert!(page.contains("Danke sehr!") && page.contains("bearbeitet"));

    assert_eq!(
        maintainer
            .post(&format!("/comments/{comment}/hide"), &[])
            .await
            .status(),
        403
    );
    assert_eq!(
        board
            .post(&format!("/comments/{comment}/hide"), &[])
            .await
            .status(),
        303
    );
    let page = app.browser().page(&format!("/proposals/{id}")).await;
    assert!(!page.contains("Danke sehr!"));
    assert!(page.contains("vom Vorstand ausgeblendet"));
    let kept: String = sqlx::query_scalar("SELECT body FROM comments WHERE id = $1")
        .bind(&comment)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(kept, "Danke sehr!", "hidden, not deleted");
}

#[tokio::test]
async fn the_list_filters_and_sorts_in_both_languages() {
    let app = spawn_app().await;
    allmende::demo::load(&app.db).await.unwrap();
    let visitor = app.browser();
    let open = visitor.page("/proposals?state=open").await;
    assert!(open.contains("Wartungsvertrag 2027") && open.contains("Offline-Kartenpakete"));
    assert!(
        !open.contains("Routing für Lastenräder"),
        "expired is not open"
    );
    assert!(
        !open.contains("SEPA-Lastschriften"),
        "drafts are never listed"
    );
    let maintenance = visitor.page("/proposals?kind=maintenance").await;
    assert!(maintenance.contains("Wartungsvertrag 2027") && !maintenance.contains("OParl"));
    let funded_first = visitor.page("/proposals?sort=funded").await;
    let completed = funded_first.find("Barrierefreiheit nach BITV").unwrap();
    let small = funded_first.find("Offline-Kartenpakete").unwrap();
    assert!(completed < small, "most pledged first");
    let english = visitor.page("/proposals?lang=en&state=open").await;
    assert!(english.contains("Open for funding") && english.contains("pledged"));
    app.assert_books_balance().await;
}
