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
    /// Every hashing slot stayed taken for the whole wait: the request may come back later.
    #[error("too many passwords are being checked at once; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
}

/// Hashing and checking passwords for requests: at most `concurrent` argon2id computations
/// (19 MiB and one core each) at once, whatever the number of requests; the others wait for
/// their turn up to `wait`, then get [`HashError::Busy`]. Counts the hashes it computed, so
/// tests can see which paths hash (registration does the same work for known and unknown
/// addresses).
#[derive(Debug)]
pub struct Hasher {
    slots: tokio::sync::Semaphore,
    wait: std::time::Duration,
    hashed: std::sync::atomic::AtomicU64,
    verified: std::sync::atomic::AtomicU64,
}

impl Hasher {
    pub fn new(concurrent: usize, wait: std::time::Duration) -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(concurrent.max(1)),
            wait,
            hashed: std::sync::atomic::AtomicU64::new(0),
            verified: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn from_limits(limits: &crate::config::Limits) -> Self {
        Self::new(
            limits.concurrent_password_hashes,
            std::time::Duration::from_secs(limits.password_hash_wait_seconds),
        )
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, HashError> {
        let busy = HashError::Busy {
            retry_after_secs: self.wait.as_secs().max(1),
        };
        match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out, or the semaphore was closed (never done): busy either way.
            Ok(Err(_)) | Err(_) => Err(busy),
        }
    }

    /// [`hash`], in turn.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let _slot = self.slot().await?;
        self.hashed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hash(password).await
    }

    /// [`verify`], in turn.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, HashError> {
        let _slot = self.slot().await?;
        self.verified
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        verify(password, hash).await
    }

    /// How many hashes this hasher has computed.
    pub fn hashes_computed(&self) -> u64 {
        self.hashed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many passwords this hasher has checked against a hash.
    pub fn passwords_verified(&self) -> u64 {
        self.verified.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Hashes with argon2id (m = 19 MiB, t = 2, p = 1: OWASP's recommendation) on a blocking thread.
/// Unbounded: requests go through a [`Hasher`]; this is for the command line and tests.
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
    #[allow(clippy::unwrap_used)]
    async fn a_hasher_hashes_one_at_a_time_and_refuses_after_its_wait() {
        let hasher = Hasher::new(1, std::time::Duration::from_millis(10));
        let slot = hasher.slot().await.unwrap();
        let busy = hasher.hash("correct horse battery").await;
        assert!(
            matches!(
                busy,
                Err(HashError::Busy {
                    retry_after_secs: 1
                })
            ),
            "{busy:?}"
        );
        assert_eq!(hasher.hashes_computed(), 0);
        drop(slot);
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
        assert_eq!(
            (hasher.hashes_computed(), hasher.passwords_verified()),
            (1, 1)
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
