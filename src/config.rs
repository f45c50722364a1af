//! Settings: built-in defaults, then an optional TOML file, then `ALLMENDE_*` environment
//! variables, then command-line flags. A wrong setting stops start-up with its name.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::money::{Locale, Money};

/// A value that must never reach a log line or a `Debug` dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (a client, a signature check).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How outgoing mail leaves the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailTransport {
    /// Each mail is written as a `.eml` file into this folder (the default: no SMTP needed).
    Folder(PathBuf),
    /// Sent over SMTP; the URL may hold a password, so it is a secret.
    Smtp(Secret),
}

#[derive(Clone, Debug)]
pub struct StripeConfig {
    pub secret_key: Secret,
    pub webhook_secret: Secret,
    pub publishable_key: Option<String>,
    /// Where the Stripe API is: `https://api.stripe.com`, or a local fake server in tests.
    pub api_base: String,
}

/// The cooperative's bank account, shown to those who pay by transfer.
#[derive(Clone, Debug)]
pub struct BankDetails {
    pub account_holder: String,
    pub iban: crate::catalogue::iban::Iban,
    pub bic: String,
    pub name: String,
}

impl BankDetails {
    pub fn iban_formatted(&self) -> String {
        self.iban.formatted()
    }
}

#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub base_url: url::Url,
    /// May carry a password (`postgres://user:pw@host/db`): shown redacted in `Debug`.
    pub database_url: String,
    pub data_dir: PathBuf,
    pub default_locale: Locale,
    pub currency: String,
    /// The cooperative's fee on released milestones, in basis points (500 = 5 %).
    pub fee_basis_points: u32,
    /// How long backers have to review a submitted milestone; silence then counts as acceptance.
    pub review_window_days: u32,
    /// The largest amount one form may ask for; larger inputs are refused as a typo.
    pub max_amount: Money,
    pub mail_from: String,
    pub mail_transport: MailTransport,
    pub stripe: Option<StripeConfig>,
    /// The price of one cooperative share.
    pub share_price: Money,
    /// What each member owes per calendar year.
    pub annual_dues: Money,
    /// A Markdown file with the cooperative's statutes; `None` shows the demo statutes.
    pub statutes_path: Option<PathBuf>,
    /// A session ends after this long without a request.
    pub session_idle_minutes: i64,
    /// Behind a reverse proxy, the visitor's address is the last one in `X-Forwarded-For`.
    pub behind_proxy: bool,
    pub bank: BankDetails,
    /// The cooperative's name and address, on receipts.
    pub cooperative_name: String,
    pub cooperative_address: String,
    /// Limits on guessing and on mails anyone can cause, and on concurrent password hashing.
    pub limits: Limits,
}

/// Limits against guessing and flooding. Production defaults; tests may raise them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failed logins of one account within 15 minutes before it is locked for the rest of them.
    pub login_failures_per_account: i64,
    /// Failed logins from one network address within 15 minutes (many accounts, one guesser).
    pub login_failures_per_address: i64,
    /// Registrations from one network address per hour.
    pub registrations_per_address_hour: i64,
    /// Password-reset requests from one network address per hour.
    pub password_resets_per_address_hour: i64,
    /// Mails that anybody can cause to one address (registration of a taken address, reset
    /// links), per hour: nobody can flood someone else's mailbox through the platform.
    pub mails_per_recipient_hour: i64,
    /// Invitations (to organisations and projects) one person may send per hour.
    pub invitations_per_person_hour: i64,
    /// Invitations from one network address per hour.
    pub invitations_per_address_hour: i64,
    /// Password hashes (argon2id, 19 MiB each) computed at once; more wait.
    pub concurrent_password_hashes: usize,
    /// How long a request waits for its turn to hash before it is answered "busy, try again".
    pub password_hash_wait_seconds: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("base_url", &self.base_url.as_str())
            .field("database_url", &redact_url(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("default_locale", &self.default_locale)
            .field("currency", &self.currency)
            .field("fee_basis_points", &self.fee_basis_points)
            .field("review_window_days", &self.review_window_days)
            .field("max_amount", &self.max_amount)
            .field("mail_from", &self.mail_from)
            .field("mail_transport", &self.mail_transport)
            .field("stripe", &self.stripe)
            .field("share_price", &self.share_price)
            .field("annual_dues", &self.annual_dues)
            .field("statutes_path", &self.statutes_path)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("behind_proxy", &self.behind_proxy)
            .field("bank", &self.bank)
            .field("cooperative_name", &self.cooperative_name)
            .field("limits", &self.limits)
            .finish()
    }
}

