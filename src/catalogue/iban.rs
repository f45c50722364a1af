//! Payout details: IBAN validation (country, length, ISO 7064 MOD 97-10 check digits) and BIC validation.
//!
//! This checks that an account number is well-formed, not that the account
//! exists: the check digits catch typos (every single-character substitution and
//! every swap of two adjacent digits), nothing more.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest IBAN ISO 13616 allows.
const MAX_LENGTH: usize = 34;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IbanError {
    #[error("no IBAN given")]
    Empty,
    /// Only A–Z and 0–9 may remain once spaces are removed.
    #[error("the IBAN contains {character:?}; only letters A-Z and digits are allowed")]
    InvalidCharacters { character: char },
    /// The first two characters are not a country that issues IBANs.
    #[error("{code:?} is not a country that uses IBANs")]
    UnknownCountry { code: String },
    /// Characters three and four must be digits.
    #[error("the check digits {digits:?} are not two digits")]
    MalformedCheckDigits { digits: String },
    #[error("an IBAN from {country} has {expected} characters, this one has {actual}")]
    WrongLength {
        country: String,
        expected: usize,
        actual: usize,
    },
    /// The MOD 97-10 check failed: most likely a typo.
    #[error("the check digits do not match; please check for typos")]
    Checksum,
}

impl IbanError {
    pub fn message_key(&self) -> &'static str {
        match self {
            IbanError::Empty => "iban.empty",
            IbanError::InvalidCharacters { .. } => "iban.invalid_characters",
            IbanError::UnknownCountry { .. } => "iban.unknown_country",
            // Wrong check digits, whatever their form: the user's fix is the same.
            IbanError::MalformedCheckDigits { .. } | IbanError::Checksum => "iban.checksum",
            IbanError::WrongLength { .. } => "iban.wrong_length",
        }
    }
}

/// A valid IBAN in electronic form: no spaces, upper case.
///
/// `Display` and serde use this compact form (what goes into a database or a
/// SEPA file); [`Iban::formatted`] gives the grouped form for people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iban(String);

impl Iban {
    /// Validates user input. Whitespace anywhere (including non-breaking spaces
    /// from copy and paste) is ignored and letters may be lower case.
    pub fn parse(input: &str) -> Result<Iban, IbanError> {
        let mut compact = String::with_capacity(MAX_LENGTH);
        for character in input.chars().filter(|c| !c.is_whitespace()) {
            if !character.is_ascii_alphanumeric() {
                return Err(IbanError::InvalidCharacters { character });
            }
            compact.push(character.to_ascii_uppercase());
        }
        if compact.is_empty() {
            return Err(IbanError::Empty);
        }

        // The string is ASCII from here on, so byte slicing cannot split a character.
        let code = compact.get(..2).unwrap_or(&compact);
        let expected = expected_length(code).ok_or_else(|| IbanError::UnknownCountry {
            code: code.to_owned(),
        })?;
        let digits = compact.get(2..compact.len().min(4)).unwrap_or("");
        if digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IbanError::MalformedCheckDigits {
                digits: digits.to_owned(),
            });
        }
        if compact.len() != expected {
            return Err(IbanError::WrongLength {
                country: code.to_owned(),
                expected,
                actual: compact.len(),
            });
        }
        // Check digits are 02..=98. 00, 01 and 99 can still pass MOD 97 (they are
        // 97, 98 and 02 in disguise), so they are refused explicitly.
        if matches!(digits, "00" | "01" | "99") || mod97(&compact) != 1 {
            return Err(IbanError::Checksum);
        }
        Ok(Iban(compact))
    }

    /// The compact form, e.g. `DE89370400440532013000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 3166 country code, e.g. `DE`.
    pub fn country(&self) -> &str {
        self.0.get(..2).unwrap_or("")
    }

    /// Groups of four for reading aloud and printing: `DE89 3704 0044 0532 0130 00`.
    pub fn formatted(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + self.0.len() / 4);
        for (index, character) in self.0.chars().enumerate() {
            if index > 0 && index % 4 == 0 {
                out.push(' ');
            }
            out.push(character);
        }
        out
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Iban {
    type Err = IbanError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Iban::parse(input)
    }
}

