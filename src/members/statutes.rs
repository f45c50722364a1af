//! The cooperative's statutes: a Markdown file named in the configuration (or the demo text),
//! rendered safely, with a version (its SHA-256) that an application records as accepted.

use sha2::{Digest, Sha256};

const DEMO: &str = include_str!("demo_statutes.md");

#[derive(Clone, Debug, serde::Serialize)]
pub struct Statutes {
    pub html: String,
    /// SHA-256 of the text: what an applicant accepted, even if the file changes later.
    pub version: String,
}

pub fn load(path: Option<&std::path::Path>) -> std::io::Result<Statutes> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)?,
        None => DEMO.to_owned(),
    };
    Ok(Statutes {
        html: crate::markdown::to_html(&text),
        version: hex::encode(Sha256::digest(text.as_bytes())),
    })
}
