//! Outgoing mail: texts from the catalogues, the outbox written in the caller's transaction, and
//! the loop that sends it over SMTP or into a folder, retrying until it goes through.
//!
//! A change that causes a mail calls [`enqueue`] inside its own database transaction, so the mail
//! exists exactly when the change does. [`deliver_due`] (run by [`spawn_delivery_loop`]) claims
//! due rows, sends them and records the outcome; a failed send is retried with growing pauses and
//! after [`MAX_ATTEMPTS`] kept as `failed` for operators to see. Delivery is at least once: a
//! sender that dies between the transport's "accepted" and the database's "sent" sends that mail
//! again once its claim has expired (with the same Message-ID, so clients can tell).

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{
    Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use minijinja::{Environment, UndefinedBehavior, context};
use sqlx::{AnyConnection, Row};

use crate::config::{Config, MailTransport};
use crate::db::{Db, new_id};
use crate::i18n::{self, Locale};

/// After this many failed sends a mail is marked `failed` and no longer retried.
pub const MAX_ATTEMPTS: i64 = 8;

/// How long a sender holds a claimed mail before another instance may take it over.
pub const CLAIM_MS: i64 = 60_000;

/// How many due mails one call of [`deliver_due`] takes from the delivery loop.
const BATCH: i64 = 50;

/// One SMTP command gives up after this long, and one whole send after `SEND_TIMEOUT`: well
/// inside the claim, so no other sender takes over a mail that is still being sent.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The pause before the next try, by the number of failed tries so far: 1 min, 5 min, 30 min,
/// 2 h, 12 h, then daily.
const BACKOFF_MS: [i64; 6] = [
    60_000,
    5 * 60_000,
    30 * 60_000,
    2 * 60 * 60_000,
    12 * 60 * 60_000,
    24 * 60 * 60_000,
];

/// `last_error` keeps this many characters: enough for any SMTP reply.
const MAX_ERROR_CHARS: usize = 1000;

const LAYOUT: &str = include_str!("../templates/mail/layout.html");

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("`{0}` is not a mail address")]
    InvalidRecipient(String),
    #[error("the sender `{0}` (mail.from) is not a mail address")]
    InvalidSender(String),
    #[error("the SMTP URL (mail.smtp_url) cannot be used: {0}")]
    SmtpUrl(String),
    #[error("cannot create the mail folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render the mail: {0}")]
    Render(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A mail before it is rendered: the texts in the recipient's language, split into paragraphs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: String,
    pub locale: Locale,
    /// What caused it (`verify_email`, `invitation`, …): kept in the outbox for operators.
    pub kind: &'static str,
    pub subject: String,
    pub paragraphs: Vec<String>,
    /// A button: its label and the absolute URL it leads to.
    pub action: Option<(String, String)>,
}

/// Text from elsewhere (a name, a title, reasons), made fit to stand inside a line of a mail:
/// every control character (line breaks, tabs, C0, DEL, C1) and every Unicode line or
/// paragraph separator becomes a space, and runs of spaces become one. So no name, however it
/// reached the database, can start a line (or a paragraph) of its own that reads like the
/// platform's text, nor end a header.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        // Only plain spaces are collapsed: a no-break space (as in "100,00 €") stays.
        .split(' ')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A list the platform builds (one item a line) as a mail argument: each line is put in as
