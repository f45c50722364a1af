//! Typed text (issue 20, items 10 and 11): every field has a length limit from one list, single
//! lines refuse control characters, multi-line text gets LF line breaks, and a request body over
//! the stated limit is answered 413 with nothing changed.

use allmende::jobs::Clock;

use crate::helpers::{Browser, TestApp, location, spawn_app};

const DAY: i64 = 86_400_000;

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"
    )))
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap()
}

fn organisation_form<'a>(legal_name: &'a str, website: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("legal_name", legal_name),
        ("kind", "association"),
        ("street", "Markt 1"),
        ("postcode", "04109"),
        ("city", "Leipzig"),
        ("country", "DE"),
        ("representative", "Der Vorstand"),
        ("contact_name", "Erika Mustermann"),
        ("contact_email", "kontakt@verein.example"),
        ("website", website),
        ("leitweg_id", ""),
    ]
}

const ONE_LINE: &str = "„Name laut Register oder Satzung“ muss in einer Zeile stehen";

#[tokio::test]
async fn an_organisation_name_with_a_line_break_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    // The phishing line of the audit, and its variants.
    for name in [
        "Verein e. V.\r\nBitte überweisen Sie an DE02 1203 0000 0000 2020 51",
        "Verein e. V.\nZweite Zeile",
        "Verein e. V.\rZweite Zeile",
        "Verein\te. V.",
        "Verein e. V.\u{85}",
        "Verein \u{202e}.V .e",
    ] {
        let response = erika
            .post("/organisations", &organisation_form(name, ""))
            .await;
        assert_eq!(response.status(), 422, "{name:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains(ONE_LINE), "{name:?}: {page}");
        assert!(page.contains("error-summary"), "the error summary is shown");
    }
    assert_eq!(count(&app, "organisations").await, 0);
    assert_eq!(count(&app, "accounts WHERE id LIKE 'org:%'").await, 0);

    // Editing: the same refusal, and the stored name stays.
    let (slug, id) = app.organisation(&erika, "Offene Daten e. V.").await;
    let response = erika
        .post(
            &format!("/organisations/{slug}/edit"),
            &organisation_form("Offene Daten e. V.\r\nBcc: alle@example.org", ""),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains(ONE_LINE));
    let stored: String = sqlx::query_scalar("SELECT legal_name FROM organisations WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(stored, "Offene Daten e. V.");

    // A contact person's name, the street: every single-line field.
    let mut form = organisation_form("Offene Daten e. V.", "");
    form[7] = ("contact_name", "Erika\nMustermann");
    form[2] = ("street", "Markt\u{7}1");
    let response = erika
        .post(&format!("/organisations/{slug}/edit"), &form)
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("„Ansprechperson“ muss in einer Zeile stehen"),
        "{page}"
    );
    assert!(page.contains("„Straße und Hausnummer“ muss in einer Zeile stehen"));
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_website_of_900000_characters_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let huge = format!("https://verein.example/{}", "a".repeat(900_000));
    let response = erika
        .post("/organisations", &organisation_form("Verein e. V.", &huge))
        .await;
    assert_eq!(response.status(), 413, "over the body limit");
    assert!(
        response.text().await.unwrap().contains("höchstens 256 KiB"),
        "the page states the limit"
    );
    assert_eq!(count(&app, "organisations").await, 0);

    // Under the body limit but over the field's: the form again, naming field and limit.
    let base = "https://verein.example/";
    let over = format!("{base}{}", "a".repeat(501 - base.len()));
    let response = erika
        .post("/organisations", &organisation_form("Verein e. V.", &over))
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("„Website“ darf höchstens 500 Zeichen lang sein."),
        "{page}"
    );
    assert_eq!(count(&app, "organisations").await, 0);

    // At the limit it is fine.
    let at = format!("{base}{}", "a".repeat(500 - base.len()));
    let response = erika
        .post("/organisations", &organisation_form("Verein e. V.", &at))
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(count(&app, "organisations").await, 1);
}

