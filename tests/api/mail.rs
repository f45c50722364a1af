//! Outgoing mail: the outbox follows the caller's transaction, each mail is sent once, through a
//! real SMTP server on loopback or into the outbox folder, and failed sends are retried.

use std::sync::Arc;
use std::time::Duration;

use allmende::config::{Config, Overrides};
use allmende::db::now_ms;
use allmende::i18n::Locale;
use allmende::mail::{self, DeliveryReport, MailError, Mailer};
use mail_parser::MimeHeaders;
use sqlx::Row;

use crate::helpers::{TestApp, spawn_app};
use crate::smtp_server::SmtpServer;

fn config(env: &[(&str, &str)]) -> Config {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_from(None, &env, &Overrides::default()).unwrap()
}

fn smtp_mailer(url: &str) -> Mailer {
    Mailer::from_config(&config(&[
        ("ALLMENDE_MAIL_FROM", "Allmende eG <kasse@allmende.example>"),
        ("ALLMENDE_MAIL_TRANSPORT", "smtp"),
        ("ALLMENDE_MAIL_SMTP_URL", url),
    ]))
    .unwrap()
}

fn test_mail(to: &str, locale: Locale, name: &str) -> mail::OutgoingMail {
    mail::compose(
        to,
        locale,
        "test",
        "mail.test",
        &[("name", name)],
        Some("https://allmende.example/start".into()),
    )
}

