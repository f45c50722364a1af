//! The pure side of voting rounds and priority polls: ballot types and what makes a ballot
//! valid, the rules' input built from a round's candidates and ballots, running the round's
//! rule, the fingerprint of its inputs, the explanation members read on the results page, and
//! the Pabulib form of a round. No database and no web here (that is `crate::rounds`).
//!
//! # How the rules use the ballots
//!
//! - **Approval** ballots: equal shares with cost satisfaction (each supporter values a
//!   project at its cost), the reference rule; greedy by number of approvals.
//! - **Points** ballots: the points are the utilities. Equal shares charges each supporter in
//!   proportion to the points it gave (pabutools' `Additive_Cardinal_Sat`, as `allmende tally`
//!   does for cumulative files); greedy takes projects by points per euro (pabutools'
//!   `greedy_utilitarian_welfare` with the same satisfaction).
//! - **Ranking** ballots: Borda utilities (a ballot ranking `k` projects gives the first `k − 1`
//!   points, the next `k − 2`, …, the last 0, so the last listed project counts as not
//!   supported), otherwise as points.
//!
//! Equal shares raises every member's share by one euro ([`VOTER_BUDGET_INCREMENT_CENTS`]) per
//! step until the outcome is exhaustive, then fills what is left greedily by cost: pabutools'
//! default completion with `voter_budget_increment = 1` in currency units. The costs are in
//! cents here, so the increment is 100; an increment of one cent would give the same winners
//! in far more runs.
//!
//! Ties go to the candidate whose id comes first as a string (pabutools' lexicographic rule).
//! A candidate's id is its proposal's id, a UUIDv7 that sorts by creation time: in a tie the
//! older proposal wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::equal_shares::{
    BudgetIncrease, EqualSharesOptions, EqualSharesOutcome, ProjectDecision, Rejection,
    equal_shares,
};
use super::exact::Exact;
use super::greedy::{GreedyDecision, GreedyOptions, GreedyOutcome, greedy};
use super::pabulib::{Election, PbProject, PbVote, VoteType};
use super::profile::{Ballot, Choice, Profile, ProfileError, ProjectInput, Satisfaction, TieBreak};

/// By how much equal shares raises each member's share per step: one euro, in cents.
pub const VOTER_BUDGET_INCREMENT_CENTS: u64 = 100;

/// What a ballot looks like in a round or a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum BallotType {
    /// Tick any number of candidates, at most `max` when set.
    Approval { max: Option<u64> },
    /// Distribute exactly `total` points.
    Points { total: u64 },
    /// Order some or all candidates.
    Ranking,
}

impl BallotType {
    /// The database and form name.
    pub fn name(self) -> &'static str {
        match self {
            BallotType::Approval { .. } => "approval",
            BallotType::Points { .. } => "points",
            BallotType::Ranking => "ranking",
        }
    }

    /// The limit column: the maximum approvals or the points' total.
    pub fn limit(self) -> Option<u64> {
        match self {
            BallotType::Approval { max } => max,
            BallotType::Points { total } => Some(total),
            BallotType::Ranking => None,
        }
    }

    /// From the database: name and limit.
    pub fn from_parts(name: &str, limit: Option<u64>) -> Option<BallotType> {
        Some(match name {
            "approval" => BallotType::Approval { max: limit },
            "points" => BallotType::Points {
                total: limit.filter(|&t| t > 0)?,
            },
            "ranking" => BallotType::Ranking,
            _ => return None,
        })
    }
}

/// The rule that decides a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundRule {
    /// The Method of Equal Shares, completed as described in the module docs.
    #[default]
    EqualShares,
    /// Greedy by votes (points per euro for points and rankings).
    Greedy,
}

impl RoundRule {
    pub fn name(self) -> &'static str {
        match self {
            RoundRule::EqualShares => "equal_shares",
            RoundRule::Greedy => "greedy",
        }
    }

    pub fn parse(text: &str) -> Option<RoundRule> {
        match text {
            "equal_shares" => Some(RoundRule::EqualShares),
            "greedy" => Some(RoundRule::Greedy),
            _ => None,
        }
    }
}

