//! The web skeleton: languages, error pages, health, security headers, static files.

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_home_page_is_german_by_default_and_shows_the_pool() {
    let app = spawn_app().await;
    allmende::demo::load(&app.db).await.unwrap();

    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-language"], "de");
    let html = response.text().await.unwrap();
    assert!(html.contains("<html lang=\"de\">"));
    assert!(html.contains("Gemeinschaftstopf"));
    // The demo's dues (600 + 120 + 360 + 120 + 480 EUR) and 20,000 EUR of earlier years, less
    // the 12,000 EUR its closed voting round gave, in German notation.
    assert!(
        html.contains("data-figure=\"pool\">9.680,00\u{a0}€<"),
        "{html}"
    );
    assert!(html.contains("data-figure=\"members\">5<"));
    assert!(
        html.contains("Wartungsvertrag 2027"),
        "open proposals are listed"
    );
    app.assert_books_balance().await;
}

#[tokio::test]
async fn english_is_chosen_by_query_and_remembered_in_a_cookie() {
    let app = spawn_app().await;
    let response = app.get("/?lang=en").await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("lang=en"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"));
    let html = response.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("Common pool"));
    assert!(html.contains("data-figure=\"pool\">€0.00<"));

    // The next page, without ?lang, stays English because of the cookie.
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains("Common pool"), "language not remembered");

    // And back to German.
    let html = app.get("/?lang=de").await.text().await.unwrap();
    assert!(html.contains("Gemeinschaftstopf"));
}

#[tokio::test]
async fn the_browser_language_is_used_when_nothing_was_chosen() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/"))
        .header("accept-language", "en-GB,en;q=0.9,de;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-language"], "en");
    assert!(response.text().await.unwrap().contains("Common pool"));

    let response = app
        .client
        .get(app.url("/"))
        .header("accept-language", "fr-FR,fr")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-language"],
        "de",
        "unsupported: default"
    );
}

#[tokio::test]
async fn an_unknown_page_gets_a_404_page_in_the_readers_language() {
    let app = spawn_app().await;
    let response = app.get("/gibt-es-nicht").await;
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("Fehler 404"), "{html}");
    assert!(html.contains("Diese Seite gibt es nicht"));

    let response = app.get("/no-such-page?lang=en").await;
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("Error 404"));
    assert!(html.contains("There is no such page"));

    assert_eq!(app.get("/static/nothing.css").await.status(), 404);
}

#[tokio::test]
async fn a_failing_database_gets_a_500_page_and_an_unhealthy_check() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.db.close().await;

    let response = app.get("/?lang=en").await;
    assert_eq!(response.status(), 500);
    let html = response.text().await.unwrap();
    assert!(html.contains("Error 500"));
    assert!(html.contains("Something went wrong on our side"));
    for internal in ["sqlx", "closed", "connection"] {
        assert!(!html.contains(internal), "internals shown: {html}");
    }

    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "unreachable");
}

#[tokio::test]
async fn the_health_check_reports_the_database() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/healthz", "/static/style.css", "/missing"] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert!(headers.contains_key("x-request-id"), "{path}");
    }
}

#[tokio::test]
async fn pages_load_nothing_from_other_hosts() {
    let app = spawn_app().await;
    allmende::demo::load(&app.db).await.unwrap();
    for path in ["/", "/?lang=en", "/missing"] {
        let html = app.get(path).await.text().await.unwrap();
        for needle in ["http://", "https://", "<script", "style=\""] {
            assert!(!html.contains(needle), "{path} contains {needle}");
        }
        assert!(html.contains("href=\"#main\""), "{path}: skip link");
        assert!(html.contains("<main id=\"main\""), "{path}: main landmark");
    }
}

#[tokio::test]
async fn static_files_are_served_with_their_type() {
    let app = spawn_app().await;
    let response = app.get("/static/style.css").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/css");
    assert!(response.text().await.unwrap().contains(":focus-visible"));
}
