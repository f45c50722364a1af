//! SEPA credit transfer files (ISO 20022 `pain.001.001.09`) that pay maintainers from the cooperative's account.
//!
//! [`pain001`] is pure: it takes the paying account and the transfers and
//! returns the XML text to upload to the bank (online banking or EBICS).
//! Storing the file, and marking payouts as sent, is up to the caller.
//!
//! # What is written
//!
//! One `GrpHdr` (message id, creation time in UTC, number of transactions,
//! control sum, the debtor's name as initiating party) and one `PmtInf` with
//! `PmtMtd` `TRF`, service level `SEPA`, charge bearer `SLEV` and the
//! requested execution date; its `PmtInfId` is the message id. The debtor's
//! agent is its BIC, or `Othr/Id` `NOTPROVIDED` without one (the schema
//! requires the element; that value is what the EPC guidelines prescribe).
//! Per transfer one `CdtTrfTxInf` with `EndToEndId`, the amount in EUR,
//! the creditor agent's BIC if known (SEPA allows IBAN-only within the EEA),
//! the creditor's name and IBAN, and the remittance as `RmtInf/Ustrd` (left
//! out when empty).
//!
//! Amounts are written from integer cents, so `CtrlSum` is the exact sum.
//!
//! # Text
//!
//! Banks only have to accept the basic SEPA character set:
//! `a-z A-Z 0-9 / - ? : ( ) . , ' +` and space. Names and the remittance are
//! converted into it: German umlauts and `ß` the German way (`ä` → `ae`,
//! `ß` → `ss`), other Latin letters without their accents (`é` → `e`), some
//! symbols to a look-alike (`&` → `+`, `"` → `'`, `_` → `-`), anything else
//! to a space; whitespace runs collapse to one space. Then names are cut to
//! 70 characters and the remittance to 140, at a space when one is near the
//! limit, so a reference is not cut in half.
//!
//! Identifiers are refused rather than converted: a changed `EndToEndId`
//! could no longer be matched to its payout when the bank reports it back.
//! They may hold letters, digits and `/ - ? : ( ) . , ' +` (no spaces), at
//! most 35 of them, and must not start or end with `/` or contain `//` (an
//! EPC rule).
//!
//! The tests validate the output against the ISO 20022 schema in
//! `tests/fixtures/sepa/pain.001.001.09.xsd` with `xmllint` (Debian package
//! `libxml2-utils`).

use std::collections::HashSet;
use std::fmt;

use quick_xml::escape::partial_escape;
use time::{Date, OffsetDateTime};

use crate::catalogue::iban::{Bic, BicError, Iban, IbanError};
use crate::money::Money;

/// The message's namespace, which also names its version.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";

/// Longest `MsgId` and `EndToEndId` (`Max35Text`).
pub const MAX_ID_LENGTH: usize = 35;

/// Longest name: the schema allows 140, the EPC guidelines 70.
pub const MAX_NAME_LENGTH: usize = 70;

/// Longest unstructured remittance (`Max140Text`).
pub const MAX_REMITTANCE_LENGTH: usize = 140;

/// The largest amount of one SEPA credit transfer: 999 999 999,99 €.
pub const MAX_AMOUNT: Money = Money::from_cents(99_999_999_999);

/// `CtrlSum` is a decimal of at most 18 digits, two of them cents.
const MAX_CONTROL_SUM_CENTS: i64 = 999_999_999_999_999_999;

/// What the EPC guidelines put where the debtor agent's BIC is not known.
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// The account the money is paid from: the cooperative's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Debtor {
    /// The account holder's name; also written as the initiating party.
    pub name: String,
    /// The IBAN in any notation [`Iban::parse`] accepts.
    pub iban: String,
    /// The bank's BIC; `None` or blank when not known.
    pub bic: Option<String>,
}

/// One payment to a maintainer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditTransfer {
    /// The payout's id, written as `EndToEndId` (at most 35 characters, see
    /// the module documentation); the bank reports it back with the booking.
    pub end_to_end_id: String,
    /// More than zero and at most [`MAX_AMOUNT`].
    pub amount: Money,
    /// The account holder's name; converted and shortened to 70 characters.
    pub creditor_name: String,
    /// The IBAN in any notation [`Iban::parse`] accepts.
    pub creditor_iban: String,
    /// The creditor's bank's BIC; `None` or blank when not known.
    pub creditor_bic: Option<String>,
    /// What the maintainer sees on their statement; converted and shortened
    /// to 140 characters.
    pub remittance: String,
}

/// Whose details were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Party {
    /// The paying account.
    Debtor,
    /// The payee of the transfer with this `EndToEndId`.
    Creditor { end_to_end_id: String },
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Debtor => f.write_str("the paying account"),
            Self::Creditor { end_to_end_id } => write!(f, "the payee of {end_to_end_id}"),
        }
    }
}

/// Which identifier was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdField {
    /// `GrpHdr/MsgId` (also used as `PmtInfId`).
    MessageId,
    /// `CdtTrfTxInf/PmtId/EndToEndId`, the payout's id.
    EndToEndId,
}

impl fmt::Display for IdField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MessageId => "message id",
            Self::EndToEndId => "end-to-end id",
        })
    }
}

