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
    pub client: reqwest::Client,
    pub db: Db,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pg_database: Option<(String, String)>,
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
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg_database) = fresh_database(dir.path()).await;
    let env = vec![(
        "ALLMENDE_DATA_DIR".to_owned(),
        dir.path().join("data").display().to_string(),
    )];
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

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let state = allmende::web::AppState::new(db.clone(), config).expect("app state");
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
        client,
        db,
        shutdown: Some(shutdown),
        server: Some(server),
        pg_database,
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
                    format!("test:top-up:{organisation}"),
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

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some((admin_url, name)) = self.pg_database.take() {
            drop_database(admin_url, name);
        }
    }
}
