//! Text that people type: one table of every free-text field a form can submit, with its
//! length limit and whether it may span lines, and the one check that enforces it.
//!
//! Why: text without a bound was stored and shown on public pages (a poll title of 450,000
//! characters), and a line break in a name ended up as a line of its own in mails sent from the
//! cooperative's address. Every domain function that stores typed text checks it here, so the
//! rule holds whatever sends the request.
//!
//! - Single-line fields (names, addresses, titles, URLs, ids) refuse every control character:
//!   C0 (including tab, CR and LF), DEL, C1, the Unicode line and paragraph separators and the
//!   bidirectional overrides and isolates (which can make a name read differently from what it
//!   is). Browsers never send these from a one-line input; a tab in a name is never meant.
//! - Multi-line fields (descriptions, reasons, comments) allow line feeds and tabs (pasted code);
//!   a CR is allowed only as part of CR LF, which browsers send for a textarea's line breaks
//!   and which counts as one character. The web layer turns CR LF into LF before the form is
//!   read (see [`crate::web`]), so stored text has one kind of line break.
//! - Lengths are counted in characters (Unicode scalar values), as the message says.
//!
//! Fields that are parsed rather than stored as typed (amounts, dates, numbers, ids, payment
//! references, choices) are bounded by their parsers and by the request body limit
//! ([`crate::web::MAX_FORM_BYTES`]); passwords by [`crate::people::password`].
//!
//! A refusal is an entry in the form's [`FieldErrors`] whose message names the field and its
//! limit in the reader's language ([`message`]).

use crate::i18n::{self, Locale};
use crate::people::FieldErrors;

/// Whether a field may span lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    Single,
    Multi,
}

/// A free-text field of a form.
#[derive(Debug)]
pub struct Field {
    /// Unique in [`FIELDS`]: `area/field` (not a catalogue key: the label is).
    pub id: &'static str,
    /// The form field's name (the key of its error); rows that repeat a field (milestones)
    /// give their own name to [`problem_of`].
    pub name: &'static str,
    /// The catalogue key of the field's label, to name it in messages.
    pub label: &'static str,
    /// At most this many characters.
    pub max_chars: usize,
    pub lines: Lines,
    too_long: &'static str,
    control: &'static str,
}

/// The prefixes of the message markers that [`message`] turns into sentences.
const TOO_LONG: &str = "text.too_long:";
const CONTROL: &str = "text.control:";

