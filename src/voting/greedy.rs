//! Greedy utilitarian welfare: projects by satisfaction per unit of cost, each taken if it still
//! fits (pabutools' `greedy_utilitarian_welfare`).
//!
//! With cost satisfaction the order is simply the number of voters who listed the project.
//! Equal shares' completion uses the same procedure, starting from equal shares' outcome.

use std::cmp::Ordering;

use num_bigint::BigInt;
use serde::{Deserialize, Serialize};

use super::exact::Exact;
use super::profile::{Grouped, Profile, ProfileError, Satisfaction, TieBreak};

/// Settings of the greedy rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreedyOptions {
    /// What a project is worth to a voter; [`Satisfaction::Cost`] orders by number of votes.
    pub satisfaction: Satisfaction,
    /// How equal scores are ordered.
    pub tie_break: TieBreak,
}

/// What happened to one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum GreedyDecision {
    /// Taken as the `position`-th project (0-based), leaving `budget_left`.
    Selected {
        /// Place in the selection order, from 0.
        position: usize,
        /// The budget left after paying for it.
        budget_left: Exact,
    },
    /// Its turn came when only `budget_left` was left, less than its cost.
    DidNotFit {
        /// The budget left when its turn came.
        budget_left: Exact,
    },
    /// It costs more than the whole budget.
    CostsMoreThanBudget,
}

/// The greedy rule's verdict on one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreedyProject {
    /// Voters for whom the project is worth something (with cost satisfaction: its votes).
    pub supporters: u64,
    /// Total satisfaction: the sum over voters (with cost satisfaction: votes × cost).
    pub satisfaction: u128,
    /// Its place in the greedy order (0 = considered first).
    pub rank: usize,
    /// Selected or why not.
    pub decision: GreedyDecision,
}

/// The outcome of the greedy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreedyOutcome {
    /// Selected projects (indices into the profile's projects), in selection order.
    pub selected: Vec<usize>,
    /// Sum of the selected projects' costs.
    pub total_cost: u128,
    /// The budget minus `total_cost`.
    pub budget_left: Exact,
    /// One entry per project of the profile, in the profile's order.
    pub projects: Vec<GreedyProject>,
}

/// Runs greedy utilitarian welfare on `profile`.
pub fn greedy(profile: &Profile, options: &GreedyOptions) -> Result<GreedyOutcome, ProfileError> {
    profile.validate()?;
    let grouped = Grouped::new(profile, options.satisfaction);
    let ranks = options.tie_break.ranks(profile, &grouped)?;
    let already = vec![false; profile.projects.len()];
    let steps = fill(profile, &grouped, &ranks, &already, profile.budget.clone());
    let (satisfaction, _) = grouped.totals(profile.projects.len());
    let supporters = supporters(&grouped, profile.projects.len());
    let mut selected = Vec::new();
    let mut total_cost: u128 = 0;
    let mut projects: Vec<Option<GreedyProject>> = vec![None; profile.projects.len()];
    for (rank, step) in steps.into_iter().enumerate() {
        if matches!(step.decision, GreedyDecision::Selected { .. }) {
            selected.push(step.project);
            total_cost += u128::from(profile.projects[step.project].cost);
        }
        projects[step.project] = Some(GreedyProject {
            supporters: supporters[step.project],
            satisfaction: satisfaction[step.project],
            rank,
            decision: step.decision,
        });
    }
    Ok(GreedyOutcome {
        budget_left: profile.budget.sub(&Exact::from(total_cost)),
        selected,
        total_cost,
        projects: projects.into_iter().flatten().collect(),
    })
}

/// Voters with positive satisfaction, per project.
pub(crate) fn supporters(grouped: &Grouped, projects: usize) -> Vec<u64> {
    let mut count = vec![0u64; projects];
    for g in 0..grouped.len() {
        for &(p, _) in &grouped.sat[g] {
            count[p] += grouped.multiplicity[g];
        }
    }
    count
}

/// One project's turn in [`fill`].
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub project: usize,
    pub decision: GreedyDecision,
}

