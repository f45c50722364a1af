//! Cooperative membership: statutes, applications, admission and rejection, the member list,
//! exits, dues, the CSV export and the audit log.

use crate::helpers::{Browser, TestApp, location, spawn_app};

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {name}"));
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// Erika's association applies for `shares` shares; returns (slug, organisation id).
pub(crate) async fn applicant(app: &TestApp, erika: &Browser, shares: &str) -> (String, String) {
    let (slug, id) = app.organisation(erika, "Offene Daten e. V.").await;
    let form = erika
        .page(&format!("/organisations/{slug}/membership"))
        .await;
    assert!(
        form.contains("§ 1 Name und Sitz"),
        "the statutes are shown before applying"
    );
    let version = hidden(&form, "statutes_version");
    let response = erika
        .post(
            &format!("/organisations/{slug}/membership"),
            &[
                ("shares", shares),
                ("accept_statutes", "yes"),
                ("statutes_version", &version),
                ("note", "Wir nutzen Vereinskasse."),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    (slug, id)
}

pub(crate) async fn application_id(app: &TestApp, organisation_id: &str) -> String {
    sqlx::query_scalar("SELECT id FROM membership_applications WHERE organisation_id = $1")
        .bind(organisation_id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_application_needs_the_statutes_accepted_and_a_sensible_number_of_shares() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, _) = app.organisation(&erika, "Verein A").await;
    let form = erika
        .page(&format!("/organisations/{slug}/membership"))
        .await;
    let version = hidden(&form, "statutes_version");

    let response = erika
        .post(
            &format!("/organisations/{slug}/membership"),
            &[("shares", "0"), ("statutes_version", &version)],
        )
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("Bitte bestätigen Sie, dass Sie die Satzung gelesen haben"));
    assert!(page.contains("Bitte geben Sie eine ganze Zahl von 1 bis 1000 an."));

    let changed = erika
        .post(
            &format!("/organisations/{slug}/membership"),
            &[
                ("shares", "2"),
                ("accept_statutes", "yes"),
                ("statutes_version", "an-older-version"),
            ],
        )
        .await;
    assert_eq!(
        changed.status(),
        409,
        "statutes accepted must be the statutes in force"
    );
    let count: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM membership_applications")
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn the_board_admits_an_applicant_who_then_owes_shares_and_dues() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (_, board) = app
        .person("Vera Vorstand", "vorstand@coop.example", &["board"])
        .await;
    let (_, treasurer) = app
        .person("Karl Kasse", "kasse@coop.example", &["treasurer"])
        .await;
    let (slug, org_id) = applicant(&app, &erika, "3").await;

    let own = erika.page(&format!("/organisations/{slug}")).await;
    assert!(
        own.contains("liegt dem Vorstand vor"),
        "the organisation sees its application"
    );
    let again = erika
        .page(&format!("/organisations/{slug}/membership"))
        .await;
    let version = hidden(&again, "statutes_version");
    let twice = erika
        .post(
            &format!("/organisations/{slug}/membership"),
            &[
                ("shares", "1"),
                ("accept_statutes", "yes"),
                ("statutes_version", &version),
            ],
        )
        .await;
    assert_eq!(twice.status(), 409);

    let pending = board.page("/board/applications").await;
    assert!(pending.contains("Offene Daten e. V."));
    assert!(pending.contains("zusammen 300,00\u{a0}€"));
    assert!(pending.contains("Wir nutzen Vereinskasse."));
    let id = application_id(&app, &org_id).await;
    let admitted = board
        .post(&format!("/board/applications/{id}/admit"), &[])
        .await;
    assert_eq!(admitted.status(), 303);

    let page = erika.page(&format!("/organisations/{slug}")).await;
    assert!(page.contains("Geschäftsanteile"));
    assert!(page.contains("300,00\u{a0}€"), "shares owed: 3 × 100 EUR");
    assert!(page.contains("120,00\u{a0}€"), "this year's dues");
    assert!(page.contains("offen"));
    let (subject, text) = app
        .last_mail("erika@verein.example", "membership_admitted")
        .await
        .unwrap();
    assert_eq!(subject, "Willkommen in der Genossenschaft");
    assert!(text.contains("Mitgliedsnummer ist 1"));

    for staff in [&board, &treasurer] {
        let list = staff.page("/members").await;
        assert!(list.contains("Offene Daten e. V."));
        assert!(
            list.contains("0,00\u{a0}€ / 300,00\u{a0}€"),
            "paid in of subscribed"
        );
    }
    let csv = treasurer.get("/members.csv").await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let row = text.lines().nth(1).unwrap();
    assert!(row.starts_with("1;Offene Daten e. V.;Verein;"), "{row}");
    assert!(row.contains(";3;300,00;0,00;120,00;0,00;"), "{row}");

    let audit = board
        .page(&format!("/board/audit?organisation={slug}"))
        .await;
    assert!(audit.contains("Als Mitglied aufgenommen"));
    assert!(audit.contains("Mitgliedschaft beantragt"));
    assert!(audit.contains("Organisation angelegt"));
    assert!(audit.contains("Vera Vorstand"), "who did it");
    let no_application: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM membership_applications")
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(no_application, 0);
}

#[tokio::test]
async fn a_rejection_deletes_the_application_and_tells_the_organisation_why() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (slug, org_id) = applicant(&app, &erika, "1").await;
    let id = application_id(&app, &org_id).await;

    let no_reason = board
        .post(
            &format!("/board/applications/{id}/reject"),
            &[("reason", " ")],
        )
        .await;
    assert_eq!(no_reason.status(), 400);
    let rejected = board
        .post(
            &format!("/board/applications/{id}/reject"),
            &[("reason", "Der Verein hat keinen Sitz in Deutschland.")],
        )
        .await;
    assert_eq!(rejected.status(), 303);

    let left: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM membership_applications")
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(left, 0, "the application's data is deleted");
    let details: Vec<String> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'membership.rejected' AND organisation_id = $1",
    )
    .bind(&org_id)
    .fetch_all(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(
        details,
        vec!["{}".to_owned()],
        "the trail keeps no personal data"
    );
    let (_, text) = app
        .last_mail("erika@verein.example", "membership_rejected")
        .await
        .unwrap();
    assert!(text.contains("Der Verein hat keinen Sitz in Deutschland."));
    let page = erika.page(&format!("/organisations/{slug}")).await;
    assert!(page.contains("noch nicht Mitglied"), "and may apply again");
}