/// Enqueues in a transaction of its own and commits it.
async fn enqueue_committed(app: &TestApp, to: &str, locale: Locale) -> String {
    let mut tx = app.db.begin().await.unwrap();
    let id = mail::enqueue(&mut tx, &test_mail(to, locale, "Ada"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

struct OutboxRow {
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    sent_at: Option<i64>,
    claimed_until: Option<i64>,
}

async fn outbox_row(app: &TestApp, id: &str) -> OutboxRow {
    let row = sqlx::query(
        "SELECT status, attempts, next_attempt_at, last_error, sent_at, claimed_until
         FROM mail_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    OutboxRow {
        status: row.get("status"),
        attempts: row.get("attempts"),
        next_attempt_at: row.get("next_attempt_at"),
        last_error: row.get("last_error"),
        sent_at: row.get("sent_at"),
        claimed_until: row.get("claimed_until"),
    }
}

async fn outbox_count(app: &TestApp) -> i64 {
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM mail_outbox")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get("n")
}

fn report(sent: u64, retried: u64, failed: u64) -> DeliveryReport {
    DeliveryReport {
        sent,
        retried,
        failed,
    }
}

#[tokio::test]
async fn a_rolled_back_mail_is_never_sent_and_a_committed_one_exactly_once() {
    let app = spawn_app().await;
    let server = SmtpServer::start().await;
    let mailer = smtp_mailer(&server.url());

    let mut tx = app.db.begin().await.unwrap();
    mail::enqueue(&mut tx, &test_mail("rolled@example.org", Locale::De, "X"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let id = enqueue_committed(&app, "committed@example.org", Locale::De).await;
    assert_eq!(
        outbox_count(&app).await,
        1,
        "the rolled back mail left no row"
    );

    let first = mail::deliver_due(&app.db, &mailer, now_ms(), 10)
        .await
        .unwrap();
    let second = mail::deliver_due(&app.db, &mailer, now_ms() + 3_600_000, 10)
        .await
        .unwrap();
    assert_eq!(first, report(1, 0, 0));
    assert_eq!(second, report(0, 0, 0), "a sent mail is not sent again");

    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["committed@example.org"]);
    let row = outbox_row(&app, &id).await;
    assert_eq!(row.status, "sent");
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_some());
    assert_eq!(row.claimed_until, None);
    assert_eq!(row.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_send_each_mail_once() {
    let app = spawn_app().await;
    let server = SmtpServer::start().await;
    let mailer = Arc::new(smtp_mailer(&server.url()));
    let recipients: Vec<String> = (0..6).map(|i| format!("member{i}@example.org")).collect();
    for to in &recipients {
        enqueue_committed(&app, to, Locale::En).await;
    }

    let now = now_ms();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let db = app.db.clone();
            let mailer = mailer.clone();
            tokio::spawn(async move { mail::deliver_due(&db, &mailer, now, 10).await })
        })
        .collect();
    let mut sent = 0;
    for run in runs {
        let report = run.await.unwrap().unwrap();
        assert_eq!((report.retried, report.failed), (0, 0));
        sent += report.sent;
    }
    assert_eq!(sent, 6, "between them, the two runs sent every mail once");

    let mut arrived: Vec<String> = server
        .received()
        .into_iter()
        .flat_map(|r| r.rcpt_to)
        .collect();
    arrived.sort();
    assert_eq!(arrived, recipients, "each mail arrived exactly once");
}

#[tokio::test]
async fn mail_arrives_over_smtp_in_the_recipients_language_as_text_and_html() {
    let app = spawn_app().await;
    let server = SmtpServer::start().await;
    let mailer = smtp_mailer(&server.url());
    let german = enqueue_committed(&app, "ada@example.org", Locale::De).await;
    let english = enqueue_committed(&app, "grace@example.org", Locale::En).await;

    let done = mail::deliver_due(&app.db, &mailer, now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(done, report(2, 0, 0));

    let received = server.received();
    assert_eq!(received.len(), 2);
    for mail in &received {
        assert_eq!(mail.mail_from, "kasse@allmende.example");
    }
    let to = |address: &str| {
        received
            .iter()
            .find(|r| r.rcpt_to == [address])
            .unwrap_or_else(|| panic!("nothing arrived for {address}"))
    };

    // German: the subject has an umlaut, so it travels RFC 2047-encoded.
    let raw = to("ada@example.org");
    let subject = raw
        .raw()
        .lines()
        .find(|line| line.starts_with("Subject:"))
        .unwrap()
        .to_owned();
    assert!(
        subject.is_ascii() && subject.to_ascii_lowercase().contains("=?utf-8?"),
        "{subject}"
    );
    let message = raw.parsed();
    assert_eq!(message.subject(), Some("Testnachricht für Ada"));
    assert_eq!(
        message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("ada@example.org")
    );
    assert_eq!(
        message.message_id(),
        Some(format!("{german}@allmende.example").as_str()),
        "the outbox id is the Message-ID"
    );
    let (text, html) = text_and_html(&message);
    assert!(text.contains("Guten Tag Ada,"), "{text}");
    assert!(
        text.contains("Allmende öffnen:\nhttps://allmende.example/start"),
        "{text}"
    );
    assert!(text.contains("Diese Nachricht wurde automatisch von Allmende versandt."));
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    assert!(html.contains("Guten Tag Ada,"), "{html}");
    assert!(
        html.replace("&#x2f;", "/")
            .contains("href=\"https://allmende.example/start\""),
        "{html}"
    );
    assert!(!text.contains("Hello") && !html.contains("Hello"));

    let message = to("grace@example.org").parsed();
    assert_eq!(message.subject(), Some("Test message for Ada"));
    assert_eq!(
        message.message_id(),
        Some(format!("{english}@allmende.example").as_str())
    );
    let (text, html) = text_and_html(&message);
    assert!(text.contains("Hello Ada,"), "{text}");
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("Open Allmende"), "{html}");
    assert!(!text.contains("Guten Tag") && !html.contains("Guten Tag"));
}

/// The message is multipart/alternative with one text/plain and one text/html part (UTF-8);
/// returns their decoded texts.
fn text_and_html(message: &mail_parser::Message<'_>) -> (String, String) {
    let root = message.content_type().unwrap();
    assert_eq!(root.ctype(), "multipart");
    assert_eq!(root.subtype(), Some("alternative"));
    let mut text = None;
    let mut html = None;
    for part in &message.parts {
        let Some(kind) = part.content_type() else {
            continue;
        };
        if kind.ctype() != "text" {
            continue;
        }
        assert_eq!(
            kind.attribute("charset").map(str::to_ascii_lowercase),
            Some("utf-8".to_owned())
        );
        // Mail travels with CRLF line ends.
        let contents = part.text_contents().unwrap().replace("\r\n", "\n");
        match kind.subtype() {
            Some("plain") => assert!(text.replace(contents).is_none(), "one text part"),
            Some("html") => assert!(html.replace(contents).is_none(), "one HTML part"),
            other => panic!("unexpected text part {other:?}"),
        }
    }
    (
        text.expect("a text/plain part"),
        html.expect("a text/html part"),
    )
}

#[tokio::test]
async fn a_refusing_server_leaves_the_mail_pending_and_a_later_run_sends_it() {
    let app = spawn_app().await;
    let server = SmtpServer::start().await;
    let mailer = smtp_mailer(&server.url());
    let id = enqueue_committed(&app, "ada@example.org", Locale::De).await;

    server.refuse(true);
    let now = now_ms();
    let done = mail::deliver_due(&app.db, &mailer, now, 10).await.unwrap();
    assert_eq!(done, report(0, 1, 0));
    let row = outbox_row(&app, &id).await;
    assert_eq!(row.status, "pending");
    assert_eq!(row.attempts, 1);
    assert!(
        row.next_attempt_at >= now + 60_000,
        "tried again in a minute at the earliest"
    );
    let error = row.last_error.unwrap();
    assert!(error.contains("451"), "{error}");
    assert_eq!(row.claimed_until, None);
    assert!(server.received().is_empty());

    server.refuse(false);
    let early = mail::deliver_due(&app.db, &mailer, now + 1_000, 10)
        .await
        .unwrap();
    assert_eq!(early, report(0, 0, 0), "not due yet");
    let later = mail::deliver_due(&app.db, &mailer, row.next_attempt_at, 10)
        .await
        .unwrap();
    assert_eq!(later, report(1, 0, 0));
    assert_eq!(server.received().len(), 1);
    let row = outbox_row(&app, &id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 2));
    assert_eq!(row.last_error, None);
}

#[tokio::test]
async fn after_eight_failed_sends_a_mail_is_failed_and_kept() {
    let app = spawn_app().await;
    // A port on which nothing listens: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer = smtp_mailer(&format!("smtp://kasse:hunter2secret@127.0.0.1:{port}"));
    assert!(!format!("{mailer:?}").contains("hunter2secret"));
    let id = enqueue_committed(&app, "ada@example.org", Locale::En).await;

    let mut now = now_ms();
    for attempt in 1..=8 {
        let done = mail::deliver_due(&app.db, &mailer, now, 10).await.unwrap();
        let row = outbox_row(&app, &id).await;
        assert_eq!(row.attempts, attempt);
        let error = row.last_error.unwrap();
        assert!(!error.contains("hunter2secret"), "{error}");
        if attempt < 8 {
            assert_eq!(done, report(0, 1, 0), "attempt {attempt}");
            assert_eq!(row.status, "pending");
            // The pause counts from when the send failed, a moment after `now`.
            let pause = row.next_attempt_at - now - mail::retry_delay_ms(attempt);
            assert!((0..10_000).contains(&pause), "attempt {attempt}: {pause}");
            now = row.next_attempt_at;
        } else {
            assert_eq!(done, report(0, 0, 1), "attempt {attempt}");
            assert_eq!(row.status, "failed");
        }
    }

    let much_later = mail::deliver_due(&app.db, &mailer, now + 30 * 86_400_000, 10)
        .await
        .unwrap();
    assert_eq!(
        much_later,
        report(0, 0, 0),
        "a failed mail is not tried again"
    );
    assert_eq!(outbox_count(&app).await, 1, "and it is kept");
}

#[tokio::test]
async fn the_folder_transport_writes_one_eml_file_per_mail() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = config(&[("ALLMENDE_DATA_DIR", &data_dir.display().to_string())]);
    let mailer = Mailer::from_config(&config).unwrap();
    let outbox = data_dir.join("outbox");
    assert!(outbox.is_dir(), "the mailer creates the folder");

    enqueue_committed(&app, "ada@example.org", Locale::De).await;
    enqueue_committed(&app, "grace@example.org", Locale::En).await;
    let done = mail::deliver_due(&app.db, &mailer, now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(done, report(2, 0, 0));

    let files = eml_files(&outbox);
    assert_eq!(files.len(), 2, "{files:?}");
    let mut subjects: Vec<String> = files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap();
            let message = mail_parser::MessageParser::default().parse(&bytes).unwrap();
            message.subject().unwrap().to_owned()
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["Test message for Ada", "Testnachricht für Ada"]);
}

fn eml_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .collect()
}

#[tokio::test]
async fn the_delivery_loop_sends_what_is_committed_and_stops_on_shutdown() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&[("ALLMENDE_DATA_DIR", &dir.path().display().to_string())]);
    let mailer = Mailer::from_config(&config).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delivery =
        mail::spawn_delivery_loop(app.db.clone(), mailer, Duration::from_millis(50), stopped);

    enqueue_committed(&app, "ada@example.org", Locale::De).await;
    let outbox = dir.path().join("outbox");
    let mut waited = Duration::ZERO;
    while eml_files(&outbox).is_empty() {
        assert!(waited < Duration::from_secs(20), "the loop sent nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), delivery)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
    assert_eq!(eml_files(&outbox).len(), 1);
}

#[tokio::test]
async fn an_invalid_recipient_is_refused_and_nothing_is_queued() {
    let app = spawn_app().await;
    let mut tx = app.db.begin().await.unwrap();
    let error = mail::enqueue(&mut tx, &test_mail("not an address", Locale::De, "X"))
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::InvalidRecipient(_)), "{error}");
    tx.commit().await.unwrap();
    assert_eq!(outbox_count(&app).await, 0);
}
