//! Money: exact euro amounts in integer cents, including overflow-checked arithmetic, parsing and formatting of user input in German and English notation, and pro-rata splitting.
//!
//! Everything here works on `i64` cents. The code never uses floats, and
//! arithmetic never wraps: overflow is an error the caller has to handle.
//! That is also why `Money` does not implement `std::ops::Add` and friends.
//!
//! # Parsing rule for separators
//!
//! `Money::parse` accepts German (`1.234,56`) and English (`1,234.56`)
//! notation without a locale hint. Most inputs say which notation they use.
//! One form does not: a single `.` or `,` followed by exactly three digits,
//! with one to three digits before it and no leading zero (`1,234`, `12.500`).
//! In German that means 1.234 €, which has too many decimals. In English it
//! means 1234 €. Guessing wrong would move money by a factor of 1000, so
//! `parse` refuses it with [`MoneyError::AmbiguousSeparators`] and the user
//! is asked to write `1234` or `1.234,00` / `1,234.00`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// An amount of euros held as an exact number of cents.
///
/// Serialises as the bare integer number of cents.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

/// The languages whose number notation we format in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// German: `1.234,56 €`.
    #[default]
    De,
    /// English: `€1,234.56`.
    En,
}

/// Why an amount was refused or could not be computed.
///
/// Each variant names the rule that was broken and carries what a UI needs to
/// explain it. The web layer translates by [`MoneyError::code`]; the English
/// `Display` text is for logs and English fallbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The input was empty or only whitespace.
    #[error("no amount was entered")]
    Empty,
    /// The input is not a number in any notation we accept.
    #[error("not a valid amount: {problem}")]
    Malformed {
        /// What exactly is wrong with the input.
        problem: Malformed,
    },
    /// The input had a minus sign; amounts entered by users are never negative.
    /// Also returned by [`split_pro_rata`] for a negative total.
    #[error("the amount must not be negative")]
    Negative,
    /// More than two digits after the decimal separator.
    #[error("an amount has at most two decimal places, but {decimals} were entered")]
    TooManyDecimals {
        /// How many decimal digits the input had.
        decimals: usize,
    },
    /// A single `.` or `,` followed by exactly three digits: a thousands
    /// separator in one notation, a decimal separator in the other.
    #[error(
        "'{separator}' followed by three digits could be a thousands or a decimal separator; \
         write {} or {} (with two decimals)",
        .thousands_reading.cents() / 100,
        .thousands_reading.format_plain(Locale::En)
    )]
    AmbiguousSeparators {
        /// The separator that was entered.
        separator: char,
        /// The amount if the separator was meant as a thousands separator,
        /// so the UI can suggest an unambiguous way to write it.
        thousands_reading: Money,
    },
    /// The amount is larger than the caller allows.
    #[error("the amount must not be more than {}", .maximum.format(Locale::En))]
    AboveMaximum {
        /// The largest amount allowed.
        maximum: Money,
    },
    /// An arithmetic result does not fit in the range of `Money`.
    #[error("the amount is out of range")]
    Overflow,
    /// A nonzero total was to be split but every weight is zero.
    #[error("a nonzero amount cannot be split when all weights are zero")]
    NoWeights,
    /// A split weight was negative.
    #[error("weight number {index} is negative")]
    NegativeWeight {
        /// Zero-based position of the first negative weight.
        index: usize,
    },
}

impl MoneyError {
    /// A stable identifier for this kind of error, used as a translation key.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Empty => "money.empty",
            Self::Malformed { .. } => "money.malformed",
            Self::Negative => "money.negative",
            Self::TooManyDecimals { .. } => "money.too_many_decimals",
            Self::AmbiguousSeparators { .. } => "money.ambiguous_separators",
            Self::AboveMaximum { .. } => "money.above_maximum",
            Self::Overflow => "money.overflow",
            Self::NoWeights => "money.no_weights",
            Self::NegativeWeight { .. } => "money.negative_weight",
        }
    }
}

/// The detail of a [`MoneyError::Malformed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A character that has no place in an amount (a letter, `+`, a second `€`, ...).
    #[error("'{0}' is not allowed in an amount")]
    InvalidCharacter(char),
    /// Only a currency sign or minus sign, no digits.
    #[error("there are no digits")]
    NoDigits,
    /// A separator at the start or end, two separators in a row, or a
    /// separator after the decimal part.
    #[error("a separator is in the wrong place")]
    MisplacedSeparator,
    /// A thousands group that does not have exactly three digits, or a
    /// leading group that is empty, too long or starts with zero.
    #[error("thousands separators must separate groups of exactly three digits")]
    BadGrouping,
    /// Thousands separated by different characters (`1.234 567`).
    #[error("the same thousands separator must be used throughout")]
    MixedSeparators,
}