/// Why a ballot is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BallotProblem {
    #[error("the ballot chooses nothing")]
    Empty,
    #[error("the ballot names a candidate that is not in the round")]
    UnknownCandidate,
    #[error("at most {max} approvals")]
    TooManyApprovals { max: u64 },
    #[error("the points must add up to {total}, not {given}")]
    PointsTotal { total: u64, given: u64 },
    #[error("a candidate or a rank appears twice")]
    Repeated,
    #[error("the ballot does not fit the round's ballot type")]
    WrongType,
}

/// Checks a ballot against the ballot type and the number of candidates, and returns it in a
/// normal form: approvals sorted, points without zeros and sorted, rankings as given.
pub fn check_ballot(
    kind: BallotType,
    candidates: usize,
    choice: Choice,
) -> Result<Choice, BallotProblem> {
    let listed: Vec<usize> = match &choice {
        Choice::Approval(v) | Choice::Ranking(v) => v.clone(),
        Choice::Points(v) => v.iter().filter(|(_, p)| *p > 0).map(|(c, _)| *c).collect(),
    };
    if listed.is_empty() {
        return Err(BallotProblem::Empty);
    }
    if listed.iter().any(|&c| c >= candidates) {
        return Err(BallotProblem::UnknownCandidate);
    }
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != listed.len() {
        return Err(BallotProblem::Repeated);
    }
    match (kind, choice) {
        (BallotType::Approval { max }, Choice::Approval(_)) => {
            if let Some(max) = max
                && sorted.len() as u64 > max
            {
                return Err(BallotProblem::TooManyApprovals { max });
            }
            Ok(Choice::Approval(sorted))
        }
        (BallotType::Points { total }, Choice::Points(points)) => {
            let mut points: Vec<(usize, u64)> = points.into_iter().filter(|p| p.1 > 0).collect();
            let given = points
                .iter()
                .fold(0u64, |sum, (_, p)| sum.saturating_add(*p));
            if given != total {
                return Err(BallotProblem::PointsTotal { total, given });
            }
            points.sort_unstable();
            Ok(Choice::Points(points))
        }
        (BallotType::Ranking, Choice::Ranking(order)) => Ok(Choice::Ranking(order)),
        _ => Err(BallotProblem::WrongType),
    }
}

/// A candidate as the rules see it: its id (ties: lowest id first) and its frozen cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: String,
    pub cost: u64,
}

/// The rules' input: one ballot per member organisation, each an equal voter.
pub fn profile(budget_cents: u64, candidates: &[Candidate], ballots: &[Choice]) -> Profile {
    Profile {
        budget: Exact::from(budget_cents),
        projects: candidates
            .iter()
            .map(|c| ProjectInput {
                id: c.id.clone(),
                cost: c.cost,
            })
            .collect(),
        ballots: ballots
            .iter()
            .map(|choice| Ballot {
                choice: choice.clone(),
                multiplicity: 1,
            })
            .collect(),
    }
}

/// The settings of equal shares for rounds (see the module docs).
pub fn equal_shares_options() -> EqualSharesOptions {
    EqualSharesOptions {
        satisfaction: Satisfaction::Utility,
        increase: BudgetIncrease::UntilExhaustive,
        voter_budget_increment: Exact::from(VOTER_BUDGET_INCREMENT_CENTS),
        complete_with_greedy: Some(Satisfaction::Cost),
        tie_break: TieBreak::ProjectId,
    }
}

/// The settings of greedy for rounds: by votes for approval, by utility per euro otherwise.
pub fn greedy_options() -> GreedyOptions {
    GreedyOptions {
        satisfaction: Satisfaction::Utility,
        tie_break: TieBreak::ProjectId,
    }
}

/// A round's outcome, as stored with the round (externally tagged: the outcomes hold `u128`
/// sums, which serde cannot buffer for an internal tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    EqualShares(EqualSharesOutcome),
    Greedy(GreedyOutcome),
}

