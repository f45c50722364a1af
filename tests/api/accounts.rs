//! Accounts and sessions: registration, verification, login limits, sessions, CSRF, password
//! change and reset.

use crate::helpers::{Browser, PASSWORD, TestApp, location, spawn_app};

async fn register(browser: &Browser, name: &str, email: &str, password: &str) -> reqwest::Response {
    browser
        .post(
            "/register",
            &[("name", name), ("email", email), ("password", password)],
        )
        .await
}

async fn count(app: &TestApp, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap()
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("allmende_session=") && !c.starts_with("allmende_session=;"))
        .map(|c| {
            c.trim_start_matches("allmende_session=")
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
}

#[tokio::test]
async fn registration_sends_a_verification_link_that_works_once() {
    let app = spawn_app().await;
    let browser = app.browser();
    let response = register(
        &browser,
        "Erika Mustermann",
        "Erika@Verein.example",
        PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Bitte bestätigen Sie Ihre E-Mail-Adresse")
    );

    // Stored lower-cased; the German mail carries the link.
    let (subject, _) = app
        .last_mail("erika@verein.example", "verify_email")
        .await
        .expect("verification mail");
    assert_eq!(subject, "Bitte bestätigen Sie Ihre E-Mail-Adresse");
    let link = app
        .link_in_mail("erika@verein.example", "verify_email")
        .await;
    assert!(link.starts_with("/verify-email/"), "{link}");
    assert_eq!(
        count(&app, "SELECT CAST(COUNT(*) AS BIGINT) FROM people WHERE email = $1 AND email_verified_at IS NULL", "erika@verein.example").await,
        1
    );

    let response = browser.get(&link).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login");
    assert_eq!(
        count(&app, "SELECT CAST(COUNT(*) AS BIGINT) FROM people WHERE email = $1 AND email_verified_at IS NOT NULL", "erika@verein.example").await,
        1
    );
    let again = browser.get(&link).await;
    assert_eq!(again.status(), 410, "a used link does not work twice");
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("Dieser Link gilt nicht mehr")
    );

    // The verified person can log in and sees their account.
    assert_eq!(
        browser
            .log_in("erika@verein.example", PASSWORD)
            .await
            .status(),
        303
    );
    let account = browser.page("/account").await;
    assert!(account.contains("Erika Mustermann"));
    assert!(account.contains("bestätigt"));
}

#[tokio::test]
async fn an_expired_verification_link_is_refused() {
    let app = spawn_app().await;
    let browser = app.browser();
    register(&browser, "Max", "max@verein.example", PASSWORD).await;
    let link = app.link_in_mail("max@verein.example", "verify_email").await;
    sqlx::query("UPDATE person_tokens SET expires_at = 1")
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(browser.get(&link).await.status(), 410);
    assert_eq!(
        count(&app, "SELECT CAST(COUNT(*) AS BIGINT) FROM people WHERE email = $1 AND email_verified_at IS NULL", "max@verein.example").await,
        1
    );
}

#[tokio::test]
async fn a_weak_password_is_refused_and_the_form_keeps_what_was_entered() {
    let app = spawn_app().await;
    let browser = app.browser();
    let response = register(&browser, "Erika Mustermann", "erika@verein.example", "kurz").await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("error-summary"), "error summary at the top");
    assert!(page.contains("Das Passwort muss mindestens 12 Zeichen lang sein."));
    assert!(
        page.contains("value=\"Erika Mustermann\""),
        "the name is kept"
    );
    assert!(
        page.contains("value=\"erika@verein.example\""),
        "the email is kept"
    );
    assert!(
        !page.contains("value=\"kurz\""),
        "the password is not echoed"
    );
    assert!(page.contains("aria-invalid=\"true\""));

    let common = register(
        &browser,
        "Erika",
        "erika@verein.example",
        "passwordpassword",
    )
    .await;
    assert_eq!(common.status(), 422);
    assert!(common.text().await.unwrap().contains("zu verbreitet"));

    let english = browser
        .client
        .post(browser.url("/register?lang=en"))
        .form(&[
            ("name", ""),
            ("email", "nope"),
            ("password", "long enough password"),
            ("csrf_token", &browser.csrf().await),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(english.status(), 422);
    let page = english.text().await.unwrap();
    assert!(page.contains("Please enter your name."), "{page}");
    assert!(page.contains("Please enter a valid email address"));
    assert_eq!(
        count(
            &app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM people WHERE email <> $1",
            ""
        )
        .await,
        0
    );
}

#[tokio::test]
async fn registering_a_taken_address_reveals_nothing_and_tells_the_owner() {
    let app = spawn_app().await;
    let first = register(&app.browser(), "Erika", "erika@verein.example", PASSWORD).await;
    let first_page = first.text().await.unwrap();
    let second = register(
        &app.browser(),
        "Mallory",
        "erika@verein.example",
        "another long password",
    )
    .await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.text().await.unwrap(), first_page, "the same answer");
    assert_eq!(
        count(
            &app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM people WHERE email = $1",
            "erika@verein.example"
        )
        .await,
        1
    );
    let (subject, _) = app
        .last_mail("erika@verein.example", "account_exists")
        .await
        .expect("the owner is told");
    assert_eq!(subject, "Ihr Konto bei Allmende");
}