impl Malformed {
    /// A stable identifier for this detail, used as a translation key.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::InvalidCharacter(_) => "money.malformed.invalid_character",
            Self::NoDigits => "money.malformed.no_digits",
            Self::MisplacedSeparator => "money.malformed.misplaced_separator",
            Self::BadGrouping => "money.malformed.bad_grouping",
            Self::MixedSeparators => "money.malformed.mixed_separators",
        }
    }
}

impl From<Malformed> for MoneyError {
    fn from(problem: Malformed) -> Self {
        Self::Malformed { problem }
    }
}

impl Locale {
    /// Reads a language tag such as `de`, `de-DE`, `de_AT`, `en` or `en-GB`
    /// (case-insensitive); only the primary language subtag matters.
    #[must_use]
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?;
        if primary.eq_ignore_ascii_case("de") {
            Some(Self::De)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Self::En)
        } else {
            None
        }
    }

    /// The primary language subtag: `"de"` or `"en"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::De => "de",
            Self::En => "en",
        }
    }

    const fn thousands_separator(self) -> char {
        match self {
            Self::De => '.',
            Self::En => ',',
        }
    }

    const fn decimal_separator(self) -> char {
        match self {
            Self::De => ',',
            Self::En => '.',
        }
    }
}

impl Money {
    /// No money.
    pub const ZERO: Self = Self(0);
    /// The largest representable amount; handy as a `parse` maximum when the
    /// caller has no business limit.
    pub const MAX: Self = Self(i64::MAX);