/// [`one_line`], so the list keeps its lines but nothing inside an item can start a new one.
fn lines_of(text: &str) -> String {
    text.lines()
        .map(one_line)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A mail to `to` with the texts `{key_prefix}.subject`, `{key_prefix}.body` (paragraphs
/// separated by a blank line) and, when there is an `action_url`, the button label
/// `{key_prefix}.action`, all in `locale` with `{name}` placeholders filled from `args`.
/// Each argument is put in as [`one_line`]: only the catalogue's text has line breaks. An
/// argument whose name ends in `_lines` is a list the platform built, one item a line: each of
/// its lines is put in as [`one_line`].
pub fn compose(
    to: impl Into<String>,
    locale: Locale,
    kind: &'static str,
    key_prefix: &str,
    args: &[(&str, &str)],
    action_url: Option<String>,
) -> OutgoingMail {
    let cleaned: Vec<(&str, String)> = args
        .iter()
        .map(|(k, v)| {
            let value = if k.ends_with("_lines") {
                lines_of(v)
            } else {
                one_line(v)
            };
            (*k, value)
        })
        .collect();
    let args: Vec<(&str, &str)> = cleaned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let text = |suffix: &str| i18n::t_with(locale, &format!("{key_prefix}.{suffix}"), &args);
    let paragraphs = text("body")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    OutgoingMail {
        to: to.into(),
        locale,
        kind,
        subject: text("subject"),
        paragraphs,
        action: action_url.map(|url| (text("action"), url)),
    }
}

/// Puts `mail` into the outbox, rendered, in the caller's transaction: it is sent once the caller
/// commits, and never if the caller rolls back. Returns the outbox id.
pub async fn enqueue(conn: &mut AnyConnection, mail: &OutgoingMail) -> Result<String, MailError> {
    let recipient: Address = mail
        .to
        .trim()
        .parse()
        .map_err(|_| MailError::InvalidRecipient(mail.to.clone()))?;
    let rendered = render(mail)?;
    let id = new_id();
    let now = crate::db::now_ms();
    sqlx::query(
        "INSERT INTO mail_outbox (id, recipient, locale, kind, subject, body_text, body_html,
                                  status, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8)",
    )
    .bind(&id)
    .bind(recipient.to_string())
    .bind(mail.locale.as_str())
    .bind(mail.kind)
    .bind(&rendered.subject)
    .bind(&rendered.text)
    .bind(&rendered.html)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// The three things the outbox stores of a mail.
#[derive(Debug)]
struct Rendered {
    subject: String,
    text: String,
    html: String,
}

fn render(mail: &OutgoingMail) -> Result<Rendered, MailError> {
    let footer = i18n::t(mail.locale, "mail.footer");
    // A line break in a subject would end the header.
    let subject = one_line(&mail.subject);

    let mut text = mail.paragraphs.join("\n\n");
    if let Some((label, url)) = &mail.action {
        text.push_str(&format!("\n\n{label}:\n{url}"));
    }
    // "-- " on its own line: mail clients recognise the footer as a signature.
    text.push_str(&format!("\n\n-- \n{footer}\n"));

    // Lines within a paragraph stay lines in HTML too.
    let paragraphs: Vec<Vec<String>> = mail
        .paragraphs
        .iter()
        .map(|p| p.lines().map(str::to_owned).collect())
        .collect();
    let action = mail
        .action
        .as_ref()
        .map(|(label, url)| context! { label => label, url => url });
    let html = layout()?
        .get_template("mail/layout.html")
        .and_then(|template| {
            template.render(context! {
                lang => mail.locale.as_str(),
                subject => &subject,
                paragraphs => paragraphs,
                action => action,
                footer => footer,
            })
        })
        .map_err(|e| MailError::Render(e.to_string()))?;
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// The mail layout in an environment of its own (autoescaped: the name ends in `.html`).
fn layout() -> Result<&'static Environment<'static>, MailError> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template("mail/layout.html", LAYOUT)
            .map_err(|e| e.to_string())?;
        Ok(env)
    })
    .as_ref()
    .map_err(|e| MailError::Render(e.clone()))
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>),
}

/// The sender and the way out, as configured. Cheap to share by reference.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
    /// Where mail goes, for logs: the folder, or the SMTP URL without its credentials.
    shown: String,
    /// Texts that must never reach `last_error` or a log line (the SMTP password).
    secrets: Vec<String>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("transport", &self.shown)
            .finish()
    }
}

