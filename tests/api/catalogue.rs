//! The project catalogue: licences, Markdown, publiccode.yml import, search, maintainers and
//! payout details.

use allmende::ledger::AccountId;

use crate::helpers::{Browser, location, spawn_app};

fn project_fields<'a>(
    name: &'a str,
    licence: &'a str,
    description: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("summary", "Kurz und gut."),
        ("description", description),
        (
            "repository_url",
            "https://gitlab.opencode.de/kommune/werkzeug",
        ),
        ("homepage_url", ""),
        ("licence", licence),
        ("categories", "Verwaltung, Barrierefreiheit"),
        ("languages", "Rust"),
        ("software_version", ""),
    ]
}

#[tokio::test]
async fn only_projects_under_an_osi_approved_licence_are_listed() {
    let app = spawn_app().await;
    let (lea_id, lea) = app.person("Lea", "lea@werk.example", &[]).await;

    let refused = lea
        .post("/projects", &project_fields("Werkzeug", "CC-BY-4.0", ""))
        .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("nicht von der OSI anerkannt"), "{page}");
    assert!(
        page.contains("value=\"Werkzeug\""),
        "entered values are kept"
    );

    let deprecated = lea
        .post("/projects", &project_fields("Werkzeug", "GPL-3.0", ""))
        .await;
    assert_eq!(deprecated.status(), 422);
    assert!(deprecated.text().await.unwrap().contains("veraltet"));

    let unknown = lea
        .post("/projects", &project_fields("Werkzeug", "Meine-Lizenz", ""))
        .await;
    assert_eq!(unknown.status(), 422);

    let added = lea
        .post(
            "/projects",
            &project_fields("Werkzeug", "mit or apache-2.0", ""),
        )
        .await;
    assert_eq!(added.status(), 303);
    let page = lea.page(&location(&added)).await;
    assert!(
        page.contains("MIT OR Apache-2.0"),
        "the licence in SPDX spelling"
    );
    assert!(page.contains("Barrierefreiheit, Verwaltung"));
    let id: String =
        sqlx::query_scalar("SELECT project_id FROM project_maintainers WHERE person_id = $1")
            .bind(&lea_id)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(app.balance(&AccountId::payable(&id)).await, 0);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn markdown_that_tries_to_inject_script_is_shown_as_text() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let description = "# Über uns\n\n<script>alert('x')</script>\n\n[klick](javascript:alert(1)) <img src=x onerror=alert(1)>";
    let added = lea
        .post("/projects", &project_fields("Werkzeug", "MIT", description))
        .await;
    assert_eq!(added.status(), 303);
    let page = app.browser().page(&location(&added)).await;
    assert!(page.contains("<h1>Über uns</h1>"));
    assert!(page.contains("&lt;script&gt;"), "shown as text");
    assert!(!page.contains("<script"), "never as a script");
    assert!(!page.contains("javascript:"));
    assert!(!page.contains("<img src=x"));
}

const PUBLICCODE: &str = r#"publiccodeYmlVersion: "0.4"
name: Ratsinfo offen
url: "https://github.com/ratsinfo-offen/ratsinfo"
landingURL: "https://ratsinfo-offen.example"
softwareVersion: "2.10"
platforms: [web]
categories: [document-management, transparency]
developmentStatus: stable
softwareType: standalone/web
legal:
  license: EUPL-1.2
maintenance:
  type: community
  contacts:
    - name: Nina Roth
      email: nina@ratsinfo-offen.example
localisation:
  localisationReady: true
  availableLanguages: [de, en]
description:
  de:
    shortDescription: Ratsinformationssystem für Kommunen
    longDescription: Sitzungen, Vorlagen und Beschlüsse, veröffentlicht als offene Daten nach OParl.
    features: [OParl 1.1, Volltextsuche]
  en:
    shortDescription: Council information system for municipalities
    longDescription: Meetings, documents and decisions published as open data (OParl).
    features: [OParl 1.1, full text search]
"#;