    /// An amount of `cents` euro cents.
    #[must_use]
    pub const fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    /// The amount in euro cents.
    #[must_use]
    pub const fn cents(self) -> i64 {
        self.0
    }

    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    #[must_use]
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    #[must_use]
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// `self + other`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the result does not fit.
    pub const fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        match self.0.checked_add(other.0) {
            Some(c) => Ok(Self(c)),
            None => Err(MoneyError::Overflow),
        }
    }

    /// `self - other`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the result does not fit.
    pub const fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        match self.0.checked_sub(other.0) {
            Some(c) => Ok(Self(c)),
            None => Err(MoneyError::Overflow),
        }
    }

    /// `self * factor`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the result does not fit.
    pub const fn checked_mul(self, factor: i64) -> Result<Self, MoneyError> {
        match self.0.checked_mul(factor) {
            Some(c) => Ok(Self(c)),
            None => Err(MoneyError::Overflow),
        }
    }

    /// `-self`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the result does not fit.
    pub const fn checked_neg(self) -> Result<Self, MoneyError> {
        match self.0.checked_neg() {
            Some(c) => Ok(Self(c)),
            None => Err(MoneyError::Overflow),
        }
    }

    /// The sum of all amounts.
    ///
    /// Adds in `i128`, so only the final sum has to fit: the result does not
    /// depend on the order of the items.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the sum does not fit.
    pub fn checked_sum<I>(amounts: I) -> Result<Self, MoneyError>
    where
        I: IntoIterator<Item = Self>,
    {
        let mut sum: i128 = 0;
        for amount in amounts {
            sum = sum
                .checked_add(i128::from(amount.0))
                .ok_or(MoneyError::Overflow)?;
        }
        i64::try_from(sum)
            .map(Self)
            .map_err(|_| MoneyError::Overflow)
    }

    /// Parses an amount a user typed, in German or English notation.
    ///
    /// Accepted: `12`, `12,5` (= 12,50), `1234,56`, `1.234,56`,
    /// `1.234.567,89`, `1234.56`, `1,234.56`, `1,234,567.89`, a space,
    /// no-break space (U+00A0), narrow no-break space (U+202F) or thin space
    /// (U+2009) as thousands separator (`1 234,56`), the German `12,-` for
    /// whole euros, surrounding whitespace, and `€` or `EUR` (any case)
    /// before or after the number. Zero is accepted; whether zero makes sense
    /// is up to the caller.
    ///
    /// Which separator is the decimal one:
    /// - if both `.` and `,` occur, the last one is the decimal separator and
    ///   must occur only once;
    /// - a separator that occurs more than once is a thousands separator;
    /// - spaces are always thousands separators, so a single `.` or `,` after
    ///   them is the decimal separator;
    /// - a single `.` or `,` alone is a decimal separator, except when it is
    ///   followed by exactly three digits and preceded by one to three digits
    ///   without a leading zero (`1,234`, `12.500`): that is refused as
    ///   [`MoneyError::AmbiguousSeparators`], because German and English read
    ///   it a thousand times apart.
    ///
    /// Thousands groups must have exactly three digits and the first group
    /// one to three digits not starting with zero.
    ///
    /// # Errors
    /// [`MoneyError::Empty`], [`MoneyError::Malformed`],
    /// [`MoneyError::Negative`] for a leading minus sign,
    /// [`MoneyError::TooManyDecimals`], [`MoneyError::AmbiguousSeparators`],
    /// and [`MoneyError::AboveMaximum`] for amounts above `maximum`,
    /// including those too large for `Money` at all.
    pub fn parse(input: &str, maximum: Self) -> Result<Self, MoneyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MoneyError::Empty);
        }
        let (negative, body) = strip_sign_and_currency(trimmed);
        if body.is_empty() {
            return Err(Malformed::NoDigits.into());
        }
        // German "12,-" / "12,--" means whole euros.
        let body = match body.strip_suffix("--").or_else(|| body.strip_suffix('-')) {
            Some(head) if head.ends_with([',', '.']) => format!("{head}00"),
            _ => body.to_owned(),
        };
        let number = split_number(&body)?;
        // Checked after the structure, so "-abc" says what is really wrong.
        if negative {
            return Err(MoneyError::Negative);
        }
        let too_large = MoneyError::AboveMaximum { maximum };
        let amount = number.cents().ok_or(too_large)?;
        if amount > maximum {
            return Err(too_large);
        }
        Ok(amount)
    }

    /// The amount with currency sign in the notation of `locale`:
    /// `1.234,56 €` (with a no-break space) or `€1,234.56`; negative amounts
    /// as `-1.234,56 €` or `-€1,234.56`.
    #[must_use]
    pub fn format(self, locale: Locale) -> String {
        let sign = if self.is_negative() { "-" } else { "" };
        let number = self.format_unsigned(locale);
        match locale {
            Locale::De => format!("{sign}{number}\u{a0}€"),
            Locale::En => format!("{sign}€{number}"),
        }
    }

    /// The amount without currency sign in the notation of `locale`, for
    /// form inputs: `1.234,56` or `1,234.56`. `parse` reads it back.
    #[must_use]
    pub fn format_plain(self, locale: Locale) -> String {
        let sign = if self.is_negative() { "-" } else { "" };
        format!("{sign}{}", self.format_unsigned(locale))
    }

    /// Machine format for exports: `1234.56`, `-0.05`; no thousands separators.
    #[must_use]
    pub fn to_decimal_string(self) -> String {
        let sign = if self.is_negative() { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    /// Absolute value with grouped thousands and two decimals.
    fn format_unsigned(self, locale: Locale) -> String {
        let abs = self.0.unsigned_abs();
        let euros = (abs / 100).to_string();
        let mut out = String::with_capacity(euros.len() + euros.len() / 3 + 3);
        for (i, digit) in euros.chars().enumerate() {
            if i > 0 && (euros.len() - i).is_multiple_of(3) {
                out.push(locale.thousands_separator());
            }
            out.push(digit);
        }
        out.push(locale.decimal_separator());
        // Writing to a String cannot fail.
        let _ = write!(out, "{:02}", abs % 100);
        out
    }
}

/// Strips one leading minus sign (ASCII or U+2212) and one `€`/`EUR` marker
/// at either end. The sign may stand before or after a leading marker
/// (`-€5`, `€-5`). Returns whether there was a sign, and the rest.
fn strip_sign_and_currency(s: &str) -> (bool, &str) {
    fn strip_minus(s: &str) -> Option<&str> {
        s.strip_prefix(['-', '\u{2212}']).map(str::trim_start)
    }
    fn strip_currency_prefix(s: &str) -> Option<&str> {
        let rest = s.strip_prefix('€').or_else(|| {
            s.get(..3)
                .filter(|p| p.eq_ignore_ascii_case("eur"))
                .and_then(|_| s.get(3..))
        })?;
        Some(rest.trim_start())
    }
    fn strip_currency_suffix(s: &str) -> Option<&str> {
        let rest = s.strip_suffix('€').or_else(|| {
            let at = s.len().checked_sub(3)?;
            s.get(at..)
                .filter(|p| p.eq_ignore_ascii_case("eur"))
                .and_then(|_| s.get(..at))
        })?;
        Some(rest.trim_end())
    }

    let mut rest = s;
    let mut negative = false;
    if let Some(r) = strip_minus(rest) {
        negative = true;
        rest = r;
    }
    let mut has_currency = false;
    if let Some(r) = strip_currency_prefix(rest) {
        has_currency = true;
        rest = r;
    }
    if !negative && let Some(r) = strip_minus(rest) {
        negative = true;
        rest = r;
    }
    if !has_currency && let Some(r) = strip_currency_suffix(rest) {
        rest = r;
    }
    (negative, rest)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    Dot,
    Comma,
    Space,
}

impl Sep {
    const fn as_char(self) -> char {
        match self {
            Self::Dot => '.',
            Self::Comma => ',',
            Self::Space => ' ',
        }
    }
}

/// A syntactically valid amount: integer digit groups and up to two decimals.
struct Number<'a> {
    integer_groups: Vec<&'a str>,
    fraction: &'a str,
}

