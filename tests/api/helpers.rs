//! The test harness: `spawn_app()` starts the real server on 127.0.0.1:0 with a fresh database
//! and returns a cookie-keeping client for it.

use std::sync::OnceLock;

use allmende::config::{Config, Overrides};
use allmende::db::Db;
use allmende::ledger::{self, AccountId, AccountKind, Actor, NewTransaction, TxKind};
use allmende::money::Money;
use sqlx::Connection;

pub struct TestApp {
    pub address: String,
    /// The server's clock: it stands still at the test's start until a test moves it.
    pub clock: std::sync::Arc<allmende::jobs::ManualClock>,
    pub client: reqwest::Client,
    pub db: Db,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pg_database: Option<(String, String)>,
    /// The database the server used: `allmende verify` runs on it when the test ends.
    database_url: String,
    /// Off only in tests that break the books on purpose to see `verify` catch it.
    verify_at_end: std::sync::atomic::AtomicBool,
    _dir: tempfile::TempDir,
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("ALLMENDE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
}

/// A fresh, empty database: a file in `dir` for SQLite, or a new database on the PostgreSQL
/// server (returned as `(admin url, name)` so it can be dropped).
pub async fn fresh_database(dir: &std::path::Path) -> (String, Option<(String, String)>) {
    match postgres_url() {
        None => (format!("sqlite://{}/allmende.db", dir.display()), None),
        Some(admin_url) => {
            allmende::db::install_drivers();
            let name = format!("allmende_t_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::AnyConnection::connect(&admin_url)
                .await
                .expect("connect to ALLMENDE_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create test database");
            admin.close().await.ok();
            let mut url = url::Url::parse(&admin_url).expect("postgres url");
            url.set_path(&format!("/{name}"));
            (url.to_string(), Some((admin_url, name)))
        }
    }
}

pub fn drop_database(admin_url: String, name: String) {
    // Drop runs outside any runtime (or inside a finished one): use a small one of our own.
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            if let Ok(mut admin) = sqlx::AnyConnection::connect(&admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
            }
        });
    })
    .join();
}

pub fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,sqlx=warn")
                .with_test_writer()
                .try_init();
        }
    });
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// As [`spawn_app`], with more settings (e.g. Stripe keys pointing at a fake Stripe).
pub async fn spawn_app_with(settings: &[(&str, &str)]) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg_database) = fresh_database(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let env = vec![
        (
            "ALLMENDE_DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        // Links in mails point at this test server.
        ("ALLMENDE_BASE_URL".to_owned(), address.clone()),
    ];
    let mut env = env;
    env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::load_from(
        None,
        &env,
        &Overrides {
            database_url: Some(database_url.clone()),
            bind: Some("127.0.0.1:0".into()),
        },
    )
    .expect("test config");
    let db = Db::connect_with(&database_url, 20).await.expect("connect");
    db.migrate().await.expect("migrate");

    let clock = allmende::jobs::ManualClock::at(allmende::db::now_ms());
    let state = allmende::web::AppState::new(db.clone(), config)
        .expect("app state")
        .with_clock(clock.clone());
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = allmende::web::serve(state, listener, async {
            let _ = stopped.await;
        })
        .await;
    });
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        address,
        clock,
        client,
        db,
        shutdown: Some(shutdown),
        server: Some(server),
        pg_database,
        database_url,
        verify_at_end: std::sync::atomic::AtomicBool::new(true),
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn conn(&self) -> sqlx::pool::PoolConnection<sqlx::Any> {
        self.db.pool().acquire().await.expect("connection")
    }

    /// Runs `allmende verify`'s checks and fails the test, listing them, on any violation.
    pub async fn assert_books_balance(&self) {
        let mut conn = self.conn().await;
        let report = allmende::verify::run(&mut conn).await.expect("verify runs");
        assert!(report.passed(), "the books do not balance:\n{report}");
    }

    /// Opens a wallet for a made-up organisation and tops it up from the bank.
    pub async fn funded_wallet(&self, organisation: &str, cents: i64) -> AccountId {
        let wallet = AccountId::wallet(organisation);
        let mut tx = self.db.begin().await.expect("begin");
        ledger::open_account(&mut tx, &wallet, AccountKind::Wallet)
            .await
            .expect("open wallet");
        if cents > 0 {
            ledger::post(
                &mut tx,
                NewTransaction::transfer(
                    // A key per top-up: a wallet may be topped up more than once.
                    format!("test:top-up:{organisation}:{}", allmende::db::new_id()),
                    TxKind::TopUp,
                    "top-up",
                    Actor::system(),
                    AccountId::external_bank(),
                    wallet.clone(),
                    Money::from_cents(cents),
                )
                .expect("transfer"),
            )
            .await
            .expect("top up");
        }
        tx.commit().await.expect("commit");
        wallet
    }

    pub async fn balance(&self, account: &AccountId) -> i64 {
        let mut conn = self.conn().await;
        ledger::balance(&mut conn, account)
            .await
            .expect("balance")
            .cents()
    }
}