macro_rules! fields {
    ($( $(#[$doc:meta])* $konst:ident = ($id:literal, $name:literal, $label:literal, $max:expr, $lines:ident); )*) => {
        $(
            $(#[$doc])*
            pub const $konst: Field = Field {
                id: $id,
                name: $name,
                label: $label,
                max_chars: $max,
                lines: Lines::$lines,
                too_long: concat!("text.too_long:", $id),
                control: concat!("text.control:", $id),
            };
        )*
        /// Every field, for the messages and the tests.
        pub const FIELDS: &[Field] = &[$($konst),*];
    };
}

// The limits: generous for what the field is for, small enough that no page or mail can be
// flooded. SEPA, e-mail and Leitweg limits come from their standards.
fields! {
    // People
    PERSON_NAME = ("person/name", "name", "register.name", 200, Single);
    /// RFC 5321: at most 254 characters in a path.
    PERSON_EMAIL = ("person/email", "email", "register.email", 254, Single);

    // Organisations
    ORG_LEGAL_NAME = ("organisation/legal_name", "legal_name", "organisation.legal_name", 200, Single);
    ORG_STREET = ("organisation/street", "street", "organisation.street", 200, Single);
    ORG_POSTCODE = ("organisation/postcode", "postcode", "organisation.postcode", 20, Single);
    ORG_CITY = ("organisation/city", "city", "organisation.city", 200, Single);
    ORG_COUNTRY = ("organisation/country", "country", "organisation.country", 2, Single);
    ORG_REPRESENTATIVE = ("organisation/representative", "representative", "organisation.representative", 200, Single);
    ORG_CONTACT_NAME = ("organisation/contact_name", "contact_name", "organisation.contact_name", 200, Single);
    ORG_CONTACT_EMAIL = ("organisation/contact_email", "contact_email", "organisation.contact_email", 254, Single);
    ORG_WEBSITE = ("organisation/website", "website", "organisation.website", 500, Single);
    /// A Leitweg-ID has at most 46 characters.
    ORG_LEITWEG_ID = ("organisation/leitweg_id", "leitweg_id", "organisation.leitweg_id", 46, Single);
    INVITATION_EMAIL = ("invitation/email", "email", "register.email", 254, Single);

    // Membership
    APPLICATION_NOTE = ("membership/note", "note", "membership.note", 2_000, Multi);
    REJECTION_REASON = ("membership/rejection_reason", "reason", "applications.reason", 2_000, Multi);

    // Projects
    PROJECT_NAME = ("project/name", "name", "project.name", 100, Single);
    PROJECT_SUMMARY = ("project/summary", "summary", "project.summary", 300, Single);
    PROJECT_DESCRIPTION = ("project/description", "description", "project.description", 20_000, Multi);
    PROJECT_REPOSITORY_URL = ("project/repository_url", "repository_url", "project.repository_url", 500, Single);
    PROJECT_HOMEPAGE_URL = ("project/homepage_url", "homepage_url", "project.homepage_url", 500, Single);
    PROJECT_LICENCE = ("project/licence", "licence", "project.licence", 200, Single);
    /// Ten entries of 40 characters, with their commas.
    PROJECT_CATEGORIES = ("project/categories", "categories", "project.categories", 500, Single);
    PROJECT_LANGUAGES = ("project/languages", "languages", "project.languages", 500, Single);
    PROJECT_SOFTWARE_VERSION = ("project/software_version", "software_version", "project.software_version", 40, Single);
    MAINTAINER_INVITATION_EMAIL = ("project/invite_email", "email", "project.invite_email", 254, Single);
    /// SEPA credit transfers carry at most 70 characters of the name.
    PAYOUT_ACCOUNT_HOLDER = ("payout/account_holder", "account_holder", "payout.account_holder", 70, Single);
    PAYOUT_STRIPE_ACCOUNT = ("payout/stripe_account_id", "stripe_account_id", "payout.stripe_account_id", 255, Single);
    /// 34 characters and the spaces of groups of four.
    PAYOUT_IBAN = ("payout/iban", "iban", "hardening.text.iban", 50, Single);
    PAYOUT_BIC = ("payout/bic", "bic", "hardening.text.bic", 20, Single);

    // Proposals
    PROPOSAL_TITLE = ("proposal/title", "title", "proposal.field.title", 150, Single);
    PROPOSAL_SUMMARY = ("proposal/summary", "summary", "proposal.field.summary", 500, Single);
    PROPOSAL_PROBLEM = ("proposal/problem", "problem", "proposal.field.problem", 10_000, Multi);
    PROPOSAL_DESIRED_OUTCOME = ("proposal/desired_outcome", "desired_outcome", "proposal.field.desired_outcome", 10_000, Multi);
    PROPOSAL_RELEASES = ("proposal/releases", "releases", "proposal.field.releases", 2_000, Multi);
    PROPOSAL_SUPPORT = ("proposal/support", "support", "proposal.field.support", 2_000, Multi);
    MILESTONE_TITLE = ("milestone/title", "title", "milestone.title", 150, Single);
    MILESTONE_CRITERIA = ("milestone/criteria", "criteria", "milestone.criteria", 5_000, Multi);
    TRANSITION_REASON = ("proposal/transition_reason", "reason", "proposal.reason", 2_000, Multi);
    COMMENT_BODY = ("comment/body", "body", "comment.new", 10_000, Multi);

    // Delivery and review
    SUBMISSION_SUMMARY = ("delivery/summary", "summary", "delivery.summary", 5_000, Multi);
    /// At most 50 links, one per line.
    SUBMISSION_EVIDENCE = ("delivery/evidence", "evidence", "delivery.evidence", 25_000, Multi);
    SUBMISSION_NOTES = ("delivery/notes", "notes", "delivery.notes", 5_000, Multi);
    SUBMISSION_SECURITY_FIXES = ("delivery/security_fixes", "security_fixes", "delivery.security_fixes", 5_000, Multi);
    SUBMISSION_RELEASES = ("delivery/releases", "releases", "delivery.releases", 5_000, Multi);
    SUBMISSION_ISSUES_HANDLED = ("delivery/issues_handled", "issues_handled", "delivery.issues_handled", 5_000, Multi);
    REVIEW_REASON = ("review/reason", "reason", "proposal.reason", 5_000, Multi);
    DISPUTE_REASON = ("dispute/reason", "reason", "dispute.reason", 5_000, Multi);

    // Votes
    ROUND_TITLE = ("round/title", "title", "round.title", 150, Single);
    ROUND_DESCRIPTION = ("round/description", "description", "round.description", 5_000, Multi);
    POLL_TITLE = ("poll/title", "title", "round.title", 150, Single);
    POLL_DESCRIPTION = ("poll/description", "description", "round.description", 5_000, Multi);

    // Payments
    /// A form's one-time key (a hidden field): the platform's own are 43 characters.
    FORM_KEY = ("payment/form_key", "form_key", "hardening.text.form_key", 100, Single);
}

/// What is wrong with `value` as `field`, if anything: a marker for [`message`]. Emptiness is
/// the caller's rule (fields differ in what they require).
pub fn problem(field: &Field, value: &str) -> Option<&'static str> {
    if has_forbidden_character(field.lines, value) {
        Some(field.control)
    } else if char_count(field.lines, value) > field.max_chars {
        Some(field.too_long)
    } else {
        None
    }
}

/// Checks each `(field, value)`, recording a problem under the field's form name, unless the
/// form found one for that field already (one message per field).
pub fn check(errors: &mut FieldErrors, fields: &[(&Field, &str)]) {
    for (field, value) in fields {
        check_as(errors, field.name, field, value);
    }
}

/// [`check`] for a field whose form name differs from the table's (rows that repeat).
pub fn check_as(errors: &mut FieldErrors, name: &'static str, field: &Field, value: &str) {
    if let Some(problem) = problem(field, value) {
        errors.entry(name).or_insert(problem);
    }
}

/// [`check`] as a result: `Ok` when every field is fine.
pub fn checked(fields: &[(&Field, &str)]) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    check(&mut errors, fields);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Characters: of a single line without the spaces around it (forms store it trimmed); of a
/// multi-line text all, with CR LF counted once (it is one line break, stored as LF).
fn char_count(lines: Lines, value: &str) -> usize {
    match lines {
        Lines::Single => value.trim().chars().count(),
        Lines::Multi => value.chars().count() - value.matches("\r\n").count(),
    }
}

fn has_forbidden_character(lines: Lines, value: &str) -> bool {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let allowed_here = match (lines, c) {
            (Lines::Multi, '\n' | '\t') => true,
            (Lines::Multi, '\r') => chars.peek() == Some(&'\n'),
            // Line and paragraph separators are line breaks in a multi-line text.
            (Lines::Multi, '\u{2028}' | '\u{2029}') => true,
            _ => false,
        };
        if !allowed_here && is_forbidden(c) {
            return true;
        }
    }
    false
}

/// Control characters (C0, DEL, C1), Unicode line breaks and bidirectional controls.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// The message for a field error's `key` in the reader's language: the field and its limit for
/// the markers of this module, else the catalogue's text for the key.
pub fn message(locale: Locale, key: &str) -> String {
    let (template, id) = if let Some(id) = key.strip_prefix(TOO_LONG) {
        ("hardening.text.too_long", id)
    } else if let Some(id) = key.strip_prefix(CONTROL) {
        ("hardening.text.control", id)
    } else {
        return i18n::t(locale, key);
    };
    let Some(field) = FIELDS.iter().find(|f| f.id == id) else {
        return i18n::t(locale, "form.too_long");
    };
    let template = match (template, field.lines) {
        ("hardening.text.control", Lines::Multi) => "hardening.text.control_multi",
        (other, _) => other,
    };
    i18n::t_with(
        locale,
        template,
        &[
            ("field", &i18n::t(locale, field.label)),
            ("max", &group_digits(field.max_chars, locale)),
        ],
    )
}

/// `10000` as `10.000` / `10,000`.
fn group_digits(n: usize, locale: Locale) -> String {
    let separator = match locale {
        Locale::De => '.',
        Locale::En => ',',
    };
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(c);
    }
    out
}