impl Number<'_> {
    /// The value, or `None` if it does not fit in `Money`.
    fn cents(&self) -> Option<Money> {
        let mut euros: i64 = 0;
        for digit in self.integer_groups.iter().flat_map(|g| g.bytes()) {
            euros = euros
                .checked_mul(10)?
                .checked_add(i64::from(digit - b'0'))?;
        }
        let mut fraction: i64 = 0;
        for digit in self.fraction.bytes() {
            fraction = fraction * 10 + i64::from(digit - b'0');
        }
        if self.fraction.len() == 1 {
            fraction *= 10;
        }
        euros
            .checked_mul(100)?
            .checked_add(fraction)
            .map(Money::from_cents)
    }
}

/// Splits the bare number (no sign, no currency) into digit groups and
/// decides which separator is the decimal one; see [`Money::parse`].
fn split_number(body: &str) -> Result<Number<'_>, MoneyError> {
    // Report a stray character first: it is the clearest message.
    if let Some(bad) = body
        .chars()
        .find(|&c| !c.is_ascii_digit() && sep_of(c).is_none())
    {
        return Err(Malformed::InvalidCharacter(bad).into());
    }

    let mut groups: Vec<&str> = Vec::new();
    let mut seps: Vec<Sep> = Vec::new();
    let mut start = 0;
    for (i, c) in body.char_indices() {
        if let Some(sep) = sep_of(c) {
            groups.push(&body[start..i]);
            seps.push(sep);
            start = i + c.len_utf8();
        }
    }
    groups.push(&body[start..]);
    if groups.iter().any(|g| g.is_empty()) {
        return Err(Malformed::MisplacedSeparator.into());
    }

    let decimal_at = decimal_separator_index(&groups, &seps)?;
    let (integer_groups, fraction) = match decimal_at {
        Some(i) => (&groups[..=i], groups[i + 1]),
        None => (&groups[..], ""),
    };
    let thousands = &seps[..decimal_at.unwrap_or(seps.len())];

    if let Some(&first_sep) = thousands.first() {
        if thousands.iter().any(|&s| s != first_sep) {
            return Err(Malformed::MixedSeparators.into());
        }
        let (head, tail) = integer_groups.split_at(1);
        let head_ok = head
            .iter()
            .all(|g| (1..=3).contains(&g.len()) && !g.starts_with('0'));
        if !head_ok || tail.iter().any(|g| g.len() != 3) {
            return Err(Malformed::BadGrouping.into());
        }
    }
    if fraction.len() > 2 {
        return Err(MoneyError::TooManyDecimals {
            decimals: fraction.len(),
        });
    }
    Ok(Number {
        integer_groups: integer_groups.to_vec(),
        fraction,
    })
}

/// Which separator (by index into `seps`) is the decimal separator, if any.
/// `groups` has one more entry than `seps`, none of them empty.
fn decimal_separator_index(groups: &[&str], seps: &[Sep]) -> Result<Option<usize>, MoneyError> {
    let Some(&last) = seps.last() else {
        return Ok(None);
    };
    if last == Sep::Space {
        return Ok(None);
    }
    let last_index = seps.len() - 1;
    let count = |kind: Sep| seps.iter().filter(|&&s| s == kind).count();
    let other = if last == Sep::Dot {
        Sep::Comma
    } else {
        Sep::Dot
    };

    if count(other) > 0 {
        // Both kinds: the later one is decimal and may appear only once
        // ("12.345,6.7" has a '.' after the decimal part).
        return if count(last) == 1 {
            Ok(Some(last_index))
        } else {
            Err(Malformed::MisplacedSeparator.into())
        };
    }
    if count(last) > 1 {
        // "1.234.567" / "1,234,567": a repeated separator groups thousands.
        return Ok(None);
    }
    if count(Sep::Space) > 0 {
        // "1 234,56": spaces group thousands, so the single mark is decimal.
        return Ok(Some(last_index));
    }
    // A single '.' or ',' and nothing else.
    let (integer, fraction) = (groups[0], groups[1]);
    if fraction.len() == 3 && integer.len() <= 3 && !integer.starts_with('0') {
        let thousands_reading = format!("{integer}{fraction}")
            .parse::<i64>()
            .map_err(|_| MoneyError::Overflow)?;
        return Err(MoneyError::AmbiguousSeparators {
            separator: last.as_char(),
            thousands_reading: Money::from_cents(thousands_reading * 100),
        });
    }
    Ok(Some(last_index))
}