/// Why no file was written.
///
/// The web layer translates by [`SepaError::message_key`]; the English
/// `Display` text is for logs and English fallbacks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SepaError {
    /// A file needs at least one transfer.
    #[error("there is nothing to pay")]
    NoTransfers,
    /// An identifier is empty.
    #[error("the {field} is empty")]
    EmptyId { field: IdField },
    /// An identifier is longer than [`MAX_ID_LENGTH`] characters.
    #[error("the {field} {id:?} has {length} characters, at most 35 are allowed")]
    IdTooLong {
        field: IdField,
        id: String,
        length: usize,
    },
    /// An identifier has a character outside the SEPA set (or a space).
    #[error("the {field} {id:?} contains {character:?}, which SEPA does not allow there")]
    IdCharacter {
        field: IdField,
        id: String,
        character: char,
    },
    /// An identifier starts or ends with `/` or contains `//`.
    #[error("the {field} {id:?} must not start or end with '/' or contain '//'")]
    IdSlashes { field: IdField, id: String },
    /// Two transfers have the same `EndToEndId`: most likely the same payout twice.
    #[error("the end-to-end id {id:?} occurs more than once")]
    DuplicateEndToEndId { id: String },
    /// A transfer of zero or less.
    #[error("the transfer {end_to_end_id} is {} €; only positive amounts can be paid", .amount.to_decimal_string())]
    AmountNotPositive {
        end_to_end_id: String,
        amount: Money,
    },
    /// A transfer above [`MAX_AMOUNT`].
    #[error("the transfer {end_to_end_id} is {} €, more than one SEPA transfer can carry", .amount.to_decimal_string())]
    AmountTooLarge {
        end_to_end_id: String,
        amount: Money,
    },
    /// The transfers add up to more than `CtrlSum` can hold.
    #[error("the transfers add up to more than one file can carry")]
    SumTooLarge,
    /// A name has nothing left once converted to the SEPA character set.
    #[error("the name of {party} is empty or has no characters SEPA allows")]
    EmptyName { party: Party },
    #[error("the IBAN of {party} is invalid: {error}")]
    InvalidIban { party: Party, error: IbanError },
    #[error("the BIC of {party} is invalid: {error}")]
    InvalidBic { party: Party, error: BicError },
    /// A date whose year does not have four digits.
    #[error("the year {year} cannot be written in a SEPA file")]
    DateOutOfRange { year: i32 },
}

impl SepaError {
    pub const fn message_key(&self) -> &'static str {
        match self {
            Self::NoTransfers => "sepa.no_transfers",
            Self::EmptyId { .. } => "sepa.empty_id",
            Self::IdTooLong { .. } => "sepa.id_too_long",
            Self::IdCharacter { .. } => "sepa.id_character",
            Self::IdSlashes { .. } => "sepa.id_slashes",
            Self::DuplicateEndToEndId { .. } => "sepa.duplicate_end_to_end_id",
            Self::AmountNotPositive { .. } => "sepa.amount_not_positive",
            Self::AmountTooLarge { .. } => "sepa.amount_too_large",
            Self::SumTooLarge => "sepa.sum_too_large",
            Self::EmptyName { .. } => "sepa.empty_name",
            Self::InvalidIban { .. } => "sepa.invalid_iban",
            Self::InvalidBic { .. } => "sepa.invalid_bic",
            Self::DateOutOfRange { .. } => "sepa.date_out_of_range",
        }
    }
}

/// Writes a `pain.001.001.09` credit transfer initiation: one payment from
/// `debtor` per transfer, to be executed on `execution_date`.
///
/// `message_id` identifies the file to the bank, which refuses a second file
/// with the same id; it follows the same rules as an `EndToEndId`.
///
/// # Errors
/// Everything is checked before anything is written; the first problem is
/// returned (message id, transfers present, debtor, each transfer in order,
/// the sum, the dates). See [`SepaError`].
pub fn pain001(
    message_id: &str,
    created_at: OffsetDateTime,
    execution_date: Date,
    debtor: &Debtor,
    transfers: &[CreditTransfer],
) -> Result<String, SepaError> {
    check_id(IdField::MessageId, message_id)?;
    if transfers.is_empty() {
        return Err(SepaError::NoTransfers);
    }
    let debtor = Account::new(
        Party::Debtor,
        &debtor.name,
        &debtor.iban,
        debtor.bic.as_deref(),
    )?;

    let mut seen = HashSet::with_capacity(transfers.len());
    let mut checked = Vec::with_capacity(transfers.len());
    for transfer in transfers {
        checked.push(Transfer::new(transfer, &mut seen)?);
    }
    let sum = control_sum(checked.iter().map(|t| t.amount))?;
    let created_at = date_time(created_at)?;
    let execution_date = date(execution_date)?;

    let count = checked.len().to_string();
    let sum = sum.to_decimal_string();
    let mut xml = Xml::default();
    xml.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let namespace = format!(" xmlns=\"{NAMESPACE}\"");
    xml.element_with("Document", &namespace, |xml| {
        xml.element("CstmrCdtTrfInitn", |xml| {
            xml.element("GrpHdr", |xml| {
                xml.text("MsgId", message_id);
                xml.text("CreDtTm", &created_at);
                xml.text("NbOfTxs", &count);
                xml.text("CtrlSum", &sum);
                xml.element("InitgPty", |xml| xml.text("Nm", &debtor.name));
            });
            xml.element("PmtInf", |xml| {
                xml.text("PmtInfId", message_id);
                xml.text("PmtMtd", "TRF");
                xml.text("NbOfTxs", &count);
                xml.text("CtrlSum", &sum);
                xml.element("PmtTpInf", |xml| {
                    xml.element("SvcLvl", |xml| xml.text("Cd", "SEPA"));
                });
                xml.element("ReqdExctnDt", |xml| xml.text("Dt", &execution_date));
                xml.element("Dbtr", |xml| xml.text("Nm", &debtor.name));
                xml.iban("DbtrAcct", &debtor.iban);
                xml.element("DbtrAgt", |xml| {
                    xml.element("FinInstnId", |xml| match &debtor.bic {
                        Some(bic) => xml.text("BICFI", bic.as_str()),
                        None => xml.element("Othr", |xml| xml.text("Id", NOT_PROVIDED)),
                    });
                });
                xml.text("ChrgBr", "SLEV");
                for transfer in &checked {
                    xml.element("CdtTrfTxInf", |xml| {
                        xml.element("PmtId", |xml| {
                            xml.text("EndToEndId", transfer.end_to_end_id)
                        });
                        xml.element("Amt", |xml| xml.amount("InstdAmt", transfer.amount));
                        if let Some(bic) = &transfer.creditor.bic {
                            xml.element("CdtrAgt", |xml| {
                                xml.element("FinInstnId", |xml| xml.text("BICFI", bic.as_str()));
                            });
                        }
                        xml.element("Cdtr", |xml| xml.text("Nm", &transfer.creditor.name));
                        xml.iban("CdtrAcct", &transfer.creditor.iban);
                        if !transfer.remittance.is_empty() {
                            xml.element("RmtInf", |xml| xml.text("Ustrd", &transfer.remittance));
                        }
                    });
                }
            });
        });
    });
    Ok(xml.out)
}