/// A URL with its password replaced, for logs and `Debug`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which this has.
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown setting `{name}` in {origin} (known settings: {known})")]
    Unknown {
        name: String,
        origin: String,
        known: String,
    },
    #[error("setting `{name}` (from {origin}) is invalid: {reason}")]
    Invalid {
        name: &'static str,
        origin: String,
        reason: String,
    },
}

/// Every setting by its name in the TOML file; the environment variable is
/// `ALLMENDE_` + the name in capitals with `.` as `_` (`mail.from` → `ALLMENDE_MAIL_FROM`).
pub const SETTINGS: &[&str] = &[
    "bind",
    "base_url",
    "database_url",
    "data_dir",
    "default_locale",
    "currency",
    "fee_basis_points",
    "review_window_days",
    "max_amount",
    "mail.from",
    "mail.transport",
    "mail.smtp_url",
    "stripe.secret_key",
    "stripe.webhook_secret",
    "stripe.publishable_key",
    "stripe.api_base",
    "membership.share_price",
    "membership.annual_dues",
    "membership.statutes",
    "session.idle_minutes",
    "behind_proxy",
    "bank.account_holder",
    "bank.iban",
    "bank.bic",
    "bank.name",
    "cooperative.name",
    "cooperative.address",
    "limits.login_failures_per_account",
    "limits.login_failures_per_address",
    "limits.registrations_per_address_hour",
    "limits.password_resets_per_address_hour",
    "limits.mails_per_recipient_hour",
    "limits.invitations_per_person_hour",
    "limits.invitations_per_address_hour",
    "limits.concurrent_password_hashes",
    "limits.password_hash_wait_seconds",
];

pub fn env_name(setting: &str) -> String {
    format!("ALLMENDE_{}", setting.replace('.', "_").to_uppercase())
}

/// Raw settings as text, each with where it came from, before they are checked.
#[derive(Default)]
struct Layers {
    values: BTreeMap<&'static str, (String, String)>,
}

impl Layers {
    fn set(&mut self, name: &'static str, value: String, origin: String) {
        self.values.insert(name, (value, origin));
    }

    fn get(&self, name: &'static str) -> Option<(&str, &str)> {
        self.values
            .get(name)
            .map(|(value, origin)| (value.as_str(), origin.as_str()))
    }
}

/// Overrides from the command line, applied last.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub bind: Option<String>,
}