#[tokio::test]
async fn notice_of_exit_is_recorded_with_its_date_and_never_deleted() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (slug, org_id) = applicant(&app, &erika, "1").await;
    let id = application_id(&app, &org_id).await;
    board
        .post(&format!("/board/applications/{id}/admit"), &[])
        .await;

    let notice = erika
        .post(&format!("/organisations/{slug}/membership/notice"), &[])
        .await;
    assert_eq!(notice.status(), 303);
    let (notice_at, left_at): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT exit_notice_at, left_at FROM memberships WHERE organisation_id = $1",
    )
    .bind(&org_id)
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    let notice_at = notice_at.expect("notice recorded");
    assert_eq!(
        left_at,
        Some(allmende::members::membership::exit_date_for_notice(
            notice_at
        )),
        "the exit follows the statutes' notice period"
    );
    let list = board.page("/members").await;
    assert!(list.contains("gekündigt"));
    let twice = erika
        .post(&format!("/organisations/{slug}/membership/notice"), &[])
        .await;
    assert_eq!(twice.status(), 409);
}

#[tokio::test]
async fn the_board_records_exits_and_dues_once_per_year() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (_, org_id) = applicant(&app, &erika, "1").await;
    let id = application_id(&app, &org_id).await;
    board
        .post(&format!("/board/applications/{id}/admit"), &[])
        .await;
    let next_year =
        (allmende::members::membership::year_of(allmende::db::now_ms()) + 1).to_string();

    for _ in 0..2 {
        let response = board.post("/members/dues", &[("year", &next_year)]).await;
        assert_eq!(response.status(), 303);
    }
    let dues: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM member_obligations WHERE kind = 'dues' AND year = $1",
    )
    .bind(next_year.parse::<i64>().unwrap())
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(dues, 1, "recording twice adds nothing");
    assert_eq!(
        board
            .post("/members/dues", &[("year", "zwanzig")])
            .await
            .status(),
        400
    );

    let membership: String =
        sqlx::query_scalar("SELECT id FROM memberships WHERE organisation_id = $1")
            .bind(&org_id)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    let bad = board
        .post(
            &format!("/members/{membership}/exit"),
            &[("date", "31.12.2026")],
        )
        .await;
    assert_eq!(bad.status(), 400);
    let exit = board
        .post(
            &format!("/members/{membership}/exit"),
            &[("date", "2026-12-31")],
        )
        .await;
    assert_eq!(exit.status(), 303);
    assert_eq!(location(&exit), "/members");
    let list = board.page("/members").await;
    assert!(list.contains("31.12.2026"));
    let rows: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM memberships")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(rows, 1, "an exit is recorded, never deleted");
}

#[tokio::test]
async fn the_statutes_are_public() {
    let app = spawn_app().await;
    let page = app.browser().page("/statutes").await;
    assert!(page.contains("Satzung der Allmende eG"));
    assert!(page.contains("§ 6 Kündigung und Ausscheiden"));
}