impl Mailer {
    /// The mailer for `config.mail_from` and `config.mail_transport`; creates the folder of the
    /// folder transport when missing.
    pub fn from_config(config: &Config) -> Result<Mailer, MailError> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|_| MailError::InvalidSender(config.mail_from.clone()))?;
        match &config.mail_transport {
            MailTransport::Folder(path) => {
                std::fs::create_dir_all(path).map_err(|source| MailError::Folder {
                    path: path.clone(),
                    source,
                })?;
                Ok(Mailer {
                    from,
                    transport: Transport::Folder(AsyncFileTransport::new(path)),
                    shown: format!("folder {}", path.display()),
                    secrets: Vec::new(),
                })
            }
            MailTransport::Smtp(url) => {
                let url = url.expose();
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::SmtpUrl(e.to_string()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                let (shown, secrets) = describe_smtp_url(url);
                Ok(Mailer {
                    from,
                    transport: Transport::Smtp(transport),
                    shown,
                    secrets,
                })
            }
        }
    }

    /// Hands `message` to the transport; the error text is free of credentials.
    async fn send(&self, message: Message) -> Result<(), String> {
        let send = async {
            match &self.transport {
                Transport::Smtp(smtp) => smtp
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", self.shown)),
                Transport::Folder(folder) => folder
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", self.shown)),
            }
        };
        let result = tokio::time::timeout(SEND_TIMEOUT, send)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{} did not finish within {} s",
                    self.shown,
                    SEND_TIMEOUT.as_secs()
                ))
            });
        result.map_err(|error| self.redact(&error))
    }

    fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .filter(|secret| !secret.is_empty())
            .fold(text.to_owned(), |text, secret| {
                text.replace(secret.as_str(), "[redacted]")
            })
    }
}

/// `smtp://host:port` for logs, and the password (as written and decoded) to keep out of them.
fn describe_smtp_url(raw: &str) -> (String, Vec<String>) {
    let Ok(url) = url::Url::parse(raw) else {
        return ("smtp".to_owned(), vec![raw.to_owned()]);
    };
    let shown = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let mut secrets = Vec::new();
    if let Some(password) = url.password() {
        secrets.push(password.to_owned());
        if let Ok(decoded) = percent_decode(password) {
            secrets.push(decoded);
        }
    }
    (shown, secrets)
}

fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// What one call of [`deliver_due`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u64,
    /// Failed this time, to be tried again later.
    pub retried: u64,
    /// Failed for good: marked `failed` and kept.
    pub failed: u64,
}

impl DeliveryReport {
    pub fn total(&self) -> u64 {
        self.sent + self.retried + self.failed
    }
}

/// A due mail this instance has claimed.
struct Claimed {
    id: String,
    recipient: String,
    subject: String,
    body_text: String,
    body_html: String,
    attempts: i64,
    claimed_until: i64,
}

/// Sends up to `batch` mails that are due at `now_ms` and records each outcome. Safe to run on
/// several instances (and twice at once on one): each mail is claimed by one sender first.
/// Returns an error only when the database fails; a failed send is recorded and counted.
pub async fn deliver_due(
    db: &Db,
    mailer: &Mailer,
    now_ms: i64,
    batch: i64,
) -> Result<DeliveryReport, MailError> {
    // The clock moves on while we send; claims and retry times follow it.
    let started = Instant::now();
    let now = || now_ms.saturating_add(i64::try_from(started.elapsed().as_millis()).unwrap_or(0));

    let due: Vec<String> = sqlx::query(
        "SELECT id FROM mail_outbox
         WHERE status = 'pending' AND next_attempt_at <= $1
           AND (claimed_until IS NULL OR claimed_until < $1)
         ORDER BY next_attempt_at, id
         LIMIT $2",
    )
    .bind(now_ms)
    .bind(batch.max(0))
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| row.try_get("id"))
    .collect::<Result<_, _>>()?;

    let mut report = DeliveryReport::default();
    for id in due {
        let Some(mail) = claim(db, &id, now()).await? else {
            continue; // another sender has it, or has sent it already
        };
        let outcome = match build_message(mailer, &mail) {
            Ok(message) => match mailer.send(message).await {
                Ok(()) => Outcome::Sent,
                Err(error) => Outcome::Retry(error),
            },
            // Nothing about the mail will change, so trying again cannot help.
            Err(error) => Outcome::Permanent(error),
        };
        match record(db, &mail, outcome, now()).await? {
            Recorded::Sent => report.sent += 1,
            Recorded::Retried => report.retried += 1,
            Recorded::Failed => report.failed += 1,
        }
    }
    Ok(report)
}