impl Config {
    /// Loads the settings: defaults, `file` if given, the process environment, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env, overrides)
    }

    /// As [`Config::load`], with the environment given (tests use this).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut layers = Layers::default();
        if let Some(path) = file {
            read_file(path, &mut layers)?;
        }
        for name in SETTINGS {
            let var = env_name(name);
            if let Some((_, value)) = env.iter().find(|(key, _)| *key == var) {
                layers.set(name, value.clone(), format!("environment variable {var}"));
            }
        }
        if let Some(url) = &overrides.database_url {
            layers.set("database_url", url.clone(), "--database".into());
        }
        if let Some(bind) = &overrides.bind {
            layers.set("bind", bind.clone(), "--bind".into());
        }
        Self::from_layers(&layers)
    }

    /// The defaults alone: what a fresh checkout runs with.
    pub fn defaults() -> Config {
        // The defaults are constants that parse; a failure here is a programming error caught by
        // the unit test below, never by a user.
        Self::from_layers(&Layers::default()).unwrap_or_else(|e| panic!("defaults: {e}"))
    }

    fn from_layers(layers: &Layers) -> Result<Config, ConfigError> {
        let text = |name: &'static str, default: &str| -> (String, String) {
            match layers.get(name) {
                Some((value, origin)) => (value.trim().to_owned(), origin.to_owned()),
                None => (default.to_owned(), "the defaults".to_owned()),
            }
        };
        let invalid = |name: &'static str, origin: String, reason: String| ConfigError::Invalid {
            name,
            origin,
            reason,
        };

        let (bind, origin) = text("bind", "127.0.0.1:3000");
        let bind: SocketAddr = bind.parse().map_err(|_| {
            invalid(
                "bind",
                origin,
                format!("`{bind}` is not an address with a port, like 127.0.0.1:3000"),
            )
        })?;

        let (base, origin) = text("base_url", &format!("http://{bind}"));
        let base_url = url::Url::parse(&base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                invalid(
                    "base_url",
                    origin,
                    format!("`{base}` is not an http(s) URL, like https://allmende.example"),
                )
            })?;

        let (database_url, origin) = text("database_url", "sqlite://data/allmende.db");
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(invalid(
                "database_url",
                origin,
                format!(
                    "`{}` is neither sqlite://… nor postgres://…",
                    redact_url(&database_url)
                ),
            ));
        }

        let (data_dir, _) = text("data_dir", "data");
        let data_dir = PathBuf::from(data_dir);

        let (locale, origin) = text("default_locale", "de");
        let default_locale = Locale::from_tag(&locale).ok_or_else(|| {
            invalid(
                "default_locale",
                origin,
                format!("`{locale}` is not a supported language (de, en)"),
            )
        })?;

        let (currency, origin) = text("currency", "EUR");
        if currency != "EUR" {
            return Err(invalid(
                "currency",
                origin,
                format!("`{currency}` is not supported: Allmende books in EUR (SEPA) only"),
            ));
        }

        let (fee, origin) = text("fee_basis_points", "500");
        let fee_basis_points = fee
            .parse::<u32>()
            .ok()
            .filter(|bp| *bp <= 10_000)
            .ok_or_else(|| {
                invalid(
                    "fee_basis_points",
                    origin,
                    format!("`{fee}` is not a whole number from 0 to 10000 (500 = 5 %)"),
                )
            })?;

        let (window, origin) = text("review_window_days", "14");
        let review_window_days = window
            .parse::<u32>()
            .ok()
            .filter(|days| (1..=90).contains(days))
            .ok_or_else(|| {
                invalid(
                    "review_window_days",
                    origin,
                    format!("`{window}` is not a whole number of days from 1 to 90"),
                )
            })?;

        let (max, origin) = text("max_amount", "1000000");
        let max_amount = Money::parse(&max, Money::from_cents(i64::MAX / 1000))
            .ok()
            .filter(|m| m.is_positive())
            .ok_or_else(|| {
                invalid(
                    "max_amount",
                    origin,
                    format!("`{max}` is not a positive amount in euros, like 1000000"),
                )
            })?;

        let (mail_from, origin) = text("mail.from", "Allmende <noreply@allmende.invalid>");
        // Checked as the mailer will read it, so a sender it cannot use stops start-up here.
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail.from",
                origin,
                format!(
                    "`{mail_from}` is not a mail address, like Allmende <noreply@allmende.example>"
                ),
            ));
        }

        let (transport, origin) = text("mail.transport", "folder");
        let mail_transport = match transport.as_str() {
            "folder" => MailTransport::Folder(data_dir.join("outbox")),
            "smtp" => match layers.get("mail.smtp_url") {
                Some((url, url_origin)) => {
                    let url = url.trim();
                    // lettre reads the URL when the mailer starts; reading it here names the
                    // setting. The URL is shown without its password.
                    if let Err(error) =
                        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
                    {
                        return Err(invalid(
                            "mail.smtp_url",
                            url_origin.to_owned(),
                            format!(
                                "`{}` is not an SMTP URL ({error}); use smtps://user:password@host:465, \
                                 smtp://user:password@host:587?tls=required, or smtp://host:25 without TLS",
                                redact_url(url)
                            ),
                        ));
                    }
                    MailTransport::Smtp(Secret::new(url))
                }
                None => {
                    return Err(invalid(
                        "mail.smtp_url",
                        origin,
                        "mail.transport is smtp, so mail.smtp_url must be set (smtps://user:password@host)".into(),
                    ));
                }
            },
            other => {
                return Err(invalid(
                    "mail.transport",
                    origin,
                    format!("`{other}` is not a transport (folder, smtp)"),
                ));
            }
        };

        let (api_base, origin) = text("stripe.api_base", "https://api.stripe.com");
        // Checked even without keys, so a typo shows up before Stripe is switched on.
        if url::Url::parse(&api_base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .is_none()
        {
            return Err(invalid(
                "stripe.api_base",
                origin,
                format!(
                    "`{}` is not an http(s) URL, like https://api.stripe.com",
                    redact_url(&api_base)
                ),
            ));
        }

        let stripe = match (
            layers.get("stripe.secret_key"),
            layers.get("stripe.webhook_secret"),
        ) {
            (None, None) => None,
            (Some((key, _)), Some((hook, _))) => Some(StripeConfig {
                secret_key: Secret::new(key.trim()),
                webhook_secret: Secret::new(hook.trim()),
                publishable_key: layers
                    .get("stripe.publishable_key")
                    .map(|(v, _)| v.trim().to_owned()),
                api_base,
            }),
            (Some((_, origin)), None) | (None, Some((_, origin))) => {
                return Err(invalid(
                    "stripe.secret_key",
                    origin.to_owned(),
                    "Stripe needs both stripe.secret_key and stripe.webhook_secret".into(),
                ));
            }
        };

        let amount = |name: &'static str, default: &str| -> Result<Money, ConfigError> {
            let (text, origin) = text(name, default);
            Money::parse(&text, max_amount)
                .ok()
                .filter(|m| m.is_positive())
                .ok_or_else(|| {
                    invalid(
                        name,
                        origin,
                        format!("`{text}` is not a positive amount in euros, like 100 or 120,50"),
                    )
                })
        };
        let share_price = amount("membership.share_price", "100")?;
        let annual_dues = amount("membership.annual_dues", "120")?;

        let statutes_path = match layers.get("membership.statutes") {
            None => None,
            Some((path, origin)) => {
                let path = PathBuf::from(path.trim());
                if !path.is_file() {
                    return Err(invalid(
                        "membership.statutes",
                        origin.to_owned(),
                        format!("{} is not a readable Markdown file", path.display()),
                    ));
                }
                Some(path)
            }
        };

        let (idle, origin) = text("session.idle_minutes", "480");
        let session_idle_minutes = idle
            .parse::<i64>()
            .ok()
            .filter(|m| (5..=60 * 24 * 30).contains(m))
            .ok_or_else(|| {
                invalid(
                    "session.idle_minutes",
                    origin,
                    format!("`{idle}` is not a number of minutes from 5 to 43200"),
                )
            })?;

        let (proxy, origin) = text("behind_proxy", "false");
        let behind_proxy = match proxy.as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => {
                return Err(invalid(
                    "behind_proxy",
                    origin,
                    format!("`{other}` is neither true nor false"),
                ));
            }
        };

        let (iban, origin) = text("bank.iban", "DE02120300000000202051");
        let iban = crate::catalogue::iban::Iban::parse(&iban).map_err(|e| {
            invalid(
                "bank.iban",
                origin,
                format!("`{iban}` is not a valid IBAN: {e}"),
            )
        })?;
        let (bic, origin) = text("bank.bic", "BYLADEM1001");
        let bic = crate::catalogue::iban::Bic::parse(&bic)
            .map(|b| b.to_string())
            .map_err(|e| {
                invalid(
                    "bank.bic",
                    origin,
                    format!("`{bic}` is not a valid BIC: {e}"),
                )
            })?;
        let bank = BankDetails {
            account_holder: text("bank.account_holder", "Allmende eG").0,
            iban,
            bic,
            name: text("bank.name", "Deutsche Kreditbank").0,
        };
        let cooperative_name = text("cooperative.name", "Allmende eG").0;
        let cooperative_address =
            text("cooperative.address", "Musterstraße 1, 12345 Musterhausen").0;

        let limits = read_limits(&text)?;

        Ok(Config {
            bind,
            base_url,
            database_url,
            data_dir,
            default_locale,
            currency,
            fee_basis_points,
            review_window_days,
            max_amount,
            mail_from,
            mail_transport,
            stripe,
            share_price,
            annual_dues,
            statutes_path,
            session_idle_minutes,
            behind_proxy,
            bank,
            cooperative_name,
            cooperative_address,
            limits,
        })
    }
}

