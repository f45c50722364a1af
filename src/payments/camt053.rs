//! Parser for ISO 20022 camt.053 bank statements (`BankToCustomerStatement`).
//!
//! Reads the statements German banks deliver (Sparkasse, Volksbank, GLS,
//! Deutsche Bank, ...) in the versions camt.053.001.02 through .08 and turns
//! every booking into an [`Entry`] with its amount in exact cents. The module
//! is pure: it takes the file's text and returns data; storing, matching and
//! deduplicating is up to the caller.
//!
//! # What is read
//!
//! Elements are matched by local name, so any namespace version (and any
//! prefix) is accepted; the message is recognised by its `BkToCstmrStmt`
//! element. Per `Ntry`:
//!
//! - amount `Amt` (only `Ccy="EUR"`, at most two nonzero decimals, parsed
//!   exactly without floats), `CdtDbtInd`, status `Sts` (`Sts/Cd` from .08),
//!   `BookgDt` and `ValDt` (`Dt`, or the date part of `DtTm`);
//! - from `NtryDtls/TxDtls`: remittance (`RmtInf/Ustrd` and
//!   `RmtInf/Strd/CdtrRefInf/Ref`), `Refs/EndToEndId`, the debtor's name
//!   (`RltdPties/Dbtr/Nm`, `RltdPties/Dbtr/Pty/Nm` from .08) and IBAN.
//!
//! Balances, transaction summaries and bank transaction codes are not read.
//!
//! # References
//!
//! [`Entry::entry_ref`] is the bank's reference for the booking: the entry's
//! `AcctSvcrRef`, else an `AcctSvcrRef` shared by its `TxDtls`, else its
//! `NtryRef`. Placeholders (`NONREF`, `NOTPROVIDED`) do not count, and a bank
//! reference that occurs on more than one entry of the document is not used
//! either, since it cannot tell those entries apart. Without a usable bank
//! reference the entry gets a key from its own content: `c:` followed by the
//! SHA-256 (hex) of the statement's account IBAN, the entry's booking date,
//! value date, amount, direction, the counterparty's IBAN, the remittance
//! (without whitespace, which banks place freely when they wrap lines) and the
//! end-to-end id. The same booking thus gets the same key in every statement
//! that shows it: an overlapping statement, a re-issued or a paginated one.
//! Neither the statement's id nor the entry's position go in. Entries of one
//! statement with identical content (the same payer paying the same amount
//! with the same text twice a day) are told apart by their occurrence:
//! `c:…`, `c:…#2`, `c:…#3`.
//!
//! [`Entry::previous_ref`] keeps the key earlier versions gave such an entry
//! (`h:` and a hash that included the statement id and the position), so that
//! a statement imported before still counts as known.
//!
//! # Batch bookings
//!
//! An entry with more than one `TxDtls` becomes one [`Entry`] per `TxDtls`
//! when every `TxDtls` has its own amount in EUR (`TxDtls/Amt` or
//! `TxDtls/AmtDtls/TxAmt/Amt`) and these add up to the entry's amount (each
//! `TxDtls` counted with its own `CdtDbtInd` if it has one). The parts get
//! the references `{entry_ref}/1`, `{entry_ref}/2`, ... Otherwise the entry
//! stays one [`Entry`] with the remittance of all its `TxDtls`, so the sum
//! of the entries always equals what the bank booked.
//!
//! # Errors
//!
//! Problems are reported in this order: too large, not well-formed XML
//! (which includes elements nested more than 100 levels deep), not a camt.053
//! statement, then the first problem in the statements' content.

use std::collections::HashMap;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::money::Money;

/// The largest input [`parse`] accepts: 10 MiB.
pub const MAX_INPUT_BYTES: usize = 10 * 1024 * 1024;

/// The only currency supported.
const EUR: &str = "EUR";

/// How deeply elements may nest. A camt.053 needs about 15 levels; the limit
/// keeps hostile input from costing much memory or time.
const MAX_DEPTH: usize = 100;

/// How far below its `Stmt`, `Ntry` or `TxDtls` a field is recorded; the
/// deepest one read is `RltdPties/DbtrAcct/Id/IBAN` (4).
const MAX_FIELD_DEPTH: usize = 6;

/// Values banks put where they have no reference.
const PLACEHOLDERS: [&str; 3] = ["NONREF", "NOTPROVIDED", "NOT PROVIDED"];

/// One account statement (`Stmt`) of a camt.053 document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// `Stmt/Id`, the bank's identifier of this statement.
    pub id: String,
    /// `Stmt/Acct/Id/IBAN`, the account the statement is about.
    pub account_iban: Option<String>,
    /// `Stmt/CreDtTm` exactly as given (ISO 8601 date-time).
    pub created_at: Option<String>,
    /// The bookings, in document order; a split batch booking contributes one
    /// entry per transaction.
    pub entries: Vec<Entry>,
}

/// One booking on the account (`Ntry`), or one transaction of a split batch
/// booking (`Ntry/NtryDtls/TxDtls`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The bank's reference for the booking, or a `c:` key from the entry's
    /// content when the bank gives none; `{ref}/{n}` (from 1) for the parts of a split batch.
    /// See the module documentation.
    pub entry_ref: String,
    /// For an entry keyed by its content: the `h:` key versions before gave
    /// it, so that an entry imported under that key is recognised.
    #[serde(default)]
    pub previous_ref: Option<String>,
    /// The amount, never negative; the direction is in `credit`.
    pub amount: Money,
    /// `true` for money received (`CRDT`), `false` for money paid (`DBIT`).
    pub credit: bool,
    /// `true` if the bank has booked the entry (status `BOOK`); `false` for
    /// pending (`PDNG`) or informational (`INFO`) entries.
    pub booked: bool,
    /// Booking date `YYYY-MM-DD`.
    pub booking_date: Option<String>,
    /// Value date `YYYY-MM-DD`.
    pub value_date: Option<String>,
    /// The remittance information (Verwendungszweck): all `RmtInf/Ustrd`
    /// lines joined with a space, then each `RmtInf/Strd/CdtrRefInf/Ref` not
    /// already contained in them. Runs of whitespace are collapsed to one
    /// space. Banks split long texts across lines without regard to words, so
    /// a payment reference may contain a space here (`AM-P2M8- R4TZ`).
    pub remittance: String,
    /// `Refs/EndToEndId` set by the payer; `None` also for `NOTPROVIDED`.
    pub end_to_end_id: Option<String>,
    /// `RltdPties/Dbtr/Nm` (`RltdPties/Dbtr/Pty/Nm` from .08): the payer. For
    /// a debit this is the account holder, if the bank says so at all.
    pub debtor_name: Option<String>,
    /// `RltdPties/DbtrAcct/Id/IBAN`.
    pub debtor_iban: Option<String>,
}

/// Why a file was refused.
///
/// The web layer translates by [`CamtError::message_key`]; the English
/// `Display` text is for logs and English fallbacks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CamtError {
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("the file has {size} bytes, but a bank statement may have at most {max} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The limit, [`MAX_INPUT_BYTES`].
        max: usize,
    },
    /// The input is not well-formed XML.
    #[error("the file is not well-formed XML (line {line}, column {column}): {reason}")]
    NotXml {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// Byte offset of the problem in the input.
        position: usize,
        /// What is wrong, in English (from the XML parser where it found it).
        reason: String,
    },
    /// Well-formed XML, but not a camt.053 bank statement (no `BkToCstmrStmt`).
    #[error(
        "the file is not a camt.053 bank statement: it contains <{found}> instead of <BkToCstmrStmt>"
    )]
    NotCamt053 {
        /// Local name of the message element found instead (the root's first
        /// child, or the root): `CstmrCdtTrfInitn` for pain.001,
        /// `BkToCstmrAcctRpt` for camt.052, `BkToCstmrDbtCdtNtfctn` for camt.054.
        found: String,
    },
    /// A field the format requires is missing.
    #[error("the bank statement lacks the required field {what}")]
    MissingField {
        /// Path of the field, e.g. `Ntry/Amt`.
        what: String,
    },
    /// A field has a value the format does not allow.
    #[error("the bank statement has the invalid value {value:?} in {what}")]
    InvalidField {
        /// Path of the field, e.g. `Ntry/CdtDbtInd`.
        what: String,
        /// The value found.
        value: String,
    },
    /// An amount is not a decimal number with at most two (nonzero) decimals.
    #[error("the bank statement has the malformed amount {text:?}")]
    Amount {
        /// The amount's text as found.
        text: String,
    },
    /// An entry's amount (`Ntry/Amt`) is in another currency than EUR.
    #[error("the bank statement has an amount in {found:?}, but only EUR is supported")]
    Currency {
        /// The currency code found.
        found: String,
    },
}