impl TryFrom<String> for Iban {
    type Error = IbanError;
    fn try_from(input: String) -> Result<Self, Self::Error> {
        Iban::parse(&input)
    }
}

impl From<Iban> for String {
    fn from(iban: Iban) -> String {
        iban.0
    }
}

/// ISO 7064 MOD 97-10 over the IBAN with its first four characters moved to the
/// end and letters as 10–35. Computed digit by digit so no big integers are needed:
/// the remainder stays below 97, so `remainder * 100 + 35` always fits.
fn mod97(compact: &str) -> u32 {
    let (head, tail) = compact.split_at(4.min(compact.len()));
    tail.bytes().chain(head.bytes()).fold(0, |remainder, byte| {
        if byte.is_ascii_digit() {
            (remainder * 10 + u32::from(byte - b'0')) % 97
        } else {
            (remainder * 100 + u32::from(byte.to_ascii_uppercase() - b'A') + 10) % 97
        }
    })
}

fn expected_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(code, _)| *code == country)
        .map(|(_, length)| *length)
}

/// IBAN length per country, from the SWIFT IBAN registry (all SEPA countries and
/// every other country in the registry). Territories that use their mother
/// country's IBAN (Åland, French overseas departments, Jersey, …) are not listed:
/// their IBANs start with FI, FR, GB.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// ISO 3166-1 alpha-2 country codes, plus `XK` (Kosovo), which SWIFT uses.
/// BICs exist for countries without IBANs (US, JP, …), so the IBAN table is not enough.
const COUNTRY_CODES: &str = "\
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
    HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
    KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
    NA NC NE NF NG NI NL NO NP NR NU NZ OM \
    PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
    VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK";

fn is_country(code: &str) -> bool {
    code.len() == 2 && COUNTRY_CODES.split_ascii_whitespace().any(|c| c == code)
}

/// Territories with their own ISO code whose banks use the mother country's IBAN
/// prefix, so a BIC with the territory's code can belong to such an IBAN.
const IBAN_TERRITORIES: &[(&str, &[&str])] = &[
    ("FI", &["AX"]),
    (
        "FR",
        &[
            "BL", "GF", "GP", "MF", "MQ", "NC", "PF", "PM", "RE", "TF", "WF", "YT",
        ],
    ),
    ("GB", &["GG", "IM", "JE"]),
];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BicError {
    #[error("no BIC given")]
    Empty,
    #[error("a BIC has 8 or 11 characters, this one has {actual}")]
    WrongLength { actual: usize },
    /// Characters 1–4 (the institution) must be letters.
    #[error("the bank code {code:?} must be four letters")]
    BankCode { code: String },
    /// Characters 5–6 must be a country code.
    #[error("{code:?} is not a country code")]
    UnknownCountry { code: String },
    /// Characters 7–8 (location) and 9–11 (branch) must be letters or digits.
    #[error("the location or branch code contains something other than letters and digits")]
    LocationOrBranch,
}

impl BicError {
    pub fn message_key(&self) -> &'static str {
        // One message for all: a BIC is copied, not composed, so "check the BIC"
        // is all the user needs; the variant is for logs and tests.
        "bic.invalid"
    }
}

/// A well-formed BIC (ISO 9362), upper case, 8 or 11 characters as entered.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bic(String);

