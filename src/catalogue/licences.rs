//! Licences: the OSI-approved licences by SPDX id, lookup of one id, and simple SPDX licence expressions (`MIT OR Apache-2.0`, `GPL-2.0-or-later WITH Classpath-exception-2.0`).
//!
//! The cooperative funds open-source software only, so a project's licence has to
//! be OSI-approved. "Open source" is decided by the list in `osi_licences.txt`
//! (every id the SPDX License List marks as OSI-approved, deprecated ids left out),
//! not by anything a user types.
//!
//! We do not ship the whole SPDX list (≈750 ids). To tell a user "that licence
//! exists but is not open source" rather than "never heard of it", a short list of
//! the non-OSI ids people actually use is kept below ([`NOT_OSI`]). Anything on
//! neither list is [`LicenceError::Unknown`].
//!
//! Deprecated ids (`GPL-3.0`, `LGPL-2.1+`, …) are refused, not silently mapped:
//! `GPL-3.0` could mean "only" or "or later", and that is the licensor's choice.

use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;

/// `SPDX-ID<TAB>full name`, one licence per line; `#` starts a comment line.
const OSI_LIST: &str = include_str!("osi_licences.txt");

/// Parentheses deeper than this are refused: no real expression needs them, and
/// the parser is recursive, so unbounded nesting from an upload could overflow the stack.
const MAX_NESTING: usize = 16;

/// An OSI-approved licence, spelled as the SPDX License List spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Licence {
    /// The SPDX identifier, e.g. `Apache-2.0`.
    pub id: &'static str,
    /// The full name, e.g. `Apache License 2.0`.
    pub name: &'static str,
}

impl fmt::Display for Licence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LicenceError {
    #[error("no licence given")]
    Empty,
    /// A real licence (or a `LicenseRef-`), but not OSI-approved. `id` is as the user gave it.
    #[error("{id} is not an OSI-approved licence")]
    NotOsi { id: String },
    /// Not an SPDX licence id we know of. `id` is as the user gave it.
    #[error("{id} is not a known SPDX licence identifier")]
    Unknown { id: String },
    /// A deprecated SPDX id; `replacements` are the current ids to choose from
    /// (the UI joins them with its own "or").
    #[error("{id} is a deprecated SPDX identifier; use {}", .replacements.join(" or "))]
    Deprecated {
        id: String,
        replacements: &'static [&'static str],
    },
    /// `WITH` followed by something that is not an SPDX licence exception id.
    #[error("{id} is not a known SPDX licence exception")]
    UnknownException { id: String },
    /// The expression does not follow the SPDX grammar. `near` is the token where
    /// reading failed, or `None` if the expression ended too early.
    #[error("malformed licence expression near {}", .near.as_deref().unwrap_or("the end"))]
    MalformedExpression { near: Option<String> },
}

impl LicenceError {
    pub fn message_key(&self) -> &'static str {
        match self {
            LicenceError::Empty => "licence.empty",
            LicenceError::NotOsi { .. } => "licence.not_osi",
            LicenceError::Unknown { .. } => "licence.unknown",
            LicenceError::Deprecated { .. } => "licence.deprecated",
            LicenceError::UnknownException { .. } => "licence.unknown_exception",
            LicenceError::MalformedExpression { .. } => "licence.malformed_expression",
        }
    }
}

/// All OSI-approved licences, sorted by id (ignoring case, so `curl` sits among the Cs).
pub fn all() -> &'static [Licence] {
    static ALL: OnceLock<Vec<Licence>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut list: Vec<Licence> = OSI_LIST
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            // A malformed line is skipped rather than panicking at runtime; a test
            // checks that there are none.
            .filter_map(|line| line.split_once('\t'))
            .map(|(id, name)| Licence {
                id: id.trim(),
                name: name.trim(),
            })
            .filter(|licence| !licence.id.is_empty() && !licence.name.is_empty())
            .collect();
        list.sort_by(|a, b| cmp_ignore_case(a.id, b.id));
        list
    })
}

/// Looks up one OSI-approved licence by its SPDX id, ignoring case and surrounding
/// whitespace, and returns it in its canonical spelling.
///
/// Takes a single id only; expressions (`MIT OR Apache-2.0`, `MPL-1.1+`) go to
/// [`parse_expression`].
pub fn parse(input: &str) -> Result<Licence, LicenceError> {
    let id = input.trim();
    if id.is_empty() {
        return Err(LicenceError::Empty);
    }
    lookup(id)
}