/// The sum of `amounts`, if `CtrlSum` can hold it.
fn control_sum(amounts: impl IntoIterator<Item = Money>) -> Result<Money, SepaError> {
    match Money::checked_sum(amounts) {
        Ok(sum) if sum.cents() <= MAX_CONTROL_SUM_CENTS => Ok(sum),
        _ => Err(SepaError::SumTooLarge),
    }
}

/// A name, IBAN and BIC that passed the checks.
struct Account {
    name: String,
    iban: Iban,
    bic: Option<Bic>,
}

impl Account {
    fn new(party: Party, name: &str, iban: &str, bic: Option<&str>) -> Result<Self, SepaError> {
        let name = sepa_text(name, MAX_NAME_LENGTH);
        if name.is_empty() {
            return Err(SepaError::EmptyName { party });
        }
        let iban = Iban::parse(iban).map_err(|error| SepaError::InvalidIban {
            party: party.clone(),
            error,
        })?;
        // A blank BIC is how a form or a database column says "not known".
        let bic = match bic.map(str::trim).filter(|b| !b.is_empty()) {
            Some(bic) => {
                Some(Bic::parse(bic).map_err(|error| SepaError::InvalidBic { party, error })?)
            }
            None => None,
        };
        Ok(Self { name, iban, bic })
    }
}

/// A transfer that passed the checks, its texts converted.
struct Transfer<'a> {
    end_to_end_id: &'a str,
    amount: Money,
    creditor: Account,
    remittance: String,
}

impl<'a> Transfer<'a> {
    fn new(transfer: &'a CreditTransfer, seen: &mut HashSet<&'a str>) -> Result<Self, SepaError> {
        let id = transfer.end_to_end_id.as_str();
        check_id(IdField::EndToEndId, id)?;
        if !seen.insert(id) {
            return Err(SepaError::DuplicateEndToEndId { id: id.to_owned() });
        }
        let amount = transfer.amount;
        if !amount.is_positive() {
            return Err(SepaError::AmountNotPositive {
                end_to_end_id: id.to_owned(),
                amount,
            });
        }
        if amount > MAX_AMOUNT {
            return Err(SepaError::AmountTooLarge {
                end_to_end_id: id.to_owned(),
                amount,
            });
        }
        let creditor = Account::new(
            Party::Creditor {
                end_to_end_id: id.to_owned(),
            },
            &transfer.creditor_name,
            &transfer.creditor_iban,
            transfer.creditor_bic.as_deref(),
        )?;
        Ok(Self {
            end_to_end_id: id,
            amount,
            creditor,
            remittance: sepa_text(&transfer.remittance, MAX_REMITTANCE_LENGTH),
        })
    }
}

/// Whether `character` is in the basic SEPA character set.
fn is_sepa(character: char) -> bool {
    character.is_ascii_alphanumeric() || "/-?:().,'+ ".contains(character)
}

fn check_id(field: IdField, id: &str) -> Result<(), SepaError> {
    if id.is_empty() {
        return Err(SepaError::EmptyId { field });
    }
    // Checked before the length, so an id in a foreign script is reported
    // for what is really wrong with it.
    if let Some(character) = id.chars().find(|c| !is_sepa(*c) || *c == ' ') {
        return Err(SepaError::IdCharacter {
            field,
            id: id.to_owned(),
            character,
        });
    }
    // ASCII from here on, so bytes are characters.
    if id.len() > MAX_ID_LENGTH {
        return Err(SepaError::IdTooLong {
            field,
            id: id.to_owned(),
            length: id.len(),
        });
    }
    if id.starts_with('/') || id.ends_with('/') || id.contains("//") {
        return Err(SepaError::IdSlashes {
            field,
            id: id.to_owned(),
        });
    }
    Ok(())
}

/// `input` in the SEPA character set, whitespace collapsed, at most `limit`
/// characters. The result is ASCII, so bytes are characters.
fn sepa_text(input: &str, limit: usize) -> String {
    let mut converted = String::with_capacity(input.len());
    let mut previous = None;
    let mut characters = input.chars().peekable();
    while let Some(character) = characters.next() {
        if is_sepa(character) {
            converted.push(character);
        } else {
            let replacement = transliterate(character);
            // "MÜLLER" should become "MUELLER", not "MUeLLER": a capital that
            // turns into two letters follows the case of its word.
            let next = characters.peek().copied();
            let shouting = match next.filter(|c| c.is_alphabetic()) {
                Some(next) => next.is_uppercase(),
                None => previous.is_some_and(|p: char| p.is_alphabetic() && p.is_uppercase()),
            };
            if shouting && character.is_uppercase() {
                converted.push_str(&replacement.to_ascii_uppercase());
            } else {
                converted.push_str(replacement);
            }
        }
        previous = Some(character);
    }
    let mut text = converted.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > limit {
        // Cut at the last space before the limit, unless that throws away
        // more than a quarter: a long unbroken word is cut where it must be.
        let cut = match text.get(..=limit).and_then(|head| head.rfind(' ')) {
            Some(space) if space >= limit - limit / 4 => space,
            _ => limit,
        };
        text.truncate(cut);
        text.truncate(text.trim_end().len());
    }
    text
}

