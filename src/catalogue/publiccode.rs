//! Import of a project from a `publiccode.yml` file (<https://yml.publiccode.tools>, publiccodeYmlVersion 0.x): parsing, the fields the catalogue uses, and validation with errors that name the field.
//!
//! The standard has many more fields (platforms, usedBy, dependsOn, country
//! extensions such as `it:` …). We read only what the catalogue shows and ignore
//! the rest, so files written for any 0.x version import.
//!
//! The file comes from an upload or a repository, so it is untrusted: it is capped
//! at [`MAX_BYTES`], and it is first read into a generic YAML value, which is where
//! the YAML library enforces its limits on alias expansion ("billion laughs") and
//! nesting depth, before it is read into our structs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::licences::{self, LicenceError};

/// Largest accepted file: 512 KiB. Real files are a few KiB.
pub const MAX_BYTES: usize = 512 * 1024;

/// Values of `maintenance.type` in the standard.
const MAINTENANCE_TYPES: &[&str] = &["internal", "contract", "community", "none"];

/// A project as imported from a publiccode.yml file: trimmed, with empty strings
/// treated as absent, and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PubliccodeProject {
    pub name: String,
    /// The source code repository (`url` in the file).
    pub url: String,
    /// The project's web site (`landingURL`).
    pub landing_url: Option<String>,
    pub software_version: Option<String>,
    /// The canonical SPDX expression from `legal.license`, every licence OSI-approved.
    pub licence: String,
    /// Category ids from the standard's vocabulary, e.g. `document-management`.
    pub categories: Vec<String>,
    /// By language code as written in the file (`de`, `en`, `it`, …).
    pub description: BTreeMap<String, Description>,
    /// `internal`, `contract`, `community` or `none`, lower case.
    pub maintenance_type: Option<String>,
    pub maintenance_contacts: Vec<Contact>,
}

/// One language's description.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Description {
    /// `shortDescription`: one line.
    pub short: Option<String>,
    /// `longDescription`: several paragraphs, often Markdown.
    pub long: Option<String>,
    pub features: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
}

impl PubliccodeProject {
    /// The description in `lang` (a language tag like `de` or `de-AT`, any case),
    /// else in the same language with another region, else in English, else in
    /// the first language the file has. `None` only if there is no description.
    pub fn description_for(&self, lang: &str) -> Option<&Description> {
        let wanted = lang.trim();
        let find = |matches: &dyn Fn(&str) -> bool| {
            self.description
                .iter()
                .find(|(code, _)| matches(code))
                .map(|(_, description)| description)
        };
        find(&|code| code.eq_ignore_ascii_case(wanted))
            .or_else(|| find(&|code| primary_language(code) == primary_language(wanted)))
            .or_else(|| find(&|code| code.eq_ignore_ascii_case("en")))
            .or_else(|| find(&|code| primary_language(code) == "en"))
            .or_else(|| self.description.values().next())
    }
}

