//! Paying maintainers what was released to them: SEPA credit transfer files (pain.001) and
//! Stripe Connect transfers.

pub mod sepa;