/// The `limits.*` settings: whole numbers from 1 to 1,000,000 each.
fn read_limits(
    text: &dyn Fn(&'static str, &str) -> (String, String),
) -> Result<Limits, ConfigError> {
    let number = |name: &'static str, default: &str| -> Result<i64, ConfigError> {
        let (value, origin) = text(name, default);
        value
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| ConfigError::Invalid {
                name,
                origin,
                reason: format!("`{value}` is not a whole number from 1 to 1000000"),
            })
    };
    // argon2id takes one core for its time: by default as many at once as there are cores.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .to_string();
    Ok(Limits {
        login_failures_per_account: number("limits.login_failures_per_account", "5")?,
        login_failures_per_address: number("limits.login_failures_per_address", "20")?,
        registrations_per_address_hour: number("limits.registrations_per_address_hour", "10")?,
        password_resets_per_address_hour: number("limits.password_resets_per_address_hour", "10")?,
        mails_per_recipient_hour: number("limits.mails_per_recipient_hour", "3")?,
        invitations_per_person_hour: number("limits.invitations_per_person_hour", "50")?,
        invitations_per_address_hour: number("limits.invitations_per_address_hour", "50")?,
        concurrent_password_hashes: usize::try_from(number(
            "limits.concurrent_password_hashes",
            &cores,
        )?)
        .unwrap_or(1),
        password_hash_wait_seconds: u64::try_from(number(
            "limits.password_hash_wait_seconds",
            "10",
        )?)
        .unwrap_or(10),
    })
}