async fn import(browser: &Browser, yaml: &str) -> reqwest::Response {
    let token = browser.csrf().await;
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .part(
            "file",
            reqwest::multipart::Part::bytes(yaml.as_bytes().to_vec()).file_name("publiccode.yml"),
        )
        .text("yaml", "");
    browser
        .client
        .post(browser.url("/projects/import"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_publiccode_yml_fills_the_project_form() {
    let app = spawn_app().await;
    let (_, nina) = app.person("Nina", "nina@ratsinfo-offen.example", &[]).await;
    let response = import(&nina, PUBLICCODE).await;
    assert_eq!(response.status(), 200);
    // The template escapes `/` in attributes; a browser reads it back as `/`.
    let page = response.text().await.unwrap().replace("&#x2f;", "/");
    assert!(page.contains("value=\"Ratsinfo offen\""));
    assert!(page.contains("value=\"https://github.com/ratsinfo-offen/ratsinfo\""));
    assert!(page.contains("value=\"EUPL-1.2\""));
    assert!(page.contains("value=\"2.10\""), "the version stays text");
    assert!(
        page.contains("Ratsinformationssystem für Kommunen"),
        "German for a German reader"
    );
    assert!(page.contains("- OParl 1.1"), "features become a list");

    // Without the form's CSRF token the upload is refused.
    let forged = nina
        .client
        .post(nina.url("/projects/import"))
        .multipart(reqwest::multipart::Form::new().text("yaml", PUBLICCODE))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn a_broken_publiccode_yml_is_refused_with_what_is_wrong() {
    let app = spawn_app().await;
    let (_, nina) = app.person("Nina", "nina@ratsinfo-offen.example", &[]).await;
    for (yaml, expected) in [
        ("name: [unclosed\n  url: x", "kein gültiges YAML"),
        (
            &PUBLICCODE.replace("license: EUPL-1.2", "license: CC-BY-4.0") as &str,
            "keine von der OSI anerkannte Lizenz",
        ),
        (
            &PUBLICCODE.replace("name: Ratsinfo offen\n", ""),
            "Pflichtfeld fehlt",
        ),
        (
            &PUBLICCODE.replace("https://github.com", "ftp://github.com"),
            "keine http(s)-Adresse",
        ),
        (
            &PUBLICCODE.replace("\"0.4\"", "\"1.0\""),
            "nicht unterstützt",
        ),
    ] {
        let response = import(&nina, yaml).await;
        assert_eq!(response.status(), 422, "{expected}");
        let page = response.text().await.unwrap();
        assert!(page.contains(expected), "{expected}: {page}");
    }
    let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM projects")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn the_catalogue_searches_filters_and_pages() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    for i in 0..22 {
        let name = format!("Werkzeug {i:02}");
        let licence = if i % 2 == 0 { "MIT" } else { "EUPL-1.2" };
        let categories = if i < 3 { "Geodaten" } else { "Verwaltung" };
        let mut fields = project_fields(&name, licence, "");
        fields[6] = ("categories", categories);
        assert_eq!(lea.post("/projects", &fields).await.status(), 303);
    }
    let visitor = app.browser();
    let first = visitor.page("/projects").await;
    assert!(first.contains("22 Projekte"));
    assert!(first.contains("Seite 1 von 2"));
    assert!(first.contains("Werkzeug 00") && !first.contains("Werkzeug 21"));
    let second = visitor.page("/projects?page=2").await;
    assert!(second.contains("Werkzeug 21"));
    let geo = visitor.page("/projects?category=Geodaten").await;
    assert!(geo.contains("3 Projekte"));
    let mit = visitor.page("/projects?licence=MIT&q=werkzeug%201").await;
    assert!(
        mit.contains("Werkzeug 10") && mit.contains("Werkzeug 12") && !mit.contains("Werkzeug 11")
    );
    assert!(
        visitor
            .page("/projects?q=nichts-da")
            .await
            .contains("Keine Projekte gefunden.")
    );
    assert!(
        visitor
            .page("/projects?lang=en")
            .await
            .contains("22 projects")
    );
}

#[tokio::test]
async fn payout_details_are_checked_and_shown_only_to_maintainers_and_the_treasurer() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (_, other) = app.person("Otto", "otto@example.org", &[]).await;
    let (_, treasurer) = app
        .person("Karl", "kasse@coop.example", &["treasurer"])
        .await;
    let (slug, _) = app.project(&lea, "Werkzeug").await;
    let path = format!("/projects/{slug}/payout");

    let typo = lea
        .post(
            &path,
            &[
                ("method", "sepa"),
                ("account_holder", "Lea Lange"),
                ("iban", "DE89 3704 0044 0532 0130 01"),
                ("bic", ""),
            ],
        )
        .await;
    assert_eq!(typo.status(), 422);
    assert!(
        typo.text()
            .await
            .unwrap()
            .contains("Die Prüfziffer der IBAN stimmt nicht")
    );
    let stripe = lea
        .post(
            &path,
            &[("method", "stripe"), ("stripe_account_id", "acct 123")],
        )
        .await;
    assert_eq!(stripe.status(), 422);
    assert_eq!(
        other
            .post(
                &path,
                &[("method", "stripe"), ("stripe_account_id", "acct_1")]
            )
            .await
            .status(),
        403
    );

    let saved = lea
        .post(
            &path,
            &[
                ("method", "sepa"),
                ("account_holder", "Lea Lange"),
                ("iban", "de89 3704 0044 0532 0130 00"),
                ("bic", "cobadeffxxx"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303);
    let project = format!("/projects/{slug}");
    assert!(
        lea.page(&project)
            .await
            .contains("DE89 3704 0044 0532 0130 00")
    );
    assert!(
        treasurer
            .page(&project)
            .await
            .contains("DE89 3704 0044 0532 0130 00")
    );
    assert!(
        !other.page(&project).await.contains("DE89"),
        "personal data stays private"
    );
    assert!(!app.browser().page(&project).await.contains("DE89"));
    let trail: String = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'project.payout_changed'",
    )
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert!(!trail.contains("DE89"), "the trail says that, not what");
}

#[tokio::test]
async fn maintainers_join_by_invitation_and_the_last_one_cannot_leave() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (_, tom) = app.person("Tom", "tom@werk.example", &[]).await;
    let (slug, _) = app.project(&lea, "Werkzeug").await;

    let alone = lea.post(&format!("/projects/{slug}/leave"), &[]).await;
    assert_eq!(alone.status(), 409);
    assert!(
        alone
            .text()
            .await
            .unwrap()
            .contains("mindestens einen Maintainer")
    );
    assert_eq!(
        tom.post(
            &format!("/projects/{slug}/maintainers"),
            &[("email", "x@y.example")]
        )
        .await
        .status(),
        403
    );

    let invited = lea
        .post(
            &format!("/projects/{slug}/maintainers"),
            &[("email", "tom@werk.example")],
        )
        .await;
    assert_eq!(invited.status(), 303);
    let link = app
        .link_in_mail("tom@werk.example", "maintainer_invitation")
        .await;
    assert_eq!(tom.post(&link, &[]).await.status(), 303);
    assert_eq!(tom.post(&link, &[]).await.status(), 410, "once");
    assert!(
        tom.page(&format!("/projects/{slug}"))
            .await
            .contains("Nicht mehr Maintainer sein")
    );
    assert_eq!(
        lea.post(&format!("/projects/{slug}/leave"), &[])
            .await
            .status(),
        303
    );
    assert_eq!(
        lea.get(&format!("/projects/{slug}/edit")).await.status(),
        403
    );
}