impl Outcome {
    /// The selected candidates, in selection order.
    pub fn selected(&self) -> &[usize] {
        match self {
            Outcome::EqualShares(o) => &o.selected,
            Outcome::Greedy(o) => &o.selected,
        }
    }
}

/// Runs the round's rule once.
pub fn run(rule: RoundRule, profile: &Profile) -> Result<Outcome, ProfileError> {
    Ok(match rule {
        RoundRule::EqualShares => {
            Outcome::EqualShares(equal_shares(profile, &equal_shares_options())?)
        }
        RoundRule::Greedy => Outcome::Greedy(greedy(profile, &greedy_options())?),
    })
}

/// SHA-256 of everything the outcome depends on: the rule, its settings and the profile.
pub fn fingerprint(rule: RoundRule, profile: &Profile) -> String {
    let settings = match rule {
        RoundRule::EqualShares => serde_json::to_value(equal_shares_options()),
        RoundRule::Greedy => serde_json::to_value(greedy_options()),
    }
    .unwrap_or_default();
    let input =
        serde_json::json!({ "rule": rule.name(), "settings": settings, "profile": profile });
    hex::encode(Sha256::digest(input.to_string().as_bytes()))
}

/// How many members paid how much for a winner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentLine {
    /// Number of members who paid this amount.
    pub members: u64,
    /// What each of them paid, in cents (rounded to the cent for display).
    pub each: i64,
}

/// Why a candidate won or lost, in terms a member can follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Explanation {
    /// Equal shares: its supporters paid for it from their shares, in step `step`.
    Shared {
        step: usize,
        payers: u64,
        payments: Vec<PaymentLine>,
    },
    /// It costs nothing and somebody wanted it.
    Free,
    /// Equal shares left money over; the greedy fill took it, by votes.
    Completion,
    /// Greedy: taken as the `place`-th (from 1), with `budget_left` cents left afterwards.
    Taken { place: usize, budget_left: i64 },
    /// It costs more than the whole budget.
    CostsMoreThanBudget,
    /// Nobody voted for it.
    NoSupporters,
    /// Its supporters' remaining shares together were less than its cost.
    SupportersRanOut { supporters_left: i64 },
    /// It did not fit in what was left of the budget when its turn came.
    DidNotFit {
        budget_left: i64,
        supporters_left: Option<i64>,
    },
}

/// One candidate on the results page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CandidateResult {
    /// Members who support it (approved it, gave it points, ranked it above their last).
    pub supporters: u64,
    /// Approvals, points, or Borda points.
    pub score: u64,
    pub selected: bool,
    pub explanation: Explanation,
}

/// The round as a whole on the results page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub voters: u64,
    /// Each member's share of the budget in the deciding run (equal shares), in cents.
    pub voter_share: Option<i64>,
    /// How many times the shares were raised by one euro.
    pub increments: Option<u64>,
    pub total_cost: i64,
}

fn cents(value: &Exact) -> i64 {
    value
        .round_u64()
        .and_then(|c| i64::try_from(c).ok())
        .unwrap_or(if value.is_negative() { 0 } else { i64::MAX })
}

/// Supporters and score of every candidate, from the ballots.
pub fn support(profile: &Profile) -> Vec<(u64, u64)> {
    let mut out = vec![(0u64, 0u64); profile.projects.len()];
    for ballot in &profile.ballots {
        let m = ballot.multiplicity;
        match &ballot.choice {
            Choice::Approval(v) => {
                for &p in v {
                    if let Some(s) = out.get_mut(p) {
                        s.0 += m;
                        s.1 += m;
                    }
                }
            }
            Choice::Points(v) => {
                for &(p, points) in v {
                    if let Some(s) = out.get_mut(p)
                        && points > 0
                    {
                        s.0 += m;
                        s.1 = s.1.saturating_add(points.saturating_mul(m));
                    }
                }
            }
            Choice::Ranking(v) => {
                let len = v.len() as u64;
                for (position, &p) in v.iter().enumerate() {
                    let borda = len - position as u64 - 1;
                    if let Some(s) = out.get_mut(p)
                        && borda > 0
                    {
                        s.0 += m;
                        s.1 = s.1.saturating_add(borda.saturating_mul(m));
                    }
                }
            }
        }
    }
    out
}