/// Checks an SPDX licence expression in which every licence is OSI-approved and
/// returns it in canonical form: canonical id spellings, upper-case operators,
/// single spaces, the user's parentheses kept.
///
/// Accepted: ids joined by `AND` / `OR` (AND binds tighter, as in SPDX),
/// parentheses, `id WITH exception`, and the SPDX "or later" suffix `+` on
/// non-GNU ids (`MPL-1.1+`). Operators are accepted in any case.
/// With `OR` the licensee may choose, but every alternative must still be
/// OSI-approved: a project that is open source only under one reading is not
/// what the cooperative funds.
pub fn parse_expression(input: &str) -> Result<String, LicenceError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(LicenceError::Empty);
    }
    let tokens = tokenize(trimmed);
    let mut parser = Parser {
        tokens: &tokens,
        position: 0,
    };
    let canonical = parser.or_expression(0)?;
    match parser.peek() {
        None => Ok(canonical),
        Some(token) => Err(malformed_at(token)),
    }
}

/// Finds a single id: OSI-approved, or else the reason it is refused.
fn lookup(id: &str) -> Result<Licence, LicenceError> {
    let list = all();
    if let Ok(index) = list.binary_search_by(|licence| cmp_ignore_case(licence.id, id)) {
        return Ok(list[index]);
    }
    if let Some((_, replacements)) = DEPRECATED
        .iter()
        .find(|(deprecated, _)| deprecated.eq_ignore_ascii_case(id))
    {
        return Err(LicenceError::Deprecated {
            id: id.to_owned(),
            replacements,
        });
    }
    let custom_ref =
        starts_with_ignore_case(id, "LicenseRef-") || starts_with_ignore_case(id, "DocumentRef-");
    if custom_ref || NOT_OSI.iter().any(|known| known.eq_ignore_ascii_case(id)) {
        return Err(LicenceError::NotOsi { id: id.to_owned() });
    }
    Err(LicenceError::Unknown { id: id.to_owned() })
}

/// The order of [`all`] and of the binary search in [`lookup`]; ids are unique
/// ignoring case (a test checks), so this is a total order on the list.
fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|byte| byte.to_ascii_lowercase())
        .cmp(b.bytes().map(|byte| byte.to_ascii_lowercase()))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    And,
    Or,
    With,
    Word(&'a str),
}

impl Token<'_> {
    fn text(&self) -> &str {
        match self {
            Token::Open => "(",
            Token::Close => ")",
            Token::And => "AND",
            Token::Or => "OR",
            Token::With => "WITH",
            Token::Word(word) => word,
        }
    }
}

fn tokenize(input: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut word_start: Option<usize> = None;
    for (index, character) in input.char_indices() {
        if character.is_whitespace() || character == '(' || character == ')' {
            if let Some(start) = word_start.take() {
                tokens.push(classify(&input[start..index]));
            }
            match character {
                '(' => tokens.push(Token::Open),
                ')' => tokens.push(Token::Close),
                _ => {}
            }
        } else if word_start.is_none() {
            word_start = Some(index);
        }
    }
    if let Some(start) = word_start {
        tokens.push(classify(&input[start..]));
    }
    tokens
}

fn classify(word: &str) -> Token<'_> {
    if word.eq_ignore_ascii_case("AND") {
        Token::And
    } else if word.eq_ignore_ascii_case("OR") {
        Token::Or
    } else if word.eq_ignore_ascii_case("WITH") {
        Token::With
    } else {
        Token::Word(word)
    }
}

fn malformed_at(token: &Token<'_>) -> LicenceError {
    LicenceError::MalformedExpression {
        near: Some(token.text().to_owned()),
    }
}

/// Recursive descent over the SPDX grammar:
/// `or := and (OR and)*`, `and := with (AND with)*`,
/// `with := id [WITH exception] | '(' or ')'`.
struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    position: usize,
}

