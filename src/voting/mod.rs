//! The voting rules, pure and independent of web and database: equal shares, greedy, Schulze,
//! and the Pabulib file format to test them on real elections.
//!
//! # Rules
//!
//! - [`equal_shares()`]: the Method of Equal Shares with cost satisfaction, completed as
//!   pabutools 1.2.3 does by default here: shares raised by an increment until the outcome is
//!   exhaustive ("add1e"), then a greedy fill. Also plain, and the cities' add1
//!   ([`BudgetIncrease::WhileWithinBudget`]). Explains every decision, with each ballot
//!   group's payments.
//! - [`greedy()`]: projects by votes (satisfaction per cost), each taken if it fits.
//! - [`schulze()`]: a ranking for the non-binding priority polls.
//! - [`round`]: what voting rounds add: ballot types and their checks, the rules' settings
//!   for rounds, the fingerprint, the explanation of a result, and rounds as Pabulib files.
//!
//! Everything is exact: amounts are whole units (cents in the web app) and fractions are
//! [`Exact`] rationals, never floats, so ties and near-ties come out as in the reference.
//!
//! # Ties
//!
//! By default ([`TieBreak::ProjectId`]) a tie between projects, in equal shares (equal rates)
//! and in greedy (equal votes per cost) alike, goes to the project whose id comes first when
//! the ids are compared as strings, byte by byte: `"10"` before `"2"`, `"L010"` before
//! `"L9"`. This is pabutools' `lexico_tie_breaking`, so the outcomes match the reference.
//! [`TieBreak::CostThenVotes`] is equalshares.net's rule instead: lowest cost, then most
//! votes, then a fixed order drawn once at random by the caller. Schulze breaks ties by
//! candidate index and reports them.
//!
//! # Input
//!
//! A [`Profile`]: budget, projects with costs, and ballots (approval sets, points or
//! rankings) with multiplicities. Build it directly, or read a `.pb` file with
//! [`pabulib::parse`] and convert it with `Profile::try_from(&election)`.

pub mod equal_shares;
pub mod exact;
pub mod greedy;
pub mod pabulib;
pub mod profile;
pub mod round;
pub mod schulze;
mod tally;

pub use equal_shares::{
    BallotGroup, BudgetIncrease, EqualSharesOptions, EqualSharesOutcome, Payment, ProjectDecision,
    Rejection, equal_shares,
};
pub use exact::Exact;
pub use greedy::{GreedyDecision, GreedyOptions, GreedyOutcome, GreedyProject, greedy};
pub use pabulib::{ConversionError, Election, ParseError, VoteType};
pub use profile::{Ballot, Choice, Profile, ProfileError, ProjectInput, Satisfaction, TieBreak};
pub use schulze::{RankedBallot, SchulzeError, SchulzeResult, schulze};
pub use tally::{Rule, TallyError, TallyReport, UnknownRule, tally, tally_file};