/// What stands in for a character outside the SEPA set.
fn transliterate(character: char) -> &'static str {
    match character {
        'ä' => "ae",
        'ö' => "oe",
        'ü' => "ue",
        'Ä' => "Ae",
        'Ö' => "Oe",
        'Ü' => "Ue",
        'ß' => "ss",
        'ẞ' => "SS",
        'À'..='Ã' | 'Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'à'..='ã' | 'å' | 'ā' | 'ă' | 'ą' | 'ª' => "a",
        'Æ' => "AE",
        'æ' => "ae",
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ð' | 'Ď' | 'Đ' => "D",
        'ð' | 'ď' | 'đ' => "d",
        'È'..='Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'Ĥ' | 'Ħ' => "H",
        'ĥ' | 'ħ' => "h",
        'Ì'..='Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'Ĵ' => "J",
        'ĵ' => "j",
        'Ķ' => "K",
        'ķ' | 'ĸ' => "k",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' | 'Ŋ' => "N",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'Ò'..='Õ' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => "O",
        'ò'..='õ' | 'ø' | 'ō' | 'ŏ' | 'ő' | 'º' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' | 'Ș' => "S",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' | 'ſ' => "s",
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => "T",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'Þ' => "Th",
        'þ' => "th",
        'Ù'..='Û' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ù'..='û' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ŵ' => "W",
        'ŵ' => "w",
        'Ý' | 'Ŷ' | 'Ÿ' => "Y",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        '&' => "+",
        '"' | '`' | '´' | '‘' | '’' | '‚' | '‛' | '“' | '”' | '„' | '«' | '»' | '‹' | '›' => {
            "'"
        }
        '_' | '‐' | '‑' | '‒' | '–' | '—' | '−' => "-",
        '[' | '{' | '<' => "(",
        ']' | '}' | '>' => ")",
        ';' => ",",
        '!' => ".",
        '\\' | '|' => "/",
        '€' => "EUR",
        _ => " ",
    }
}

/// `CreDtTm`: the time in UTC, to the second.
fn date_time(at: OffsetDateTime) -> Result<String, SepaError> {
    let utc = at
        .checked_to_utc()
        .ok_or(SepaError::DateOutOfRange { year: at.year() })?;
    Ok(format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(utc.date())?,
        utc.hour(),
        utc.minute(),
        utc.second()
    ))
}

/// An `ISODate`; the year must have four digits to be read back the same.
fn date(date: Date) -> Result<String, SepaError> {
    let year = date.year();
    if !(1000..=9999).contains(&year) {
        return Err(SepaError::DateOutOfRange { year });
    }
    Ok(format!(
        "{year}-{:02}-{:02}",
        u8::from(date.month()),
        date.day()
    ))
}