impl<'a> Parser<'_, 'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let token = self.tokens.get(self.position).copied();
        if token.is_some() {
            self.position += 1;
        }
        token
    }

    fn or_expression(&mut self, depth: usize) -> Result<String, LicenceError> {
        let mut canonical = self.and_expression(depth)?;
        while self.peek() == Some(&Token::Or) {
            self.position += 1;
            canonical.push_str(" OR ");
            canonical.push_str(&self.and_expression(depth)?);
        }
        Ok(canonical)
    }

    fn and_expression(&mut self, depth: usize) -> Result<String, LicenceError> {
        let mut canonical = self.term(depth)?;
        while self.peek() == Some(&Token::And) {
            self.position += 1;
            canonical.push_str(" AND ");
            canonical.push_str(&self.term(depth)?);
        }
        Ok(canonical)
    }

    fn term(&mut self, depth: usize) -> Result<String, LicenceError> {
        match self.next() {
            None => Err(LicenceError::MalformedExpression { near: None }),
            Some(Token::Open) => {
                if depth >= MAX_NESTING {
                    return Err(malformed_at(&Token::Open));
                }
                let inner = self.or_expression(depth + 1)?;
                match self.next() {
                    Some(Token::Close) => Ok(format!("({inner})")),
                    Some(other) => Err(malformed_at(&other)),
                    None => Err(LicenceError::MalformedExpression { near: None }),
                }
            }
            Some(Token::Word(word)) => {
                let mut canonical = licence_term(word)?;
                if self.peek() == Some(&Token::With) {
                    self.position += 1;
                    match self.next() {
                        Some(Token::Word(exception)) => {
                            canonical.push_str(" WITH ");
                            canonical.push_str(parse_exception(exception)?);
                        }
                        Some(other) => return Err(malformed_at(&other)),
                        None => return Err(LicenceError::MalformedExpression { near: None }),
                    }
                }
                Ok(canonical)
            }
            Some(other) => Err(malformed_at(&other)),
        }
    }
}

/// One licence inside an expression: an OSI id, optionally with the `+` suffix.
fn licence_term(word: &str) -> Result<String, LicenceError> {
    let Some(base) = word.strip_suffix('+') else {
        return lookup(word).map(|licence| licence.id.to_owned());
    };
    // `GPL-2.0+` and friends are deprecated ids in their own right.
    if let Some((_, replacements)) = DEPRECATED
        .iter()
        .find(|(deprecated, _)| deprecated.eq_ignore_ascii_case(word))
    {
        return Err(LicenceError::Deprecated {
            id: word.to_owned(),
            replacements,
        });
    }
    if base.is_empty() {
        return Err(LicenceError::MalformedExpression {
            near: Some(word.to_owned()),
        });
    }
    let licence = lookup(base)?;
    // `GPL-3.0-only+` contradicts itself, and `-or-later+` says the same thing twice.
    if licence.id.ends_with("-only") || licence.id.ends_with("-or-later") {
        return Err(LicenceError::MalformedExpression {
            near: Some(word.to_owned()),
        });
    }
    Ok(format!("{}+", licence.id))
}

fn parse_exception(word: &str) -> Result<&'static str, LicenceError> {
    EXCEPTIONS
        .iter()
        .find(|exception| exception.eq_ignore_ascii_case(word))
        .copied()
        .ok_or_else(|| LicenceError::UnknownException {
            id: word.to_owned(),
        })
}

/// Deprecated SPDX ids whose current replacements are OSI-approved. Deprecated ids
/// with no OSI-approved replacement (`GPL-1.0`, `GFDL-1.3`, …) are in [`NOT_OSI`]
/// instead: suggesting a replacement that would be refused next helps nobody.
const DEPRECATED: &[(&str, &[&str])] = &[
    ("AGPL-3.0", &["AGPL-3.0-only", "AGPL-3.0-or-later"]),
    // Not an SPDX id, but written often enough.
    ("AGPL-3.0+", &["AGPL-3.0-or-later"]),
    ("GPL-2.0", &["GPL-2.0-only", "GPL-2.0-or-later"]),
    ("GPL-2.0+", &["GPL-2.0-or-later"]),
    ("GPL-3.0", &["GPL-3.0-only", "GPL-3.0-or-later"]),
    ("GPL-3.0+", &["GPL-3.0-or-later"]),
    ("LGPL-2.0", &["LGPL-2.0-only", "LGPL-2.0-or-later"]),
    ("LGPL-2.0+", &["LGPL-2.0-or-later"]),
    ("LGPL-2.1", &["LGPL-2.1-only", "LGPL-2.1-or-later"]),
    ("LGPL-2.1+", &["LGPL-2.1-or-later"]),
    ("LGPL-3.0", &["LGPL-3.0-only", "LGPL-3.0-or-later"]),
    ("LGPL-3.0+", &["LGPL-3.0-or-later"]),
    (
        "GPL-2.0-with-autoconf-exception",
        &[
            "GPL-2.0-only WITH Autoconf-exception-2.0",
            "GPL-2.0-or-later WITH Autoconf-exception-2.0",
        ],
    ),
    (
        "GPL-2.0-with-bison-exception",
        &[
            "GPL-2.0-only WITH Bison-exception-2.2",
            "GPL-2.0-or-later WITH Bison-exception-2.2",
        ],
    ),
    (
        "GPL-2.0-with-classpath-exception",
        &[
            "GPL-2.0-only WITH Classpath-exception-2.0",
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
        ],
    ),
    (
        "GPL-2.0-with-font-exception",
        &[
            "GPL-2.0-only WITH Font-exception-2.0",
            "GPL-2.0-or-later WITH Font-exception-2.0",
        ],
    ),
    (
        "GPL-2.0-with-GCC-exception",
        &[
            "GPL-2.0-only WITH GCC-exception-2.0",
            "GPL-2.0-or-later WITH GCC-exception-2.0",
        ],
    ),
    (
        "GPL-3.0-with-autoconf-exception",
        &[
            "GPL-3.0-only WITH Autoconf-exception-3.0",
            "GPL-3.0-or-later WITH Autoconf-exception-3.0",
        ],
    ),
    (
        "GPL-3.0-with-GCC-exception",
        &[
            "GPL-3.0-only WITH GCC-exception-3.1",
            "GPL-3.0-or-later WITH GCC-exception-3.1",
        ],
    ),
    ("eCos-2.0", &["GPL-2.0-or-later WITH eCos-exception-2.0"]),
    (
        "wxWindows",
        &["LGPL-2.0-or-later WITH WxWindows-exception-3.1"],
    ),
    ("BSD-2-Clause-NetBSD", &["BSD-2-Clause"]),
];

