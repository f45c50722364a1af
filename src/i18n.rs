//! Languages: the German and English message catalogues, choosing a visitor's language, and
//! dates in the reader's notation. Money's notation lives with [`crate::money`].

use std::collections::HashMap;
use std::sync::OnceLock;

pub use crate::money::Locale;

const GERMAN: &str = include_str!("../locales/de.toml");
const ENGLISH: &str = include_str!("../locales/en.toml");

/// Both catalogues, flattened to `section.key` → text.
pub struct Catalogues {
    de: HashMap<String, String>,
    en: HashMap<String, String>,
}

impl Catalogues {
    fn load() -> Result<Catalogues, String> {
        Ok(Catalogues {
            de: flatten(GERMAN).map_err(|e| format!("locales/de.toml: {e}"))?,
            en: flatten(ENGLISH).map_err(|e| format!("locales/en.toml: {e}"))?,
        })
    }

    pub fn of(&self, locale: Locale) -> &HashMap<String, String> {
        match locale {
            Locale::De => &self.de,
            Locale::En => &self.en,
        }
    }
}

fn flatten(text: &str) -> Result<HashMap<String, String>, toml::de::Error> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&name, inner, out),
                toml::Value::String(s) => {
                    out.insert(name, s.clone());
                }
                other => {
                    out.insert(name, other.to_string());
                }
            }
        }
    }
    let table: toml::Table = text.parse()?;
    let mut out = HashMap::new();
    walk("", &table, &mut out);
    Ok(out)
}

/// The catalogues, parsed once. They are compiled in and checked by tests, so a parse error
/// can only come from a broken build.
pub fn catalogues() -> &'static Catalogues {
    static CATALOGUES: OnceLock<Catalogues> = OnceLock::new();
    CATALOGUES.get_or_init(|| Catalogues::load().unwrap_or_else(|e| panic!("{e}")))
}

/// The text for `key`; a missing key shows as the key itself (tests keep that from happening).
pub fn t(locale: Locale, key: &str) -> String {
    catalogues()
        .of(locale)
        .get(key)
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

/// The text for `key` with `{name}` placeholders filled in.
pub fn t_with(locale: Locale, key: &str, args: &[(&str, &str)]) -> String {
    let mut text = t(locale, key);
    for (name, value) in args {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

/// The best language for an `Accept-Language` header, by its quality values.
pub fn negotiate(accept_language: &str) -> Option<Locale> {
    let mut best: Option<(u32, Locale)> = None;
    for part in accept_language.split(',') {
        let mut pieces = part.trim().split(';');
        let tag = pieces.next().unwrap_or("").trim();
        let quality = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .map(parse_quality)
            .unwrap_or(1000);
        if quality == 0 {
            continue;
        }
        if let Some(locale) = Locale::from_tag(tag)
            && best.is_none_or(|(q, _)| quality > q)
        {
            best = Some((quality, locale));
        }
    }
    best.map(|(_, locale)| locale)
}

/// `q=0.8` as thousandths, without floats.
fn parse_quality(text: &str) -> u32 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: u32 = whole.parse().unwrap_or(0);
    let digits: String = fraction.chars().take(3).collect();
    let fraction = format!("{digits:0<3}").parse::<u32>().unwrap_or(0);
    (whole * 1000 + fraction).min(1000)
}

/// A date (ms since the epoch, UTC) as the reader writes it: `29.11.2026` / `29 Nov 2026`.
pub fn format_date(ms: i64, locale: Locale) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::new();
    };
    match locale {
        Locale::De => format!("{:02}.{:02}.{}", at.day(), u8::from(at.month()), at.year()),
        Locale::En => format!("{} {} {}", at.day(), month_abbrev(at.month()), at.year()),
    }
}

/// Date and time (UTC): `29.11.2026, 14:05` / `29 Nov 2026, 14:05`.
pub fn format_datetime(ms: i64, locale: Locale) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::new();
    };
    format!(
        "{}, {:02}:{:02}",
        format_date(ms, locale),
        at.hour(),
        at.minute()
    )
}