/// `de` for `de`, `de-AT`, `DE_at`.
fn primary_language(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or(tag)
        .to_ascii_lowercase()
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PubliccodeError {
    #[error("the file has {actual} bytes; at most {max} are allowed")]
    TooLarge { max: usize, actual: usize },
    /// Not YAML, or YAML whose top level is not a mapping (a text file, a list).
    /// `line` and `column` (1-based) are there when the YAML library reports them.
    #[error("not a valid YAML file{}: {detail}", at(.line, .column))]
    NotYaml {
        line: Option<usize>,
        column: Option<usize>,
        detail: String,
    },
    /// Valid YAML, but a field has the wrong shape (a text where a list belongs, …).
    /// `field` is the path as the YAML library names it, e.g. `description.en.features`.
    #[error("{} has the wrong type{}: {detail}", .field.as_deref().unwrap_or("a field"), at(.line, .column))]
    WrongType {
        field: Option<String>,
        line: Option<usize>,
        column: Option<usize>,
        detail: String,
    },
    /// A required field is missing or empty; `field` is its path, e.g. `legal.license`.
    #[error("the required field {field} is missing")]
    MissingField { field: String },
    /// `publiccodeYmlVersion` is not a 0.x version.
    #[error("publiccodeYmlVersion {version} is not supported (0.x only)")]
    UnsupportedVersion { version: String },
    /// `url` or `landingURL` is not an http(s) URL.
    #[error("{field} must be an http or https URL, not {value:?}")]
    InvalidUrl { field: &'static str, value: String },
    /// A field with a fixed set of values has another one, e.g. `maintenance.type`.
    #[error("{field} may not be {value:?}")]
    InvalidValue { field: &'static str, value: String },
    /// `legal.license` is not an expression of OSI-approved licences; the inner
    /// error says why and has its own message key.
    #[error("legal.license: {0}")]
    Licence(#[source] LicenceError),
}

impl PubliccodeError {
    pub fn message_key(&self) -> &'static str {
        match self {
            PubliccodeError::TooLarge { .. } => "publiccode.too_large",
            PubliccodeError::NotYaml { .. } => "publiccode.not_yaml",
            PubliccodeError::WrongType { .. } => "publiccode.wrong_type",
            PubliccodeError::MissingField { .. } => "publiccode.missing_field",
            PubliccodeError::UnsupportedVersion { .. } => "publiccode.unsupported_version",
            PubliccodeError::InvalidUrl { .. } => "publiccode.invalid_url",
            PubliccodeError::InvalidValue { .. } => "publiccode.invalid_value",
            PubliccodeError::Licence(_) => "publiccode.licence",
        }
    }
}

fn at(line: &Option<usize>, column: &Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

/// The file as written. Every field is optional here so that a missing one is
/// reported by its path, not as serde's "missing field". Strings are read as the
/// raw scalar text, so `softwareVersion: 1.10` stays `1.10` rather than the
/// number 1.1. Unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    publiccode_yml_version: Option<String>,
    name: Option<String>,
    url: Option<String>,
    #[serde(rename = "landingURL")]
    landing_url: Option<String>,
    software_version: Option<String>,
    categories: Option<Vec<String>>,
    description: Option<BTreeMap<String, Option<RawDescription>>>,
    legal: Option<RawLegal>,
    maintenance: Option<RawMaintenance>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescription {
    short_description: Option<String>,
    long_description: Option<String>,
    features: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLegal {
    license: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaintenance {
    #[serde(rename = "type")]
    kind: Option<String>,
    contacts: Option<Vec<RawContact>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContact {
    name: Option<String>,
    email: Option<String>,
}

/// Reads and checks a publiccode.yml file.
///
/// Checks, in this order: size, YAML syntax, field types, `publiccodeYmlVersion`,
/// `name`, `url`, `landingURL`, `description`, `legal.license`, `maintenance`.
/// The first problem found is returned.
pub fn parse(input: &str) -> Result<PubliccodeProject, PubliccodeError> {
    if input.len() > MAX_BYTES {
        return Err(PubliccodeError::TooLarge {
            max: MAX_BYTES,
            actual: input.len(),
        });
    }

    // First pass: syntax and the YAML library's resource limits.
    let value: serde_norway::Value =
        serde_norway::from_str(input).map_err(|error| PubliccodeError::NotYaml {
            line: error.location().map(|l| l.line()),
            column: error.location().map(|l| l.column()),
            detail: error.to_string(),
        })?;
    if !value.is_mapping() {
        return Err(PubliccodeError::NotYaml {
            line: None,
            column: None,
            detail: "the top level is not a mapping of fields".to_owned(),
        });
    }

    // Second pass: into our shape. Parsed again from the text (not from `value`)
    // because only the text keeps scalars' original spelling and error locations.
    let raw: RawFile = serde_norway::from_str(input).map_err(|error| {
        let detail = error.to_string();
        PubliccodeError::WrongType {
            field: field_path(&detail),
            line: error.location().map(|l| l.line()),
            column: error.location().map(|l| l.column()),
            detail,
        }
    })?;

    let version = required(raw.publiccode_yml_version, "publiccodeYmlVersion")?;
    if !is_supported_version(&version) {
        return Err(PubliccodeError::UnsupportedVersion { version });
    }
    let name = required(raw.name, "name")?;
    let url = required(raw.url, "url")?;
    check_url(&url, "url")?;
    let landing_url = optional(raw.landing_url);
    if let Some(landing) = &landing_url {
        check_url(landing, "landingURL")?;
    }

    let description: BTreeMap<String, Description> = raw
        .description
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(language, text)| {
            let language = language.trim().to_owned();
            (!language.is_empty()).then(|| (language, description(text)))
        })
        .collect();
    if description.is_empty() {
        return Err(PubliccodeError::MissingField {
            field: "description".to_owned(),
        });
    }

    let licence_text = required(raw.legal.and_then(|legal| legal.license), "legal.license")?;
    let licence = licences::parse_expression(&licence_text).map_err(PubliccodeError::Licence)?;

    let (maintenance_type, maintenance_contacts) = match raw.maintenance {
        None => (None, Vec::new()),
        Some(maintenance) => (
            maintenance_type(maintenance.kind)?,
            contacts(maintenance.contacts.unwrap_or_default())?,
        ),
    };

    Ok(PubliccodeProject {
        name,
        url,
        landing_url,
        software_version: optional(raw.software_version),
        licence,
        categories: list(raw.categories),
        description,
        maintenance_type,
        maintenance_contacts,
    })
}

/// `0.2`, `0.3`, `0.4`, and later 0.x: the standard promises compatibility within 0.x.
fn is_supported_version(version: &str) -> bool {
    version.strip_prefix("0.").is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_digit())
            && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

fn optional(value: Option<String>) -> Option<String> {
    value
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

fn required(value: Option<String>, field: &str) -> Result<String, PubliccodeError> {
    optional(value).ok_or_else(|| PubliccodeError::MissingField {
        field: field.to_owned(),
    })
}

fn list(values: Option<Vec<String>>) -> Vec<String> {
    values
        .unwrap_or_default()
        .into_iter()
        .filter_map(|value| optional(Some(value)))
        .collect()
}

fn description(raw: Option<RawDescription>) -> Description {
    match raw {
        None => Description::default(),
        Some(raw) => Description {
            short: optional(raw.short_description),
            long: optional(raw.long_description),
            features: list(raw.features),
        },
    }
}

fn maintenance_type(kind: Option<String>) -> Result<Option<String>, PubliccodeError> {
    let Some(kind) = optional(kind) else {
        return Ok(None);
    };
    let lower = kind.to_ascii_lowercase();
    if MAINTENANCE_TYPES.contains(&lower.as_str()) {
        Ok(Some(lower))
    } else {
        Err(PubliccodeError::InvalidValue {
            field: "maintenance.type",
            value: kind,
        })
    }
}

fn contacts(raw: Vec<RawContact>) -> Result<Vec<Contact>, PubliccodeError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, contact)| {
            Ok(Contact {
                name: required(contact.name, &format!("maintenance.contacts[{index}].name"))?,
                email: optional(contact.email),
            })
        })
        .collect()
}

/// An absolute http(s) URL with a host and no whitespace. Deliberately simple:
/// the catalogue only links to it, and the browser does the rest.
fn check_url(value: &str, field: &'static str) -> Result<(), PubliccodeError> {
    let invalid = || PubliccodeError::InvalidUrl {
        field,
        value: value.to_owned(),
    };
    let lower = value.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Drop user info (refused below) and port to get at the host.
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let well_formed = !host.is_empty()
        && !authority.contains('@')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed { Ok(()) } else { Err(invalid()) }
}

/// The field path at the start of a serde_norway type error
/// (`description.en.features: invalid type: …`), if there is one.
fn field_path(detail: &str) -> Option<String> {
    let (path, _) = detail.split_once(": ")?;
    let plausible = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '[' | ']'));
    plausible.then(|| path.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Modeled on real files from Italian municipalities (developers.italia.it)
    /// and German ones (OpenCoDE), with the fields we ignore left in.
    const FULL: &str = r#"# This repository adheres to the publiccode.yml standard by including this
# metadata file that makes public software easily discoverable.
# More info at https://github.com/publiccodeyml/publiccode.yml

publiccodeYmlVersion: "0.4"

name: Ratsinformationssystem Musterstadt
applicationSuite: Bürgerdienste
url: "https://gitlab.opencode.de/musterstadt/ratsinfo.git"
landingURL: "https://www.musterstadt.de/ratsinfo"
isBasedOn:
  - "https://github.com/comune-bolzano/consiglio-comunale"
softwareVersion: 2.10
releaseDate: "2024-03-15"
logo: docs/logo.svg
platforms:
  - web
  - linux
categories:
  - document-management
  - workflow-management
  - e-signature
usedBy:
  - Stadt Musterstadt
  - Comune di Bolzano
roadmap: "https://gitlab.opencode.de/musterstadt/ratsinfo/-/milestones"
developmentStatus: stable
softwareType: "standalone/web"
intendedAudience:
  scope:
    - government
  countries:
    - de
    - it

description:
  it:
    localisedName: Sistema informativo del consiglio comunale
    genericName: Gestione sedute
    shortDescription: >-
      Gestione delle sedute, degli ordini del giorno e delle delibere del
      consiglio comunale.
    longDescription: |
      Il sistema permette alle segreterie degli organi collegiali di
      preparare le sedute, pubblicare gli ordini del giorno e archiviare
      le delibere con firma digitale.

      I cittadini possono consultare le sedute passate e future, cercare
      tra le delibere e iscriversi alle notifiche.
    documentation: "https://musterstadt.gitlab.io/ratsinfo/it/"
    features:
      - Ordine del giorno con allegati
      - Verbali e delibere con firma digitale
      - Ricerca nel testo integrale
    screenshots:
      - docs/screenshots/seduta.png
  en:
    localisedName: Council information system
    shortDescription: Meetings, agendas and resolutions of a city council.
    longDescription: |
      Lets council offices prepare meetings, publish agendas and archive
      signed resolutions. Citizens can browse past and upcoming meetings,
      search resolutions and subscribe to notifications.
    features:
      - Agendas with attachments
      - Signed minutes and resolutions
      - Full-text search
  de:
    localisedName: Ratsinformationssystem
    shortDescription: Sitzungen, Tagesordnungen und Beschlüsse des Stadtrats.
    longDescription: |
      Die Geschäftsstellen der Gremien bereiten Sitzungen vor, veröffentlichen
      Tagesordnungen und archivieren signierte Beschlüsse. Bürgerinnen und
      Bürger durchsuchen vergangene und kommende Sitzungen und abonnieren
      Benachrichtigungen.
    features:
      - Tagesordnungen mit Anlagen
      - Signierte Niederschriften und Beschlüsse
      - Volltextsuche

legal:
  license: AGPL-3.0-or-later
  mainCopyrightOwner: Stadt Musterstadt
  repoOwner: Stadt Musterstadt
  authorsFile: AUTHORS.md

maintenance:
  type: contract
  contractors:
    - name: Beispiel Software GmbH
      until: "2026-12-31"
      email: kontakt@beispiel-software.de
      website: "https://www.beispiel-software.de"
  contacts:
    - name: Erika Mustermann
      email: erika.mustermann@musterstadt.de
      affiliation: Stadt Musterstadt, Amt für Digitalisierung
      phone: "+49 30 1234567"
    - name: Mario Rossi
      affiliation: Comune di Bolzano

localisation:
  localisationReady: true
  availableLanguages:
    - de
    - it
    - en

dependsOn:
  open:
    - name: PostgreSQL
      versionMin: "13"
      optional: false

it:
  countryExtensionVersion: "1.0"
  conforme:
    lineeGuidaDesign: true
    modelloInteroperabilita: true
    misureMinimeSicurezza: true
    gdpr: true
  piattaforme:
    spid: true
    pagopa: false
  riuso:
    codiceIPA: c_a952
"#;

    const MINIMAL: &str = "\
publiccodeYmlVersion: '0.2'
name: Mini
url: https://example.org/mini.git
legal:
  license: EUPL-1.2
description:
  en:
    shortDescription: A tiny tool.
";

    fn error_of(input: &str) -> PubliccodeError {
        match parse(input) {
            Ok(project) => panic!("accepted: {project:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn a_full_realistic_file_is_imported() {
        let project = parse(FULL).unwrap();
        assert_eq!(project.name, "Ratsinformationssystem Musterstadt");
        assert_eq!(
            project.url,
            "https://gitlab.opencode.de/musterstadt/ratsinfo.git"
        );
        assert_eq!(
            project.landing_url.as_deref(),
            Some("https://www.musterstadt.de/ratsinfo")
        );
        // Unquoted, and still not turned into the number 2.1.
        assert_eq!(project.software_version.as_deref(), Some("2.10"));
        assert_eq!(project.licence, "AGPL-3.0-or-later");
        assert_eq!(
            project.categories,
            ["document-management", "workflow-management", "e-signature"]
        );
        assert_eq!(
            project.description.keys().collect::<Vec<_>>(),
            ["de", "en", "it"]
        );
        let italian = &project.description["it"];
        assert_eq!(
            italian.short.as_deref(),
            Some(
                "Gestione delle sedute, degli ordini del giorno e delle delibere del consiglio comunale."
            )
        );
        let long = italian.long.as_deref().unwrap();
        assert!(long.starts_with("Il sistema permette"), "{long}");
        assert!(long.contains("\n\nI cittadini"), "paragraphs are kept");
        assert!(!long.ends_with('\n'), "trimmed");
        assert_eq!(italian.features.len(), 3);
        let german = &project.description["de"];
        assert_eq!(
            german.short.as_deref(),
            Some("Sitzungen, Tagesordnungen und Beschlüsse des Stadtrats.")
        );
        assert_eq!(german.features[2], "Volltextsuche");
        assert_eq!(project.maintenance_type.as_deref(), Some("contract"));
        assert_eq!(
            project.maintenance_contacts,
            [
                Contact {
                    name: "Erika Mustermann".into(),
                    email: Some("erika.mustermann@musterstadt.de".into()),
                },
                Contact {
                    name: "Mario Rossi".into(),
                    email: None,
                },
            ]
        );
    }

    #[test]
    fn a_minimal_file_is_imported() {
        let project = parse(MINIMAL).unwrap();
        assert_eq!(project.name, "Mini");
        assert_eq!(project.url, "https://example.org/mini.git");
        assert_eq!(project.licence, "EUPL-1.2");
        assert_eq!(project.landing_url, None);
        assert_eq!(project.software_version, None);
        assert!(project.categories.is_empty());
        assert_eq!(project.maintenance_type, None);
        assert!(project.maintenance_contacts.is_empty());
        assert_eq!(
            project.description["en"],
            Description {
                short: Some("A tiny tool.".into()),
                long: None,
                features: vec![],
            }
        );
    }

    #[test]
    fn the_licence_is_returned_in_canonical_spelling() {
        let file = MINIMAL.replace("EUPL-1.2", "mit or apache-2.0");
        assert_eq!(parse(&file).unwrap().licence, "MIT OR Apache-2.0");
    }

    #[test]
    fn every_0x_version_is_accepted_quoted_or_not() {
        for version in ["'0.2'", "\"0.3\"", "0.4", "\"0.4.0\"", "0.5"] {
            let file = MINIMAL.replace("'0.2'", version);
            assert!(parse(&file).is_ok(), "{version}");
        }
    }

    #[test]
    fn invalid_yaml_is_not_yaml_with_a_location() {
        // A tab where YAML expects indentation.
        let tabbed = MINIMAL.replace("  license", "\tlicense");
        let error = error_of(&tabbed);
        assert_eq!(error.message_key(), "publiccode.not_yaml");
        match error {
            PubliccodeError::NotYaml { line, column, .. } => {
                assert_eq!(line, Some(5));
                assert!(column.is_some());
            }
            other => panic!("{other:?}"),
        }
        for broken in [
            "name: [unclosed\n",
            "name: \"unterminated\n",
            "key: value\n  - misplaced: list\n",
            "name: a\nname: b\n",
            "---\nname: a\n---\nname: b\n",
        ] {
            assert_eq!(
                error_of(broken).message_key(),
                "publiccode.not_yaml",
                "{broken}"
            );
        }
    }

    #[test]
    fn yaml_that_is_not_a_mapping_is_refused_as_not_yaml() {
        for input in ["", "# only a comment\n", "just some text", "- a\n- b\n"] {
            assert!(
                matches!(
                    error_of(input),
                    PubliccodeError::NotYaml {
                        line: None,
                        column: None,
                        ..
                    }
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn fields_of_the_wrong_type_are_named() {
        let file = MINIMAL.replace("name: Mini", "name: Mini\ncategories: web");
        match error_of(&file) {
            PubliccodeError::WrongType {
                field,
                line,
                column,
                ..
            } => {
                assert_eq!(field.as_deref(), Some("categories"));
                assert_eq!(line, Some(3));
                assert_eq!(column, Some(13));
            }
            other => panic!("{other:?}"),
        }
        let file = MINIMAL.replace(
            "shortDescription: A tiny tool.",
            "shortDescription: A tiny tool.\n    features: one",
        );
        let error = error_of(&file);
        assert_eq!(error.message_key(), "publiccode.wrong_type");
        assert!(
            matches!(&error, PubliccodeError::WrongType { field: Some(f), .. } if f == "description.en.features"),
            "{error:?}"
        );
        let file = MINIMAL.replace("name: Mini", "name: [Mini]");
        assert!(matches!(
            error_of(&file),
            PubliccodeError::WrongType { field: Some(f), .. } if f == "name"
        ));
    }

    #[test]
    fn missing_required_fields_are_named() {
        let without = |line: &str| MINIMAL.replace(line, "");
        let cases = [
            (
                without("publiccodeYmlVersion: '0.2'\n"),
                "publiccodeYmlVersion",
            ),
            (without("name: Mini\n"), "name"),
            (without("url: https://example.org/mini.git\n"), "url"),
            (without("  license: EUPL-1.2\n"), "legal.license"),
            (without("legal:\n  license: EUPL-1.2\n"), "legal.license"),
            (
                without("description:\n  en:\n    shortDescription: A tiny tool.\n"),
                "description",
            ),
            (MINIMAL.replace("name: Mini", "name: '  '"), "name"),
            (MINIMAL.replace("name: Mini", "name: ~"), "name"),
            (MINIMAL.replace("name: Mini", "name:"), "name"),
            (
                MINIMAL.replace(
                    "description:\n  en:\n    shortDescription: A tiny tool.\n",
                    "description: {}\n",
                ),
                "description",
            ),
            (
                format!(
                    "{MINIMAL}maintenance:\n  type: internal\n  contacts:\n    - email: a@b.de\n"
                ),
                "maintenance.contacts[0].name",
            ),
        ];
        for (file, field) in cases {
            let error = error_of(&file);
            assert_eq!(
                error,
                PubliccodeError::MissingField {
                    field: field.to_owned()
                },
                "{file}"
            );
            assert_eq!(error.message_key(), "publiccode.missing_field");
        }
    }

    #[test]
    fn a_licence_that_is_not_osi_approved_is_refused_with_the_reason() {
        let file = MINIMAL.replace("EUPL-1.2", "CC-BY-4.0");
        let error = error_of(&file);
        assert_eq!(
            error,
            PubliccodeError::Licence(LicenceError::NotOsi {
                id: "CC-BY-4.0".into()
            })
        );
        assert_eq!(error.message_key(), "publiccode.licence");
        if let PubliccodeError::Licence(inner) = &error {
            assert_eq!(inner.message_key(), "licence.not_osi");
        }
        let file = MINIMAL.replace("EUPL-1.2", "GPL-3.0");
        assert!(matches!(
            error_of(&file),
            PubliccodeError::Licence(LicenceError::Deprecated { .. })
        ));
    }

    #[test]
    fn urls_must_be_http_or_https() {
        for bad in [
            "git@github.com:example/mini.git",
            "ftp://example.org/mini",
            "example.org/mini",
            "https://",
            "https:///path",
            "https://exa mple.org/",
            "https://user:secret@example.org/mini.git",
            "javascript:alert(1)",
        ] {
            let file = MINIMAL.replace("https://example.org/mini.git", &format!("'{bad}'"));
            let error = error_of(&file);
            assert_eq!(
                error,
                PubliccodeError::InvalidUrl {
                    field: "url",
                    value: bad.to_owned()
                }
            );
            assert_eq!(error.message_key(), "publiccode.invalid_url");
        }
        for good in [
            "http://example.org",
            "HTTPS://Example.org/mini.git",
            "https://example.org:8443/mini?x=1#top",
        ] {
            let file = MINIMAL.replace("https://example.org/mini.git", good);
            assert!(parse(&file).is_ok(), "{good}");
        }
        let file = format!("{MINIMAL}landingURL: www.example.org\n");
        assert_eq!(
            error_of(&file),
            PubliccodeError::InvalidUrl {
                field: "landingURL",
                value: "www.example.org".into()
            }
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_parsing() {
        let huge = format!("{MINIMAL}#{}\n", "x".repeat(MAX_BYTES));
        let error = error_of(&huge);
        assert_eq!(
            error,
            PubliccodeError::TooLarge {
                max: MAX_BYTES,
                actual: huge.len()
            }
        );
        assert_eq!(error.message_key(), "publiccode.too_large");
        // Exactly at the limit is fine.
        let padding = MAX_BYTES - MINIMAL.len() - 2;
        let at_limit = format!("{MINIMAL}#{}\n", "x".repeat(padding));
        assert_eq!(at_limit.len(), MAX_BYTES);
        assert!(parse(&at_limit).is_ok());
    }

    #[test]
    fn unsupported_versions_are_refused() {
        for version in ["'1.0'", "'2'", "'v0.2'", "'0.'", "'0.x'", "'latest'", "1"] {
            let file = MINIMAL.replace("'0.2'", version);
            let error = error_of(&file);
            assert!(
                matches!(error, PubliccodeError::UnsupportedVersion { .. }),
                "{version}: {error:?}"
            );
            assert_eq!(error.message_key(), "publiccode.unsupported_version");
        }
        let file = MINIMAL.replace("'0.2'", "'1.0'");
        assert_eq!(
            error_of(&file),
            PubliccodeError::UnsupportedVersion {
                version: "1.0".into()
            }
        );
    }

    #[test]
    fn maintenance_type_must_be_one_of_the_standard_values() {
        let file = format!("{MINIMAL}maintenance:\n  type: Community\n");
        assert_eq!(
            parse(&file).unwrap().maintenance_type.as_deref(),
            Some("community")
        );
        let file = format!("{MINIMAL}maintenance:\n  type: sometimes\n");
        let error = error_of(&file);
        assert_eq!(
            error,
            PubliccodeError::InvalidValue {
                field: "maintenance.type",
                value: "sometimes".into()
            }
        );
        assert_eq!(error.message_key(), "publiccode.invalid_value");
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let mut bomb = String::from("publiccodeYmlVersion: '0.4'\na: &a [x,x,x,x,x,x,x,x,x,x]\n");
        let mut previous = 'a';
        for name in 'b'..='k' {
            let refs = vec![format!("*{previous}"); 10].join(",");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
            previous = name;
        }
        let started = std::time::Instant::now();
        assert_eq!(error_of(&bomb).message_key(), "publiccode.not_yaml");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let deep = format!("name: {}x{}\n", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(error_of(&deep).message_key(), "publiccode.not_yaml");
    }

    fn project_with(languages: &[&str]) -> PubliccodeProject {
        let mut project = parse(MINIMAL).unwrap();
        project.description = languages
            .iter()
            .map(|language| {
                (
                    (*language).to_owned(),
                    Description {
                        short: Some(format!("in {language}")),
                        ..Description::default()
                    },
                )
            })
            .collect();
        project
    }

    fn short_for(project: &PubliccodeProject, lang: &str) -> Option<String> {
        project
            .description_for(lang)
            .and_then(|description| description.short.clone())
    }

    #[test]
    fn descriptions_fall_back_to_english_then_any_language() {
        let project = parse(FULL).unwrap();
        assert_eq!(
            project
                .description_for("de")
                .and_then(|d| d.short.as_deref()),
            Some("Sitzungen, Tagesordnungen und Beschlüsse des Stadtrats.")
        );
        assert_eq!(
            project
                .description_for("fr")
                .and_then(|d| d.short.as_deref()),
            Some("Meetings, agendas and resolutions of a city council.")
        );

        let all = project_with(&["de", "en", "it"]);
        assert_eq!(short_for(&all, "it").as_deref(), Some("in it"));
        assert_eq!(short_for(&all, "DE").as_deref(), Some("in de"));
        assert_eq!(short_for(&all, "de-AT").as_deref(), Some("in de"));
        assert_eq!(short_for(&all, "fr").as_deref(), Some("in en"));

        let regional = project_with(&["de-CH", "en-GB"]);
        assert_eq!(short_for(&regional, "de").as_deref(), Some("in de-CH"));
        assert_eq!(short_for(&regional, "fr").as_deref(), Some("in en-GB"));

        let no_english = project_with(&["it", "fr"]);
        assert_eq!(short_for(&no_english, "de").as_deref(), Some("in fr"));

        assert_eq!(project_with(&[]).description_for("de"), None);
    }

    #[test]
    fn a_language_without_fields_still_counts() {
        let file = MINIMAL.replace("    shortDescription: A tiny tool.\n", "");
        let project = parse(&file).unwrap();
        assert_eq!(project.description["en"], Description::default());
    }

    #[test]
    fn errors_display_where_the_problem_is() {
        let tabbed = MINIMAL.replace("  license", "\tlicense");
        let text = error_of(&tabbed).to_string();
        assert!(
            text.starts_with("not a valid YAML file at line 5, column"),
            "{text}"
        );
        let error = PubliccodeError::Licence(LicenceError::NotOsi { id: "JSON".into() });
        assert_eq!(
            error.to_string(),
            "legal.license: JSON is not an OSI-approved licence"
        );
    }
}