/// Every candidate's result with its explanation, and the round's summary.
pub fn explain(profile: &Profile, outcome: &Outcome) -> (Vec<CandidateResult>, Summary) {
    let support = support(profile);
    let selected: Vec<bool> = (0..profile.projects.len())
        .map(|p| outcome.selected().contains(&p))
        .collect();
    let results = match outcome {
        Outcome::EqualShares(o) => o
            .projects
            .iter()
            .enumerate()
            .map(|(p, decision)| {
                let explanation = match decision {
                    ProjectDecision::EqualShares { round: 0, .. } => Explanation::Free,
                    ProjectDecision::EqualShares {
                        round, payments, ..
                    } => {
                        let mut by_amount: BTreeMap<i64, u64> = BTreeMap::new();
                        for pay in payments {
                            let voters = o.groups.get(pay.group).map_or(0, |g| g.voters);
                            *by_amount
                                .entry(i64::try_from(pay.per_voter_rounded).unwrap_or(i64::MAX))
                                .or_default() += voters;
                        }
                        Explanation::Shared {
                            step: *round,
                            payers: by_amount.values().sum(),
                            payments: by_amount
                                .into_iter()
                                .rev()
                                .map(|(each, members)| PaymentLine { members, each })
                                .collect(),
                        }
                    }
                    ProjectDecision::Completion { .. } => Explanation::Completion,
                    ProjectDecision::NotSelected(rejection) => match rejection {
                        Rejection::CostsMoreThanBudget => Explanation::CostsMoreThanBudget,
                        Rejection::NoSupporters => Explanation::NoSupporters,
                        Rejection::SupportersRanOut {
                            supporters_money_left,
                        } => Explanation::SupportersRanOut {
                            supporters_left: cents(supporters_money_left),
                        },
                        Rejection::DidNotFit {
                            budget_left,
                            supporters_money_left,
                        } => Explanation::DidNotFit {
                            budget_left: cents(budget_left),
                            supporters_left: Some(cents(supporters_money_left)),
                        },
                    },
                };
                (p, explanation)
            })
            .collect::<Vec<_>>(),
        Outcome::Greedy(o) => o
            .projects
            .iter()
            .enumerate()
            .map(|(p, project)| {
                let explanation = match &project.decision {
                    GreedyDecision::Selected {
                        position,
                        budget_left,
                    } => Explanation::Taken {
                        place: position + 1,
                        budget_left: cents(budget_left),
                    },
                    GreedyDecision::CostsMoreThanBudget => Explanation::CostsMoreThanBudget,
                    GreedyDecision::DidNotFit { .. } if support[p].0 == 0 => {
                        Explanation::NoSupporters
                    }
                    GreedyDecision::DidNotFit { budget_left } => Explanation::DidNotFit {
                        budget_left: cents(budget_left),
                        supporters_left: None,
                    },
                };
                (p, explanation)
            })
            .collect(),
    };
    let candidates = results
        .into_iter()
        .map(|(p, explanation)| CandidateResult {
            supporters: support[p].0,
            score: support[p].1,
            selected: selected[p],
            explanation,
        })
        .collect();
    let summary = match outcome {
        Outcome::EqualShares(o) => Summary {
            voters: o.voters,
            voter_share: Some(cents(&o.voter_share)),
            increments: Some(o.increments),
            total_cost: i64::try_from(o.total_cost).unwrap_or(i64::MAX),
        },
        Outcome::Greedy(o) => Summary {
            voters: profile.voters(),
            voter_share: None,
            increments: None,
            total_cost: i64::try_from(o.total_cost).unwrap_or(i64::MAX),
        },
    };
    (candidates, summary)
}

/// The Pabulib vote type of a ballot type.
pub fn vote_type(kind: BallotType) -> VoteType {
    match kind {
        BallotType::Approval { .. } => VoteType::Approval,
        BallotType::Points { .. } => VoteType::Cumulative,
        BallotType::Ranking => VoteType::Ordinal,
    }
}