/// Takes `id` for this sender until `now + CLAIM_MS`, if it is still pending, due and unclaimed.
/// The conditional UPDATE is the lock: on both databases only one sender sees a row change.
async fn claim(db: &Db, id: &str, now: i64) -> Result<Option<Claimed>, MailError> {
    let claimed_until = now + CLAIM_MS;
    let mut tx = db.begin().await?;
    let taken = sqlx::query(
        "UPDATE mail_outbox SET claimed_until = $2
         WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $3
           AND (claimed_until IS NULL OR claimed_until < $3)",
    )
    .bind(id)
    .bind(claimed_until)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if taken != 1 {
        tx.rollback().await?;
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT recipient, subject, body_text, body_html, attempts FROM mail_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Claimed {
        id: id.to_owned(),
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body_text: row.try_get("body_text")?,
        body_html: row.try_get("body_html")?,
        attempts: row.try_get("attempts")?,
        claimed_until,
    }))
}

/// A multipart/alternative message (text and HTML, UTF-8) whose Message-ID is the outbox id, so
/// a mail sent twice is recognisably the same mail.
fn build_message(mailer: &Mailer, mail: &Claimed) -> Result<Message, String> {
    let to: Address = mail
        .recipient
        .parse()
        .map_err(|e| format!("the recipient is not a mail address: {e}"))?;
    // RFC 3834: an automatic mail; auto-responders should not answer it.
    let auto_submitted = HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-generated".to_owned(),
    );
    // Checked again as the message is built, whatever the outbox row holds (rows written by
    // older versions, or by hand): a header never carries a line break or a control character.
    Message::builder()
        .from(mailer.from.clone())
        .to(Mailbox::new(None, to))
        .subject(one_line(&mail.subject))
        .message_id(Some(format!(
            "<{}@{}>",
            mail.id,
            mailer.from.email.domain()
        )))
        .raw_header(auto_submitted)
        .multipart(MultiPart::alternative_plain_html(
            mail.body_text.clone(),
            mail.body_html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}

enum Outcome {
    Sent,
    Retry(String),
    Permanent(String),
}

enum Recorded {
    Sent,
    Retried,
    Failed,
}

/// The pause after `attempts` failed tries (1 → one minute).
pub fn retry_delay_ms(attempts: i64) -> i64 {
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(0);
    BACKOFF_MS
        .get(index)
        .or(BACKOFF_MS.last())
        .copied()
        .unwrap_or(60_000)
}

async fn record(
    db: &Db,
    mail: &Claimed,
    outcome: Outcome,
    now: i64,
) -> Result<Recorded, MailError> {
    let attempts = mail.attempts + 1;
    let mut tx = db.begin().await?;
    let (error, permanent) = match outcome {
        Outcome::Sent => {
            // Sent is sent, even if our claim ran out meanwhile.
            let changed = sqlx::query(
                "UPDATE mail_outbox
                 SET status = 'sent', sent_at = $2, attempts = $3, last_error = NULL,
                     claimed_until = NULL
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(&mail.id)
            .bind(now)
            .bind(attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            if changed != 1 {
                tracing::warn!(mail = %mail.id, "sent a mail whose outbox row changed meanwhile");
            }
            return Ok(Recorded::Sent);
        }
        Outcome::Retry(error) => (error, false),
        Outcome::Permanent(error) => (error, true),
    };
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let (status, next_attempt_at, recorded) = if permanent || attempts >= MAX_ATTEMPTS {
        // For a failed mail, next_attempt_at records when the last try was.
        ("failed", now, Recorded::Failed)
    } else {
        ("pending", now + retry_delay_ms(attempts), Recorded::Retried)
    };
    // Only while our claim holds: a sender that took over after it ran out owns the row now.
    let changed = sqlx::query(
        "UPDATE mail_outbox
         SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5,
             claimed_until = NULL
         WHERE id = $1 AND status = 'pending' AND claimed_until = $6",
    )
    .bind(&mail.id)
    .bind(status)
    .bind(attempts)
    .bind(&error)
    .bind(next_attempt_at)
    .bind(mail.claimed_until)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if changed != 1 {
        tracing::warn!(mail = %mail.id, "a failed send was not recorded: another sender took the mail over");
    } else if permanent || attempts >= MAX_ATTEMPTS {
        tracing::error!(mail = %mail.id, attempts, %error, "mail failed for good; kept in the outbox as failed");
    } else {
        tracing::warn!(mail = %mail.id, attempts, %error, retry_in_ms = next_attempt_at - now, "mail not sent; will try again");
    }
    Ok(recorded)
}

/// Runs [`deliver_due`] every `every` until `shutdown` turns true (or its sender is gone).
/// Errors are logged and the loop goes on; a full batch is followed by the next one at once.
pub fn spawn_delivery_loop(
    db: Db,
    mailer: Mailer,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(transport = %mailer.shown, "mail delivery started");
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            let mut more = false;
            match deliver_due(&db, &mailer, crate::db::now_ms(), BATCH).await {
                Ok(report) => {
                    if report.total() > 0 {
                        tracing::info!(
                            sent = report.sent,
                            retried = report.retried,
                            failed = report.failed,
                            "mail delivery"
                        );
                    }
                    more = i64::try_from(report.total()).is_ok_and(|n| n >= BATCH);
                }
                Err(error) => tracing::error!(%error, "mail delivery failed; trying again later"),
            }
            if more {
                continue;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = tokio::time::sleep(every) => {}
            }
        }
        tracing::info!("mail delivery stopped");
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn compose_splits_paragraphs_and_fills_arguments() {
        let mail = compose(
            "ada@example.org",
            Locale::De,
            "test",
            "mail.test",
            &[("name", "Ada")],
            None,
        );
        assert_eq!(mail.to, "ada@example.org");
        assert_eq!(mail.subject, "Testnachricht für Ada");
        assert_eq!(mail.paragraphs.len(), 3, "{:?}", mail.paragraphs);
        assert_eq!(mail.paragraphs[0], "Guten Tag Ada,");
        assert!(mail.paragraphs[1].starts_with("dies ist eine Testnachricht"));
        assert_eq!(mail.paragraphs[2], "Mit freundlichen Grüßen\nIhre Allmende");
        assert!(mail.paragraphs.iter().all(|p| !p.contains("{name}")));
        assert_eq!(mail.action, None, "no URL, no button");

        let mail = compose(
            "ada@example.org",
            Locale::En,
            "test",
            "mail.test",
            &[("name", "Ada")],
            Some("https://allmende.example/".into()),
        );
        assert_eq!(mail.subject, "Test message for Ada");
        assert_eq!(mail.paragraphs[0], "Hello Ada,");
        assert_eq!(
            mail.action,
            Some((
                "Open Allmende".to_owned(),
                "https://allmende.example/".to_owned()
            ))
        );
    }

    #[test]
    fn both_parts_carry_the_texts_and_html_is_escaped() {
        let mut mail = compose(
            "ada@example.org",
            Locale::En,
            "test",
            "mail.test",
            &[("name", "<Ada & Bob>")],
            Some("https://allmende.example/?a=1&b=2".into()),
        );
        mail.subject.push_str("\r\nBcc: eve@example.org");
        let rendered = render(&mail).unwrap();
        assert!(!rendered.subject.contains('\n'), "{}", rendered.subject);

        assert!(
            rendered.text.starts_with("Hello <Ada & Bob>,\n\n"),
            "{}",
            rendered.text
        );
        assert!(
            rendered
                .text
                .contains("Open Allmende:\nhttps://allmende.example/?a=1&b=2\n")
        );
        assert!(
            rendered
                .text
                .ends_with("-- \nThis message was sent automatically by Allmende.\n")
        );

        assert!(rendered.html.contains("<html lang=\"en\">"));
        assert!(
            rendered.html.contains("Hello &lt;Ada &amp; Bob&gt;,"),
            "{}",
            rendered.html
        );
        assert!(!rendered.html.contains("<Ada"));
        // minijinja also escapes `/` (as `&#x2f;`), which every HTML reader decodes.
        let html = rendered.html.replace("&#x2f;", "/");
        assert!(
            html.contains("href=\"https://allmende.example/?a=1&amp;b=2\""),
            "{html}"
        );
        assert!(rendered.html.contains("Kind regards<br>Your Allmende"));
        assert!(
            rendered
                .html
                .contains("This message was sent automatically by Allmende.")
        );
        assert!(!rendered.html.contains("http://") && !rendered.html.contains("src="));
    }

    #[test]
    fn a_platform_list_keeps_its_lines_but_no_item_starts_a_new_one() {
        let list =
            "– Zusage für „Tool\u{2028}Please pay\t“: 100,00\u{a0}€\r\n\n– Jahresbeitrag 2026";
        let text = lines_of(list);
        assert_eq!(
            text,
            "– Zusage für „Tool Please pay “: 100,00\u{a0}€\n– Jahresbeitrag 2026"
        );
        assert_eq!(one_line("100,00\u{a0}€  offen"), "100,00\u{a0}€ offen");
    }

    #[test]
    fn names_with_line_breaks_stay_inside_their_line() {
        let mail = compose(
            "ada@example.org",
            Locale::En,
            "test",
            "mail.test",
            &[(
                "name",
                "Ada\r\n\r\nPlease log in at http://evil.example\u{2028}now\t\u{0}\u{7f}\u{85}!",
            )],
            None,
        );
        assert_eq!(
            mail.subject,
            "Test message for Ada Please log in at http://evil.example now !"
        );
        assert_eq!(
            mail.paragraphs[0],
            "Hello Ada Please log in at http://evil.example now !,"
        );
        let rendered = render(&mail).unwrap();
        assert!(
            !rendered
                .text
                .lines()
                .any(|line| line.starts_with("Please log in")),
            "{}",
            rendered.text
        );
        assert_eq!(one_line(" a \r\n b\u{2029}c "), "a b c");
    }

    #[test]
    fn german_mail_has_german_footer() {
        let mail = compose("a@example.org", Locale::De, "test", "mail.test", &[], None);
        let rendered = render(&mail).unwrap();
        assert!(rendered.html.contains("<html lang=\"de\">"));
        assert!(
            rendered
                .text
                .contains("Diese Nachricht wurde automatisch von Allmende versandt.")
        );
        assert!(!rendered.html.contains("Open Allmende"));
    }

    #[test]
    fn retries_back_off_from_a_minute_to_a_day() {
        let minutes: Vec<i64> = (1..=8).map(|n| retry_delay_ms(n) / 60_000).collect();
        assert_eq!(minutes, [1, 5, 30, 120, 720, 1440, 1440, 1440]);
    }

    #[test]
    fn the_mailer_never_shows_the_smtp_password() {
        let mut config = Config::defaults();
        config.mail_transport = MailTransport::Smtp(crate::config::Secret::new(
            "smtps://kasse%40coop.example:s3cr%21t@smtp.example:465",
        ));
        let mailer = Mailer::from_config(&config).unwrap();
        let shown = format!("{mailer:?}");
        assert!(shown.contains("smtps://smtp.example:465"), "{shown}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(!shown.contains("kasse"), "{shown}");
        assert_eq!(
            mailer.redact("535 s3cr!t and s3cr%21t rejected"),
            "535 [redacted] and [redacted] rejected"
        );
    }
}