impl Bic {
    /// Validates user input; whitespace is ignored and letters may be lower case.
    pub fn parse(input: &str) -> Result<Bic, BicError> {
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if compact.is_empty() {
            return Err(BicError::Empty);
        }
        let length = compact.chars().count();
        if length != 8 && length != 11 {
            return Err(BicError::WrongLength { actual: length });
        }
        // 8 or 11 characters, but not necessarily ASCII yet: slice by chars.
        let part = |from: usize, to: usize| -> String {
            compact.chars().skip(from).take(to - from).collect()
        };
        let bank = part(0, 4);
        if !bank.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(BicError::BankCode { code: bank });
        }
        let country = part(4, 6);
        if !is_country(&country) {
            return Err(BicError::UnknownCountry { code: country });
        }
        if !part(6, length)
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(BicError::LocationOrBranch);
        }
        Ok(Bic(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The institution code, e.g. `COBA` in `COBADEFFXXX`.
    pub fn bank_code(&self) -> &str {
        self.0.get(..4).unwrap_or("")
    }

    /// The ISO 3166 country code, e.g. `DE` in `COBADEFFXXX`.
    pub fn country(&self) -> &str {
        self.0.get(4..6).unwrap_or("")
    }
}

impl fmt::Display for Bic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Bic {
    type Err = BicError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Bic::parse(input)
    }
}

impl TryFrom<String> for Bic {
    type Error = BicError;
    fn try_from(input: String) -> Result<Self, Self::Error> {
        Bic::parse(&input)
    }
}

impl From<Bic> for String {
    fn from(bic: Bic) -> String {
        bic.0
    }
}

