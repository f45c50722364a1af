//! Issue #20, accounts: parallel login guesses, registration floods and timing, open redirects
//! after login, old reset links, CSRF tokens in URLs, and line breaks that reach mails.

use allmende::config::Config;
use allmende::i18n::Locale;
use allmende::people::{self, Registration, password::Hasher};

use crate::helpers::{Browser, PASSWORD, TestApp, location, spawn_app, spawn_app_with};

async fn count(app: &TestApp, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap()
}

async fn attempts_of(app: &TestApp, email: &str) -> i64 {
    count(
        app,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM login_attempts WHERE email = $1",
        email,
    )
    .await
}

/// Logs `logins` in at once, each from its own browser (each with its CSRF token first); returns
/// the answers' statuses in the order given.
async fn log_in_at_once(app: &TestApp, logins: &[(String, String)]) -> Vec<u16> {
    let mut prepared = Vec::new();
    for (email, password) in logins {
        let browser = app.browser();
        let token = browser.csrf().await;
        prepared.push((browser, token, email.clone(), password.clone()));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (browser, token, email, password)) in prepared.into_iter().enumerate() {
        tasks.spawn(async move {
            let response = browser
                .client
                .post(browser.url("/login"))
                .form(&[
                    ("email", email.as_str()),
                    ("password", password.as_str()),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (index, response.status().as_u16())
        });
    }
    let mut statuses = vec![0; logins.len()];
    while let Some(done) = tasks.join_next().await {
        let (index, status) = done.unwrap();
        statuses[index] = status;
    }
    statuses
}

fn tally(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn parallel_guesses_are_checked_at_most_five_times_and_the_right_password_stays_out() {
    let app = spawn_app().await;
    let email = "erika@verein.example";
    app.person("Erika", email, &[]).await;
    assert_eq!(attempts_of(&app, email).await, 1, "the helper's own login");

    let guesses: Vec<(String, String)> = (0..45)
        .map(|i| (email.to_owned(), format!("wrong password number {i}")))
        .collect();
    let statuses = log_in_at_once(&app, &guesses).await;
    assert_eq!(tally(&statuses, 422), 5, "{statuses:?}");
    assert_eq!(tally(&statuses, 429), 40, "{statuses:?}");
    assert_eq!(
        attempts_of(&app, email).await,
        1 + 5,
        "only five guesses were checked"
    );

    // The limit is hit: the right password, sent among more guesses, does not get in.
    let mut more: Vec<(String, String)> = (0..9)
        .map(|i| (email.to_owned(), format!("another wrong password {i}")))
        .collect();
    more.insert(4, (email.to_owned(), PASSWORD.to_owned()));
    let statuses = log_in_at_once(&app, &more).await;
    assert_eq!(tally(&statuses, 429), 10, "{statuses:?}");
    assert_eq!(
        attempts_of(&app, email).await,
        1 + 5,
        "nothing more checked"
    );
    let succeeded = count(
        &app,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM login_attempts WHERE email = $1 AND succeeded = 1",
        email,
    )
    .await;
    assert_eq!(succeeded, 1, "only the helper's login ever succeeded");
}

#[tokio::test]
async fn parallel_guesses_on_many_accounts_are_checked_at_most_twenty_times_per_address() {
    let app = spawn_app().await;
    let guesses: Vec<(String, String)> = (0..30)
        .map(|i| {
            (
                format!("guess{i}@verein.example"),
                "wrong password!".to_owned(),
            )
        })
        .collect();
    let statuses = log_in_at_once(&app, &guesses).await;
    assert_eq!(tally(&statuses, 422), 20, "{statuses:?}");
    assert_eq!(tally(&statuses, 429), 10, "{statuses:?}");
    let checked: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM login_attempts")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(checked, 20);
}

fn registration(name: &str, email: &str) -> Registration {
    Registration {
        name: name.to_owned(),
        email: email.to_owned(),
        password: "pferd batterie heftklammer".to_owned(),
    }
}

#[tokio::test]
async fn registration_hashes_the_password_for_known_and_unknown_addresses_alike() {
    let app = spawn_app().await;
    let limits = Config::defaults().limits;
    let base_url = url::Url::parse(&app.address).unwrap();
    let hasher = Hasher::new(1, std::time::Duration::from_secs(60));
    let origin = people::Origin {
        address: "192.0.2.1",
        now_ms: allmende::db::now_ms(),
    };
    let register = |form: Registration| {
        let (db, hasher, limits, base_url) = (&app.db, &hasher, &limits, &base_url);
        async move {
            people::register(db, hasher, limits, &form, Locale::De, base_url, origin)
                .await
                .unwrap()
        }
    };

    let new = register(registration("Erika", "erika@verein.example")).await;
    assert!(new.is_some(), "a new account");
    assert_eq!(hasher.hashes_computed(), 1);

    let known = register(registration("Someone", "Erika@Verein.example")).await;
    assert!(known.is_none(), "the address is taken");
    assert_eq!(
        hasher.hashes_computed(),
        2,
        "a known address costs the same hash as an unknown one"
    );
    assert!(
        app.last_mail("erika@verein.example", "account_exists")
            .await
            .is_some()
    );
}

async fn register_at_once(app: &TestApp, count: usize) -> Vec<reqwest::Response> {
    let mut prepared = Vec::new();
    for i in 0..count {
        let browser = app.browser();
        let token = browser.csrf().await;
        prepared.push((browser, token, i));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (browser, token, i) in prepared {
        tasks.spawn(async move {
            browser
                .client
                .post(browser.url("/register"))
                .form(&[
                    ("name", format!("Person {i}").as_str()),
                    ("email", format!("person{i}@verein.example").as_str()),
                    ("password", "pferd batterie heftklammer"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
        });
    }
    let mut responses = Vec::new();
    while let Some(done) = tasks.join_next().await {
        responses.push(done.unwrap());
    }
    responses
}

async fn people_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM people")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn parallel_registrations_from_one_address_stop_at_the_limit_with_a_clear_answer() {
    let app = spawn_app().await;
    let responses = register_at_once(&app, 30).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(tally(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(tally(&statuses, 429), 20, "{statuses:?}");
    assert_eq!(people_count(&app).await, 10);
    let refused = responses.into_iter().find(|r| r.status() == 429).unwrap();
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3_000..=3_600).contains(&retry_after), "{retry_after}");
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Zu viele Anfragen dieser Art in kurzer Zeit. Bitte versuchen Sie es in"),
        "{page}"
    );

    // An hour later the address may register again.
    app.clock.advance(61 * 60_000);
    let browser = app.browser();
    let response = browser
        .post(
            "/register",
            &[
                ("name", "Later"),
                ("email", "later@verein.example"),
                ("password", "pferd batterie heftklammer"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(people_count(&app).await, 11);
}

#[tokio::test]
async fn thirty_parallel_registrations_all_succeed_without_a_database_error() {
    let app = spawn_app_with(&[
        ("ALLMENDE_LIMITS_REGISTRATIONS_PER_ADDRESS_HOUR", "100"),
        // A busy test machine: let every hash wait its turn rather than answer "busy".
        ("ALLMENDE_LIMITS_PASSWORD_HASH_WAIT_SECONDS", "600"),
    ])
    .await;
    let responses = register_at_once(&app, 30).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(tally(&statuses, 200), 30, "{statuses:?}");
    assert_eq!(people_count(&app).await, 30);
    let mails: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM mail_outbox WHERE kind = 'verify_email'",
    )
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(mails, 30);
}

async fn request_reset(browser: &Browser, email: &str) -> reqwest::Response {
    browser.post("/password-reset", &[("email", email)]).await
}

#[tokio::test]
async fn reset_mails_are_limited_per_recipient_and_per_address() {
    let app = spawn_app().await;
    app.person("Erika", "erika@verein.example", &[]).await;
    let browser = app.browser();
    for _ in 0..3 {
        assert_eq!(
            request_reset(&browser, "erika@verein.example")
                .await
                .status(),
            200
        );
    }
    let flooded = request_reset(&browser, "erika@verein.example").await;
    assert_eq!(flooded.status(), 429);
    assert!(flooded.headers().contains_key("retry-after"));
    let mails = count(
        &app,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM mail_outbox WHERE recipient = $1 AND kind = 'reset_password'",
        "erika@verein.example",
    )
    .await;
    assert_eq!(mails, 3, "no fourth mail in the hour");

    // Seven more addresses fill the address's ten requests an hour.
    for i in 0..7 {
        let email = format!("other{i}@verein.example");
        assert_eq!(request_reset(&browser, &email).await.status(), 200);
    }
    let refused = request_reset(&browser, "new@verein.example").await;
    assert_eq!(refused.status(), 429);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Minuten erneut"), "{page}");
}

#[tokio::test]
async fn invitations_are_limited_per_person() {
    let app = spawn_app_with(&[("ALLMENDE_LIMITS_INVITATIONS_PER_PERSON_HOUR", "2")]).await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, org_id) = app.organisation(&erika, "Verein A").await;
    for i in 0..2 {
        let invited = erika
            .post(
                &format!("/organisations/{slug}/invitations"),
                &[
                    ("email", &format!("p{i}@verein.example")),
                    ("role", "member"),
                ],
            )
            .await;
        assert_eq!(invited.status(), 303);
    }
    let refused = erika
        .post(
            &format!("/organisations/{slug}/invitations"),
            &[("email", "p2@verein.example"), ("role", "member")],
        )
        .await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let invitations = count(
        &app,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM invitations WHERE organisation_id = $1",
        &org_id,
    )
    .await;
    assert_eq!(invitations, 2);
    assert!(
        app.last_mail("p2@verein.example", "invitation")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn next_after_login_is_only_a_local_path_without_control_characters() {
    let app = spawn_app().await;
    let email = "erika@verein.example";
    app.person("Erika", email, &[]).await;
    let browser = app.browser();

    let page = browser.page("/login?next=%2F%09%2Fevil.example").await;
    assert!(page.contains("name=\"next\""), "the form carries next on");
    for (next, expected) in [
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\r\nSet-Cookie: a=b", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/organisations?x=1", "/organisations?x=1"),
    ] {
        let response = browser
            .post(
                "/login",
                &[("email", email), ("password", PASSWORD), ("next", next)],
            )
            .await;
        assert_eq!(response.status(), 303, "{next:?}");
        assert_eq!(location(&response), expected, "{next:?}");
    }
}

/// The path of every reset link mailed to `email` so far, oldest first.
async fn reset_links(app: &TestApp, email: &str) -> Vec<String> {
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT body_text FROM mail_outbox WHERE recipient = $1 AND kind = 'reset_password'
         ORDER BY created_at, id",
    )
    .bind(email)
    .fetch_all(&mut *app.conn().await)
    .await
    .unwrap();
    texts
        .iter()
        .map(|text| {
            let start = text.find("/password-reset/").unwrap();
            let rest = &text[start..];
            rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_reset_link_dies_when_one_is_used_or_the_password_changes() {
    let app = spawn_app().await;
    let email = "erika@verein.example";
    app.person("Erika", email, &[]).await;
    let visitor = app.browser();
    request_reset(&visitor, email).await;
    request_reset(&visitor, email).await;
    let links = reset_links(&app, email).await;
    assert_eq!(links.len(), 2);

    let new_password = "ein ganz neues passwort";
    let used = visitor.post(&links[1], &[("password", new_password)]).await;
    assert_eq!(used.status(), 303);
    assert_eq!(
        visitor.get(&links[0]).await.status(),
        410,
        "the older link died"
    );
    let late = visitor
        .post(&links[0], &[("password", "noch ein anderes passwort")])
        .await;
    assert_eq!(late.status(), 410);

    // A link sent before a password change dies with the change.
    request_reset(&visitor, email).await;
    let links = reset_links(&app, email).await;
    let open = links.last().unwrap().clone();
    assert_eq!(visitor.get(&open).await.status(), 200);
    let erika = app.browser();
    assert_eq!(erika.log_in(email, new_password).await.status(), 303);
    let changed = erika
        .post(
            "/account/password",
            &[
                ("current_password", new_password),
                ("new_password", "das passwort nach der änderung"),
            ],
        )
        .await;
    assert_eq!(changed.status(), 303);
    assert_eq!(visitor.get(&open).await.status(), 410);
    let late = visitor
        .post(&open, &[("password", "das passwort des angreifers")])
        .await;
    assert_eq!(late.status(), 410);
    assert_eq!(
        app.browser()
            .log_in(email, "das passwort nach der änderung")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn a_csrf_token_in_the_query_string_is_refused() {
    let app = spawn_app().await;
    let (_, browser) = app.person("Erika", "erika@verein.example", &[]).await;
    let token = browser.csrf().await;

    let fields = [
        ("legal_name", "Per URL e. V."),
        ("kind", "association"),
        ("street", "Markt 1"),
        ("postcode", "04109"),
        ("city", "Leipzig"),
        ("country", "DE"),
        ("representative", "Der Vorstand"),
        ("contact_name", "Erika Mustermann"),
        ("contact_email", "kontakt@verein.example"),
        ("website", ""),
        ("leitweg_id", ""),
    ];
    let response = browser
        .post_without_csrf(&format!("/organisations?csrf_token={token}"), &fields)
        .await;
    assert_eq!(response.status(), 403);
    let created = count(
        &app,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM organisations WHERE legal_name = $1",
        "Per URL e. V.",
    )
    .await;
    assert_eq!(created, 0, "nothing changed");

    // An upload with the token in the URL only is refused too; in the form it is fine.
    let upload = |with_field: bool| {
        let mut form = reqwest::multipart::Form::new();
        if with_field {
            form = form.text("csrf_token", token.clone());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(b"name: x\n".to_vec()).file_name("publiccode.yml"),
        );
        browser
            .client
            .post(browser.url(&format!("/projects/import?csrf_token={token}")))
            .multipart(form)
            .send()
    };
    assert_eq!(upload(false).await.unwrap().status(), 403);
    assert_ne!(upload(true).await.unwrap().status(), 403);

    // The header still works (for scripts), and so does the form field.
    let response = browser
        .client
        .post(browser.url("/logout"))
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}

#[tokio::test]
async fn line_breaks_in_stored_names_never_reach_mail_headers_or_start_a_line() {
    let app = spawn_app().await;
    let (erika_id, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, org_id) = app.organisation(&erika, "Verein A").await;
    // Written straight into the database, as an older version or an import could have.
    sqlx::query("UPDATE organisations SET legal_name = $1 WHERE id = $2")
        .bind("Verein A\r\n\r\nPlease log in at http://evil.example\r\nBcc: eve@evil.example")
        .bind(&org_id)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    sqlx::query("UPDATE people SET name = $1 WHERE id = $2")
        .bind("Erika\n\nYour password expires today: http://evil.example")
        .bind(&erika_id)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    let invited = erika
        .post(
            &format!("/organisations/{slug}/invitations"),
            &[("email", "max@verein.example"), ("role", "member")],
        )
        .await;
    assert_eq!(invited.status(), 303);
    let (subject, text) = app
        .last_mail("max@verein.example", "invitation")
        .await
        .unwrap();
    assert!(
        !subject.chars().any(char::is_control),
        "no line break in the subject: {subject:?}"
    );
    for line in text.lines() {
        assert!(
            !line.starts_with("Please log in")
                && !line.starts_with("Bcc:")
                && !line.starts_with("Your password"),
            "a line of its own: {line:?}\n{text}"
        );
    }
    assert!(
        text.contains("Verein A Please log in at http://evil.example"),
        "{text}"
    );

    // An outbox row with a line break in its subject (written by hand or an old version) is
    // sent without it: no header can be added.
    sqlx::query(
        "INSERT INTO mail_outbox (id, recipient, locale, kind, subject, body_text, body_html,
                                  status, attempts, next_attempt_at, created_at)
         VALUES ('old-row', 'max@verein.example', 'de', 'test', $1, 'Text', '<p>Text</p>',
                 'pending', 0, 0, 0)",
    )
    .bind("Hallo\r\nBcc: eve@evil.example\r\n\r\nInjected body")
    .execute(&mut *app.conn().await)
    .await
    .unwrap();
    sqlx::query("UPDATE mail_outbox SET status = 'sent' WHERE id <> 'old-row'")
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = vec![(
        "ALLMENDE_DATA_DIR".to_owned(),
        dir.path().display().to_string(),
    )];
    let config = Config::load_from(None, &env, &allmende::config::Overrides::default()).unwrap();
    let mailer = allmende::mail::Mailer::from_config(&config).unwrap();
    let report = allmende::mail::deliver_due(&app.db, &mailer, allmende::db::now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    let file = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "eml"))
        .unwrap();
    let raw = std::fs::read_to_string(&file).unwrap();
    let headers = &raw[..raw.find("\r\n\r\n").unwrap_or(raw.len())];
    assert!(
        !headers.to_ascii_lowercase().contains("\nbcc:"),
        "{headers}"
    );
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    assert_eq!(
        message.subject().unwrap(),
        "Hallo Bcc: eve@evil.example Injected body"
    );
    assert!(message.bcc().is_none());
}

#[tokio::test]
async fn a_stolen_session_cannot_guess_the_current_password_without_limit() {
    let app = spawn_app().await;
    let email = "erika@verein.example";
    let (_, thief) = app.person("Erika", email, &[]).await;
    let change = |current: &'static str| {
        let thief = &thief;
        async move {
            thief
                .post(
                    "/account/password",
                    &[
                        ("current_password", current),
                        ("new_password", "das passwort des angreifers"),
                    ],
                )
                .await
                .status()
                .as_u16()
        }
    };
    for _ in 0..5 {
        assert_eq!(change("geraten, aber falsch").await, 422);
    }
    assert_eq!(
        change(PASSWORD).await,
        429,
        "the guesses count like failed logins"
    );
    assert_eq!(
        app.browser()
            .log_in(email, "das passwort des angreifers")
            .await
            .status(),
        429,
        "the account is locked for the window, and the password was not changed"
    );
    sqlx::query("UPDATE login_attempts SET at = at - 16 * 60 * 1000")
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(app.browser().log_in(email, PASSWORD).await.status(), 303);
}