/// A candidate in a `.pb` file: id, cost and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbCandidate {
    pub id: String,
    pub cost: u64,
    pub name: String,
}

/// A round as a Pabulib election. Amounts are in cents, which the META key `unit` says
/// (`cent`), so that importing the file again reads them as cents. Voters are numbered, not
/// named: ballots are secret.
pub fn to_election(
    meta: Vec<(String, String)>,
    budget_cents: u64,
    kind: BallotType,
    candidates: &[PbCandidate],
    ballots: &[Choice],
) -> Election {
    let mut meta = meta;
    meta.push(("unit".into(), "cent".into()));
    match kind {
        BallotType::Approval { max: Some(max) } => {
            meta.push(("max_length".into(), max.to_string()))
        }
        BallotType::Points { total } => meta.push(("max_sum_points".into(), total.to_string())),
        _ => {}
    }
    let id = |p: usize| candidates.get(p).map(|c| c.id.clone()).unwrap_or_default();
    let votes = ballots
        .iter()
        .enumerate()
        .map(|(i, choice)| {
            let (vote, points) = match choice {
                Choice::Approval(v) | Choice::Ranking(v) => {
                    (v.iter().map(|&p| id(p)).collect(), None)
                }
                Choice::Points(v) => (
                    v.iter().map(|&(p, _)| id(p)).collect(),
                    Some(v.iter().map(|&(_, pts)| Exact::from(pts)).collect()),
                ),
            };
            PbVote {
                voter_id: (i + 1).to_string(),
                vote,
                points,
                fields: Vec::new(),
            }
        })
        .collect();
    Election {
        meta,
        budget: Exact::from(budget_cents),
        vote_type: vote_type(kind),
        project_columns: vec!["name".into()],
        projects: candidates
            .iter()
            .map(|c| PbProject {
                id: c.id.clone(),
                cost: c.cost,
                fields: vec![Some(c.name.clone())],
            })
            .collect(),
        vote_columns: Vec::new(),
        votes,
    }
}

/// Why a `.pb` file cannot become a round.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportProblem {
    #[error("{0}")]
    Conversion(String),
    #[error("the file has no projects")]
    NoProjects,
    #[error("amounts too large for cents")]
    TooLarge,
}

/// What an imported file holds, in the round's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub title: String,
    pub budget_cents: u64,
    pub kind: BallotType,
    pub candidates: Vec<PbCandidate>,
    pub ballots: Vec<Choice>,
}