/// The greedy pass over every project not `already` selected, in greedy order, starting with
/// `budget_left`. Returns every such project's turn, in order (`Selected` ones in selection
/// order).
///
/// The order is pabutools' (`greedy_utilitarian_scheme_additive`): total satisfaction ÷ cost,
/// highest first; a free project anybody values comes first, one nobody values counts as 0;
/// equal values by `ranks`.
pub(crate) fn fill(
    profile: &Profile,
    grouped: &Grouped,
    ranks: &[usize],
    already: &[bool],
    mut budget_left: Exact,
) -> Vec<Step> {
    let n = profile.projects.len();
    let (total, _) = grouped.totals(n);
    let mut order: Vec<usize> = (0..n).filter(|&p| !already[p]).collect();
    order.sort_by(|&a, &b| {
        density_cmp(
            total[b],
            profile.projects[b].cost,
            total[a],
            profile.projects[a].cost,
        )
        .then(ranks[a].cmp(&ranks[b]))
    });
    let mut position = already.iter().filter(|&&a| a).count();
    order
        .into_iter()
        .map(|p| {
            let cost = Exact::from(profile.projects[p].cost);
            let decision = if cost <= budget_left {
                budget_left = budget_left.sub(&cost);
                position += 1;
                GreedyDecision::Selected {
                    position: position - 1,
                    budget_left: budget_left.clone(),
                }
            } else if cost > profile.budget {
                GreedyDecision::CostsMoreThanBudget
            } else {
                GreedyDecision::DidNotFit {
                    budget_left: budget_left.clone(),
                }
            };
            Step {
                project: p,
                decision,
            }
        })
        .collect()
}