impl CamtError {
    /// A stable identifier for this kind of error, used as a translation key.
    #[must_use]
    pub const fn message_key(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "camt.too_large",
            Self::NotXml { .. } => "camt.not_xml",
            Self::NotCamt053 { .. } => "camt.not_camt053",
            Self::MissingField { .. } => "camt.missing_field",
            Self::InvalidField { .. } => "camt.invalid_field",
            Self::Amount { .. } => "camt.amount",
            Self::Currency { .. } => "camt.currency",
        }
    }
}

/// Parses a camt.053 document into its statements.
///
/// `xml` is the file's text; a file in another encoding than UTF-8 (some
/// banks still declare ISO-8859-1) has to be decoded by the caller. A leading
/// byte order mark is ignored.
///
/// # Errors
/// [`CamtError::TooLarge`] above [`MAX_INPUT_BYTES`], [`CamtError::NotXml`],
/// [`CamtError::NotCamt053`] if there is no `BkToCstmrStmt` element, and
/// [`CamtError::MissingField`], [`CamtError::InvalidField`],
/// [`CamtError::Amount`] or [`CamtError::Currency`] for the first entry
/// that cannot be read.
pub fn parse(xml: &str) -> Result<Vec<Statement>, CamtError> {
    if xml.len() > MAX_INPUT_BYTES {
        return Err(CamtError::TooLarge {
            size: xml.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    let raw = scan(xml)?;
    let mut statements = Vec::with_capacity(raw.len());
    let mut ntries = Vec::new();
    for raw_statement in &raw {
        let (statement, parsed) = read_statement(raw_statement)?;
        statements.push(statement);
        ntries.push(parsed);
    }
    assign_refs(&mut statements, &ntries);
    Ok(statements)
}

// ---------------------------------------------------------------------------
// Scanning: XML events to flat (path, text) fields per Stmt, Ntry and TxDtls.
// ---------------------------------------------------------------------------

/// A leaf value: its path relative to the enclosing `Stmt`, `Ntry` or
/// `TxDtls` (`BookgDt/Dt`, `RmtInf/Ustrd`; attributes as `Amt/@Ccy`) and its
/// trimmed text.
#[derive(Debug)]
struct Field {
    path: String,
    text: String,
}

#[derive(Debug, Default)]
struct RawNtry {
    fields: Vec<Field>,
    txs: Vec<Vec<Field>>,
}

#[derive(Debug, Default)]
struct RawStatement {
    fields: Vec<Field>,
    ntries: Vec<RawNtry>,
}

/// An open element.
#[derive(Debug)]
struct Frame {
    name: String,
    text: String,
    currency: Option<String>,
}

/// Where the elements that matter start: stack depths (1 = root).
#[derive(Debug, Default)]
struct Scopes {
    message: Option<usize>,
    statement: Option<usize>,
    ntry: Option<usize>,
    tx: Option<usize>,
}

struct Scanner<'a> {
    xml: &'a str,
    /// Bytes stripped from the start of `xml` (a byte order mark).
    offset: usize,
    stack: Vec<Frame>,
    scopes: Scopes,
    root_name: Option<String>,
    /// The message element's name: the root's first child.
    message_name: Option<String>,
    root_closed: bool,
    found_camt053: bool,
    statements: Vec<RawStatement>,
    statement: Option<RawStatement>,
    ntry: Option<RawNtry>,
    tx: Option<Vec<Field>>,
}

fn scan(xml: &str) -> Result<Vec<RawStatement>, CamtError> {
    let body = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let mut scanner = Scanner {
        xml,
        offset: xml.len() - body.len(),
        stack: Vec::new(),
        scopes: Scopes::default(),
        root_name: None,
        message_name: None,
        root_closed: false,
        found_camt053: false,
        statements: Vec::new(),
        statement: None,
        ntry: None,
        tx: None,
    };
    let mut reader = Reader::from_str(body);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = true;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                return Err(scanner.not_xml(reader.error_position(), error.to_string()));
            }
        };
        let position = reader.buffer_position();
        match event {
            Event::Start(start) => scanner.start(&start, position)?,
            Event::End(_) => scanner.end(),
            Event::Text(text) => scanner.text(&text.xml10_content(), position)?,
            Event::CData(data) => scanner.text(&data.xml10_content(), position)?,
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match resolve_predefined_entity(&reference) {
                        Some(s) => s.to_owned(),
                        None => {
                            let reason = format!("unknown entity &{};", &*reference);
                            return Err(scanner.not_xml(position, reason));
                        }
                    },
                    Err(error) => return Err(scanner.not_xml(position, error.to_string())),
                };
                scanner.text(&resolved, position)?;
            }
            Event::Eof => break,
            Event::Empty(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => {}
        }
    }
    if let Some(open) = scanner.stack.last() {
        let reason = format!("the document ends before <{}> is closed", open.name);
        return Err(scanner.not_xml(body.len() as u64, reason));
    }
    if !scanner.root_closed {
        return Err(scanner.not_xml(body.len() as u64, "there is no root element".into()));
    }
    if !scanner.found_camt053 {
        return Err(CamtError::NotCamt053 {
            found: scanner
                .message_name
                .or(scanner.root_name)
                .unwrap_or_default(),
        });
    }
    if scanner.statements.is_empty() {
        return Err(CamtError::MissingField {
            what: "BkToCstmrStmt/Stmt".into(),
        });
    }
    Ok(scanner.statements)
}