/// Real SPDX ids (and a few well-known names) that are not OSI-approved, so that
/// users hear "not open source" instead of "unknown". Not exhaustive.
const NOT_OSI: &[&str] = &[
    // Source-available and "fair source" licences.
    "BUSL-1.1",
    "Commons-Clause", // not an SPDX id (it is used as LicenseRef-…), but people write it
    "Elastic-2.0",
    "FSL-1.1-ALv2",
    "FSL-1.1-MIT",
    "Hippocratic-2.1",
    "Parity-6.0.0",
    "Parity-7.0.0",
    "PolyForm-Noncommercial-1.0.0",
    "PolyForm-Small-Business-1.0.0",
    "SSPL-1.0",
    "SUL-1.0",
    // Creative Commons: meant for content, not software.
    "CC0-1.0",
    "CC-BY-1.0",
    "CC-BY-2.0",
    "CC-BY-2.5",
    "CC-BY-3.0",
    "CC-BY-3.0-DE",
    "CC-BY-4.0",
    "CC-BY-NC-1.0",
    "CC-BY-NC-2.0",
    "CC-BY-NC-2.5",
    "CC-BY-NC-3.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-ND-3.0",
    "CC-BY-NC-ND-4.0",
    "CC-BY-NC-SA-3.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-3.0",
    "CC-BY-ND-4.0",
    "CC-BY-SA-1.0",
    "CC-BY-SA-2.0",
    "CC-BY-SA-2.5",
    "CC-BY-SA-3.0",
    "CC-BY-SA-3.0-DE",
    "CC-BY-SA-4.0",
    "CC-PDDC",
    "CC-PDM-1.0",
    // Data and government licences.
    "CDLA-Permissive-1.0",
    "CDLA-Permissive-2.0",
    "CDLA-Sharing-1.0",
    "DL-DE-BY-2.0",
    "DL-DE-ZERO-2.0",
    "etalab-2.0",
    "ODbL-1.0",
    "ODC-By-1.0",
    "OGL-UK-3.0",
    "PDDL-1.0",
    // Free-software licences without OSI approval, and older versions.
    "AGPL-1.0",
    "AGPL-1.0-only",
    "AGPL-1.0-or-later",
    "Apache-1.0",
    "Beerware",
    "BSD-2-Clause-FreeBSD",
    "BSD-2-Clause-Views",
    "BSD-3-Clause-Clear",
    "BSD-4-Clause",
    "bzip2-1.0.5",
    "bzip2-1.0.6",
    "CECILL-1.0",
    "CECILL-1.1",
    "CECILL-2.0",
    "CECILL-B",
    "CECILL-C",
    "copyleft-next-0.3.1",
    "D-FSL-1.0",
    "ErlPL-1.1",
    "EUPL-1.0",
    "GFDL-1.1",
    "GFDL-1.1-only",
    "GFDL-1.1-or-later",
    "GFDL-1.2",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0",
    "GPL-1.0+",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "ImageMagick",
    "Info-ZIP",
    "JSON",
    "Libpng",
    "libpng-2.0",
    "LPPL-1.2",
    "LPPL-1.3a",
    "MIT-CMU",
    "MITNFA",
    "MulanPSL-1.0",
    "NPL-1.0",
    "NPL-1.1",
    "Nunit",
    "OFL-1.0",
    "OpenSSL",
    "OSL-1.1",
    "PSF-2.0",
    "Ruby",
    "SMLNJ",
    "StandardML-NJ",
    "TCL",
    "Unicode-DFS-2015",
    "Vim",
    "WTFPL",
    "X11",
    "Zend-2.0",
    "zlib-acknowledgement",
    // SPDX's special values: "no licence" and "not stated" are not open source.
    "NONE",
    "NOASSERTION",
    // Means "some OSI licence, we don't say which"; we need to know which.
    "any-OSI",
];