impl TestApp {
    /// For a test that tampers with the books on purpose: `verify` is not run at its end.
    pub fn books_broken_on_purpose(&self) {
        self.verify_at_end
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `allmende verify` on a database, in a runtime of its own (it runs from `Drop`, outside the
/// test's runtime or inside a finished one). `None` when the books balance.
fn verify_report(database_url: &str) -> Option<String> {
    let url = database_url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime for verify");
        runtime.block_on(async move {
            let db = Db::connect_with(&url, 1).await.expect("connect for verify");
            let mut conn = db.pool().acquire().await.expect("connection for verify");
            let report = allmende::verify::run(&mut conn).await.expect("verify runs");
            drop(conn);
            db.pool().close().await;
            (!report.passed()).then(|| report.to_string())
        })
    })
    .join()
    .expect("verify thread")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        // Every test ends with `allmende verify` on its books: no scenario may leave them wrong
        // unnoticed. (Skipped when the test already failed, so its own message stays first.)
        let broken = if self
            .verify_at_end
            .load(std::sync::atomic::Ordering::Relaxed)
            && !std::thread::panicking()
        {
            verify_report(&self.database_url)
        } else {
            None
        };
        if let Some((admin_url, name)) = self.pg_database.take() {
            drop_database(admin_url, name);
        }
        if let Some(report) = broken {
            panic!("the books do not balance at the end of the test:\n{report}");
        }
    }
}

/// The password of every account the tests make.
pub const PASSWORD: &str = "correct horse battery staple";

/// One person's browser: its own cookies, and forms sent with the CSRF token of its session.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn page(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("page text")
    }

    /// The CSRF token of this browser's session (a page with a form starts one if needed).
    pub async fn csrf(&self) -> String {
        let page = self.page("/login").await;
        let token = csrf_in(&page).or(csrf_in(&self.page("/account").await));
        token.expect("a CSRF token on the login or account page")
    }

    /// Sends a form as the browser would: with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf().await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.client
            .post(self.url(path))
            .form(&form)
            .send()
            .await
            .expect("POST")
    }

    /// Sends a form without any CSRF token (what a forged cross-site form does).
    pub async fn post_without_csrf(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("POST")
    }

    pub async fn log_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/login", &[("email", email), ("password", password)])
            .await
    }
}

pub fn csrf_in(page: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned()).filter(|t| !t.is_empty())
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl TestApp {
    pub fn browser(&self) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: self.address.clone(),
        }
    }

    /// A verified person with the given platform roles (board, treasurer, admin), logged in.
    pub async fn person(&self, name: &str, email: &str, roles: &[&str]) -> (String, Browser) {
        let hash = allmende::people::password::hash(PASSWORD)
            .await
            .expect("hash");
        let id = allmende::db::new_id();
        let mut conn = self.conn().await;
        sqlx::query(
            "INSERT INTO people (id, name, email, password_hash, locale, email_verified_at,
                                 password_changed_at, created_at)
             VALUES ($1, $2, $3, $4, 'de', 1, 1, 1)",
        )
        .bind(&id)
        .bind(name)
        .bind(email)
        .bind(&hash)
        .execute(&mut *conn)
        .await
        .expect("insert person");
        for role in roles {
            sqlx::query(
                "INSERT INTO platform_roles (person_id, role, granted_by, granted_at) VALUES ($1, $2, 'cli', 1)",
            )
            .bind(&id)
            .bind(*role)
            .execute(&mut *conn)
            .await
            .expect("grant role");
        }
        drop(conn);
        let browser = self.browser();
        let response = browser.log_in(email, PASSWORD).await;
        assert_eq!(response.status(), 303, "log in as {email}");
        (id, browser)
    }

    /// An organisation created through the form by `admin`; returns its slug and id.
    pub async fn organisation(&self, admin: &Browser, legal_name: &str) -> (String, String) {
        let response = admin
            .post(
                "/organisations",
                &[
                    ("legal_name", legal_name),
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
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "create {legal_name}");
        let slug = location(&response)
            .trim_start_matches("/organisations/")
            .to_owned();
        let id: String = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
            .bind(&slug)
            .fetch_one(&mut *self.conn().await)
            .await
            .expect("organisation id");
        (slug, id)
    }

    /// The newest mail of a kind to an address, as (subject, plain text).
    pub async fn last_mail(&self, to: &str, kind: &str) -> Option<(String, String)> {
        sqlx::query_as::<_, (String, String)>(
            "SELECT subject, body_text FROM mail_outbox WHERE recipient = $1 AND kind = $2
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(to)
        .bind(kind)
        .fetch_optional(&mut *self.conn().await)
        .await
        .expect("outbox")
    }

    /// The path of the first link to this site in the newest mail of a kind.
    pub async fn link_in_mail(&self, to: &str, kind: &str) -> String {
        let (_, text) = self
            .last_mail(to, kind)
            .await
            .unwrap_or_else(|| panic!("no {kind} mail to {to}"));
        let start = text
            .find(&self.address)
            .unwrap_or_else(|| panic!("no link in {text}"));
        let rest = &text[start + self.address.len()..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest[..end].to_owned()
    }
}

impl TestApp {
    /// A project added through the form by `maintainer`; returns (slug, id).
    pub async fn project(&self, maintainer: &Browser, name: &str) -> (String, String) {
        let response = maintainer
            .post(
                "/projects",
                &[
                    ("name", name),
                    ("summary", "Ein Werkzeug für Vereine."),
                    ("description", ""),
                    ("repository_url", "https://codeberg.org/example/tool"),
                    ("homepage_url", ""),
                    ("licence", "EUPL-1.2"),
                    ("categories", "Verwaltung"),
                    ("languages", "Rust"),
                    ("software_version", "1.0"),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "add project {name}");
        let slug = location(&response)
            .trim_start_matches("/projects/")
            .to_owned();
        let id: String = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
            .bind(&slug)
            .fetch_one(&mut *self.conn().await)
            .await
            .expect("project id");
        (slug, id)
    }

    pub async fn proposal_state(&self, id: &str) -> String {
        sqlx::query_scalar("SELECT status FROM proposals WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *self.conn().await)
            .await
            .expect("proposal state")
    }
}
