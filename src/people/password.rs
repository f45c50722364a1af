//! Passwords: the policy (length and a list of common passwords, nothing else) and argon2id
//! hashing with OWASP's parameters, run off the async threads.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

pub const MIN_LENGTH: usize = 12;
/// Longer inputs are refused before hashing: argon2 would accept them, but nobody types them.
pub const MAX_LENGTH: usize = 256;

const COMMON: &str = include_str!("common_passwords.txt");

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("shorter than {MIN_LENGTH} characters")]
    TooShort,
    #[error("longer than {MAX_LENGTH} characters")]
    TooLong,
    #[error("one of the most common passwords")]
    Common,
    #[error("the same as the email address or name")]
    Personal,
}

impl PasswordProblem {
    pub fn message_key(self) -> &'static str {
        match self {
            PasswordProblem::TooShort => "password.too_short",
            PasswordProblem::TooLong => "password.too_long",
            PasswordProblem::Common => "password.common",
            PasswordProblem::Personal => "password.personal",
        }
    }
}

/// Checks a new password: at least 12 characters, not a common one, not the person's own
/// email or name. No composition rules (NIST SP 800-63B).
pub fn check(password: &str, email: &str, name: &str) -> Result<(), PasswordProblem> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordProblem::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordProblem::TooLong);
    }
    let lowered = password.to_lowercase();
    if COMMON
        .lines()
        .map(str::trim)
        .any(|common| !common.is_empty() && !common.starts_with('#') && common == lowered)
    {
        return Err(PasswordProblem::Common);
    }
    let email = email.trim().to_lowercase();
    let local_part = email.split('@').next().unwrap_or("");
    let name = name.trim().to_lowercase();
    if lowered == email
        || (!local_part.is_empty() && lowered == local_part)
        || (!name.is_empty() && lowered == name)
    {
        return Err(PasswordProblem::Personal);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Hashes with argon2id (m = 19 MiB, t = 2, p = 1: OWASP's recommendation) on a blocking thread.
pub async fn hash(password: &str) -> Result<String, HashError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
    })
    .await?
}

/// True when `password` matches `hash`; on a blocking thread.
pub async fn verify(password: &str, hash: &str) -> Result<bool, HashError> {
    let password = password.to_owned();
    let hash = hash.to_owned();
    Ok(tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await?)
}

/// A hash of nothing anybody knows: verified against when the email is unknown, so that an
/// unknown address takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"no account has this password, it only costs time")
            .map(|h| h.to_string())
            // Hashing a constant cannot fail short of a broken RNG; a plain string still
            // makes verification fail, only faster.
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_characters_without_composition_rules() {
        assert_eq!(check("kurz", "a@b.de", "A"), Err(PasswordProblem::TooShort));
        assert_eq!(
            check("elf zeichen", "a@b.de", "A"),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(check("pferd batterie heftklammer", "a@b.de", "A"), Ok(()));
        assert_eq!(check("alllowercaseletters", "a@b.de", "A"), Ok(()));
        // Characters, not bytes: 12 umlauts are 12 characters.
        assert_eq!(check("ääääääääääää", "a@b.de", "A"), Ok(()));
        assert_eq!(
            check(&"x".repeat(257), "a@b.de", "A"),
            Err(PasswordProblem::TooLong)
        );
    }

    #[test]
    fn common_and_personal_passwords_are_refused() {
        assert_eq!(
            check("123456789012", "a@b.de", "A"),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check("PasswordPassword", "a@b.de", "A"),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check("kassenwart@verein.de", "Kassenwart@verein.de", "K"),
            Err(PasswordProblem::Personal)
        );
        assert_eq!(
            check("Erika Mustermann", "e@m.de", "Erika Mustermann"),
            Err(PasswordProblem::Personal)
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let a = hash("correct horse battery").await.unwrap_or_default();
        let b = hash("correct horse battery").await.unwrap_or_default();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert!(a.contains("m=19456,t=2,p=1"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse battery", &a).await.unwrap_or(false));
        assert!(!verify("correct horse battery!", &a).await.unwrap_or(true));
        assert!(!verify("anything", dummy_hash()).await.unwrap_or(true));
    }
}