fn sep_of(c: char) -> Option<Sep> {
    match c {
        '.' => Some(Sep::Dot),
        ',' => Some(Sep::Comma),
        ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' => Some(Sep::Space),
        _ => None,
    }
}

/// Splits `total` into shares proportional to `weights` by the
/// largest-remainder (Hamilton) method.
///
/// Each share starts as `floor(total * weight / sum_of_weights)`, computed in
/// `i128` so it cannot overflow. The cents still missing to reach `total`
/// (fewer than the number of nonzero weights) are handed out one each to the
/// shares with the largest remainders `total * weight % sum_of_weights`; ties
/// go to the lower index, so the result is deterministic.
///
/// Consequences: the shares always add up to exactly `total`; each share is
/// within one cent of the exact proportion; a zero weight gets zero; a larger
/// weight never gets less than a smaller one.
///
/// # Errors
/// [`MoneyError::Negative`] for a negative total,
/// [`MoneyError::NegativeWeight`] for a negative weight, and
/// [`MoneyError::NoWeights`] for a nonzero total when all weights are zero
/// (or there are none). A zero total with no or only zero weights gives
/// zero shares.
pub fn split_pro_rata(total: Money, weights: &[i64]) -> Result<Vec<Money>, MoneyError> {
    if total.is_negative() {
        return Err(MoneyError::Negative);
    }
    if let Some(index) = weights.iter().position(|&w| w < 0) {
        return Err(MoneyError::NegativeWeight { index });
    }
    // i128 holds the sum of any realistic number of i64 weights.
    let sum_w = weights
        .iter()
        .try_fold(0i128, |acc, &w| acc.checked_add(i128::from(w)))
        .ok_or(MoneyError::Overflow)?;
    if sum_w == 0 {
        return if total.is_zero() {
            Ok(vec![Money::ZERO; weights.len()])
        } else {
            Err(MoneyError::NoWeights)
        };
    }

    let total_wide = i128::from(total.cents());
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut handed_out: i128 = 0;
    for &w in weights {
        // < 2^126, no overflow.
        let product = total_wide * i128::from(w);
        let share = product / sum_w;
        handed_out += share;
        shares.push(share);
        remainders.push(product % sum_w);
    }

    let leftover = usize::try_from(total_wide - handed_out).map_err(|_| MoneyError::Overflow)?;
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| remainders[b].cmp(&remainders[a]).then(a.cmp(&b)));
    for &i in order.iter().take(leftover) {
        shares[i] += 1;
    }

    shares
        .into_iter()
        .map(|s| {
            i64::try_from(s)
                .map(Money::from_cents)
                .map_err(|_| MoneyError::Overflow)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(cents: i64) -> Money {
        Money::from_cents(cents)
    }

    fn parse(s: &str) -> Result<Money, MoneyError> {
        Money::parse(s, Money::MAX)
    }

    fn malformed(problem: Malformed) -> Result<Money, MoneyError> {
        Err(MoneyError::Malformed { problem })
    }

    #[test]
    fn accepts_listed_inputs() {
        let cases = [
            ("1234,56", 123_456),
            ("1.234,56", 123_456),
            ("1234.56", 123_456),
            ("1,234.56", 123_456),
            ("12", 1200),
            ("12,5", 1250),
            ("12.5", 1250),
            ("0,99", 99),
            ("0", 0),
            ("0,00", 0),
            ("1.234.567,89", 123_456_789),
            ("1,234,567.89", 123_456_789),
            ("1.234.567", 123_456_700),
            ("1,234,567", 123_456_700),
            ("  12,50 \t\n", 1250),
            ("1.234,56 €", 123_456),
            ("1.234,56\u{a0}€", 123_456),
            ("1.234,56€", 123_456),
            ("€1,234.56", 123_456),
            ("€ 1,234.56", 123_456),
            ("EUR 12", 1200),
            ("eur12", 1200),
            ("12 EUR", 1200),
            ("12,50 Eur", 1250),
            ("1\u{a0}234,56", 123_456),
            ("1\u{202f}234,56", 123_456),
            ("1 234,56", 123_456),
            ("1 234.56", 123_456),
            ("1 234 567", 123_456_700),
            ("1 234", 123_400),
            ("12,-", 1200),
            ("12,--", 1200),
            ("1.000,- €", 100_000),
            ("0012,50", 1250),
        ];
        for (input, cents) in cases {
            assert_eq!(parse(input), Ok(m(cents)), "input {input:?}");
        }
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(parse(""), Err(MoneyError::Empty));
        assert_eq!(parse("  \u{a0} "), Err(MoneyError::Empty));
        assert_eq!(parse("€"), malformed(Malformed::NoDigits));
        assert_eq!(parse("- EUR"), malformed(Malformed::NoDigits));
    }

    #[test]
    fn refuses_malformed() {
        use Malformed::*;
        let cases = [
            ("1,2,3", BadGrouping),
            ("1.23,45", BadGrouping),
            ("1.2345,67", BadGrouping),
            ("1234.567,89", BadGrouping),
            ("0.123,45", BadGrouping),
            ("12.345,6.7", MisplacedSeparator),
            ("1,234.56,78", MisplacedSeparator),
            ("12.", MisplacedSeparator),
            (",50", MisplacedSeparator),
            ("1..2", MisplacedSeparator),
            ("1, 2", MisplacedSeparator),
            ("1.234 567,89", MixedSeparators),
            ("1 234.567.890", MixedSeparators),
            ("12a", InvalidCharacter('a')),
            ("abc", InvalidCharacter('a')),
            ("+5", InvalidCharacter('+')),
            ("5-", InvalidCharacter('-')),
            ("€5€", InvalidCharacter('€')),
            ("$5", InvalidCharacter('$')),
            ("1'234", InvalidCharacter('\'')),
            ("1e3", InvalidCharacter('e')),
            ("１２", InvalidCharacter('１')),
            ("12 USD", InvalidCharacter('U')),
        ];
        for (input, problem) in cases {
            assert_eq!(parse(input), malformed(problem), "input {input:?}");
        }
    }

    #[test]
    fn refuses_negative() {
        for input in [
            "-5",
            "-0",
            "- 5",
            "-5 €",
            "-€5",
            "€-5",
            "EUR -1.234,56",
            "\u{2212}5",
        ] {
            assert_eq!(parse(input), Err(MoneyError::Negative), "input {input:?}");
        }
        // A broken number is reported as such, not as negative.
        assert_eq!(parse("-abc"), malformed(Malformed::InvalidCharacter('a')));
    }

    #[test]
    fn refuses_ambiguous_separators() {
        let cases = [
            ("1,234", ',', 123_400),
            ("12,345", ',', 1_234_500),
            ("123,456", ',', 12_345_600),
            ("1.234", '.', 123_400),
            ("1.000 €", '.', 100_000),
            ("€12.500", '.', 1_250_000),
        ];
        for (input, separator, cents) in cases {
            assert_eq!(
                parse(input),
                Err(MoneyError::AmbiguousSeparators {
                    separator,
                    thousands_reading: m(cents)
                }),
                "input {input:?}"
            );
        }
        let err = parse("1,234").unwrap_err();
        assert_eq!(err.code(), "money.ambiguous_separators");
        assert!(err.to_string().contains("write 1234 or 1,234.00"), "{err}");
    }

    #[test]
    fn refuses_too_many_decimals() {
        let cases = [
            ("1234,567", 3),
            ("1234.567", 3),
            ("0,123", 3),
            ("0.123", 3),
            ("1,2345", 4),
            ("1.234,567", 3),
            ("1,234.567", 3),
            ("1 234,567", 3),
            ("1 234.567", 3),
        ];
        for (input, decimals) in cases {
            assert_eq!(
                parse(input),
                Err(MoneyError::TooManyDecimals { decimals }),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn refuses_above_maximum() {
        let maximum = m(10_000_000);
        assert_eq!(Money::parse("100.000,00", maximum), Ok(maximum));
        let above = Err(MoneyError::AboveMaximum { maximum });
        assert_eq!(Money::parse("100.000,01", maximum), above);
        assert_eq!(Money::parse("1.000.000", maximum), above);
        assert_eq!(Money::parse("99999999999999999999999", maximum), above);
        // Beyond i64 is reported as above the maximum, never wrapped.
        let max = Err(MoneyError::AboveMaximum {
            maximum: Money::MAX,
        });
        assert_eq!(parse("92233720368547758,08"), max);
        assert_eq!(parse("92233720368547758,07"), Ok(Money::MAX));
        assert_eq!(parse("999999999999999999999999999999"), max);
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(MoneyError::Empty.code(), "money.empty");
        assert_eq!(parse("x").unwrap_err().code(), "money.malformed");
        assert_eq!(parse("-1").unwrap_err().code(), "money.negative");
        assert_eq!(
            parse("0,123").unwrap_err().code(),
            "money.too_many_decimals"
        );
        assert_eq!(
            Money::parse("2", m(100)).unwrap_err().code(),
            "money.above_maximum"
        );
        assert_eq!(MoneyError::Overflow.code(), "money.overflow");
        assert_eq!(MoneyError::NoWeights.code(), "money.no_weights");
        assert_eq!(
            Malformed::BadGrouping.code(),
            "money.malformed.bad_grouping"
        );
        let above = MoneyError::AboveMaximum {
            maximum: m(500_000),
        };
        assert_eq!(
            above.to_string(),
            "the amount must not be more than €5,000.00"
        );
    }

    #[test]
    fn formats_in_both_locales() {
        let x = m(123_456);
        assert_eq!(x.format(Locale::De), "1.234,56\u{a0}€");
        assert_eq!(x.format(Locale::En), "€1,234.56");
        assert_eq!(m(-123_456).format(Locale::De), "-1.234,56\u{a0}€");
        assert_eq!(m(-123_456).format(Locale::En), "-€1,234.56");
        assert_eq!(x.format_plain(Locale::De), "1.234,56");
        assert_eq!(x.format_plain(Locale::En), "1,234.56");
        assert_eq!(m(5).format_plain(Locale::De), "0,05");
        assert_eq!(m(100_000_000).format_plain(Locale::En), "1,000,000.00");
        assert_eq!(m(12_345_678).format_plain(Locale::De), "123.456,78");
        assert_eq!(x.to_decimal_string(), "1234.56");
        assert_eq!(m(-5).to_decimal_string(), "-0.05");
        assert_eq!(Money::ZERO.to_decimal_string(), "0.00");
        assert_eq!(m(i64::MIN).to_decimal_string(), "-92233720368547758.08");
        assert_eq!(
            m(i64::MIN).format(Locale::En),
            "-€92,233,720,368,547,758.08"
        );
    }

    #[test]
    fn locale_tags_and_serde() {
        for tag in ["de", "DE", "de-DE", "de_AT", "de-CH", " de "] {
            assert_eq!(Locale::from_tag(tag), Some(Locale::De), "{tag}");
        }
        for tag in ["en", "en-GB", "en-US", "EN_us"] {
            assert_eq!(Locale::from_tag(tag), Some(Locale::En), "{tag}");
        }
        for tag in ["", "fr", "deu", "e", "-de"] {
            assert_eq!(Locale::from_tag(tag), None, "{tag}");
        }
        assert_eq!(Locale::default(), Locale::De);
        assert_eq!(Locale::De.as_str(), "de");
        assert_eq!(Locale::En.as_str(), "en");
        assert_eq!(serde_json::to_string(&Locale::En).unwrap(), "\"en\"");
        assert_eq!(
            serde_json::from_str::<Locale>("\"de\"").unwrap(),
            Locale::De
        );
        assert_eq!(serde_json::to_string(&m(1250)).unwrap(), "1250");
        assert_eq!(serde_json::from_str::<Money>("-7").unwrap(), m(-7));
    }

    #[test]
    fn predicates_and_constants() {
        assert_eq!(Money::default(), Money::ZERO);
        assert!(Money::ZERO.is_zero());
        assert!(!Money::ZERO.is_positive() && !Money::ZERO.is_negative());
        assert!(m(1).is_positive());
        assert!(m(-1).is_negative());
        assert_eq!(m(42).cents(), 42);
        assert!(m(-1) < Money::ZERO);
    }

    #[test]
    fn checked_arithmetic_never_wraps() {
        assert_eq!(m(150).checked_add(m(250)), Ok(m(400)));
        assert_eq!(m(150).checked_sub(m(250)), Ok(m(-100)));
        assert_eq!(m(150).checked_mul(-3), Ok(m(-450)));
        assert_eq!(m(150).checked_neg(), Ok(m(-150)));
        assert_eq!(Money::MAX.checked_add(m(1)), Err(MoneyError::Overflow));
        assert_eq!(m(i64::MIN).checked_sub(m(1)), Err(MoneyError::Overflow));
        assert_eq!(Money::MAX.checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(m(i64::MIN).checked_mul(-1), Err(MoneyError::Overflow));
        assert_eq!(m(i64::MIN).checked_neg(), Err(MoneyError::Overflow));
        assert_eq!(Money::checked_sum([m(1), m(2), m(3)]), Ok(m(6)));
        assert_eq!(Money::checked_sum([]), Ok(Money::ZERO));
        assert_eq!(
            Money::checked_sum([Money::MAX, m(1)]),
            Err(MoneyError::Overflow)
        );
        // Only the final sum has to fit.
        assert_eq!(
            Money::checked_sum([Money::MAX, m(1), m(-1)]),
            Ok(Money::MAX)
        );
    }

    #[test]
    fn split_examples() {
        assert_eq!(
            split_pro_rata(m(100), &[1, 1, 1]),
            Ok(vec![m(34), m(33), m(33)])
        );
        assert_eq!(
            split_pro_rata(m(100), &[1, 0, 2]),
            Ok(vec![m(33), m(0), m(67)])
        );
        assert_eq!(split_pro_rata(m(10), &[5]), Ok(vec![m(10)]));
        assert_eq!(split_pro_rata(m(0), &[0, 0]), Ok(vec![m(0), m(0)]));
        assert_eq!(split_pro_rata(m(0), &[]), Ok(vec![]));
        assert_eq!(split_pro_rata(m(1), &[0, 0]), Err(MoneyError::NoWeights));
        assert_eq!(split_pro_rata(m(1), &[]), Err(MoneyError::NoWeights));
        assert_eq!(split_pro_rata(m(-1), &[1]), Err(MoneyError::Negative));
        assert_eq!(
            split_pro_rata(m(1), &[1, -1]),
            Err(MoneyError::NegativeWeight { index: 1 })
        );
        let huge = split_pro_rata(Money::MAX, &[i64::MAX, i64::MAX, 1]).unwrap();
        assert_eq!(Money::checked_sum(huge), Ok(Money::MAX));
    }

    fn weight() -> impl Strategy<Value = i64> {
        prop_oneof![0..=3i64, 0..=1000i64, 0..=i64::MAX]
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(cents in 0..=10_000_000_000_000i64) {
            let x = m(cents);
            for locale in [Locale::De, Locale::En] {
                prop_assert_eq!(parse(&x.format(locale)), Ok(x));
                prop_assert_eq!(parse(&x.format_plain(locale)), Ok(x));
            }
            prop_assert_eq!(parse(&x.to_decimal_string()), Ok(x));
        }

        #[test]
        fn parses_canonical_decimal(euros in 0..=100_000_000_000i64, c in 0..100i64) {
            prop_assert_eq!(parse(&format!("{euros}.{c:02}")), Ok(m(euros * 100 + c)));
            prop_assert_eq!(parse(&format!("{euros},{c:02}")), Ok(m(euros * 100 + c)));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = parse(&s);
        }

        #[test]
        fn split_properties(
            total in prop_oneof![0..=10_000i64, 0..=i64::MAX],
            weights in prop::collection::vec(weight(), 1..12),
        ) {
            let sum_w: i128 = weights.iter().map(|&w| i128::from(w)).sum();
            let result = split_pro_rata(m(total), &weights);
            if sum_w == 0 {
                prop_assert_eq!(result, if total == 0 {
                    Ok(vec![Money::ZERO; weights.len()])
                } else {
                    Err(MoneyError::NoWeights)
                });
                return Ok(());
            }
            let shares = result.unwrap();
            prop_assert_eq!(shares.len(), weights.len());
            prop_assert_eq!(Money::checked_sum(shares.iter().copied()), Ok(m(total)));
            for (share, &w) in shares.iter().zip(&weights) {
                let exact = i128::from(total) * i128::from(w);
                let got = i128::from(share.cents()) * sum_w;
                prop_assert!((got - exact).abs() < sum_w);
                if w == 0 {
                    prop_assert_eq!(*share, Money::ZERO);
                }
            }
            for (i, &wi) in weights.iter().enumerate() {
                for (j, &wj) in weights.iter().enumerate() {
                    if wi > wj {
                        prop_assert!(shares[i] >= shares[j]);
                    }
                }
            }
            prop_assert_eq!(split_pro_rata(m(total), &weights), Ok(shares));
        }
    }
}