#[tokio::test]
async fn an_unknown_address_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.person("Erika", "erika@verein.example", &[]).await;
    let unknown = app
        .browser()
        .log_in("nobody@verein.example", PASSWORD)
        .await;
    let wrong = app
        .browser()
        .log_in("erika@verein.example", "not the password")
        .await;
    assert_eq!(unknown.status(), 422);
    assert_eq!(wrong.status(), 422);
    // Each page carries its own session's CSRF token; everything else must be equal.
    let without_token = |page: String| {
        let token = crate::helpers::csrf_in(&page).unwrap_or_default();
        page.replace(&token, "TOKEN")
    };
    let unknown = without_token(unknown.text().await.unwrap());
    let wrong = without_token(wrong.text().await.unwrap());
    assert!(unknown.contains("E-Mail-Adresse oder Passwort stimmen nicht."));
    assert_eq!(
        unknown.replace("nobody@verein.example", "X"),
        wrong.replace("erika@verein.example", "X"),
        "nothing tells the two apart"
    );
}

#[tokio::test]
async fn login_starts_a_new_session_and_logout_ends_it() {
    let app = spawn_app().await;
    app.person("Erika", "erika@verein.example", &[]).await;
    let browser = app.browser();
    let anonymous = browser.get("/login").await;
    let before = session_cookie(&anonymous).expect("a visitor's session for the form");
    let login = browser.log_in("erika@verein.example", PASSWORD).await;
    assert_eq!(login.status(), 303);
    assert_eq!(location(&login), "/account");
    let after = session_cookie(&login).expect("a new session cookie");
    assert_ne!(before, after, "no session fixation");
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("allmende_session="))
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http in tests");

    // The token from before login is worth nothing.
    let planted = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = planted
        .get(app.url("/account"))
        .header("cookie", format!("allmende_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    // Only a hash of the token is stored.
    assert_eq!(
        count(
            &app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM sessions WHERE token_hash = $1",
            &after
        )
        .await,
        0
    );

    assert_eq!(browser.get("/account").await.status(), 200);
    let logout = browser.post("/logout", &[]).await;
    assert_eq!(logout.status(), 303);
    let response = browser.get("/account").await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login?next=%2Faccount"));
    let response = planted
        .get(app.url("/account"))
        .header("cookie", format!("allmende_session={after}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "the logged-out session is gone");
}

#[tokio::test]
async fn a_session_ends_after_inactivity() {
    let app = spawn_app().await;
    let (_, browser) = app.person("Erika", "erika@verein.example", &[]).await;
    assert_eq!(browser.get("/account").await.status(), 200);
    sqlx::query("UPDATE sessions SET last_seen_at = last_seen_at - 9 * 3600 * 1000")
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(browser.get("/account").await.status(), 303);
}

#[tokio::test]
async fn too_many_failed_logins_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    app.person("Erika", "erika@verein.example", &[]).await;
    let browser = app.browser();
    for _ in 0..5 {
        assert_eq!(
            browser
                .log_in("erika@verein.example", "wrong password!")
                .await
                .status(),
            422
        );
    }
    // Locked now, even with the right password, with a message that says when to try again.
    let locked = browser.log_in("erika@verein.example", PASSWORD).await;
    assert_eq!(locked.status(), 429);
    let page = locked.text().await.unwrap();
    assert!(
        page.contains("Bitte versuchen Sie es in 15 Minuten erneut."),
        "{page}"
    );

    // Another account from the same address still works.
    app.person("Max", "max@verein.example", &[]).await;

    // Once the window has passed, the right password works again.
    sqlx::query("UPDATE login_attempts SET at = at - 16 * 60 * 1000")
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(
        browser
            .log_in("erika@verein.example", PASSWORD)
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn many_failures_from_one_address_lock_that_address() {
    let app = spawn_app().await;
    app.person("Erika", "erika@verein.example", &[]).await;
    let browser = app.browser();
    for i in 0..20 {
        let email = format!("guess{i}@verein.example");
        assert_eq!(
            browser.log_in(&email, "wrong password!").await.status(),
            422
        );
    }
    let locked = browser.log_in("erika@verein.example", PASSWORD).await;
    assert_eq!(locked.status(), 429);
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let app = spawn_app().await;
    let (_, browser) = app.person("Erika", "erika@verein.example", &[]).await;

    let forged = browser.post_without_csrf("/logout", &[]).await;
    assert_eq!(forged.status(), 403);
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("Das Formular ist abgelaufen")
    );
    assert_eq!(
        browser.get("/account").await.status(),
        200,
        "still logged in"
    );

    let wrong = browser
        .post_without_csrf("/logout", &[("csrf_token", "not-the-token")])
        .await;
    assert_eq!(wrong.status(), 403);

    // Another session's token does not fit this session.
    let other = app.browser();
    let others_token = other.csrf().await;
    let response = browser
        .post_without_csrf(
            "/organisations",
            &[
                ("legal_name", "Forged e. V."),
                ("csrf_token", &others_token),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        count(
            &app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM organisations WHERE legal_name = $1",
            "Forged e. V."
        )
        .await,
        0
    );

    // A visitor without any session cannot post a form either.
    let response = app
        .browser()
        .post_without_csrf(
            "/register",
            &[
                ("name", "X"),
                ("email", "x@y.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let (_, here) = app.person("Erika", "erika@verein.example", &[]).await;
    let elsewhere = app.browser();
    assert_eq!(
        elsewhere
            .log_in("erika@verein.example", PASSWORD)
            .await
            .status(),
        303
    );

    let wrong = here
        .post(
            "/account/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Das bisherige Passwort stimmt nicht.")
    );

    let weak = here
        .post(
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(weak.status(), 422);

    let changed = here
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(changed.status(), 303);
    assert_eq!(
        here.get("/account").await.status(),
        200,
        "this session stays"
    );
    assert_eq!(
        elsewhere.get("/account").await.status(),
        303,
        "other sessions end"
    );
    assert_eq!(
        app.browser()
            .log_in("erika@verein.example", PASSWORD)
            .await
            .status(),
        422
    );
    assert_eq!(
        app.browser()
            .log_in("erika@verein.example", "a brand new passphrase")
            .await
            .status(),
        303
    );
    assert!(
        app.last_mail("erika@verein.example", "password_changed")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_password_reset_link_works_once_and_only_for_an_hour() {
    let app = spawn_app().await;
    let (_, old_session) = app.person("Erika", "erika@verein.example", &[]).await;
    let browser = app.browser();

    let unknown = browser
        .post("/password-reset", &[("email", "nobody@verein.example")])
        .await;
    let known = browser
        .post("/password-reset", &[("email", "erika@verein.example")])
        .await;
    assert_eq!(unknown.status(), 200);
    assert_eq!(known.status(), 200);
    assert_eq!(
        unknown.text().await.unwrap(),
        known.text().await.unwrap(),
        "the same answer"
    );
    assert!(
        app.last_mail("nobody@verein.example", "reset_password")
            .await
            .is_none()
    );

    let link = app
        .link_in_mail("erika@verein.example", "reset_password")
        .await;
    assert_eq!(browser.get(&link).await.status(), 200);
    let weak = browser.post(&link, &[("password", "short")]).await;
    assert_eq!(weak.status(), 422, "a weak password leaves the link usable");
    let reset = browser
        .post(&link, &[("password", "the new secret phrase")])
        .await;
    assert_eq!(reset.status(), 303);
    assert_eq!(location(&reset), "/login");
    assert_eq!(
        old_session.get("/account").await.status(),
        303,
        "all sessions end"
    );
    assert_eq!(
        browser
            .log_in("erika@verein.example", "the new secret phrase")
            .await
            .status(),
        303
    );

    let reused = app
        .browser()
        .post(&link, &[("password", "yet another phrase!")])
        .await;
    assert_eq!(reused.status(), 410);
    assert_eq!(app.browser().get(&link).await.status(), 410);

    // A second link that has expired.
    browser
        .post("/password-reset", &[("email", "erika@verein.example")])
        .await;
    let second = app
        .link_in_mail("erika@verein.example", "reset_password")
        .await;
    assert_ne!(second, link);
    sqlx::query("UPDATE person_tokens SET expires_at = created_at - 1 WHERE used_at IS NULL")
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(
        app.browser()
            .post(&second, &[("password", "yet another phrase!")])
            .await
            .status(),
        410
    );
}

#[tokio::test]
async fn the_language_of_mails_follows_the_person() {
    let app = spawn_app().await;
    let browser = app.browser();
    browser.get("/?lang=en").await;
    register(&browser, "Ada", "ada@example.org", PASSWORD).await;
    let (subject, text) = app
        .last_mail("ada@example.org", "verify_email")
        .await
        .unwrap();
    assert_eq!(subject, "Please confirm your email address");
    assert!(text.contains("Hello Ada"));
}