fn month_abbrev(month: time::Month) -> &'static str {
    use time::Month::*;
    match month {
        January => "Jan",
        February => "Feb",
        March => "Mar",
        April => "Apr",
        May => "May",
        June => "Jun",
        July => "Jul",
        August => "Aug",
        September => "Sep",
        October => "Oct",
        November => "Nov",
        December => "Dec",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let de: BTreeSet<_> = catalogues().of(Locale::De).keys().collect();
        let en: BTreeSet<_> = catalogues().of(Locale::En).keys().collect();
        let only_de: Vec<_> = de.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&de).collect();
        assert!(only_de.is_empty(), "only in German: {only_de:?}");
        assert!(only_en.is_empty(), "only in English: {only_en:?}");
    }

    #[test]
    fn every_key_used_in_templates_and_code_exists() {
        let de = catalogues().of(Locale::De);
        let mut missing = Vec::new();
        for dir in ["templates", "src"] {
            for path in files_below(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for key in used_keys(&text) {
                    if !de.contains_key(&key) {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys missing in the catalogues: {missing:#?}"
        );
    }

    fn files_below(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out
    }

    /// Keys in calls of the template function `t` and of the Rust functions `t` and `t_with`.
    fn used_keys(text: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for (marker, quote) in [
            ("t(\"", '"'),
            ("t('", '\''),
            ("t(locale, \"", '"'),
            ("t_with(locale, \"", '"'),
        ] {
            let mut rest = text;
            while let Some(at) = rest.find(marker) {
                // `text("…")` is not `t("…")`.
                let standalone = rest[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                rest = &rest[at + marker.len()..];
                if !standalone {
                    continue;
                }
                if let Some(end) = rest.find(quote) {
                    let key = &rest[..end];
                    // A key built at run time ("proposal.kind." ~ kind) ends in a dot: skipped.
                    if key.contains('.')
                        && !key.ends_with('.')
                        && !key.ends_with('_')
                        && !key.contains(' ')
                        && !key.contains('{')
                    {
                        keys.push(key.to_owned());
                    }
                }
            }
        }
        keys
    }

    #[test]
    fn accept_language_picks_the_preferred_supported_language() {
        assert_eq!(negotiate("en-GB,en;q=0.9,de;q=0.8"), Some(Locale::En));
        assert_eq!(negotiate("fr-FR, de;q=0.5, en;q=0.4"), Some(Locale::De));
        assert_eq!(negotiate("de;q=0.2, en;q=0.9"), Some(Locale::En));
        assert_eq!(negotiate("fr, it"), None);
        assert_eq!(negotiate("en;q=0, de;q=0.1"), Some(Locale::De));
    }

    #[test]
    fn dates_in_the_readers_notation() {
        // 2026-11-29 14:05 UTC
        let ms = 1_795_961_100_000;
        assert_eq!(format_date(ms, Locale::De), "29.11.2026");
        assert_eq!(format_date(ms, Locale::En), "29 Nov 2026");
        assert_eq!(format_datetime(ms, Locale::De), "29.11.2026, 14:05");
    }

    /// String literals in the Rust code that name messages (`"error.csrf"`, audit actions such
    /// as `"membership.admitted"`, mail texts such as `"mail.invitation"`) must have texts.
    #[test]
    fn every_message_named_in_code_has_a_text() {
        const PREFIXES: &[&str] = &[
            "error.",
            "flash.",
            "password.",
            "register.",
            "form.",
            "token.",
            "login.",
            "reset.",
            "invitation.",
            "admin.",
            "applications.",
            "members.",
            "statutes.",
            "account.",
            "organisation.",
            "membership.",
            "person.",
            "role.",
            "mail.",
            "licence.",
            "iban.",
            "bic.",
            "publiccode.",
            "pledge.",
            "recurring.",
            "coverage.",
            "delivery.",
            "review.",
            "dispute.",
            "payout.",
            "project.",
            "proposal.",
            "milestone.",
            "maintenance.",
            "comment.",
            "state.",
            "transition.",
            "money.",
            "payment.",
            "treasurer.",
            "camt.",
            "stripe.",
            "round.",
            "poll.",
        ];
        let de = catalogues().of(Locale::De);
        let known = |key: &str| {
            de.contains_key(key)
                || de.contains_key(&format!("audit.action.{key}"))
                || de.contains_key(&format!("{key}.subject"))
        };
        let mut missing = Vec::new();
        for path in files_below(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")) {
            // Settings are named like messages (`mail.from`) but are not messages; money.rs
            // names its own error codes, which the web layer maps (`money_message_key`).
            if path.ends_with("config.rs")
                || path.ends_with("money.rs")
                || path.ends_with("i18n.rs")
                || path.extension().is_none_or(|e| e != "rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for literal in text.split('"').skip(1).step_by(2) {
                let looks_like_key = PREFIXES.iter().any(|p| literal.starts_with(p))
                    && literal.len() > 3
                    && literal.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                    })
                    && !literal.ends_with('.')
                    && !literal.ends_with(".html")
                    // A publiccode.yml field path, not a message.
                    && literal != "maintenance.type";
                if looks_like_key && !known(literal) {
                    missing.push(format!("{}: {literal}", path.display()));
                }
            }
        }
        assert!(missing.is_empty(), "messages without text: {missing:#?}");
    }
}