fn read_file(path: &Path, layers: &mut Layers) -> Result<(), ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e| file_error(format!("{e}")))?;
    let origin = path.display().to_string();
    flatten(&table, "", &origin, layers)
}

fn flatten(
    table: &toml::Table,
    prefix: &str,
    origin: &str,
    layers: &mut Layers,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let name = format!("{prefix}{key}");
        if let toml::Value::Table(inner) = value {
            flatten(inner, &format!("{name}."), origin, layers)?;
            continue;
        }
        let known = SETTINGS
            .iter()
            .find(|s| **s == name)
            .ok_or_else(|| ConfigError::Unknown {
                name: name.clone(),
                origin: origin.to_owned(),
                known: SETTINGS.join(", "),
            })?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => other.to_string(),
        };
        layers.set(known, text, origin.to_owned());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_run_on_sqlite_in_german() {
        let config = Config::defaults();
        assert_eq!(config.database_url, "sqlite://data/allmende.db");
        assert_eq!(config.default_locale, Locale::De);
        assert_eq!(config.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(config.fee_basis_points, 500);
        assert!(config.stripe.is_none());
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allmende.toml");
        std::fs::write(
            &path,
            "fee_basis_points = 300\ndefault_locale = \"en\"\n[mail]\nfrom = \"kasse@coop.example\"\n",
        )
        .unwrap();
        let config = Config::load_from(
            Some(&path),
            &env(&[("ALLMENDE_FEE_BASIS_POINTS", "250")]),
            &Overrides {
                database_url: Some("postgres://localhost/allmende".into()),
                bind: None,
            },
        )
        .unwrap();
        assert_eq!(config.fee_basis_points, 250, "environment beats the file");
        assert_eq!(config.default_locale, Locale::En, "the file beats defaults");
        assert_eq!(config.mail_from, "kasse@coop.example");
        assert_eq!(config.database_url, "postgres://localhost/allmende");
    }

    #[test]
    fn a_wrong_setting_is_named() {
        let err = Config::load_from(
            None,
            &env(&[("ALLMENDE_FEE_BASIS_POINTS", "12000")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("fee_basis_points"), "{err}");
        assert!(err.contains("ALLMENDE_FEE_BASIS_POINTS"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allmende.toml");
        std::fs::write(&path, "fee_basispoints = 1\n").unwrap();
        let err = Config::load_from(Some(&path), &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("fee_basispoints"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let config = Config::load_from(
            None,
            &env(&[
                (
                    "ALLMENDE_DATABASE_URL",
                    "postgres://app:hunter2hunter2@db/allmende",
                ),
                ("ALLMENDE_STRIPE_SECRET_KEY", "sk_test_supersecret"),
                ("ALLMENDE_STRIPE_WEBHOOK_SECRET", "whsec_supersecret"),
                ("ALLMENDE_MAIL_TRANSPORT", "smtp"),
                (
                    "ALLMENDE_MAIL_SMTP_URL",
                    "smtps://mail:mailpass@smtp.example",
                ),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        let shown = format!("{config:?}");
        for secret in [
            "hunter2hunter2",
            "sk_test_supersecret",
            "whsec_supersecret",
            "mailpass",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn a_wrong_smtp_url_is_named_without_its_password() {
        let err = Config::load_from(
            None,
            &env(&[
                ("ALLMENDE_MAIL_TRANSPORT", "smtp"),
                (
                    "ALLMENDE_MAIL_SMTP_URL",
                    "smtp://mail:mailpass@smtp.example?tls=always",
                ),
            ]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("mail.smtp_url"), "{err}");
        assert!(err.contains("ALLMENDE_MAIL_SMTP_URL"), "{err}");
        assert!(!err.contains("mailpass"), "{err}");

        for url in [
            "smtps://mail:mailpass@smtp.example:465",
            "smtp://mail:mailpass@smtp.example:587?tls=required",
            "smtp://127.0.0.1:2525",
        ] {
            let config = Config::load_from(
                None,
                &env(&[
                    ("ALLMENDE_MAIL_TRANSPORT", "smtp"),
                    ("ALLMENDE_MAIL_SMTP_URL", url),
                ]),
                &Overrides::default(),
            )
            .unwrap();
            assert_eq!(config.mail_transport, MailTransport::Smtp(Secret::new(url)));
        }

        let err = Config::load_from(
            None,
            &env(&[("ALLMENDE_MAIL_FROM", "Allmende <nobody>")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("mail.from"), "{err}");
    }

    #[test]
    fn limits_have_production_defaults_and_can_be_raised() {
        let limits = Config::defaults().limits;
        assert_eq!(limits.login_failures_per_account, 5);
        assert_eq!(limits.login_failures_per_address, 20);
        assert_eq!(limits.registrations_per_address_hour, 10);
        assert_eq!(limits.mails_per_recipient_hour, 3);
        assert!(limits.concurrent_password_hashes >= 1);
        let config = Config::load_from(
            None,
            &env(&[("ALLMENDE_LIMITS_REGISTRATIONS_PER_ADDRESS_HOUR", "500")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.limits.registrations_per_address_hour, 500);
        for bad in ["0", "-1", "many"] {
            let err = Config::load_from(
                None,
                &env(&[("ALLMENDE_LIMITS_MAILS_PER_RECIPIENT_HOUR", bad)]),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("limits.mails_per_recipient_hour"), "{err}");
        }
    }

    #[test]
    fn stripe_needs_both_keys() {
        let err = Config::load_from(
            None,
            &env(&[("ALLMENDE_STRIPE_SECRET_KEY", "sk_test_x")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("webhook_secret"), "{err}");
    }

    #[test]
    fn stripe_api_base_defaults_to_stripe_and_must_be_http() {
        let keys = [
            ("ALLMENDE_STRIPE_SECRET_KEY", "sk_test_x"),
            ("ALLMENDE_STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ];
        let config = Config::load_from(None, &env(&keys), &Overrides::default()).unwrap();
        assert_eq!(config.stripe.unwrap().api_base, "https://api.stripe.com");

        let mut fake = keys.to_vec();
        fake.push(("ALLMENDE_STRIPE_API_BASE", "http://127.0.0.1:12111"));
        let config = Config::load_from(None, &env(&fake), &Overrides::default()).unwrap();
        assert_eq!(config.stripe.unwrap().api_base, "http://127.0.0.1:12111");

        for bad in ["api.stripe.com", "ftp://api.stripe.com", "http://"] {
            let err = Config::load_from(
                None,
                &env(&[("ALLMENDE_STRIPE_API_BASE", bad)]),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("stripe.api_base"), "{err}");
            assert!(err.contains("ALLMENDE_STRIPE_API_BASE"), "{err}");
        }
    }
}