impl Scanner<'_> {
    fn not_xml(&self, position: u64, reason: String) -> CamtError {
        let position = usize::try_from(position)
            .unwrap_or(usize::MAX)
            .saturating_add(self.offset)
            .min(self.xml.len());
        let before = &self.xml.as_bytes()[..position];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        CamtError::NotXml {
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            // Counts characters: every byte that does not continue a UTF-8 sequence.
            column: before[line_start..]
                .iter()
                .filter(|&&b| b & 0xC0 != 0x80)
                .count()
                + 1,
            position,
            reason,
        }
    }

    fn start(&mut self, start: &BytesStart<'_>, position: u64) -> Result<(), CamtError> {
        if self.stack.is_empty() && self.root_closed {
            return Err(self.not_xml(position, "a second root element".into()));
        }
        if self.stack.len() >= MAX_DEPTH {
            let reason = format!("elements are nested more than {MAX_DEPTH} levels deep");
            return Err(self.not_xml(position, reason));
        }
        let name = start.local_name().into_inner().to_owned();
        let mut currency = None;
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.not_xml(position, e.to_string()))?;
            if attribute.key.local_name().into_inner() == "Ccy" {
                let value = attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|e| self.not_xml(position, e.to_string()))?;
                currency = Some(value.trim().to_owned());
            }
        }
        let depth = self.stack.len() + 1;
        if depth == 1 {
            self.root_name = Some(name.clone());
        } else if depth == 2 && self.message_name.is_none() {
            self.message_name = Some(name.clone());
        }
        let parent = self.stack.last().map(|frame| frame.name.as_str());
        match name.as_str() {
            "BkToCstmrStmt" if depth <= 2 && self.scopes.message.is_none() => {
                self.found_camt053 = true;
                self.scopes.message = Some(depth);
            }
            "Stmt" if self.scopes.message == Some(depth - 1) => {
                self.scopes.statement = Some(depth);
                self.statement = Some(RawStatement::default());
            }
            "Ntry" if self.scopes.statement == Some(depth - 1) => {
                self.scopes.ntry = Some(depth);
                self.ntry = Some(RawNtry::default());
            }
            "TxDtls" if self.scopes.ntry == Some(depth - 2) && parent == Some("NtryDtls") => {
                self.scopes.tx = Some(depth);
                self.tx = Some(Vec::new());
            }
            _ => {}
        }
        self.stack.push(Frame {
            name,
            text: String::new(),
            currency,
        });
        Ok(())
    }

    fn text(&mut self, text: &str, position: u64) -> Result<(), CamtError> {
        match self.stack.last_mut() {
            Some(frame) => frame.text.push_str(text),
            None if text.trim().is_empty() => {}
            None => {
                return Err(self.not_xml(position, "text outside the root element".into()));
            }
        }
        Ok(())
    }

    /// Closes the innermost element. quick-xml has checked that the end tag
    /// matches, so the stack is not empty.
    fn end(&mut self) {
        let depth = self.stack.len();
        // The innermost scope the element lies in, where its field goes.
        let scope_depth = [self.scopes.tx, self.scopes.ntry, self.scopes.statement]
            .into_iter()
            .flatten()
            .find(|&d| d < depth)
            .filter(|&d| depth - d <= MAX_FIELD_DEPTH);
        if let Some(scope_depth) = scope_depth {
            let frame = &self.stack[depth - 1];
            let text = frame.text.trim();
            if !text.is_empty() || frame.currency.is_some() {
                let path = self.stack[scope_depth..]
                    .iter()
                    .map(|frame| frame.name.as_str())
                    .collect::<Vec<_>>()
                    .join("/");
                let target = if self.scopes.tx == Some(scope_depth) {
                    self.tx.as_mut()
                } else if self.scopes.ntry == Some(scope_depth) {
                    self.ntry.as_mut().map(|ntry| &mut ntry.fields)
                } else {
                    self.statement.as_mut().map(|s| &mut s.fields)
                };
                if let Some(fields) = target {
                    if let Some(currency) = &frame.currency {
                        fields.push(Field {
                            path: format!("{path}/@Ccy"),
                            text: currency.clone(),
                        });
                    }
                    if !text.is_empty() {
                        fields.push(Field {
                            path,
                            text: text.to_owned(),
                        });
                    }
                }
            }
        }
        self.stack.pop();
        if self.stack.is_empty() {
            self.root_closed = true;
        }
        if self.scopes.tx == Some(depth) {
            self.scopes.tx = None;
            if let (Some(tx), Some(ntry)) = (self.tx.take(), self.ntry.as_mut()) {
                ntry.txs.push(tx);
            }
        } else if self.scopes.ntry == Some(depth) {
            self.scopes.ntry = None;
            if let (Some(ntry), Some(statement)) = (self.ntry.take(), self.statement.as_mut()) {
                statement.ntries.push(ntry);
            }
        } else if self.scopes.statement == Some(depth) {
            self.scopes.statement = None;
            if let Some(statement) = self.statement.take() {
                self.statements.push(statement);
            }
        } else if self.scopes.message == Some(depth) {
            self.scopes.message = None;
        }
    }
}

// ---------------------------------------------------------------------------
// Reading the fields.
// ---------------------------------------------------------------------------

/// The first value at `path`.
fn get<'a>(fields: &'a [Field], path: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|field| field.path == path)
        .map(|field| field.text.as_str())
}

/// The first value at any of `paths`, in the order of `paths`.
fn get_any<'a>(fields: &'a [Field], paths: &[&str]) -> Option<&'a str> {
    paths.iter().find_map(|path| get(fields, path))
}

/// A reference, unless it is a placeholder for none.
fn real_ref(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| !PLACEHOLDERS.iter().any(|p| v.eq_ignore_ascii_case(p)))
        .map(str::to_owned)
}

/// The value all that have one agree on; `None` if none has one or they differ.
fn common(values: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let mut found: Option<String> = None;
    for value in values.into_iter().flatten() {
        match &found {
            Some(existing) if *existing != value => return None,
            Some(_) => {}
            None => found = Some(value),
        }
    }
    found
}

/// Parses an ISO 20022 amount (`xs:decimal`: `1234.56`, `12.5`, `100`,
/// `.5`) exactly into cents. No sign but an optional `+`; digits beyond the
/// second decimal must be zeros.
fn parse_amount(text: &str) -> Result<Money, CamtError> {
    let malformed = || CamtError::Amount {
        text: text.to_owned(),
    };
    let number = text.trim();
    let number = number.strip_prefix('+').unwrap_or(number);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(malformed());
    }
    let (cents_digits, rest) = fraction.split_at(fraction.len().min(2));
    if rest.bytes().any(|b| b != b'0') {
        return Err(malformed());
    }
    let mut cents: i64 = 0;
    for digit in whole.bytes().chain(cents_digits.bytes()) {
        cents = cents
            .checked_mul(10)
            .and_then(|c| c.checked_add(i64::from(digit - b'0')))
            .ok_or_else(malformed)?;
    }
    for _ in cents_digits.len()..2 {
        cents = cents.checked_mul(10).ok_or_else(malformed)?;
    }
    Ok(Money::from_cents(cents))
}

/// An amount with its currency.
enum Amount {
    Eur(Money),
    /// Another currency (its code); the number is not read.
    Other(String),
}

/// Reads the amount at `path` with its `Ccy` attribute; `None` if absent.
fn read_amount(fields: &[Field], path: &str, scope: &str) -> Result<Option<Amount>, CamtError> {
    let Some(text) = get(fields, path) else {
        return Ok(None);
    };
    let currency = get(fields, &format!("{path}/@Ccy")).ok_or_else(|| CamtError::MissingField {
        what: format!("{scope}/{path}/@Ccy"),
    })?;
    if currency == EUR {
        parse_amount(text).map(|amount| Some(Amount::Eur(amount)))
    } else {
        Ok(Some(Amount::Other(currency.to_owned())))
    }
}

/// `CRDT` → `true`, `DBIT` → `false`.
fn read_direction(fields: &[Field], what: &str) -> Result<Option<bool>, CamtError> {
    match get(fields, "CdtDbtInd") {
        None => Ok(None),
        Some("CRDT") => Ok(Some(true)),
        Some("DBIT") => Ok(Some(false)),
        Some(other) => Err(CamtError::InvalidField {
            what: what.to_owned(),
            value: other.to_owned(),
        }),
    }
}

/// The date of `{element}/Dt`, or the date part of `{element}/DtTm`.
fn read_date(fields: &[Field], element: &str) -> Result<Option<String>, CamtError> {
    let Some(value) = get_any(
        fields,
        &[&format!("{element}/Dt"), &format!("{element}/DtTm")],
    ) else {
        return Ok(None);
    };
    let date = value.get(..10).unwrap_or(value);
    let well_formed = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !well_formed {
        return Err(CamtError::InvalidField {
            what: format!("Ntry/{element}"),
            value: value.to_owned(),
        });
    }
    Ok(Some(date.to_owned()))
}

/// Remittance texts of one scope: (`Ustrd` lines, `Strd` creditor references).
fn remittance_parts(fields: &[Field], unstructured: &mut Vec<String>, refs: &mut Vec<String>) {
    for field in fields {
        let collapsed = || field.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if field.path == "RmtInf/Ustrd" {
            unstructured.push(collapsed());
        } else if field.path == "RmtInf/Strd/CdtrRefInf/Ref" {
            refs.push(collapsed());
        }
    }
}

/// Joins the `Ustrd` lines with a space and appends each creditor reference
/// that is not already in them (ignoring whitespace).
fn join_remittance(unstructured: &[String], refs: &[String]) -> String {
    let mut text = unstructured.join(" ");
    for reference in refs {
        let squeezed: String = text.split_whitespace().collect();
        let reference_squeezed: String = reference.split_whitespace().collect();
        if !squeezed.contains(&reference_squeezed) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(reference);
        }
    }
    text
}

/// What one `TxDtls` says.
#[derive(Debug)]
struct Tx {
    amount: Option<Money>,
    credit: Option<bool>,
    unstructured: Vec<String>,
    refs: Vec<String>,
    end_to_end_id: Option<String>,
    debtor_name: Option<String>,
    debtor_iban: Option<String>,
    bank_ref: Option<String>,
}