/// Two proposals open for funding, for the wish list; returns their ids.
async fn two_open_proposals(app: &TestApp, maintainer: &Browser) -> Vec<String> {
    let (slug, _) = app.project(maintainer, "Werkzeug").await;
    let due = allmende::proposals::date_value(app.clock.now_ms() + 90 * DAY);
    let deadline = allmende::proposals::date_value(app.clock.now_ms() + 30 * DAY);
    let mut ids = Vec::new();
    for title in ["X", "Y"] {
        let created = maintainer
            .post(
                &format!("/projects/{slug}/proposals"),
                &[
                    ("kind", "feature"),
                    ("organisation_id", ""),
                    ("title", title),
                    ("summary", "Zusammenfassung"),
                    ("problem", "Problem"),
                    ("desired_outcome", "Ergebnis"),
                    ("m1_title", title),
                    ("m1_criteria", "Tests"),
                    ("m1_amount", "100"),
                    ("m1_due", &due),
                ],
            )
            .await;
        assert_eq!(created.status(), 303);
        let id = location(&created)
            .trim_start_matches("/proposals/")
            .to_owned();
        let path = format!("/proposals/{id}/transitions");
        maintainer.post(&path, &[("transition", "submit")]).await;
        let agreed = maintainer
            .post(&path, &[("transition", "agree"), ("deadline", &deadline)])
            .await;
        assert_eq!(agreed.status(), 303);
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn a_poll_title_of_450000_characters_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let (_, maintainer) = app.person("Lea", "lea@werk.example", &[]).await;
    let options = two_open_proposals(&app, &maintainer).await;
    let closes = allmende::proposals::date_value(app.clock.now_ms() + 3 * DAY);
    let poll = |title: String| {
        let closes = closes.clone();
        let options = options.clone();
        let board = &board;
        async move {
            board
                .post(
                    "/polls",
                    &[
                        ("title", &title),
                        ("description", "Worum es geht"),
                        ("closes", &closes),
                        ("options", &options[0]),
                        ("options", &options[1]),
                    ],
                )
                .await
        }
    };
    let response = poll("T".repeat(450_000)).await;
    assert_eq!(response.status(), 413);
    assert_eq!(count(&app, "polls").await, 0);

    let response = poll("T".repeat(151)).await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("„Titel“ darf höchstens 150 Zeichen lang sein."),
        "{page}"
    );
    assert_eq!(count(&app, "polls").await, 0);

    let response = poll("Was zuerst?\nZweite Zeile".into()).await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("„Titel“ muss in einer Zeile stehen")
    );
    assert_eq!(count(&app, "polls").await, 0);

    let response = poll("T".repeat(150)).await;
    assert_eq!(response.status(), 303, "at the limit");
    assert_eq!(count(&app, "polls").await, 1);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_registration_with_a_line_break_in_the_name_is_refused() {
    let app = spawn_app().await;
    let browser = app.browser();
    let response = browser
        .post(
            "/register",
            &[
                (
                    "name",
                    "Erika\r\nIhr Konto wurde gesperrt: https://evil.example",
                ),
                ("email", "erika@verein.example"),
                ("password", crate::helpers::PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("„Name“ muss in einer Zeile stehen")
    );
    assert_eq!(count(&app, "people").await, 0);
    assert_eq!(count(&app, "mail_outbox").await, 0);
}

#[tokio::test]
async fn project_texts_have_limits_and_single_lines() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let description = "D".repeat(20_001);
    let name = "Werk\tzeug";
    let response = lea
        .post(
            "/projects",
            &[
                ("name", name),
                ("summary", "Ein Werkzeug für Vereine."),
                ("description", &description),
                ("repository_url", "https://codeberg.org/example/tool"),
                ("homepage_url", ""),
                ("licence", "EUPL-1.2"),
                ("categories", "Verwaltung"),
                ("languages", "Rust"),
                ("software_version", "1.0"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("„Name“ muss in einer Zeile stehen"), "{page}");
    assert!(page.contains("„Beschreibung“ darf höchstens 20.000 Zeichen lang sein."));
    assert_eq!(count(&app, "projects").await, 0);

    // Payout details: the account holder goes into SEPA files.
    let (slug, id) = app.project(&lea, "Werkzeug").await;
    let response = lea
        .post(
            &format!("/projects/{slug}/payout"),
            &[
                ("method", "sepa"),
                ("account_holder", "Lea\r\nMusterfrau"),
                ("iban", "DE02 1203 0000 0000 2020 51"),
                ("bic", ""),
                ("stripe_account_id", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("„Kontoinhaber“ muss in einer Zeile stehen")
    );
    let stored: Option<String> =
        sqlx::query_scalar("SELECT account_holder FROM project_payouts WHERE project_id = $1")
            .bind(&id)
            .fetch_optional(&mut *app.conn().await)
            .await
            .unwrap_or(None);
    assert_eq!(stored, None);
}

#[tokio::test]
async fn proposal_and_comment_texts_have_limits_and_line_breaks_are_stored_as_lf() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (slug, _) = app.project(&lea, "Werkzeug").await;
    let due = allmende::proposals::date_value(app.clock.now_ms() + 90 * DAY);
    let title = "T".repeat(151);
    let criteria = "Tests grün\u{1b}[31m";
    let response = lea
        .post(
            &format!("/projects/{slug}/proposals"),
            &[
                ("kind", "feature"),
                ("organisation_id", ""),
                ("title", &title),
                ("summary", "Zusammenfassung"),
                ("problem", "Problem"),
                ("desired_outcome", "Ergebnis"),
                ("m1_title", "Erster Schritt"),
                ("m1_criteria", criteria),
                ("m1_amount", "100"),
                ("m1_due", &due),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("„Titel“ darf höchstens 150 Zeichen lang sein."),
        "{page}"
    );
    assert!(
        page.contains(
            "„Abnahmekriterien“ darf außer Zeilenumbrüchen und Tabulatoren keine Steuerzeichen enthalten."
        ),
        "{page}"
    );
    assert_eq!(count(&app, "proposals").await, 0);

    // A textarea's CR LF arrives as LF; tabs are fine in multi-line text.
    let created = lea
        .post(
            &format!("/projects/{slug}/proposals"),
            &[
                ("kind", "feature"),
                ("organisation_id", ""),
                ("title", "Export"),
                ("summary", "Zusammenfassung"),
                ("problem", "Erste Zeile\r\nZweite Zeile\r\n\tEingerückt"),
                ("desired_outcome", "Ergebnis"),
                ("m1_title", "Erster Schritt"),
                ("m1_criteria", "Tests"),
                ("m1_amount", "100"),
                ("m1_due", &due),
            ],
        )
        .await;
    assert_eq!(created.status(), 303);
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    let problem: String = sqlx::query_scalar("SELECT problem FROM proposals WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(problem, "Erste Zeile\nZweite Zeile\n\tEingerückt");

    let body = "K".repeat(10_001);
    let response = lea
        .post(&format!("/proposals/{id}/comments"), &[("body", &body)])
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("„Ihr Beitrag“ darf höchstens 10.000 Zeichen lang sein.")
    );
    assert_eq!(count(&app, "comments").await, 0);

    // Reasons, too: a cancellation with a reason over its limit changes nothing.
    let reason = "R".repeat(2_001);
    let response = lea
        .post(
            &format!("/proposals/{id}/transitions"),
            &[("transition", "withdraw"), ("reason", &reason)],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(app.proposal_state(&id).await, "draft");
}

#[tokio::test]
async fn round_and_membership_texts_have_limits() {
    let app = spawn_app().await;
    let (_, board) = app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let closes = allmende::proposals::date_value(app.clock.now_ms() + 7 * DAY);
    let description = "B".repeat(5_001);
    let response = board
        .post(
            "/board/rounds",
            &[
                ("title", "Frühjahrsrunde"),
                ("description", &description),
                ("budget", "100"),
                ("ballot_type", "approval"),
                ("ballot_limit", ""),
                ("rule", "equal_shares"),
                ("opens", ""),
                ("closes", &closes),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("„Beschreibung“ darf höchstens 5.000 Zeichen lang sein.")
    );
    assert_eq!(count(&app, "rounds").await, 0);

    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, _) = app.organisation(&erika, "Verein e. V.").await;
    let page = erika
        .page(&format!("/organisations/{slug}/membership"))
        .await;
    let version = page
        .split("name=\"statutes_version\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let note = "N".repeat(2_001);
    let response = erika
        .post(
            &format!("/organisations/{slug}/membership"),
            &[
                ("shares", "1"),
                ("accept_statutes", "on"),
                ("statutes_version", &version),
                ("note", &note),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("„Nachricht an den Vorstand“ darf höchstens 2.000 Zeichen lang sein.")
    );
    assert_eq!(count(&app, "membership_applications").await, 0);
}

#[tokio::test]
async fn english_readers_get_the_limits_in_english() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    erika.get("/?lang=en").await;
    let response = erika
        .post(
            "/organisations",
            &organisation_form("Verein\r\ne. V.", "https://verein.example/"),
        )
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(
            "“Legal name” must be on one line, without tabs or other control characters."
        ),
        "{page}"
    );
}

/// An upload route takes more than a form, up to its own limit; beyond it, 413.
#[tokio::test]
async fn uploads_have_their_own_body_limit() {
    let app = spawn_app().await;
    let (_, nina) = app.person("Nina", "nina@ratsinfo.example", &[]).await;
    let upload = |bytes: usize| {
        let nina = &nina;
        async move {
            let token = nina.csrf().await;
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(vec![b'#'; bytes]).file_name("publiccode.yml"),
            );
            nina.client
                .post(nina.url("/projects/import"))
                .header("x-csrf-token", token)
                .multipart(form)
                .send()
                .await
                .unwrap()
        }
    };
    let over_form_limit = upload(300 * 1024).await;
    assert_ne!(
        over_form_limit.status(),
        413,
        "a publiccode.yml larger than a form is still read"
    );
    let over_upload_limit = upload(allmende::web::MAX_PUBLICCODE_UPLOAD_BYTES + 1).await;
    assert_eq!(over_upload_limit.status(), 413);
    assert_eq!(count(&app, "projects").await, 0);
}