/// A urlencoded form body with each encoded CR LF as a LF: browsers send a textarea's line
/// breaks as CR LF; the platform stores LF. Nothing else changes (not even the encoding of
/// other bytes), so a body without CR LF comes back as it was.
pub fn normalise_form_line_breaks(body: &[u8]) -> Option<Vec<u8>> {
    let is_crlf = |w: &[u8]| {
        w[0] == b'%'
            && w[1] == b'0'
            && w[2].eq_ignore_ascii_case(&b'd')
            && w[3] == b'%'
            && w[4] == b'0'
            && w[5].eq_ignore_ascii_case(&b'a')
    };
    if !body.windows(6).any(is_crlf) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body.len() - i >= 6 && is_crlf(&body[i..i + 6]) {
            out.extend_from_slice(b"%0A");
            i += 6;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_listed_once_with_a_label_in_both_languages() {
        let mut ids: Vec<&str> = FIELDS.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "field ids must be unique");
        for field in FIELDS {
            assert!(field.max_chars > 0, "{}", field.id);
            for locale in [Locale::De, Locale::En] {
                assert!(
                    i18n::catalogues().of(locale).contains_key(field.label),
                    "{}: label {} missing in {locale:?}",
                    field.id,
                    field.label
                );
            }
            assert_eq!(field.too_long, format!("{TOO_LONG}{}", field.id));
            assert_eq!(field.control, format!("{CONTROL}{}", field.id));
        }
    }

    #[test]
    fn limits_are_counted_in_characters() {
        let at_limit = "ä".repeat(POLL_TITLE.max_chars);
        assert_eq!(problem(&POLL_TITLE, &at_limit), None);
        let over = format!("{at_limit}a");
        assert_eq!(problem(&POLL_TITLE, &over), Some(POLL_TITLE.too_long));
        assert_eq!(
            problem(&ORG_WEBSITE, &"w".repeat(900_000)),
            Some(ORG_WEBSITE.too_long)
        );
        assert_eq!(
            problem(&PERSON_NAME, ""),
            None,
            "emptiness is the caller's rule"
        );
        assert_eq!(
            problem(&ORG_COUNTRY, " DE "),
            None,
            "single lines are stored trimmed"
        );
    }

    #[test]
    fn single_line_fields_refuse_every_control_character() {
        for bad in [
            "Verein\r\nBcc: x",
            "Verein\nZeile",
            "Verein\rZeile",
            "Tab\there",
            "nul\0",
            "del\u{7f}",
            "nel\u{85}",
            "csi\u{9b}",
            "ls\u{2028}",
            "rlo\u{202e}gpj.exe",
            "isolate\u{2066}",
        ] {
            assert_eq!(
                problem(&ORG_LEGAL_NAME, bad),
                Some(ORG_LEGAL_NAME.control),
                "{bad:?}"
            );
        }
        for good in [
            "Förderverein Ümlaut e. V.",
            "O'Brien & Söhne",
            "שלום",
            "東京都",
        ] {
            assert_eq!(problem(&ORG_LEGAL_NAME, good), None, "{good:?}");
        }
    }

    #[test]
    fn multi_line_fields_allow_line_breaks_and_tabs_only() {
        let text = "Zeile 1\r\nZeile 2\n\tcode\u{2028}";
        assert_eq!(problem(&COMMENT_BODY, text), None);
        for bad in [
            "lone\rcr",
            "bell\u{7}",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            assert_eq!(
                problem(&COMMENT_BODY, bad),
                Some(COMMENT_BODY.control),
                "{bad:?}"
            );
        }
        // CR LF counts as one character.
        let lines = "a\r\n".repeat(COMMENT_BODY.max_chars / 2);
        assert_eq!(problem(&COMMENT_BODY, &lines), None);
    }

    #[test]
    fn messages_name_the_field_and_the_limit() {
        let de = message(Locale::De, ORG_WEBSITE.too_long);
        assert!(de.contains("Website") && de.contains("500"), "{de}");
        let en = message(Locale::En, PROPOSAL_PROBLEM.too_long);
        assert!(en.contains("Problem") && en.contains("10,000"), "{en}");
        let de = message(Locale::De, PROPOSAL_PROBLEM.too_long);
        assert!(de.contains("10.000"), "{de}");
        let control = message(Locale::En, ORG_LEGAL_NAME.control);
        assert!(control.contains("Legal name"), "{control}");
        assert_eq!(
            message(Locale::En, "form.required"),
            i18n::t(Locale::En, "form.required")
        );
    }

    #[test]
    fn form_bodies_get_lf_line_breaks_and_stay_otherwise_unchanged() {
        assert_eq!(normalise_form_line_breaks(b"a=1&b=x+y%0Az"), None);
        assert_eq!(
            normalise_form_line_breaks(b"body=one%0D%0Atwo%0d%0athree%0D&x=%0A").as_deref(),
            Some(&b"body=one%0Atwo%0Athree%0D&x=%0A"[..])
        );
    }
}