fn read_tx(fields: &[Field]) -> Result<Tx, CamtError> {
    // The transaction's own amount, if there is one in EUR. One in another
    // currency (a foreign payment) only means this TxDtls cannot be split off.
    let mut amount = None;
    for path in ["Amt", "AmtDtls/TxAmt/Amt"] {
        if let Some(Amount::Eur(eur)) = read_amount(fields, path, "TxDtls")? {
            amount = Some(eur);
            break;
        }
    }
    let mut unstructured = Vec::new();
    let mut refs = Vec::new();
    remittance_parts(fields, &mut unstructured, &mut refs);
    Ok(Tx {
        amount,
        credit: read_direction(fields, "TxDtls/CdtDbtInd")?,
        unstructured,
        refs,
        end_to_end_id: real_ref(get(fields, "Refs/EndToEndId")),
        debtor_name: get_any(fields, &["RltdPties/Dbtr/Nm", "RltdPties/Dbtr/Pty/Nm"])
            .map(str::to_owned),
        debtor_iban: get(fields, "RltdPties/DbtrAcct/Id/IBAN").map(normalize_iban),
        bank_ref: real_ref(get(fields, "Refs/AcctSvcrRef")),
    })
}

fn normalize_iban(iban: &str) -> String {
    iban.split_whitespace()
        .collect::<String>()
        .to_ascii_uppercase()
}

/// One `Ntry` read, before its reference is fixed (which needs the whole
/// document, to spot bank references used twice).
#[derive(Debug)]
struct ParsedNtry {
    bank_ref: Option<String>,
    /// The key from the entry's content, before occurrences are counted.
    content_ref: String,
    /// The key versions before gave an entry without a bank reference.
    legacy_ref: String,
    /// Whether the entry is a split batch, its parts referenced `{ref}/{n}`.
    split: bool,
    /// How many [`Entry`]s the `Ntry` gave.
    parts: usize,
}

fn read_statement(raw: &RawStatement) -> Result<(Statement, Vec<ParsedNtry>), CamtError> {
    let id = get(&raw.fields, "Id")
        .ok_or_else(|| CamtError::MissingField {
            what: "Stmt/Id".into(),
        })?
        .to_owned();
    let account_iban = get(&raw.fields, "Acct/Id/IBAN").map(normalize_iban);
    let created_at = get(&raw.fields, "CreDtTm").map(str::to_owned);
    let mut entries = Vec::new();
    let mut parsed = Vec::with_capacity(raw.ntries.len());
    for (index, ntry) in raw.ntries.iter().enumerate() {
        parsed.push(read_ntry(
            ntry,
            index,
            &id,
            account_iban.as_deref(),
            &mut entries,
        )?);
    }
    let statement = Statement {
        id,
        account_iban,
        created_at,
        entries,
    };
    Ok((statement, parsed))
}

/// Reads one `Ntry` and appends its entry or entries (with an empty
/// `entry_ref`, set later by [`assign_refs`]).
fn read_ntry(
    raw: &RawNtry,
    index: usize,
    statement_id: &str,
    account_iban: Option<&str>,
    out: &mut Vec<Entry>,
) -> Result<ParsedNtry, CamtError> {
    let fields = &raw.fields;
    let missing = |what: &str| CamtError::MissingField { what: what.into() };
    let amount = match read_amount(fields, "Amt", "Ntry")? {
        Some(Amount::Eur(amount)) => amount,
        Some(Amount::Other(found)) => return Err(CamtError::Currency { found }),
        None => return Err(missing("Ntry/Amt")),
    };
    let credit =
        read_direction(fields, "Ntry/CdtDbtInd")?.ok_or_else(|| missing("Ntry/CdtDbtInd"))?;
    let status =
        get_any(fields, &["Sts", "Sts/Cd", "Sts/Prtry"]).ok_or_else(|| missing("Ntry/Sts"))?;
    let booked = status == "BOOK";
    let booking_date = read_date(fields, "BookgDt")?;
    let value_date = read_date(fields, "ValDt")?;

    let txs = raw
        .txs
        .iter()
        .map(|tx| read_tx(tx))
        .collect::<Result<Vec<_>, _>>()?;
    let mut entry_unstructured = Vec::new();
    let mut entry_refs = Vec::new();
    remittance_parts(fields, &mut entry_unstructured, &mut entry_refs);

    let bank_ref = real_ref(get(fields, "AcctSvcrRef"))
        .or_else(|| common(txs.iter().map(|tx| tx.bank_ref.clone())))
        .or_else(|| real_ref(get(fields, "NtryRef")));

    let mut all_unstructured = entry_unstructured.clone();
    let mut all_refs = entry_refs.clone();
    for tx in &txs {
        all_unstructured.extend(tx.unstructured.iter().cloned());
        all_refs.extend(tx.refs.iter().cloned());
    }
    let remittance = join_remittance(&all_unstructured, &all_refs);
    let legacy_ref = legacy_hash_ref(
        account_iban.unwrap_or(""),
        statement_id,
        index,
        amount,
        credit,
        booking_date
            .as_deref()
            .or(value_date.as_deref())
            .unwrap_or(""),
        &remittance,
    );

    let end_to_end_id = common(txs.iter().map(|tx| tx.end_to_end_id.clone()));
    let debtor_iban = common(txs.iter().map(|tx| tx.debtor_iban.clone()));
    let content_ref = content_ref(&Content {
        account_iban: account_iban.unwrap_or(""),
        booking_date: booking_date.as_deref().unwrap_or(""),
        value_date: value_date.as_deref().unwrap_or(""),
        amount,
        credit,
        counterparty_iban: debtor_iban.as_deref().unwrap_or(""),
        remittance: &remittance,
        end_to_end_id: end_to_end_id.as_deref().unwrap_or(""),
    });

    let template = Entry {
        entry_ref: String::new(),
        previous_ref: None,
        amount,
        credit,
        booked,
        booking_date,
        value_date,
        remittance,
        end_to_end_id,
        debtor_name: common(txs.iter().map(|tx| tx.debtor_name.clone())),
        debtor_iban,
    };
    let split = txs.len() > 1 && parts_add_up(amount, credit, &txs);
    let before = out.len();
    if split {
        for tx in txs {
            let mut unstructured = entry_unstructured.clone();
            unstructured.extend(tx.unstructured);
            let mut refs = entry_refs.clone();
            refs.extend(tx.refs);
            out.push(Entry {
                amount: tx.amount.unwrap_or(Money::ZERO),
                credit: tx.credit.unwrap_or(credit),
                remittance: join_remittance(&unstructured, &refs),
                end_to_end_id: tx.end_to_end_id,
                debtor_name: tx.debtor_name,
                debtor_iban: tx.debtor_iban,
                ..template.clone()
            });
        }
    } else {
        out.push(template);
    }
    Ok(ParsedNtry {
        bank_ref,
        content_ref,
        legacy_ref,
        split,
        parts: out.len() - before,
    })
}

/// Whether every transaction has its own amount and they add up (signed) to
/// the entry's amount.
fn parts_add_up(amount: Money, credit: bool, txs: &[Tx]) -> bool {
    let signed = |amount: Money, credit: bool| {
        let cents = i128::from(amount.cents());
        if credit { cents } else { -cents }
    };
    let mut sum: i128 = 0;
    for tx in txs {
        let Some(part) = tx.amount else {
            return false;
        };
        sum += signed(part, tx.credit.unwrap_or(credit));
    }
    sum == signed(amount, credit)
}

/// What identifies a booking without a bank reference, whichever statement
/// shows it.
struct Content<'a> {
    account_iban: &'a str,
    booking_date: &'a str,
    value_date: &'a str,
    amount: Money,
    credit: bool,
    counterparty_iban: &'a str,
    remittance: &'a str,
    end_to_end_id: &'a str,
}

/// `c:` and the SHA-256 (hex) of the length-prefixed content fields.
fn content_ref(content: &Content<'_>) -> String {
    let cents = content.amount.cents().to_string();
    let remittance: String = content.remittance.split_whitespace().collect();
    let fields = [
        "camt053-entry-v2",
        content.account_iban,
        content.booking_date,
        content.value_date,
        &cents,
        if content.credit { "CRDT" } else { "DBIT" },
        content.counterparty_iban,
        &remittance,
        content.end_to_end_id,
    ];
    format!("c:{}", sha256_of(&fields))
}