/// Builds the indented document; nesting in the code mirrors the XML, so no
/// element can be left open.
#[derive(Default)]
struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn element(&mut self, name: &str, content: impl FnOnce(&mut Self)) {
        self.element_with(name, "", content);
    }

    /// An element with `attributes` written as given: only constants go there.
    fn element_with(&mut self, name: &str, attributes: &str, content: impl FnOnce(&mut Self)) {
        self.indent();
        self.out.push_str(&format!("<{name}{attributes}>\n"));
        self.depth += 1;
        content(self);
        self.depth -= 1;
        self.indent();
        self.out.push_str(&format!("</{name}>\n"));
    }

    /// An element holding `text`, escaped. The converted texts cannot contain
    /// `<` or `&` any more, but the escaping does not rely on that.
    fn text(&mut self, name: &str, text: &str) {
        self.indent();
        self.out
            .push_str(&format!("<{name}>{}</{name}>\n", partial_escape(text)));
    }

    fn amount(&mut self, name: &str, amount: Money) {
        self.indent();
        self.out.push_str(&format!(
            "<{name} Ccy=\"EUR\">{}</{name}>\n",
            amount.to_decimal_string()
        ));
    }

    fn iban(&mut self, name: &str, iban: &Iban) {
        self.element(name, |xml| {
            xml.element("Id", |xml| xml.text("IBAN", iban.as_str()));
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write as _;
    use std::path::Path;
    use std::process::Command;

    use time::macros::{date, datetime};

    use super::*;

    const DEBTOR_IBAN: &str = "DE89 3704 0044 0532 0130 00";
    /// Published example IBANs of other countries, valid check digits.
    const IBANS: [&str; 4] = [
        "AT611904300234573201",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "BE68539007547034",
    ];

    fn debtor() -> Debtor {
        Debtor {
            name: "Allmende eG".into(),
            iban: DEBTOR_IBAN.into(),
            bic: Some("COBADEFFXXX".into()),
        }
    }

    fn transfer(id: &str, cents: i64) -> CreditTransfer {
        CreditTransfer {
            end_to_end_id: id.into(),
            amount: Money::from_cents(cents),
            creditor_name: "Ada Lovelace".into(),
            creditor_iban: IBANS[0].into(),
            creditor_bic: None,
            remittance: format!("Allmende payout {id}"),
        }
    }

    fn write(debtor: &Debtor, transfers: &[CreditTransfer]) -> Result<String, SepaError> {
        pain001(
            "ALLMENDE-2024-05-0001",
            datetime!(2024-05-02 10:15:30 UTC),
            date!(2024 - 05 - 03),
            debtor,
            transfers,
        )
    }

    /// Runs xmllint against the shipped ISO 20022 schema; `Err` holds its complaint.
    fn xmllint(xml: &str) -> Result<(), String> {
        let schema =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sepa/pain.001.001.09.xsd");
        assert!(
            schema.is_file(),
            "the schema {} is missing",
            schema.display()
        );
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(xml.as_bytes()).unwrap();
        let output = match Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(file.path())
            .output()
        {
            Ok(output) => output,
            // Failing, not skipping: a skipped schema check would look like a passed one.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "xmllint is not installed; the SEPA schema tests need it: \
                 install the Debian package libxml2-utils (apt-get install -y libxml2-utils)"
            ),
            Err(error) => panic!("xmllint could not be run: {error}"),
        };
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    fn assert_valid(xml: &str) {
        if let Err(complaint) = xmllint(xml) {
            panic!("the file does not validate:\n{complaint}\n{xml}");
        }
    }

    /// The texts of all elements named `name`, in document order.
    fn values(xml: &str, name: &str) -> Vec<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        xml.split(&open)
            .skip(1)
            .map(|rest| rest.split(&close).next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_single_transfer_gives_exactly_this_document() {
        let xml = write(&debtor(), &[transfer("P-1", 12_345)]).unwrap();
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">
  <CstmrCdtTrfInitn>
    <GrpHdr>
      <MsgId>ALLMENDE-2024-05-0001</MsgId>
      <CreDtTm>2024-05-02T10:15:30Z</CreDtTm>
      <NbOfTxs>1</NbOfTxs>
      <CtrlSum>123.45</CtrlSum>
      <InitgPty>
        <Nm>Allmende eG</Nm>
      </InitgPty>
    </GrpHdr>
    <PmtInf>
      <PmtInfId>ALLMENDE-2024-05-0001</PmtInfId>
      <PmtMtd>TRF</PmtMtd>
      <NbOfTxs>1</NbOfTxs>
      <CtrlSum>123.45</CtrlSum>
      <PmtTpInf>
        <SvcLvl>
          <Cd>SEPA</Cd>
        </SvcLvl>
      </PmtTpInf>
      <ReqdExctnDt>
        <Dt>2024-05-03</Dt>
      </ReqdExctnDt>
      <Dbtr>
        <Nm>Allmende eG</Nm>
      </Dbtr>
      <DbtrAcct>
        <Id>
          <IBAN>DE89370400440532013000</IBAN>
        </Id>
      </DbtrAcct>
      <DbtrAgt>
        <FinInstnId>
          <BICFI>COBADEFFXXX</BICFI>
        </FinInstnId>
      </DbtrAgt>
      <ChrgBr>SLEV</ChrgBr>
      <CdtTrfTxInf>
        <PmtId>
          <EndToEndId>P-1</EndToEndId>
        </PmtId>
        <Amt>
          <InstdAmt Ccy="EUR">123.45</InstdAmt>
        </Amt>
        <Cdtr>
          <Nm>Ada Lovelace</Nm>
        </Cdtr>
        <CdtrAcct>
          <Id>
            <IBAN>AT611904300234573201</IBAN>
          </Id>
        </CdtrAcct>
        <RmtInf>
          <Ustrd>Allmende payout P-1</Ustrd>
        </RmtInf>
      </CdtTrfTxInf>
    </PmtInf>
  </CstmrCdtTrfInitn>
</Document>
"#;
        assert_eq!(xml, expected);
        assert_valid(&xml);
    }

    #[test]
    fn several_transfers_with_umlauts_long_remittance_and_optional_bics_validate() {
        let long = "Auszahlung für Förderung des Projekts Übersetzungsprüfer: \
                    Größenänderung, Straßenkarten und Schnittstellen zu älteren Öko-Systemen \
                    im Zeitraum Januar bis März, Dank an alle Beitragenden";
        let transfers = [
            CreditTransfer {
                creditor_name: "Jürgen Müller-Lüdenscheidt".into(),
                creditor_bic: Some("BKAUATWW".into()),
                remittance: long.into(),
                ..transfer("P-1", 15_000)
            },
            CreditTransfer {
                creditor_name: "Łukasz Żółć".into(),
                creditor_iban: IBANS[1].into(),
                creditor_bic: None,
                remittance: "Zahlung\tfür\nÄrger".into(),
                ..transfer("P-2", 1)
            },
            CreditTransfer {
                creditor_name: "ÖSTERREICHISCHE GESELLSCHAFT FÜR DIE FÖRDERUNG OFFENER SOFTWARE UND ÄHNLICHER ANLIEGEN".into(),
                creditor_iban: IBANS[2].into(),
                creditor_bic: Some(" abna nl 2a ".into()),
                remittance: String::new(),
                ..transfer("P-3", 99_999_999_999)
            },
        ];
        let xml = write(&debtor(), &transfers).unwrap();
        assert_valid(&xml);

        assert_eq!(
            values(&xml, "Nm"),
            [
                "Allmende eG",
                "Allmende eG",
                "Juergen Mueller-Luedenscheidt",
                "Lukasz Zolc",
                // Upper case umlauts in upper case words stay upper case; cut at 70.
                "OESTERREICHISCHE GESELLSCHAFT FUER DIE FOERDERUNG OFFENER SOFTWARE UND",
            ]
        );
        let remittances = values(&xml, "Ustrd");
        assert_eq!(remittances.len(), 2, "an empty remittance is left out");
        assert!(remittances[0].len() <= MAX_REMITTANCE_LENGTH);
        assert!(remittances[0].starts_with("Auszahlung fuer Foerderung des Projekts Uebersetzungspruefer: Groessenaenderung, Strassenkarten"));
        assert!(!remittances[0].ends_with(' '));
        assert_eq!(remittances[1], "Zahlung fuer Aerger");
        assert_eq!(
            values(&xml, "BICFI"),
            ["COBADEFFXXX", "BKAUATWW", "ABNANL2A"]
        );
        assert_eq!(xml.matches("<CdtrAgt>").count(), 2);
        assert_eq!(values(&xml, "IBAN")[1..], [IBANS[0], IBANS[1], IBANS[2]]);
        assert_eq!(values(&xml, "CtrlSum"), ["1000000150.00"; 2]);

        // Without the debtor's BIC the agent says so, as the schema needs an agent.
        let xml = write(
            &Debtor {
                bic: None,
                ..debtor()
            },
            &transfers,
        )
        .unwrap();
        assert_valid(&xml);
        assert!(xml.contains(
            "<DbtrAgt>\n        <FinInstnId>\n          <Othr>\n            <Id>NOTPROVIDED</Id>"
        ));
        assert_eq!(values(&xml, "BICFI"), ["BKAUATWW", "ABNANL2A"]);
        // A blank BIC means "not known" too.
        assert_eq!(
            write(
                &Debtor {
                    bic: Some("  ".into()),
                    ..debtor()
                },
                &transfers
            ),
            Ok(xml)
        );
    }

    #[test]
    fn the_control_sum_is_exact_and_transactions_are_counted() {
        let transfers = [
            transfer("A", 33_33),
            transfer("B", 33_33),
            transfer("C", 33_34),
        ];
        let xml = write(&debtor(), &transfers).unwrap();
        assert_valid(&xml);
        assert_eq!(values(&xml, "CtrlSum"), ["100.00", "100.00"]);
        assert_eq!(values(&xml, "NbOfTxs"), ["3", "3"]);
        assert_eq!(
            xml.matches("<InstdAmt Ccy=\"EUR\">33.33</InstdAmt>")
                .count(),
            2
        );
        assert_eq!(
            xml.matches("<InstdAmt Ccy=\"EUR\">33.34</InstdAmt>")
                .count(),
            1
        );

        // The classic float trap, cents, and the largest transfers.
        let transfers = [
            transfer("A", 10),
            transfer("B", 20),
            transfer("C", 5),
            transfer("D", MAX_AMOUNT.cents()),
            transfer("E", MAX_AMOUNT.cents()),
        ];
        let xml = write(&debtor(), &transfers).unwrap();
        assert_valid(&xml);
        assert_eq!(values(&xml, "CtrlSum"), ["2000000000.33"; 2]);
        assert_eq!(values(&xml, "NbOfTxs"), ["5"; 2]);
        assert!(xml.contains(">0.05</InstdAmt>"));

        let many: Vec<_> = (1..=1000).map(|i| transfer(&format!("P-{i}"), i)).collect();
        let xml = write(&debtor(), &many).unwrap();
        assert_valid(&xml);
        assert_eq!(values(&xml, "CtrlSum"), ["5005.00"; 2]);
        assert_eq!(values(&xml, "NbOfTxs"), ["1000"; 2]);
    }

    #[test]
    fn ampersands_quotes_and_brackets_are_converted_and_the_file_validates() {
        let transfers = [CreditTransfer {
            creditor_name: "Smith & Sons \"Open\" <Source> O'Brien".into(),
            remittance: "Danke & weiter so! <3 {x} [y] a_b; c|d €5 „Zitat“ – Ende".into(),
            ..transfer("P-1", 500)
        }];
        let debtor = Debtor {
            name: "Allmende & Co. <eG>".into(),
            ..debtor()
        };
        let xml = write(&debtor, &transfers).unwrap();
        assert_valid(&xml);
        assert_eq!(
            values(&xml, "Nm"),
            [
                "Allmende + Co. (eG)",
                "Allmende + Co. (eG)",
                "Smith + Sons 'Open' (Source) O'Brien"
            ]
        );
        assert_eq!(
            values(&xml, "Ustrd"),
            ["Danke + weiter so. (3 (x) (y) a-b, c/d EUR5 'Zitat' - Ende"]
        );
        assert!(!xml.contains('&'));
        // The only double quotes left delimit attributes: the XML declaration's
        // two, the namespace and the one currency.
        assert_eq!(xml.matches('"').count(), 2 * 2 + 2 + 2);
    }

    #[test]
    fn text_is_escaped_even_if_it_was_not_converted() {
        let mut xml = Xml::default();
        xml.text("Nm", "a<b & c>d 'e' \"f\"");
        assert_eq!(xml.out, "<Nm>a&lt;b &amp; c&gt;d 'e' \"f\"</Nm>\n");
    }

    #[test]
    fn text_is_converted_to_the_sepa_character_set() {
        for (input, expected) in [
            ("Müller", "Mueller"),
            ("Ä Ö Ü äöü ß ẞ", "Ae Oe Ue aeoeue ss SS"),
            ("Ärger Öl Übel", "Aerger Oel Uebel"),
            ("MÜLLER GROẞ ÄRGER GÖ", "MUELLER GROSS AERGER GOE"),
            ("ÆRØ Ærø ÞOR Þor", "AERO AEro THOR Thor"),
            ("François Dupré", "Francois Dupre"),
            ("Søren Kierkegaard Ærø", "Soren Kierkegaard AEro"),
            ("Dvořák Škoda Čapek", "Dvorak Skoda Capek"),
            ("Wałęsa Gdańsk", "Walesa Gdansk"),
            ("Ștefan Țiriac", "Stefan Tiriac"),
            ("José Núñez", "Jose Nunez"),
            (
                "Straße 1/2 (rechts): 3.4,5-6? '7'+8",
                "Strasse 1/2 (rechts): 3.4,5-6? '7'+8",
            ),
            ("  viel   \t Platz \r\n hier  ", "viel Platz hier"),
            ("mail@example.org #1 50% $ * = ~ ^", "mail example.org 1 50"),
            ("李小龙", ""),
            ("Λ 李 Bruce", "Bruce"),
            ("😀 emoji", "emoji"),
        ] {
            assert_eq!(sepa_text(input, 140), expected, "{input:?}");
        }
    }

    #[test]
    fn long_text_is_cut_at_a_space_near_the_limit() {
        // The space at 64 is within the last quarter of 70: cut there.
        let words = format!("{} {}", "a".repeat(64), "b".repeat(20));
        assert_eq!(sepa_text(&words, 70), "a".repeat(64));
        // A space right at the limit keeps all 70 characters.
        let exact = format!("{} {}", "a".repeat(70), "b".repeat(5));
        assert_eq!(sepa_text(&exact, 70), "a".repeat(70));
        // The only space is too early: cut in the word.
        let early = format!("{} {}", "a".repeat(10), "b".repeat(100));
        assert_eq!(
            sepa_text(&early, 70),
            format!("{} {}", "a".repeat(10), "b".repeat(59))
        );
        let unbroken = "x".repeat(200);
        assert_eq!(sepa_text(&unbroken, 140), "x".repeat(140));
        // Transliteration can make a text longer; the limit applies afterwards.
        assert_eq!(sepa_text(&"ü".repeat(70), 70), "ue".repeat(35));
        // Exactly at the limit nothing is cut.
        let fits = "y".repeat(140);
        assert_eq!(sepa_text(&fits, 140), fits);
        for length in 0..300 {
            let text = sepa_text(&"ab cde fghi ".repeat(length), MAX_REMITTANCE_LENGTH);
            assert!(text.len() <= MAX_REMITTANCE_LENGTH);
            assert_eq!(text.trim(), text);
        }
    }

    #[test]
    fn the_creation_time_is_written_in_utc() {
        let xml = pain001(
            "M-1",
            datetime!(2024-12-31 23:59:59.999 -02:00),
            date!(2025 - 01 - 02),
            &debtor(),
            &[transfer("P-1", 100)],
        )
        .unwrap();
        assert_eq!(values(&xml, "CreDtTm"), ["2025-01-01T01:59:59Z"]);
        assert_valid(&xml);
    }

    #[test]
    fn each_problem_is_refused_with_its_error() {
        let ok = [transfer("P-1", 100)];
        let message = |id: &str| {
            pain001(
                id,
                datetime!(2024-05-02 10:15:30 UTC),
                date!(2024 - 05 - 03),
                &debtor(),
                &ok,
            )
        };
        let one = |t: CreditTransfer| write(&debtor(), &[t]);
        let creditor = |id: &str| Party::Creditor {
            end_to_end_id: id.into(),
        };

        assert_eq!(write(&debtor(), &[]), Err(SepaError::NoTransfers));

        assert_eq!(
            message(""),
            Err(SepaError::EmptyId {
                field: IdField::MessageId
            })
        );
        let too_long = "M".repeat(36);
        assert_eq!(
            message(&too_long),
            Err(SepaError::IdTooLong {
                field: IdField::MessageId,
                id: too_long.clone(),
                length: 36
            })
        );
        assert!(message(&"M".repeat(35)).is_ok());
        assert_eq!(
            message("Lauf März"),
            Err(SepaError::IdCharacter {
                field: IdField::MessageId,
                id: "Lauf März".into(),
                character: ' '
            })
        );
        assert_eq!(
            message("a&b"),
            Err(SepaError::IdCharacter {
                field: IdField::MessageId,
                id: "a&b".into(),
                character: '&'
            })
        );
        for id in ["/M-1", "M-1/", "M//1"] {
            assert_eq!(
                message(id),
                Err(SepaError::IdSlashes {
                    field: IdField::MessageId,
                    id: id.into()
                })
            );
        }

        assert_eq!(
            one(transfer("", 100)),
            Err(SepaError::EmptyId {
                field: IdField::EndToEndId
            })
        );
        assert_eq!(
            one(transfer(&too_long, 100)),
            Err(SepaError::IdTooLong {
                field: IdField::EndToEndId,
                id: too_long.clone(),
                length: 36
            })
        );
        assert_eq!(
            one(transfer("Zahlung-ä", 100)),
            Err(SepaError::IdCharacter {
                field: IdField::EndToEndId,
                id: "Zahlung-ä".into(),
                character: 'ä'
            })
        );
        assert_eq!(
            write(
                &debtor(),
                &[
                    transfer("P-1", 100),
                    transfer("P-2", 100),
                    transfer("P-1", 200)
                ]
            ),
            Err(SepaError::DuplicateEndToEndId { id: "P-1".into() })
        );

        for cents in [0, -1, i64::MIN] {
            assert_eq!(
                one(transfer("P-1", cents)),
                Err(SepaError::AmountNotPositive {
                    end_to_end_id: "P-1".into(),
                    amount: Money::from_cents(cents)
                })
            );
        }
        for cents in [MAX_AMOUNT.cents() + 1, i64::MAX] {
            assert_eq!(
                one(transfer("P-1", cents)),
                Err(SepaError::AmountTooLarge {
                    end_to_end_id: "P-1".into(),
                    amount: Money::from_cents(cents)
                })
            );
        }

        assert_eq!(
            write(
                &Debtor {
                    iban: "DE89370400440532013001".into(),
                    ..debtor()
                },
                &ok
            ),
            Err(SepaError::InvalidIban {
                party: Party::Debtor,
                error: IbanError::Checksum
            })
        );
        assert_eq!(
            one(CreditTransfer {
                creditor_iban: "AT61 1904 3002 3457 3202".into(),
                ..transfer("P-9", 100)
            }),
            Err(SepaError::InvalidIban {
                party: creditor("P-9"),
                error: IbanError::Checksum
            })
        );
        assert_eq!(
            one(CreditTransfer {
                creditor_iban: String::new(),
                ..transfer("P-9", 100)
            }),
            Err(SepaError::InvalidIban {
                party: creditor("P-9"),
                error: IbanError::Empty
            })
        );
        assert_eq!(
            write(
                &Debtor {
                    bic: Some("COBADEF".into()),
                    ..debtor()
                },
                &ok
            ),
            Err(SepaError::InvalidBic {
                party: Party::Debtor,
                error: BicError::WrongLength { actual: 7 }
            })
        );
        assert_eq!(
            one(CreditTransfer {
                creditor_bic: Some("COBAXXFF".into()),
                ..transfer("P-9", 100)
            }),
            Err(SepaError::InvalidBic {
                party: creditor("P-9"),
                error: BicError::UnknownCountry { code: "XX".into() }
            })
        );

        assert_eq!(
            write(
                &Debtor {
                    name: " \n ".into(),
                    ..debtor()
                },
                &ok
            ),
            Err(SepaError::EmptyName {
                party: Party::Debtor
            })
        );
        assert_eq!(
            one(CreditTransfer {
                creditor_name: "李小龙".into(),
                ..transfer("P-9", 100)
            }),
            Err(SepaError::EmptyName {
                party: creditor("P-9")
            })
        );

        assert_eq!(
            pain001(
                "M-1",
                datetime!(2024-05-02 10:15:30 UTC),
                date!(0999 - 12 - 31),
                &debtor(),
                &ok
            ),
            Err(SepaError::DateOutOfRange { year: 999 })
        );
        assert_eq!(
            pain001(
                "M-1",
                datetime!(0999-12-31 23:00 UTC),
                date!(2024 - 05 - 03),
                &debtor(),
                &ok
            ),
            Err(SepaError::DateOutOfRange { year: 999 })
        );

        // Problems are reported in the order the file is read.
        assert_eq!(
            pain001(
                "",
                datetime!(2024-05-02 10:15:30 UTC),
                date!(2024 - 05 - 03),
                &debtor(),
                &[]
            ),
            Err(SepaError::EmptyId {
                field: IdField::MessageId
            })
        );
        assert_eq!(
            write(&debtor(), &[transfer("P-1", 0), transfer("", 100)]),
            Err(SepaError::AmountNotPositive {
                end_to_end_id: "P-1".into(),
                amount: Money::ZERO
            })
        );
    }

    #[test]
    fn a_sum_that_control_sum_cannot_hold_is_refused() {
        // Unreachable through pain001 without ten million transfers, so tested here.
        assert_eq!(
            control_sum([Money::from_cents(MAX_CONTROL_SUM_CENTS)]),
            Ok(Money::from_cents(MAX_CONTROL_SUM_CENTS))
        );
        assert_eq!(
            control_sum([
                Money::from_cents(MAX_CONTROL_SUM_CENTS),
                Money::from_cents(1)
            ]),
            Err(SepaError::SumTooLarge)
        );
        assert_eq!(
            control_sum([Money::MAX, Money::MAX]),
            Err(SepaError::SumTooLarge)
        );
        assert_eq!(SepaError::SumTooLarge.message_key(), "sepa.sum_too_large");
    }

    #[test]
    fn errors_have_message_keys_and_readable_text() {
        let error = SepaError::InvalidIban {
            party: Party::Creditor {
                end_to_end_id: "P-9".into(),
            },
            error: IbanError::Checksum,
        };
        assert_eq!(error.message_key(), "sepa.invalid_iban");
        assert_eq!(
            error.to_string(),
            "the IBAN of the payee of P-9 is invalid: the check digits do not match; please check for typos"
        );
        let error = SepaError::AmountNotPositive {
            end_to_end_id: "P-1".into(),
            amount: Money::from_cents(-5),
        };
        assert_eq!(
            error.to_string(),
            "the transfer P-1 is -0.05 €; only positive amounts can be paid"
        );
    }

    #[test]
    fn the_schema_check_catches_a_broken_file() {
        // Guards against a validation that passes everything (wrong schema, no schema).
        let xml = write(&debtor(), &[transfer("P-1", 100)]).unwrap();
        assert_valid(&xml);
        for (from, to) in [
            ("<PmtMtd>TRF</PmtMtd>", "<PmtMtd>XXX</PmtMtd>"),
            ("<CtrlSum>1.00</CtrlSum>", "<CtrlSum>1.001.00</CtrlSum>"),
            ("<Dt>2024-05-03</Dt>", ""),
            ("<BICFI>COBADEFFXXX</BICFI>", "<BICFI>cobadeff</BICFI>"),
            ("pain.001.001.09", "pain.001.001.03"),
        ] {
            assert!(xml.contains(from), "{from}");
            let broken = xml.replacen(from, to, 1);
            assert!(xmllint(&broken).is_err(), "accepted with {to:?}:\n{broken}");
        }
    }
}