/// Compares `ta / ca` with `tb / cb`, where `t / 0` is infinite for `t > 0` and `0 / 0` is 0.
fn density_cmp(ta: u128, ca: u64, tb: u128, cb: u64) -> Ordering {
    let key = |t: u128, c: u64| match (t, c) {
        (0, _) => 0u8,
        (_, 0) => 2,
        _ => 1,
    };
    match key(ta, ca).cmp(&key(tb, cb)) {
        Ordering::Equal if key(ta, ca) == 1 => {
            (BigInt::from(ta) * BigInt::from(cb)).cmp(&(BigInt::from(tb) * BigInt::from(ca)))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voting::profile::{Ballot, ProjectInput};

    fn profile(budget: u64, projects: &[(&str, u64)], ballots: Vec<Ballot>) -> Profile {
        Profile {
            budget: Exact::from(budget),
            projects: projects
                .iter()
                .map(|&(id, cost)| ProjectInput {
                    id: id.into(),
                    cost,
                })
                .collect(),
            ballots,
        }
    }

    fn ids(p: &Profile, selected: &[usize]) -> Vec<String> {
        selected.iter().map(|&i| p.projects[i].id.clone()).collect()
    }

    #[test]
    fn takes_by_votes_and_skips_what_does_not_fit() {
        let p = profile(
            10,
            &[("a", 6), ("b", 5), ("c", 4), ("d", 11)],
            vec![
                Ballot::approval([0, 1, 3]).times(3),
                Ballot::approval([1, 2]).times(2),
                Ballot::approval([2, 3]),
            ],
        );
        let out = greedy(&p, &GreedyOptions::default()).expect("valid");
        // Votes: b 5, d 4, a 3, c 3. b fits (5 left), d is too dear, a does not fit, c does.
        assert_eq!(ids(&p, &out.selected), ["b", "c"]);
        assert_eq!(out.total_cost, 9);
        assert_eq!(out.budget_left, Exact::from(1u64));
        assert_eq!(
            out.projects[3].decision,
            GreedyDecision::CostsMoreThanBudget
        );
        assert_eq!(
            out.projects[0].decision,
            GreedyDecision::DidNotFit {
                budget_left: Exact::from(5u64)
            }
        );
        assert_eq!(out.projects[1].supporters, 5);
        assert_eq!(out.projects[1].rank, 0);
    }

    #[test]
    fn ties_go_to_the_smaller_id_as_a_string() {
        // "10" sorts before "2" as strings, although 2 < 10 as numbers.
        let p = profile(
            5,
            &[("2", 5), ("10", 5)],
            vec![Ballot::approval([0]), Ballot::approval([1])],
        );
        let out = greedy(&p, &GreedyOptions::default()).expect("valid");
        assert_eq!(ids(&p, &out.selected), ["10"]);
    }

    #[test]
    fn free_and_unsupported_projects() {
        let p = profile(
            3,
            &[("free", 0), ("nobody", 3), ("x", 2)],
            vec![Ballot::approval([0, 2])],
        );
        let out = greedy(&p, &GreedyOptions::default()).expect("valid");
        // With cost satisfaction a free project is worth 0, so it comes last, but still fits.
        assert_eq!(ids(&p, &out.selected), ["x", "free"]);
        let util = GreedyOptions {
            satisfaction: Satisfaction::Cardinality,
            ..GreedyOptions::default()
        };
        let out = greedy(&p, &util).expect("valid");
        assert_eq!(ids(&p, &out.selected), ["free", "x"]);
    }

    #[test]
    fn unsupported_projects_are_taken_if_money_is_left() {
        let p = profile(10, &[("a", 4), ("b", 5)], vec![Ballot::approval([0])]);
        let out = greedy(&p, &GreedyOptions::default()).expect("valid");
        assert_eq!(ids(&p, &out.selected), ["a", "b"]);
    }

    #[test]
    fn points_and_rankings_use_their_utility() {
        let p = profile(
            10,
            &[("a", 10), ("b", 5), ("c", 5)],
            vec![
                Ballot::points([(0, 9), (1, 1)]),
                Ballot::points([(0, 9), (2, 2)]),
            ],
        );
        let cost = greedy(&p, &GreedyOptions::default()).expect("valid");
        // Cost satisfaction: a has 2 votes, b and c 1 each.
        assert_eq!(ids(&p, &cost.selected), ["a"]);
        let util = GreedyOptions {
            satisfaction: Satisfaction::Utility,
            ..GreedyOptions::default()
        };
        // Points per cost: a 18/10, b 1/5, c 2/5.
        assert_eq!(ids(&p, &greedy(&p, &util).expect("valid").selected), ["a"]);
        let r = profile(
            10,
            &[("a", 10), ("b", 5), ("c", 5)],
            vec![Ballot::ranking([1, 2, 0]), Ballot::ranking([2, 1, 0])],
        );
        // Borda: b 2 + 1, c 1 + 2, a 0 + 0.
        assert_eq!(
            ids(&r, &greedy(&r, &util).expect("valid").selected),
            ["b", "c"]
        );
    }

    #[test]
    fn no_voters() {
        let p = profile(7, &[("b", 4), ("a", 4), ("c", 3)], vec![]);
        let out = greedy(&p, &GreedyOptions::default()).expect("valid");
        assert_eq!(ids(&p, &out.selected), ["a", "c"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// What greedy guarantees, stated without its code: it never overspends; it takes
        /// projects in order of votes (a free project counts 0 votes with cost satisfaction);
        /// and a project it skipped, although it costs no more than the budget, did not fit
        /// next to the selected projects that come before it in that order (more votes, or
        /// as many and a smaller id).
        #[test]
        fn greedy_takes_by_votes_what_fits(
            costs in proptest::collection::vec(0u64..30, 1..7),
            ballots in proptest::collection::vec((proptest::collection::vec(proptest::bool::ANY, 7), 1u64..4), 0..8),
            budget in 0u64..80,
        ) {
            let ids = ["7", "10", "2", "b", "a1", "1", "x"];
            let projects: Vec<(&str, u64)> = costs.iter().enumerate().map(|(i, &c)| (ids[i], c)).collect();
            let n = projects.len();
            let p = profile(
                budget,
                &projects,
                ballots
                    .iter()
                    .map(|(marks, m)| Ballot::approval((0..n).filter(|&i| marks[i])).times(*m))
                    .collect(),
            );
            let out = greedy(&p, &GreedyOptions::default()).expect("valid");
            let votes: Vec<u64> = (0..n)
                .map(|j| {
                    if p.projects[j].cost == 0 {
                        return 0;
                    }
                    ballots.iter().filter(|(marks, _)| marks[j]).map(|(_, m)| m).sum()
                })
                .collect();
            let before = |a: usize, b: usize| votes[a] > votes[b] || (votes[a] == votes[b] && p.projects[a].id < p.projects[b].id);
            let cost_of = |set: &[usize]| set.iter().map(|&j| p.projects[j].cost).sum::<u64>();
            proptest::prop_assert!(cost_of(&out.selected) <= budget);
            for w in out.selected.windows(2) {
                proptest::prop_assert!(before(w[0], w[1]));
            }
            for j in (0..n).filter(|j| !out.selected.contains(j)) {
                if p.projects[j].cost > budget {
                    proptest::prop_assert_eq!(&out.projects[j].decision, &GreedyDecision::CostsMoreThanBudget);
                    continue;
                }
                let earlier: Vec<usize> = out.selected.iter().copied().filter(|&q| before(q, j)).collect();
                proptest::prop_assert!(cost_of(&earlier) + p.projects[j].cost > budget);
            }
        }
    }
}