/// Reads a parsed `.pb` file as a round. Amounts are in currency units unless META `unit` is
/// `cent` (as this platform exports); they become cents. Fractional budgets are rounded down
/// to the cent. Ballots with a multiplicity are repeated; empty ballots are dropped.
pub fn from_election(election: &Election) -> Result<Imported, ImportProblem> {
    let profile =
        Profile::try_from(election).map_err(|e| ImportProblem::Conversion(e.to_string()))?;
    if profile.projects.is_empty() {
        return Err(ImportProblem::NoProjects);
    }
    let scale: u64 = if election.meta("unit") == Some("cent") {
        1
    } else {
        100
    };
    let budget = election.budget.mul_int(scale).floor();
    let budget_cents = u64::try_from(budget).map_err(|_| ImportProblem::TooLarge)?;
    let name_column = election.project_columns.iter().position(|c| c == "name");
    let candidates = election
        .projects
        .iter()
        .map(|p| {
            Ok(PbCandidate {
                id: p.id.clone(),
                cost: p.cost.checked_mul(scale).ok_or(ImportProblem::TooLarge)?,
                name: name_column
                    .and_then(|i| p.fields.get(i).cloned().flatten())
                    .unwrap_or_else(|| p.id.clone()),
            })
        })
        .collect::<Result<Vec<_>, ImportProblem>>()?;
    let mut ballots = Vec::new();
    let mut max_points = 0u64;
    for ballot in &profile.ballots {
        let empty = match &ballot.choice {
            Choice::Approval(v) | Choice::Ranking(v) => v.is_empty(),
            Choice::Points(v) => v.iter().all(|(_, p)| *p == 0),
        };
        if empty {
            continue;
        }
        if let Choice::Points(v) = &ballot.choice {
            max_points = max_points.max(v.iter().map(|(_, p)| *p).sum());
        }
        for _ in 0..ballot.multiplicity {
            ballots.push(ballot.choice.clone());
        }
    }
    let limit = |key: &str| {
        election
            .meta(key)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let kind = match election.vote_type {
        VoteType::Approval => BallotType::Approval {
            max: limit("max_length"),
        },
        VoteType::Choose1 => BallotType::Approval { max: Some(1) },
        VoteType::Cumulative | VoteType::Scoring => BallotType::Points {
            total: limit("max_sum_points").unwrap_or(max_points).max(1),
        },
        VoteType::Ordinal => BallotType::Ranking,
    };
    let title = election
        .meta("description")
        .or(election.meta("unit"))
        .filter(|t| !t.trim().is_empty() && *t != "cent")
        .map(str::to_owned)
        .unwrap_or_else(|| "Pabulib".to_owned());
    Ok(Imported {
        title,
        budget_cents,
        kind,
        candidates,
        ballots,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::voting::pabulib;

    fn candidates(costs: &[u64]) -> Vec<Candidate> {
        costs
            .iter()
            .enumerate()
            .map(|(i, &cost)| Candidate {
                id: format!("c{i}"),
                cost,
            })
            .collect()
    }

    #[test]
    fn ballots_are_checked_and_normalised() {
        let approval = BallotType::Approval { max: Some(2) };
        assert_eq!(
            check_ballot(approval, 3, Choice::Approval(vec![2, 0])),
            Ok(Choice::Approval(vec![0, 2]))
        );
        assert_eq!(
            check_ballot(approval, 3, Choice::Approval(vec![0, 1, 2])),
            Err(BallotProblem::TooManyApprovals { max: 2 })
        );
        assert_eq!(
            check_ballot(approval, 3, Choice::Approval(vec![3])),
            Err(BallotProblem::UnknownCandidate)
        );
        assert_eq!(
            check_ballot(approval, 3, Choice::Approval(vec![])),
            Err(BallotProblem::Empty)
        );
        let points = BallotType::Points { total: 10 };
        assert_eq!(
            check_ballot(points, 3, Choice::Points(vec![(2, 7), (0, 3), (1, 0)])),
            Ok(Choice::Points(vec![(0, 3), (2, 7)]))
        );
        assert_eq!(
            check_ballot(points, 3, Choice::Points(vec![(2, 7)])),
            Err(BallotProblem::PointsTotal {
                total: 10,
                given: 7
            })
        );
        assert_eq!(
            check_ballot(BallotType::Ranking, 3, Choice::Ranking(vec![1, 1])),
            Err(BallotProblem::Repeated)
        );
        assert_eq!(
            check_ballot(BallotType::Ranking, 3, Choice::Approval(vec![1])),
            Err(BallotProblem::WrongType)
        );
    }

    /// Three members like a and b, one likes c; budget 400 €, each costs 200 €. Greedy gives
    /// the majority everything; equal shares gives the minority its quarter... which does not
    /// pay for c alone (100 € < 200 €), so a and b win, and the explanation says c's
    /// supporter ran out.
    #[test]
    fn equal_shares_explains_who_paid_what() {
        let c = candidates(&[20_000, 20_000, 20_000]);
        let ballots = vec![
            Choice::Approval(vec![0, 1]),
            Choice::Approval(vec![0, 1]),
            Choice::Approval(vec![0, 1]),
            Choice::Approval(vec![2]),
        ];
        let p = profile(40_000, &c, &ballots);
        let outcome = run(RoundRule::EqualShares, &p).unwrap();
        assert_eq!(outcome.selected(), &[0, 1]);
        let (results, summary) = explain(&p, &outcome);
        assert_eq!(summary.voters, 4);
        assert_eq!(results[0].supporters, 3);
        match &results[0].explanation {
            Explanation::Shared {
                payers, payments, ..
            } => {
                assert_eq!(*payers, 3);
                let total: i64 = payments.iter().map(|l| l.each * l.members as i64).sum();
                assert!((total - 20_000).abs() <= 3, "{payments:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            results[2].explanation,
            Explanation::SupportersRanOut { .. } | Explanation::DidNotFit { .. }
        ));
        assert!(!results[2].selected);
    }

    #[test]
    fn equal_shares_and_greedy_differ_for_a_minority() {
        // 6 like a and b (300 € each), 4 like c (300 €); budget 600 €.
        let c = candidates(&[30_000, 30_000, 30_000]);
        let mut ballots = vec![Choice::Approval(vec![0, 1]); 6];
        ballots.extend(vec![Choice::Approval(vec![2]); 4]);
        let p = profile(60_000, &c, &ballots);
        let greedy = run(RoundRule::Greedy, &p).unwrap();
        assert_eq!(greedy.selected(), &[0, 1]);
        let mes = run(RoundRule::EqualShares, &p).unwrap();
        let mut chosen = mes.selected().to_vec();
        chosen.sort();
        assert_eq!(chosen, vec![0, 2], "the minority gets its share");
        let (results, _) = explain(&p, &greedy);
        assert_eq!(
            results[2].explanation,
            Explanation::DidNotFit {
                budget_left: 0,
                supporters_left: None
            }
        );
    }

    #[test]
    fn outcomes_survive_storage() {
        let c = candidates(&[100, 200]);
        let p = profile(300, &c, &[Choice::Approval(vec![0, 1])]);
        for rule in [RoundRule::EqualShares, RoundRule::Greedy] {
            let outcome = run(rule, &p).unwrap();
            let stored = serde_json::to_string(&outcome).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&stored).unwrap(), outcome);
        }
    }

    #[test]
    fn fingerprints_change_with_any_input() {
        let c = candidates(&[100, 200]);
        let a = profile(300, &c, &[Choice::Approval(vec![0])]);
        let b = profile(300, &c, &[Choice::Approval(vec![1])]);
        assert_eq!(
            fingerprint(RoundRule::EqualShares, &a),
            fingerprint(RoundRule::EqualShares, &a)
        );
        assert_ne!(
            fingerprint(RoundRule::EqualShares, &a),
            fingerprint(RoundRule::EqualShares, &b)
        );
        assert_ne!(
            fingerprint(RoundRule::EqualShares, &a),
            fingerprint(RoundRule::Greedy, &a)
        );
    }

    #[test]
    fn a_round_survives_export_and_import() {
        let candidates = vec![
            PbCandidate {
                id: "a".into(),
                cost: 12_345,
                name: "Export; CSV".into(),
            },
            PbCandidate {
                id: "b".into(),
                cost: 500,
                name: "B".into(),
            },
        ];
        let kind = BallotType::Points { total: 10 };
        let ballots = vec![
            Choice::Points(vec![(0, 4), (1, 6)]),
            Choice::Points(vec![(1, 10)]),
        ];
        let election = to_election(
            vec![("description".into(), "Runde 1".into())],
            20_000,
            kind,
            &candidates,
            &ballots,
        );
        let text = pabulib::to_pb(&election);
        let back = from_election(&pabulib::parse(&text).unwrap()).unwrap();
        assert_eq!(back.title, "Runde 1");
        assert_eq!(back.budget_cents, 20_000);
        assert_eq!(back.kind, kind);
        assert_eq!(back.candidates, candidates);
        assert_eq!(back.ballots, ballots);
    }

    #[test]
    fn files_in_currency_units_become_cents() {
        let text = "META\nkey;value\nbudget;10.5\nvote_type;approval\nPROJECTS\nproject_id;cost\na;6\nb;5\nVOTES\nvoter_id;vote\n1;a\n2;a,b\n";
        let imported = from_election(&pabulib::parse(text).unwrap()).unwrap();
        assert_eq!(imported.budget_cents, 1050);
        assert_eq!(imported.candidates[0].cost, 600);
        assert_eq!(imported.kind, BallotType::Approval { max: None });
        assert_eq!(imported.ballots.len(), 2);
    }
}