/// SPDX licence exception ids (SPDX License List 3.29.0, the deprecated
/// `Nokia-Qt-exception-1.1` left out).
const EXCEPTIONS: &[&str] = &[
    "389-exception",
    "Asterisk-exception",
    "Asterisk-linking-protocols-exception",
    "Autoconf-exception-2.0",
    "Autoconf-exception-3.0",
    "Autoconf-exception-generic",
    "Autoconf-exception-generic-3.0",
    "Autoconf-exception-macro",
    "Bison-exception-1.24",
    "Bison-exception-2.2",
    "Bootloader-exception",
    "CGAL-linking-exception",
    "CLISP-exception-2.0",
    "Classpath-exception-2.0",
    "Classpath-exception-2.0-short",
    "DigiRule-FOSS-exception",
    "Digia-Qt-LGPL-exception-1.1",
    "FLTK-exception",
    "Fawkes-Runtime-exception",
    "Font-exception-2.0",
    "GCC-exception-2.0",
    "GCC-exception-2.0-note",
    "GCC-exception-3.1",
    "GNAT-exception",
    "GNOME-examples-exception",
    "GNU-compiler-exception",
    "GPL-3.0-389-ds-base-exception",
    "GPL-3.0-interface-exception",
    "GPL-3.0-linking-exception",
    "GPL-3.0-linking-source-exception",
    "GPL-CC-1.0",
    "GStreamer-exception-2005",
    "GStreamer-exception-2008",
    "Gmsh-exception",
    "Google-Patent-WebM",
    "Independent-modules-exception",
    "KiCad-libraries-exception",
    "LGPL-3.0-linking-exception",
    "LLGPL",
    "LLVM-exception",
    "LZMA-exception",
    "Libtool-exception",
    "Linux-syscall-note",
    "OCCT-exception-1.0",
    "OCaml-LGPL-linking-exception",
    "OpenJDK-assembly-exception-1.0",
    "PCRE2-exception",
    "PS-or-PDF-font-exception-20170817",
    "QPL-1.0-INRIA-2004-exception",
    "Qt-GPL-exception-1.0",
    "Qt-LGPL-exception-1.1",
    "Qwt-exception-1.0",
    "RRDtool-FLOSS-exception-2.0",
    "SANE-exception",
    "SHL-2.0",
    "SHL-2.1",
    "SWI-exception",
    "Simple-Library-Usage-exception",
    "Spelling-Provider-LGPL-exception",
    "Swift-exception",
    "Texinfo-exception",
    "UBDL-exception",
    "Universal-FOSS-exception-1.0",
    "WxWindows-exception-3.1",
    "cryptsetup-OpenSSL-exception",
    "eCos-exception-2.0",
    "erlang-otp-linking-exception",
    "fmt-exception",
    "freertos-exception-2.0",
    "gnu-javamail-exception",
    "harbour-exception",
    "i2p-gpl-java-exception",
    "kvirc-openssl-exception",
    "libpri-OpenH323-exception",
    "mif-exception",
    "mxml-exception",
    "openvpn-openssl-exception",
    "polyparse-exception",
    "romic-exception",
    "rsync-linking-exception",
    "sqlitestudio-OpenSSL-exception",
    "stunnel-exception",
    "u-boot-exception-2.0",
    "vsftpd-openssl-exception",
    "x11vnc-openssl-exception",
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn is_spdx_id(id: &str) -> bool {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    }

    #[test]
    fn the_data_file_is_well_formed_sorted_and_complete() {
        let mut seen = HashSet::new();
        let mut previous: Option<&str> = None;
        let mut count = 0;
        for line in OSI_LIST.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, name) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("no tab in {line:?}"));
            assert!(is_spdx_id(id), "bad id {id:?}");
            assert_eq!(id, id.trim());
            assert!(!name.trim().is_empty(), "no name for {id}");
            assert!(!name.contains('\t'), "second tab in {line:?}");
            assert!(seen.insert(id.to_ascii_lowercase()), "duplicate {id}");
            if let Some(before) = previous {
                assert_eq!(
                    cmp_ignore_case(before, id),
                    Ordering::Less,
                    "{before} before {id}"
                );
            }
            previous = Some(id);
            count += 1;
        }
        assert!(count >= 140, "only {count} licences");
        assert_eq!(all().len(), count, "a line was skipped when loading");
    }

    #[test]
    fn all_is_sorted_and_every_entry_parses_to_itself() {
        let list = all();
        for pair in list.windows(2) {
            assert_eq!(cmp_ignore_case(pair[0].id, pair[1].id), Ordering::Less);
        }
        for licence in list {
            assert_eq!(parse(licence.id), Ok(*licence));
            assert_eq!(parse_expression(licence.id).unwrap(), licence.id);
        }
    }

    #[test]
    fn the_lists_do_not_contradict_each_other() {
        for id in NOT_OSI {
            assert!(
                !all().iter().any(|l| l.id.eq_ignore_ascii_case(id)),
                "{id} is in both lists"
            );
            assert!(
                matches!(parse(id), Err(LicenceError::NotOsi { .. })),
                "{id}"
            );
        }
        for (id, replacements) in DEPRECATED {
            assert!(!all().iter().any(|l| l.id.eq_ignore_ascii_case(id)), "{id}");
            assert!(!NOT_OSI.iter().any(|n| n.eq_ignore_ascii_case(id)), "{id}");
            assert!(!replacements.is_empty());
            // The replacements we suggest must themselves be accepted.
            for replacement in *replacements {
                assert_eq!(
                    parse_expression(replacement).as_deref(),
                    Ok(*replacement),
                    "replacement for {id}"
                );
            }
        }
        let mut exceptions = HashSet::new();
        for exception in EXCEPTIONS {
            assert!(is_spdx_id(exception), "{exception}");
            assert!(exceptions.insert(exception.to_ascii_lowercase()));
        }
    }

    #[test]
    fn well_known_licences_parse_case_insensitively_to_the_canonical_spelling() {
        let cases = [
            ("mit", "MIT"),
            ("apache-2.0", "Apache-2.0"),
            ("APACHE-2.0", "Apache-2.0"),
            ("gpl-2.0-only", "GPL-2.0-only"),
            ("gpl-2.0-or-later", "GPL-2.0-or-later"),
            ("GPL-3.0-ONLY", "GPL-3.0-only"),
            ("gpl-3.0-or-later", "GPL-3.0-or-later"),
            ("lgpl-2.1-only", "LGPL-2.1-only"),
            ("lgpl-2.1-or-later", "LGPL-2.1-or-later"),
            ("lgpl-3.0-only", "LGPL-3.0-only"),
            ("LGPL-3.0-or-later", "LGPL-3.0-or-later"),
            ("agpl-3.0-only", "AGPL-3.0-only"),
            ("agpl-3.0-or-later", "AGPL-3.0-or-later"),
            ("mpl-2.0", "MPL-2.0"),
            ("eupl-1.1", "EUPL-1.1"),
            ("eupl-1.2", "EUPL-1.2"),
            ("bsd-2-clause", "BSD-2-Clause"),
            ("bsd-3-clause", "BSD-3-Clause"),
            ("isc", "ISC"),
            ("0bsd", "0BSD"),
            ("zlib", "Zlib"),
            ("epl-1.0", "EPL-1.0"),
            ("epl-2.0", "EPL-2.0"),
            ("cddl-1.0", "CDDL-1.0"),
            ("artistic-2.0", "Artistic-2.0"),
            ("osl-3.0", "OSL-3.0"),
            ("afl-3.0", "AFL-3.0"),
            ("cecill-2.1", "CECILL-2.1"),
            ("unlicense", "Unlicense"),
            ("bsl-1.0", "BSL-1.0"),
            ("mit-0", "MIT-0"),
            ("postgresql", "PostgreSQL"),
            ("ncsa", "NCSA"),
            ("upl-1.0", "UPL-1.0"),
            ("mulanpsl-2.0", "MulanPSL-2.0"),
            ("  MIT \n", "MIT"),
        ];
        for (input, canonical) in cases {
            let licence = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(licence.id, canonical);
        }
        assert_eq!(parse("Apache-2.0").unwrap().name, "Apache License 2.0");
        assert_eq!(parse("EUPL-1.2").unwrap().to_string(), "EUPL-1.2");
    }

    #[test]
    fn non_osi_licences_are_refused_as_not_osi() {
        for id in [
            "CC-BY-4.0",
            "SSPL-1.0",
            "cc0-1.0",
            "BUSL-1.1",
            "Elastic-2.0",
            "WTFPL",
            "JSON",
            "Commons-Clause",
            "CC-BY-SA-4.0",
            "LicenseRef-Proprietary",
            "NOASSERTION",
        ] {
            let error = parse(id).unwrap_err();
            assert_eq!(error, LicenceError::NotOsi { id: id.to_owned() });
            assert_eq!(error.message_key(), "licence.not_osi");
        }
        // The id is reported as the user gave it (trimmed), not re-spelled.
        assert_eq!(
            parse(" cc-by-4.0 "),
            Err(LicenceError::NotOsi {
                id: "cc-by-4.0".into()
            })
        );
    }

    #[test]
    fn unknown_ids_are_unknown() {
        for id in ["Foo-1.0", "MIT License", "GPL", "Apache 2", "MIT+"] {
            let error = parse(id).unwrap_err();
            assert_eq!(error, LicenceError::Unknown { id: id.to_owned() });
            assert_eq!(error.message_key(), "licence.unknown");
        }
    }

    #[test]
    fn empty_input_is_empty() {
        for input in ["", "   ", "\t\n"] {
            assert_eq!(parse(input), Err(LicenceError::Empty));
            assert_eq!(parse_expression(input), Err(LicenceError::Empty));
        }
        assert_eq!(LicenceError::Empty.message_key(), "licence.empty");
    }

    #[test]
    fn deprecated_ids_are_refused_with_the_replacements_to_choose_from() {
        let error = parse("GPL-3.0").unwrap_err();
        assert_eq!(
            error,
            LicenceError::Deprecated {
                id: "GPL-3.0".into(),
                replacements: &["GPL-3.0-only", "GPL-3.0-or-later"],
            }
        );
        assert_eq!(error.message_key(), "licence.deprecated");
        assert_eq!(
            error.to_string(),
            "GPL-3.0 is a deprecated SPDX identifier; use GPL-3.0-only or GPL-3.0-or-later"
        );
        for (input, first) in [
            ("gpl-2.0", "GPL-2.0-only"),
            ("LGPL-2.1", "LGPL-2.1-only"),
            ("AGPL-3.0", "AGPL-3.0-only"),
            ("GPL-2.0+", "GPL-2.0-or-later"),
            ("lgpl-3.0+", "LGPL-3.0-or-later"),
            (
                "wxWindows",
                "LGPL-2.0-or-later WITH WxWindows-exception-3.1",
            ),
        ] {
            match parse(input) {
                Err(LicenceError::Deprecated { replacements, .. }) => {
                    assert_eq!(replacements[0], first, "{input}")
                }
                other => panic!("{input}: {other:?}"),
            }
        }
        // Inside expressions too, with and without `+`.
        assert!(matches!(
            parse_expression("MIT OR GPL-3.0"),
            Err(LicenceError::Deprecated { .. })
        ));
        assert_eq!(
            parse_expression("GPL-2.0+ WITH Classpath-exception-2.0"),
            Err(LicenceError::Deprecated {
                id: "GPL-2.0+".into(),
                replacements: &["GPL-2.0-or-later"],
            })
        );
    }

    #[test]
    fn expressions_are_accepted_and_canonicalised() {
        let cases = [
            ("MIT OR Apache-2.0", "MIT OR Apache-2.0"),
            ("mit or apache-2.0", "MIT OR Apache-2.0"),
            ("MIT AND Apache-2.0", "MIT AND Apache-2.0"),
            ("  MIT   OR\tApache-2.0 ", "MIT OR Apache-2.0"),
            (
                "GPL-2.0-or-later WITH Classpath-exception-2.0",
                "GPL-2.0-or-later WITH Classpath-exception-2.0",
            ),
            (
                "gpl-2.0-only with linux-syscall-note",
                "GPL-2.0-only WITH Linux-syscall-note",
            ),
            (
                "Apache-2.0 WITH LLVM-exception",
                "Apache-2.0 WITH LLVM-exception",
            ),
            (
                "GPL-3.0-or-later WITH GCC-exception-3.1",
                "GPL-3.0-or-later WITH GCC-exception-3.1",
            ),
            (
                "GPL-2.0-only WITH OpenJDK-assembly-exception-1.0",
                "GPL-2.0-only WITH OpenJDK-assembly-exception-1.0",
            ),
            (
                "GPL-3.0-or-later WITH Autoconf-exception-3.0",
                "GPL-3.0-or-later WITH Autoconf-exception-3.0",
            ),
            (
                "GPL-2.0-or-later WITH Bison-exception-2.2",
                "GPL-2.0-or-later WITH Bison-exception-2.2",
            ),
            (
                "(mit or apache-2.0) and bsd-3-clause",
                "(MIT OR Apache-2.0) AND BSD-3-Clause",
            ),
            ("( MIT OR ISC )", "(MIT OR ISC)"),
            (
                "MIT AND ISC OR Apache-2.0 WITH LLVM-exception",
                "MIT AND ISC OR Apache-2.0 WITH LLVM-exception",
            ),
            ("MPL-1.1+", "MPL-1.1+"),
            ("eupl-1.1+ OR mit", "EUPL-1.1+ OR MIT"),
            ("EUPL-1.2", "EUPL-1.2"),
            ("((MIT))", "((MIT))"),
        ];
        for (input, canonical) in cases {
            assert_eq!(parse_expression(input).as_deref(), Ok(canonical), "{input}");
        }
    }

    #[test]
    fn every_licence_in_an_expression_must_be_osi_approved() {
        assert_eq!(
            parse_expression("MIT OR CC-BY-4.0"),
            Err(LicenceError::NotOsi {
                id: "CC-BY-4.0".into()
            })
        );
        assert_eq!(
            parse_expression("SSPL-1.0 AND MIT"),
            Err(LicenceError::NotOsi {
                id: "SSPL-1.0".into()
            })
        );
        assert_eq!(
            parse_expression("(MIT OR Foo-1.0)"),
            Err(LicenceError::Unknown {
                id: "Foo-1.0".into()
            })
        );
        assert_eq!(
            parse_expression("CC0-1.0+"),
            Err(LicenceError::NotOsi {
                id: "CC0-1.0".into()
            })
        );
    }

    #[test]
    fn exceptions_must_be_known() {
        let error = parse_expression("GPL-2.0-only WITH Foo-exception").unwrap_err();
        assert_eq!(
            error,
            LicenceError::UnknownException {
                id: "Foo-exception".into()
            }
        );
        assert_eq!(error.message_key(), "licence.unknown_exception");
        // A licence id is not an exception.
        assert!(matches!(
            parse_expression("GPL-2.0-only WITH MIT"),
            Err(LicenceError::UnknownException { .. })
        ));
    }

    #[test]
    fn malformed_expressions_say_where() {
        let malformed = |near: Option<&str>| LicenceError::MalformedExpression {
            near: near.map(str::to_owned),
        };
        let cases = [
            ("MIT OR", malformed(None)),
            ("OR MIT", malformed(Some("OR"))),
            ("MIT AND AND ISC", malformed(Some("AND"))),
            ("MIT ISC", malformed(Some("ISC"))),
            ("(MIT OR ISC", malformed(None)),
            ("MIT OR ISC)", malformed(Some(")"))),
            ("()", malformed(Some(")"))),
            ("MIT WITH", malformed(None)),
            ("WITH LLVM-exception", malformed(Some("WITH"))),
            ("(MIT) WITH LLVM-exception", malformed(Some("WITH"))),
            (
                "Apache-2.0 WITH LLVM-exception WITH LLVM-exception",
                malformed(Some("WITH")),
            ),
            ("GPL-3.0-only+", malformed(Some("GPL-3.0-only+"))),
            ("+", malformed(Some("+"))),
        ];
        for (input, expected) in cases {
            let error = parse_expression(input).unwrap_err();
            assert_eq!(error, expected, "{input}");
            assert_eq!(error.message_key(), "licence.malformed_expression");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let shallow = format!("{}MIT{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(parse_expression(&shallow).is_ok());
        let deep = format!("{}MIT{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(matches!(
            parse_expression(&deep),
            Err(LicenceError::MalformedExpression { .. })
        ));
    }

    #[test]
    fn message_keys_share_the_module_prefix() {
        let errors = [
            LicenceError::Empty,
            LicenceError::NotOsi { id: "x".into() },
            LicenceError::Unknown { id: "x".into() },
            LicenceError::Deprecated {
                id: "x".into(),
                replacements: &[],
            },
            LicenceError::UnknownException { id: "x".into() },
            LicenceError::MalformedExpression { near: None },
        ];
        for error in errors {
            assert!(error.message_key().starts_with("licence."));
        }
    }
}