/// The SHA-256 (hex) of the fields, each prefixed by its length so that no
/// two different lists hash alike.
fn sha256_of(fields: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The key of versions before: `h:` and the SHA-256 (hex) of the
/// length-prefixed fields, which include the statement and the position.
fn legacy_hash_ref(
    account_iban: &str,
    statement_id: &str,
    index: usize,
    amount: Money,
    credit: bool,
    date: &str,
    remittance: &str,
) -> String {
    let index = index.to_string();
    let cents = amount.cents().to_string();
    let fields = [
        "camt053-entry-v1",
        account_iban,
        statement_id,
        &index,
        &cents,
        if credit { "CRDT" } else { "DBIT" },
        date,
        remittance,
    ];
    format!("h:{}", sha256_of(&fields))
}

/// Sets every entry's reference: the bank's if it is unique in the document,
/// else the content key (numbered from the second entry of the statement
/// with the same content); `/{n}` appended for the parts of a split batch.
fn assign_refs(statements: &mut [Statement], parsed: &[Vec<ParsedNtry>]) {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for ntry in parsed.iter().flatten() {
        if let Some(bank_ref) = &ntry.bank_ref {
            *uses.entry(bank_ref.as_str()).or_default() += 1;
        }
    }
    for (statement, parsed) in statements.iter_mut().zip(parsed) {
        // Counted per statement: two statements in one file that overlap show
        // the same booking, which must get the same key in both.
        let mut occurrences: HashMap<&str, usize> = HashMap::new();
        let mut entries = statement.entries.iter_mut();
        for ntry in parsed {
            let (base, previous) = match &ntry.bank_ref {
                Some(bank_ref) if uses.get(bank_ref.as_str()) == Some(&1) => {
                    (bank_ref.clone(), None)
                }
                _ => {
                    let seen = occurrences.entry(ntry.content_ref.as_str()).or_default();
                    *seen += 1;
                    let key = match *seen {
                        1 => ntry.content_ref.clone(),
                        n => format!("{}#{n}", ntry.content_ref),
                    };
                    (key, Some(ntry.legacy_ref.as_str()))
                }
            };
            if ntry.split {
                for (n, entry) in entries.by_ref().take(ntry.parts).enumerate() {
                    entry.entry_ref = format!("{base}/{}", n + 1);
                    entry.previous_ref = previous.map(|p| format!("{p}/{}", n + 1));
                }
            } else if let Some(entry) = entries.next() {
                entry.entry_ref = base;
                entry.previous_ref = previous.map(str::to_owned);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STATEMENT_1: &str = include_str!("../../tests/fixtures/camt053/statement_1.xml");
    const STATEMENT_2_V08: &str = include_str!("../../tests/fixtures/camt053/statement_2_v08.xml");
    const MALFORMED: &str = include_str!("../../tests/fixtures/camt053/malformed.xml");
    const NOT_CAMT: &str = include_str!("../../tests/fixtures/camt053/not_camt.xml");

    const ALLMENDE_IBAN: &str = "DE02120300000000202051";

    fn cents(amount: i64) -> Money {
        Money::from_cents(amount)
    }

    /// Remittance without whitespace, as a reference matcher would compare it.
    fn squeezed(text: &str) -> String {
        text.split_whitespace().collect()
    }

    /// A minimal camt.053 document around `entries` (the inside of `Stmt`
    /// after its header), in namespace version `version`.
    fn document(version: &str, entries: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}">
<BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2024-05-02T07:00:00+02:00</CreDtTm></GrpHdr>
<Stmt><Id>S-1</Id><CreDtTm>2024-05-02T07:00:00+02:00</CreDtTm>
<Acct><Id><IBAN>{ALLMENDE_IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>
{entries}
</Stmt></BkToCstmrStmt></Document>"#
        )
    }

    /// One `Ntry` with the given amount text, currency and inner details.
    fn ntry(amount: &str, currency: &str, details: &str) -> String {
        format!(
            r#"<Ntry><Amt Ccy="{currency}">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2024-05-02</Dt></BookgDt><ValDt><Dt>2024-05-02</Dt></ValDt>{details}</Ntry>"#
        )
    }

    fn only_entry(xml: &str) -> Entry {
        let statements = parse(xml).unwrap();
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0].entries.len(), 1, "{:#?}", statements[0]);
        statements[0].entries[0].clone()
    }

    #[test]
    fn statement_1_parses_to_the_expected_entries() {
        let statements = parse(STATEMENT_1).unwrap();
        assert_eq!(statements.len(), 1);
        let statement = &statements[0];
        assert_eq!(statement.id, "0352C5320240315000000052");
        assert_eq!(statement.account_iban.as_deref(), Some(ALLMENDE_IBAN));
        assert_eq!(
            statement.created_at.as_deref(),
            Some("2024-03-16T06:12:34.0+01:00")
        );
        let entries = &statement.entries;
        assert_eq!(entries.len(), 5);

        // (ref, cents, credit, payment reference, debtor, IBAN, end-to-end id)
        let expected = [
            (
                "2024031500001234",
                25_000,
                true,
                Some("AM-7KX4-93QF"),
                Some("Stadt Musterhausen"),
                Some("DE89370400440532013000"),
                Some("HHST-2024-0815"),
            ),
            (
                "2024031500001235",
                10_000,
                true,
                Some("AM-P2M8-R4TZ"),
                Some("Offene Daten Leipzig e. V."),
                Some("DE47860555921102345678"),
                None,
            ),
            (
                "2024031500001236",
                100_000,
                true,
                Some("AM-Z9Q3-H6WN"),
                Some("Werkstatt Hansen GmbH"),
                Some("DE44500105175407324931"),
                Some("RE-2024-031"),
            ),
            (
                "2024031500001237",
                5_000,
                true,
                None,
                Some("Maria Beispiel"),
                Some("DE05100500000190123456"),
                None,
            ),
            ("2024031500001238", 990, false, None, None, None, None),
        ];
        for (entry, (entry_ref, amount, credit, reference, debtor, iban, e2e)) in
            entries.iter().zip(expected)
        {
            assert_eq!(entry.entry_ref, entry_ref);
            assert_eq!(entry.amount, cents(amount), "{entry_ref}");
            assert_eq!(entry.credit, credit, "{entry_ref}");
            assert!(entry.booked, "{entry_ref}");
            assert_eq!(entry.booking_date.as_deref(), Some("2024-03-15"));
            assert_eq!(entry.value_date.as_deref(), Some("2024-03-15"));
            assert_eq!(entry.debtor_name.as_deref(), debtor, "{entry_ref}");
            assert_eq!(entry.debtor_iban.as_deref(), iban, "{entry_ref}");
            assert_eq!(entry.end_to_end_id.as_deref(), e2e, "{entry_ref}");
            if let Some(reference) = reference {
                assert!(
                    squeezed(&entry.remittance).contains(reference),
                    "{entry_ref}: {:?}",
                    entry.remittance
                );
            } else {
                assert!(!entry.remittance.contains("AM-"), "{entry_ref}");
            }
        }
        assert_eq!(
            entries[0].remittance,
            "AM-7KX4-93QF Zuwendung Open-Source-Foerderung 2024"
        );
        // Ustrd lines are joined with a space, even inside a reference.
        assert_eq!(entries[1].remittance, "Beitrag AM-P2M8- R4TZ Danke");
        assert_eq!(entries[3].remittance, "Spende ohne Verwendungszweck");
        assert_eq!(entries[4].remittance, "Entgelt Kontofuehrung 02/2024");
    }

    #[test]
    fn statement_2_v08_splits_the_batch_booking() {
        let statements = parse(STATEMENT_2_V08).unwrap();
        assert_eq!(statements.len(), 1);
        let statement = &statements[0];
        assert_eq!(statement.id, "0352C5320240402000000064");
        assert_eq!(statement.account_iban.as_deref(), Some(ALLMENDE_IBAN));
        let entries = &statement.entries;
        assert_eq!(entries.len(), 2);

        let first = &entries[0];
        assert_eq!(first.entry_ref, "2024040200004711/1");
        assert_eq!(first.amount, cents(8_000));
        assert!(first.credit && first.booked);
        assert_eq!(first.booking_date.as_deref(), Some("2024-04-02"));
        assert_eq!(first.remittance, "Mitgliedsbeitrag Q2 AM-B7C2-K8LM");
        assert_eq!(first.end_to_end_id.as_deref(), Some("FSD-2024-04-17"));
        assert_eq!(
            first.debtor_name.as_deref(),
            Some("Freie Software Dresden e. V.")
        );
        assert_eq!(first.debtor_iban.as_deref(), Some("DE69430609674012345600"));

        let second = &entries[1];
        assert_eq!(second.entry_ref, "2024040200004711/2");
        assert_eq!(second.amount, cents(4_000));
        assert!(second.credit && second.booked);
        assert_eq!(second.remittance, "AM-D4F6-N2PQ Foerderbeitrag");
        assert_eq!(second.end_to_end_id, None);
        assert_eq!(
            second.debtor_name.as_deref(),
            Some("Kiezladen Kreuzberg UG (haftungsbeschraenkt)")
        );
        assert_eq!(
            second.debtor_iban.as_deref(),
            Some("DE66370501980012345678")
        );
    }

    #[test]
    fn parsing_twice_gives_identical_refs() {
        for fixture in [STATEMENT_1, STATEMENT_2_V08] {
            assert_eq!(parse(fixture).unwrap(), parse(fixture).unwrap());
        }
        // Also the hashed references of entries without a bank reference.
        let xml = statement_without_refs();
        let first = parse(&xml).unwrap();
        let refs: Vec<_> = first[0].entries.iter().map(|e| &e.entry_ref).collect();
        assert!(refs.iter().all(|r| r.starts_with("c:") && r.len() == 66));
        assert_eq!(parse(&xml).unwrap(), first);
    }

    /// statement_1 without any `AcctSvcrRef`.
    fn statement_without_refs() -> String {
        let mut xml = STATEMENT_1.to_owned();
        while let Some(start) = xml.find("<AcctSvcrRef>") {
            let end = xml[start..].find("</AcctSvcrRef>").unwrap() + start;
            xml.replace_range(start..end + "</AcctSvcrRef>".len(), "");
        }
        xml
    }

    #[test]
    fn hashed_refs_differ_between_entries_and_depend_on_content() {
        let xml = statement_without_refs();
        let statements = parse(&xml).unwrap();
        let mut refs: Vec<_> = statements[0]
            .entries
            .iter()
            .map(|e| e.entry_ref.clone())
            .collect();
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), 5);

        let changed = parse(&xml.replace("Spende ohne", "Spende mit")).unwrap();
        assert_eq!(
            changed[0].entries[0].entry_ref,
            statements[0].entries[0].entry_ref
        );
        assert_ne!(
            changed[0].entries[3].entry_ref,
            statements[0].entries[3].entry_ref
        );
    }

    #[test]
    fn content_keys_ignore_statement_and_position_and_count_equal_entries() {
        let shared = ntry(
            "100.00",
            "EUR",
            "<NtryDtls><TxDtls><Refs><EndToEndId>E2E-1</EndToEndId></Refs>\
             <RmtInf><Ustrd>Beitrag AM-7KX4-93QF</Ustrd></RmtInf></TxDtls></NtryDtls>",
        );
        let other = ntry("1.00", "EUR", "");
        let first = only_entry(&document("02", &shared));
        let overlapping = parse(
            &document("08", &format!("{other}{shared}")).replace("<Id>S-1</Id>", "<Id>S-2</Id>"),
        )
        .unwrap();
        assert!(first.entry_ref.starts_with("c:"), "{first:?}");
        assert_eq!(overlapping[0].entries[1].entry_ref, first.entry_ref);
        assert_ne!(overlapping[0].entries[0].entry_ref, first.entry_ref);
        // The former key depended on the statement and the position.
        assert_ne!(overlapping[0].entries[1].previous_ref, first.previous_ref);
        assert!(first.previous_ref.as_deref().unwrap().starts_with("h:"));

        // Whitespace where a bank wraps the purpose line does not change the key; the end-to-end
        // id, the value date, the payer's IBAN and the amount do.
        let wrapped = shared.replace("Beitrag AM-7KX4-93QF", "Beitrag AM-7KX4-\n 93QF");
        assert_eq!(
            only_entry(&document("02", &wrapped)).entry_ref,
            first.entry_ref
        );
        for changed in [
            shared.replace("E2E-1", "E2E-2"),
            shared.replace("<ValDt><Dt>2024-05-02", "<ValDt><Dt>2024-05-03"),
            shared.replace("100.00", "100.01"),
            shared.replace(
                "<RmtInf>",
                "<RltdPties><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct></RltdPties><RmtInf>",
            ),
        ] {
            assert_ne!(
                only_entry(&document("02", &changed)).entry_ref,
                first.entry_ref,
                "{changed}"
            );
        }

        // Equal entries in one statement are numbered; in two statements of one file (an
        // overlap) they are the same booking.
        let twice = parse(&document("02", &format!("{shared}{other}{shared}"))).unwrap();
        let refs: Vec<_> = twice[0]
            .entries
            .iter()
            .map(|e| e.entry_ref.clone())
            .collect();
        assert_eq!(refs[0], first.entry_ref);
        assert_eq!(refs[2], format!("{}#2", first.entry_ref));
        let one = document("02", &shared);
        let stmt_start = one.find("<Stmt>").unwrap();
        let stmt_end = one.find("</Stmt>").unwrap() + "</Stmt>".len();
        let two_statements = format!(
            "{}{}{}",
            &one[..stmt_end],
            one[stmt_start..stmt_end].replace("<Id>S-1</Id>", "<Id>S-2</Id>"),
            &one[stmt_end..]
        );
        let statements = parse(&two_statements).unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0].entries[0].entry_ref, first.entry_ref);
        assert_eq!(statements[1].entries[0].entry_ref, first.entry_ref);
    }

    #[test]
    fn huge_amounts_are_read_exactly() {
        for (text, expected) in [
            ("92233720368547758.07", i64::MAX),
            ("47000000000000000.00", 4_700_000_000_000_000_000),
        ] {
            let entry = only_entry(&document("02", &ntry(text, "EUR", "")));
            assert_eq!(entry.amount, cents(expected), "{text}");
        }
        for text in ["92233720368547758.08", "4.7e16", "4.7E+16", "1e400"] {
            let error = parse(&document("02", &ntry(text, "EUR", ""))).unwrap_err();
            assert_eq!(error.message_key(), "camt.amount", "{text}");
        }
    }

    #[test]
    fn refs_from_tx_details_entry_ref_and_placeholders() {
        let tx_ref = ntry(
            "1.00",
            "EUR",
            "<NtryDtls><TxDtls><Refs><AcctSvcrRef>TX-REF-1</AcctSvcrRef></Refs></TxDtls></NtryDtls>",
        );
        assert_eq!(only_entry(&document("02", &tx_ref)).entry_ref, "TX-REF-1");

        let ntry_ref = ntry("1.00", "EUR", "<NtryRef>N-77</NtryRef>");
        assert_eq!(only_entry(&document("02", &ntry_ref)).entry_ref, "N-77");

        // The entry's AcctSvcrRef wins over NtryRef.
        let both = ntry(
            "1.00",
            "EUR",
            "<NtryRef>N-77</NtryRef><AcctSvcrRef>BANK-1</AcctSvcrRef>",
        );
        assert_eq!(only_entry(&document("02", &both)).entry_ref, "BANK-1");

        let placeholder = ntry("1.00", "EUR", "<AcctSvcrRef>NONREF</AcctSvcrRef>");
        assert!(
            only_entry(&document("02", &placeholder))
                .entry_ref
                .starts_with("c:")
        );
    }

    #[test]
    fn a_bank_ref_used_twice_is_replaced_by_hashes() {
        let one = ntry("1.00", "EUR", "<AcctSvcrRef>SAME</AcctSvcrRef>");
        let two = ntry("2.00", "EUR", "<AcctSvcrRef>SAME</AcctSvcrRef>");
        let three = ntry("3.00", "EUR", "<AcctSvcrRef>OTHER</AcctSvcrRef>");
        let statements = parse(&document("02", &format!("{one}{two}{three}"))).unwrap();
        let refs: Vec<_> = statements[0]
            .entries
            .iter()
            .map(|e| e.entry_ref.as_str())
            .collect();
        assert!(refs[0].starts_with("c:") && refs[1].starts_with("c:"));
        assert_ne!(refs[0], refs[1]);
        assert_eq!(refs[2], "OTHER");
    }

    #[test]
    fn batch_with_tx_amounts_in_amt_details_is_split() {
        let details = r#"<AcctSvcrRef>B-1</AcctSvcrRef><NtryDtls>
<TxDtls><AmtDtls><TxAmt><Amt Ccy="EUR">0.01</Amt></TxAmt></AmtDtls>
  <RltdPties><Dbtr><Nm>Erste</Nm></Dbtr></RltdPties><RmtInf><Ustrd>AM-AAAA-1111</Ustrd></RmtInf></TxDtls>
<TxDtls><AmtDtls><TxAmt><Amt Ccy="EUR">1.49</Amt></TxAmt></AmtDtls>
  <RltdPties><Dbtr><Nm>Zweite</Nm></Dbtr></RltdPties><RmtInf><Ustrd>AM-BBBB-2222</Ustrd></RmtInf></TxDtls>
<TxDtls><AmtDtls><TxAmt><Amt Ccy="EUR">1</Amt></TxAmt></AmtDtls>
  <RmtInf><Ustrd>AM-CCCC-3333</Ustrd></RmtInf></TxDtls>
</NtryDtls>"#;
        let statements = parse(&document("02", &ntry("2.50", "EUR", details))).unwrap();
        let entries = &statements[0].entries;
        let summary: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.entry_ref.as_str(),
                    e.amount.cents(),
                    e.remittance.as_str(),
                    e.debtor_name.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("B-1/1", 1, "AM-AAAA-1111", Some("Erste")),
                ("B-1/2", 149, "AM-BBBB-2222", Some("Zweite")),
                ("B-1/3", 100, "AM-CCCC-3333", None),
            ]
        );
    }

    #[test]
    fn batch_that_cannot_be_split_stays_one_entry() {
        // Only one TxDtls has its own amount.
        let details = r#"<AcctSvcrRef>B-2</AcctSvcrRef><NtryDtls>
<TxDtls><Amt Ccy="EUR">2.00</Amt><RltdPties><Dbtr><Nm>Erste</Nm></Dbtr></RltdPties><RmtInf><Ustrd>eins</Ustrd></RmtInf></TxDtls>
<TxDtls><RltdPties><Dbtr><Nm>Zweite</Nm></Dbtr></RltdPties><RmtInf><Ustrd>zwei</Ustrd></RmtInf></TxDtls>
</NtryDtls>"#;
        let entry = only_entry(&document("08", &ntry("3.00", "EUR", details)));
        assert_eq!(entry.entry_ref, "B-2");
        assert_eq!(entry.amount, cents(300));
        assert_eq!(entry.remittance, "eins zwei");
        // The payers differ, so none is named.
        assert_eq!(entry.debtor_name, None);

        // Amounts that do not add up to the booked amount.
        let details = r#"<AcctSvcrRef>B-3</AcctSvcrRef><NtryDtls>
<TxDtls><Amt Ccy="EUR">2.00</Amt></TxDtls><TxDtls><Amt Ccy="EUR">2.00</Amt></TxDtls>
</NtryDtls>"#;
        let entry = only_entry(&document("08", &ntry("3.00", "EUR", details)));
        assert_eq!(
            (entry.entry_ref.as_str(), entry.amount),
            ("B-3", cents(300))
        );

        // A single TxDtls is never split.
        let details = r#"<AcctSvcrRef>B-4</AcctSvcrRef><NtryDtls>
<TxDtls><Amt Ccy="EUR">3.00</Amt><RmtInf><Ustrd>AM-7KX4-93QF</Ustrd></RmtInf></TxDtls></NtryDtls>"#;
        let entry = only_entry(&document("08", &ntry("3.00", "EUR", details)));
        assert_eq!(entry.entry_ref, "B-4");
        assert_eq!(entry.remittance, "AM-7KX4-93QF");
    }

    #[test]
    fn batch_with_a_return_splits_with_signed_parts() {
        let details = r#"<AcctSvcrRef>B-5</AcctSvcrRef><NtryDtls>
<TxDtls><Amt Ccy="EUR">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></TxDtls>
<TxDtls><Amt Ccy="EUR">2.00</Amt><CdtDbtInd>DBIT</CdtDbtInd></TxDtls>
</NtryDtls>"#;
        let statements = parse(&document("08", &ntry("3.00", "EUR", details))).unwrap();
        let entries = &statements[0].entries;
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].amount, entries[0].credit), (cents(500), true));
        assert_eq!((entries[1].amount, entries[1].credit), (cents(200), false));
    }

    #[test]
    fn structured_reference_status_and_dates() {
        let details = r#"<NtryDtls><TxDtls><RmtInf>
<Ustrd>Rechnung   4711
  Danke</Ustrd>
<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>AM-7KX4-93QF</Ref></CdtrRefInf></Strd>
</RmtInf></TxDtls></NtryDtls>"#;
        let entry = only_entry(&document("02", &ntry("1.00", "EUR", details)));
        assert_eq!(entry.remittance, "Rechnung 4711 Danke AM-7KX4-93QF");

        // A reference already in the unstructured text is not repeated.
        let details = r#"<NtryDtls><TxDtls><RmtInf><Ustrd>Beitrag AM-7KX4-</Ustrd><Ustrd>93QF</Ustrd>
<Strd><CdtrRefInf><Ref>AM-7KX4-93QF</Ref></CdtrRefInf></Strd></RmtInf></TxDtls></NtryDtls>"#;
        let entry = only_entry(&document("02", &ntry("1.00", "EUR", details)));
        assert_eq!(entry.remittance, "Beitrag AM-7KX4- 93QF");

        let pending = document(
            "08",
            r#"<Ntry><Amt Ccy="EUR">7.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts>
<BookgDt><DtTm>2024-05-03T10:11:12+02:00</DtTm></BookgDt><ValDt><DtTm>2024-05-04T00:00:00</DtTm></ValDt>
<AcctSvcrRef>P-1</AcctSvcrRef></Ntry>"#,
        );
        let entry = only_entry(&pending);
        assert!(!entry.booked && !entry.credit);
        assert_eq!(entry.booking_date.as_deref(), Some("2024-05-03"));
        assert_eq!(entry.value_date.as_deref(), Some("2024-05-04"));
        assert_eq!(entry.remittance, "");
        assert_eq!(entry.debtor_name, None);
    }

    #[test]
    fn namespace_prefixes_entities_and_several_statements() {
        let xml = r#"<?xml version="1.0"?>
<c:Document xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04">
<c:BkToCstmrStmt>
<c:Stmt><c:Id>A</c:Id><c:Ntry><c:Amt Ccy="EUR">10.00</c:Amt><c:CdtDbtInd>CRDT</c:CdtDbtInd><c:Sts>BOOK</c:Sts>
<c:AcctSvcrRef>R1</c:AcctSvcrRef><c:NtryDtls><c:TxDtls><c:RltdPties><c:Dbtr><c:Nm>M&amp;M &#x47;mbH</c:Nm></c:Dbtr>
<c:DbtrAcct><c:Id><c:IBAN>DE89 3704 0044 0532 0130 00</c:IBAN></c:Id></c:DbtrAcct></c:RltdPties>
<c:RmtInf><c:Ustrd><![CDATA[AM-7KX4-93QF <Dank>]]></c:Ustrd></c:RmtInf></c:TxDtls></c:NtryDtls></c:Ntry></c:Stmt>
<c:Stmt><c:Id>B</c:Id></c:Stmt>
</c:BkToCstmrStmt></c:Document>"#;
        let statements = parse(xml).unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0].id, "A");
        assert_eq!(statements[0].account_iban, None);
        let entry = &statements[0].entries[0];
        assert_eq!(entry.debtor_name.as_deref(), Some("M&M GmbH"));
        assert_eq!(entry.debtor_iban.as_deref(), Some("DE89370400440532013000"));
        assert_eq!(entry.remittance, "AM-7KX4-93QF <Dank>");
        assert_eq!(entry.booking_date, None);
        assert_eq!(statements[1].id, "B");
        assert!(statements[1].entries.is_empty());

        // A byte order mark is fine.
        assert_eq!(
            parse(&format!("\u{feff}{STATEMENT_1}")).unwrap(),
            parse(STATEMENT_1).unwrap()
        );
    }

    #[test]
    fn malformed_xml_is_refused() {
        let error = parse(MALFORMED).unwrap_err();
        assert_eq!(error.message_key(), "camt.not_xml");
        let CamtError::NotXml { line, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(line, 109);

        // Cut after a complete tag: the open elements are noticed.
        let cut = &STATEMENT_1[..STATEMENT_1.find("</Ntry>").unwrap()];
        let error = parse(cut).unwrap_err();
        assert!(
            matches!(&error, CamtError::NotXml { reason, .. } if reason.contains("<Ntry>")),
            "{error:?}"
        );

        for bad in [
            "",
            "   ",
            "not xml at all",
            "<Document><BkToCstmrStmt></Document>",
            "<Document></Document><Document></Document>",
            "<Document>&nbsp;</Document>",
            "<Document a=\"1></Document>",
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.message_key(), "camt.not_xml", "{bad:?}: {error:?}");
        }
        let error = parse("<a>\n  <b></c>\n</a>").unwrap_err();
        assert!(
            matches!(error, CamtError::NotXml { line: 2, .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("the file is not well-formed XML (line 2")
        );
    }

    #[test]
    fn other_iso_20022_messages_are_refused() {
        assert_eq!(
            parse(NOT_CAMT),
            Err(CamtError::NotCamt053 {
                found: "CstmrCdtTrfInitn".into()
            })
        );
        let camt052 = STATEMENT_1
            .replace("camt.053.001.02", "camt.052.001.02")
            .replace("BkToCstmrStmt>", "BkToCstmrAcctRpt>")
            .replace("Stmt>", "Rpt>");
        let error = parse(&camt052).unwrap_err();
        assert_eq!(
            error,
            CamtError::NotCamt053 {
                found: "BkToCstmrAcctRpt".into()
            }
        );
        assert_eq!(error.message_key(), "camt.not_camt053");
        assert!(error.to_string().contains("<BkToCstmrAcctRpt>"));
        assert_eq!(
            parse("<html><body>hi</body></html>"),
            Err(CamtError::NotCamt053 {
                found: "body".into()
            })
        );
    }

    #[test]
    fn wrong_currency_is_refused() {
        let error = parse(&STATEMENT_1.replacen(
            "<Amt Ccy=\"EUR\">100.00</Amt>",
            "<Amt Ccy=\"CHF\">100.00</Amt>",
            1,
        ))
        .unwrap_err();
        assert_eq!(
            error,
            CamtError::Currency {
                found: "CHF".into()
            }
        );
        assert_eq!(error.message_key(), "camt.currency");

        // A transaction amount in another currency (a foreign payment booked
        // in EUR) is not the booked amount and does not refuse the file, but
        // such a batch is not split.
        let details = r#"<AcctSvcrRef>F-1</AcctSvcrRef><NtryDtls>
<TxDtls><Amt Ccy="USD">1.10</Amt><AmtDtls><TxAmt><Amt Ccy="EUR">1.00</Amt></TxAmt></AmtDtls></TxDtls>
<TxDtls><Amt Ccy="USD">2.20</Amt></TxDtls></NtryDtls>"#;
        let entry = only_entry(&document("08", &ntry("3.00", "EUR", details)));
        assert_eq!(
            (entry.entry_ref.as_str(), entry.amount),
            ("F-1", cents(300))
        );
    }

    #[test]
    fn amounts_are_exact() {
        let cases = [
            ("0.01", 1),
            ("1234.5", 123_450),
            ("1000", 100_000),
            ("12.5", 1_250),
            ("100", 10_000),
            ("1234.56", 123_456),
            ("0", 0),
            (".5", 50),
            ("7.", 700),
            ("+3.10", 310),
            (" 42.00 ", 4_200),
            ("10.00000", 1_000),
            ("0000012.34", 1_234),
            ("92233720368547758.07", i64::MAX),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_amount(text), Ok(cents(expected)), "{text:?}");
        }
        for text in [
            "",
            ".",
            "-1.00",
            "1,00",
            "1.234,56",
            "1.001",
            "0.125",
            "1e3",
            "1 000.00",
            "12.3.4",
            "EUR 5",
            "92233720368547758.08",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_amount(text),
                Err(CamtError::Amount { text: text.into() }),
                "{text:?}"
            );
        }
        // Through a whole document.
        for (text, expected) in [("0.01", 1), ("1234.5", 123_450), ("1000", 100_000)] {
            let entry = only_entry(&document("02", &ntry(text, "EUR", "")));
            assert_eq!(entry.amount, cents(expected), "{text:?}");
        }
        let error = parse(&document("02", &ntry("12.345", "EUR", ""))).unwrap_err();
        assert_eq!(error.message_key(), "camt.amount");
        assert_eq!(
            error.to_string(),
            "the bank statement has the malformed amount \"12.345\""
        );
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let no_amount = "<Ntry><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts></Ntry>";
        let cases = [
            (no_amount.to_owned(), "Ntry/Amt"),
            (
                "<Ntry><Amt>1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts></Ntry>".to_owned(),
                "Ntry/Amt/@Ccy",
            ),
            (
                r#"<Ntry><Amt Ccy="EUR">1.00</Amt><Sts>BOOK</Sts></Ntry>"#.to_owned(),
                "Ntry/CdtDbtInd",
            ),
            (
                r#"<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></Ntry>"#.to_owned(),
                "Ntry/Sts",
            ),
        ];
        for (entries, what) in cases {
            let error = parse(&document("02", &entries)).unwrap_err();
            assert_eq!(error, CamtError::MissingField { what: what.into() });
            assert_eq!(error.message_key(), "camt.missing_field");
        }
        let no_id = "<Document><BkToCstmrStmt><Stmt><Acct/></Stmt></BkToCstmrStmt></Document>";
        assert_eq!(
            parse(no_id),
            Err(CamtError::MissingField {
                what: "Stmt/Id".into()
            })
        );
        let no_stmt = "<Document><BkToCstmrStmt><GrpHdr/></BkToCstmrStmt></Document>";
        assert_eq!(
            parse(no_stmt).unwrap_err().message_key(),
            "camt.missing_field"
        );

        let bad_direction =
            r#"<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CREDIT</CdtDbtInd><Sts>BOOK</Sts></Ntry>"#;
        let error = parse(&document("02", bad_direction)).unwrap_err();
        assert_eq!(
            error,
            CamtError::InvalidField {
                what: "Ntry/CdtDbtInd".into(),
                value: "CREDIT".into()
            }
        );
        assert_eq!(error.message_key(), "camt.invalid_field");
        let bad_date = ntry("1.00", "EUR", "")
            .replace("2024-05-02</Dt></BookgDt>", "02.05.2024</Dt></BookgDt>");
        assert_eq!(
            parse(&document("02", &bad_date)).unwrap_err().message_key(),
            "camt.invalid_field"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!(
            "<Document><BkToCstmrStmt>{}{}</BkToCstmrStmt></Document>",
            "<a>x".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        let error = parse(&deep).unwrap_err();
        assert!(
            matches!(&error, CamtError::NotXml { reason, .. } if reason.contains("nested")),
            "{error:?}"
        );
    }

    #[test]
    fn too_large_input_is_refused() {
        let padding = " ".repeat(MAX_INPUT_BYTES + 1 - STATEMENT_1.len());
        let xml = format!("{STATEMENT_1}{padding}");
        assert_eq!(xml.len(), MAX_INPUT_BYTES + 1);
        let error = parse(&xml).unwrap_err();
        assert_eq!(
            error,
            CamtError::TooLarge {
                size: MAX_INPUT_BYTES + 1,
                max: MAX_INPUT_BYTES
            }
        );
        assert_eq!(error.message_key(), "camt.too_large");
        // Exactly at the limit is fine.
        assert_eq!(parse(&xml[..MAX_INPUT_BYTES]).unwrap().len(), 1);
    }

    #[test]
    fn statements_serialise() {
        let statements = parse(STATEMENT_2_V08).unwrap();
        let json = serde_json::to_string(&statements).unwrap();
        assert!(json.contains(r#""amount":8000"#), "{json}");
        let back: Vec<Statement> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, statements);
    }
}