/// Whether the BIC's country fits the IBAN's. Informational only (show a
/// warning, don't refuse): some banks hold accounts abroad under their home BIC.
pub fn bic_matches_iban(bic: &Bic, iban: &Iban) -> bool {
    let bic_country = bic.country();
    let iban_country = iban.country();
    bic_country == iban_country
        || IBAN_TERRITORIES.iter().any(|(mother, territories)| {
            *mother == iban_country && territories.contains(&bic_country)
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Example IBANs published by the national banks and in the SWIFT registry.
    const VALID: &[&str] = &[
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "AT611904300234573201",
        "CH9300762011623852957",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "IT60X0542811101000000123456",
        "ES9121000418450200051332",
        "PL61109010140000071219812874",
        "LU280019400644750000",
        "DK5000400440116243",
        "SE4550000000058398257466",
        "NO9386011117947",
        "FI2112345600000785",
        "IE29AIBK93115212345678",
        "PT50000201231234567890154",
        "LI21088100002324013AA",
        "MT84MALT011000012345MTLCAST001S",
        "GR1601101250000000012300695",
        "HU42117730161111101800000000",
        "CZ6508000000192000145399",
        "SK3112000000198742637541",
        "SI56263300012039086",
        "HR1210010051863000160",
        "EE382200221020145685",
        "LV80BANK0000435195001",
        "LT121000011101001000",
        "BG80BNBG96611020345678",
        "RO49AAAA1B31007593840000",
        "CY17002001280000001200527600",
        "IS140159260076545510730339",
        "MC5811222000010123456789030",
        "SM86U0322509800000000270100",
        "AD1200012030200359100100",
        "GI75NWBK000000007099453",
        "VA59001123000012345678",
    ];

    #[test]
    fn published_example_ibans_are_valid() {
        for input in VALID {
            let iban = Iban::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(iban.as_str(), *input);
            assert_eq!(iban.country(), &input[..2]);
            assert_eq!(iban.to_string(), *input);
        }
    }

    #[test]
    fn the_length_table_is_consistent() {
        for (index, (code, length)) in IBAN_LENGTHS.iter().enumerate() {
            assert!(is_country(code), "{code} is not in the country list");
            assert!((15..=MAX_LENGTH).contains(length), "{code}");
            assert!(
                IBAN_LENGTHS[..index].iter().all(|(other, _)| other != code),
                "{code} twice"
            );
        }
        for (code, expected) in [
            ("DE", 22),
            ("AT", 20),
            ("CH", 21),
            ("FR", 27),
            ("NL", 18),
            ("BE", 16),
            ("IT", 27),
            ("ES", 24),
            ("LU", 20),
            ("PL", 28),
            ("NO", 15),
            ("MT", 31),
            ("LC", 32),
            ("RU", 33),
        ] {
            assert_eq!(expected_length(code), Some(expected), "{code}");
        }
        assert_eq!(COUNTRY_CODES.split_ascii_whitespace().count(), 250);
    }

    #[test]
    fn lowercase_and_spaced_input_is_accepted_and_normalised() {
        for input in [
            "DE89 3704 0044 0532 0130 00",
            "de89370400440532013000",
            "  de89 3704 0044 0532 0130 00\n",
            "DE89\u{a0}3704\u{a0}0044\u{a0}0532\u{a0}0130\u{a0}00",
            "De89 37040044 05320130 00",
        ] {
            assert_eq!(
                Iban::parse(input).unwrap().as_str(),
                "DE89370400440532013000"
            );
        }
    }

    #[test]
    fn formatted_groups_in_fours() {
        let iban = Iban::parse("DE89370400440532013000").unwrap();
        assert_eq!(iban.formatted(), "DE89 3704 0044 0532 0130 00");
        let iban = Iban::parse("NO9386011117947").unwrap();
        assert_eq!(iban.formatted(), "NO93 8601 1117 947");
        let iban = Iban::parse("BE68539007547034").unwrap();
        assert_eq!(iban.formatted(), "BE68 5390 0754 7034");
        // The formatted form parses back to the same IBAN.
        for input in VALID {
            let iban = Iban::parse(input).unwrap();
            assert_eq!(Iban::parse(&iban.formatted()).unwrap(), iban);
        }
    }

    #[test]
    fn empty_input_is_empty() {
        for input in ["", "   ", "\t"] {
            let error = Iban::parse(input).unwrap_err();
            assert_eq!(error, IbanError::Empty);
            assert_eq!(error.message_key(), "iban.empty");
        }
    }

    #[test]
    fn characters_other_than_letters_and_digits_are_refused() {
        for (input, character) in [
            ("DE89-3704-0044-0532-0130-00", '-'),
            ("DE89.370400440532013000", '.'),
            ("DE89370400440532013ß00", 'ß'),
            ("DE89370400440532013000!", '!'),
        ] {
            let error = Iban::parse(input).unwrap_err();
            assert_eq!(error, IbanError::InvalidCharacters { character }, "{input}");
            assert_eq!(error.message_key(), "iban.invalid_characters");
        }
    }

    #[test]
    fn unknown_countries_are_refused() {
        for (input, code) in [
            ("US12345678901234567890", "US"),
            ("XX89370400440532013000", "XX"),
            ("1289370400440532013000", "12"),
            ("D", "D"),
        ] {
            let error = Iban::parse(input).unwrap_err();
            assert_eq!(error, IbanError::UnknownCountry { code: code.into() });
            assert_eq!(error.message_key(), "iban.unknown_country");
        }
    }

    #[test]
    fn check_digits_must_be_digits() {
        for (input, digits) in [("DEAB370400440532013000", "AB"), ("DE", ""), ("DE8", "8")] {
            let error = Iban::parse(input).unwrap_err();
            assert_eq!(
                error,
                IbanError::MalformedCheckDigits {
                    digits: digits.into()
                }
            );
            assert_eq!(error.message_key(), "iban.checksum");
        }
    }

    #[test]
    fn wrong_lengths_are_refused_with_expected_and_actual() {
        let error = Iban::parse("DE8937040044053201300").unwrap_err();
        assert_eq!(
            error,
            IbanError::WrongLength {
                country: "DE".into(),
                expected: 22,
                actual: 21
            }
        );
        assert_eq!(error.message_key(), "iban.wrong_length");
        assert_eq!(
            Iban::parse("DE893704004405320130000").unwrap_err(),
            IbanError::WrongLength {
                country: "DE".into(),
                expected: 22,
                actual: 23
            }
        );
        // A valid Austrian number with a German prefix.
        assert_eq!(
            Iban::parse("DE611904300234573201").unwrap_err(),
            IbanError::WrongLength {
                country: "DE".into(),
                expected: 22,
                actual: 20
            }
        );
        assert!(matches!(
            Iban::parse(&format!("DE89{}", "0".repeat(1000))),
            Err(IbanError::WrongLength { actual: 1004, .. })
        ));
    }

    #[test]
    fn a_one_digit_typo_is_caught_by_the_checksum() {
        let error = Iban::parse("DE89370400440532013001").unwrap_err();
        assert_eq!(error, IbanError::Checksum);
        assert_eq!(error.message_key(), "iban.checksum");
        assert_eq!(
            Iban::parse("DE88370400440532013000").unwrap_err(),
            IbanError::Checksum
        );
        assert_eq!(
            Iban::parse("GB82WEST12345698765433").unwrap_err(),
            IbanError::Checksum
        );
    }

    /// The correct check digits for a country and BBAN.
    fn check_digits(country: &str, bban: &str) -> String {
        let remainder = mod97(&format!("{country}00{bban}"));
        format!("{:02}", 98 - remainder)
    }

    #[test]
    fn check_digits_00_01_and_99_are_refused_even_though_mod97_passes() {
        // Find German BBANs whose correct check digits are 97, 98 or 02; their
        // aliases 00, 01 and 99 give the same remainder but are not allowed.
        let mut found = [false; 3];
        for account in 0..100_000u32 {
            let bban = format!("37040044{account:010}");
            let correct = check_digits("DE", &bban);
            let alias = match correct.as_str() {
                "97" => "00",
                "98" => "01",
                "02" => "99",
                _ => continue,
            };
            assert!(Iban::parse(&format!("DE{correct}{bban}")).is_ok());
            let disguised = format!("DE{alias}{bban}");
            assert_eq!(mod97(&disguised), 1);
            assert_eq!(
                Iban::parse(&disguised),
                Err(IbanError::Checksum),
                "{disguised}"
            );
            found[["00", "01", "99"].iter().position(|a| *a == alias).unwrap()] = true;
            if found.iter().all(|f| *f) {
                return;
            }
        }
        panic!("no example found for every alias: {found:?}");
    }

    #[test]
    fn every_single_digit_substitution_is_caught() {
        for valid in VALID {
            let bytes = valid.as_bytes();
            for position in 2..bytes.len() {
                if !bytes[position].is_ascii_digit() {
                    continue;
                }
                for digit in b'0'..=b'9' {
                    if digit == bytes[position] {
                        continue;
                    }
                    let mut typo = bytes.to_vec();
                    typo[position] = digit;
                    let typo = String::from_utf8(typo).unwrap();
                    assert!(
                        Iban::parse(&typo).is_err(),
                        "{typo} (typo of {valid}) was accepted"
                    );
                }
            }
        }
    }

    #[test]
    fn every_swap_of_two_adjacent_different_digits_is_caught() {
        for valid in VALID {
            let bytes = valid.as_bytes();
            for position in 2..bytes.len() - 1 {
                let (a, b) = (bytes[position], bytes[position + 1]);
                if a == b || !a.is_ascii_digit() || !b.is_ascii_digit() {
                    continue;
                }
                let mut swapped = bytes.to_vec();
                swapped.swap(position, position + 1);
                let swapped = String::from_utf8(swapped).unwrap();
                assert_eq!(Iban::parse(&swapped), Err(IbanError::Checksum), "{swapped}");
            }
        }
    }

    #[test]
    fn mod97_handles_letters_in_the_account_number() {
        // Letters count as two digits (A = 10 … Z = 35).
        assert_eq!(mod97("FR1420041010050500013M02606"), 1);
        assert_eq!(mod97("GB82WEST12345698765432"), 1);
        // With check digits 00 the remainder is 16, and 16 + 82 = 98 ≡ 1 (mod 97).
        assert_eq!(mod97("GB00WEST12345698765432"), 16);
    }

    #[test]
    fn ibans_round_trip_through_serde_and_from_str() {
        let iban: Iban = "de89 3704 0044 0532 0130 00".parse().unwrap();
        let string: String = iban.clone().into();
        assert_eq!(string, "DE89370400440532013000");
        assert_eq!(Iban::try_from(string).unwrap(), iban);
        assert!(Iban::try_from("DE00370400440532013000".to_owned()).is_err());
    }

    #[test]
    fn well_formed_bics_are_accepted() {
        for (input, normalised, country) in [
            ("COBADEFFXXX", "COBADEFFXXX", "DE"),
            ("COBADEFF", "COBADEFF", "DE"),
            ("deutdeff", "DEUTDEFF", "DE"),
            (" DEUT DE FF 500 ", "DEUTDEFF500", "DE"),
            ("BKAUATWW", "BKAUATWW", "AT"),
            ("UBSWCHZH80A", "UBSWCHZH80A", "CH"),
            ("BNPAFRPP", "BNPAFRPP", "FR"),
            ("CHASUS33", "CHASUS33", "US"),
            ("NWBKGB2L", "NWBKGB2L", "GB"),
        ] {
            let bic = Bic::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(bic.as_str(), normalised);
            assert_eq!(bic.to_string(), normalised);
            assert_eq!(bic.country(), country);
            assert_eq!(bic.bank_code(), &normalised[..4]);
        }
    }

    #[test]
    fn malformed_bics_are_refused() {
        let cases = [
            ("", BicError::Empty),
            ("   ", BicError::Empty),
            ("COBADEF", BicError::WrongLength { actual: 7 }),
            ("COBADEFFXX", BicError::WrongLength { actual: 10 }),
            ("COBADEFFXXXX", BicError::WrongLength { actual: 12 }),
            (
                "C0BADEFF",
                BicError::BankCode {
                    code: "C0BA".into(),
                },
            ),
            ("COBAXXFF", BicError::UnknownCountry { code: "XX".into() }),
            ("COBA12FF", BicError::UnknownCountry { code: "12".into() }),
            ("COBADEF-", BicError::LocationOrBranch),
            ("COBADEFFXX_", BicError::LocationOrBranch),
            (
                "ÄOBADEFF",
                BicError::BankCode {
                    code: "ÄOBA".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            let error = Bic::parse(input).unwrap_err();
            assert_eq!(error, expected, "{input:?}");
            assert_eq!(error.message_key(), "bic.invalid");
        }
    }

    #[test]
    fn bic_and_iban_countries_are_compared() {
        let german = Iban::parse("DE89370400440532013000").unwrap();
        let french = Iban::parse("FR1420041010050500013M02606").unwrap();
        assert!(bic_matches_iban(
            &Bic::parse("COBADEFFXXX").unwrap(),
            &german
        ));
        assert!(!bic_matches_iban(&Bic::parse("BNPAFRPP").unwrap(), &german));
        assert!(bic_matches_iban(&Bic::parse("BNPAFRPP").unwrap(), &french));
        // A bank on Réunion has an RE BIC and FR IBANs.
        assert!(bic_matches_iban(&Bic::parse("BREDREAA").unwrap(), &french));
        assert!(!bic_matches_iban(&Bic::parse("BREDREAA").unwrap(), &german));
    }

    #[test]
    fn message_keys_share_the_module_prefixes() {
        let iban_errors = [
            IbanError::Empty,
            IbanError::InvalidCharacters { character: '-' },
            IbanError::UnknownCountry { code: "XX".into() },
            IbanError::MalformedCheckDigits {
                digits: "AB".into(),
            },
            IbanError::WrongLength {
                country: "DE".into(),
                expected: 22,
                actual: 21,
            },
            IbanError::Checksum,
        ];
        for error in iban_errors {
            assert!(error.message_key().starts_with("iban."));
        }
        assert!(BicError::Empty.message_key().starts_with("bic."));
    }
}
