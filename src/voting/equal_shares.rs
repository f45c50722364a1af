//! The Method of Equal Shares, its completion by raising the voters' shares, and the final
//! greedy fill, with an explanation of every decision.
//!
//! Matches pabutools 1.2.3 (`method_of_equal_shares` with `voter_budget_increment`, then
//! `greedy_utilitarian_welfare`, combined by `completion_by_rule_combination`), exactly:
//! every amount is an [`Exact`] fraction.
//!
//! # How one run works
//!
//! Every voter starts with the same share. In each round, for each project whose supporters
//! together still have its cost, find the smallest rate `α` at which supporters paying
//! `min(money left, α × satisfaction)` cover the cost; select the project with the smallest
//! `α` (with cost satisfaction, the smallest payment per unit of cost), ties by
//! [`TieBreak`]; charge its supporters; repeat until no project is affordable. Free projects
//! that somebody values are selected before the first round.
//!
//! # Speed
//!
//! A completion may need thousands of runs, each of many rounds, so a run is organised
//! around *budget classes*: voters whose money left is equal share one exact value. Voters
//! only ever pay equal amounts or everything they have, so there are far fewer distinct
//! amounts than ballots, and the big-number arithmetic happens once per class instead of once
//! per voter. Rates only grow during a run, so a project's last rate is a lower bound and
//! projects whose bound is worse than the best rate found are not recomputed.
//!
//! The completion does not always step one increment at a time as pabutools does. Within a
//! run, every amount is a linear function of the starting share and every decision the sign
//! of one, so a run also tells up to which share its selection stays the same
//! (`Engine::stable_until`). When several runs in a row selected the same, the completion
//! jumps to the first step at or beyond that share: the steps in between would all have
//! given the same selection, so the outcome is pabutools' own, in far fewer runs (a budget
//! of millions and a project that costs nearly all of it once took 1.5 million). At most
//! [`MAX_RUNS`] runs are computed; a profile that would need more is refused.

use std::cmp::Ordering;
use std::collections::HashMap;

use num_bigint::BigInt;
use num_traits::{ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

use super::exact::{Exact, approx_ratio};
use super::greedy::{self, GreedyDecision};
use super::profile::{Grouped, Profile, ProfileError, Satisfaction, TieBreak};

/// How the voters' shares are raised when equal shares leaves money unspent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetIncrease {
    /// Plain equal shares: the shares add up to the budget.
    None,
    /// pabutools' `voter_budget_increment` ("add1e"): raise every share by the increment
    /// until the first outcome that is exhaustive (no further supported project fits), and
    /// stop before one that would exceed the budget, keeping the last one that fits.
    #[default]
    UntilExhaustive,
    /// The cities' add1 (equalshares.net, Wieliczka 2023): keep raising while the outcome fits
    /// in the budget, without stopping at the first exhaustive one; keep the last that fits.
    /// pabutools: `exhaustion_by_budget_increase(..., exhaustive_stop=False, budget_step=n)`.
    /// Unlike pabutools, which goes on until a share of `budget × (n + 1) / n`, this stops as
    /// soon as every project somebody values is selected, since nothing can be added then.
    WhileWithinBudget,
}

/// Settings of equal shares. [`Default`] is the reference: pabutools' add1e with cost
/// satisfaction and an increment of 1, then greedy by votes, ties by project id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EqualSharesOptions {
    /// What a project is worth to its supporters (decides who pays how much).
    pub satisfaction: Satisfaction,
    /// Whether and how the shares are raised.
    pub increase: BudgetIncrease,
    /// By how much each voter's share grows per step, in the unit of the costs (1 currency
    /// unit in pabutools; with costs in cents, 100 is one euro per voter and step). Each step
    /// is a full run, so a tiny increment on a large budget means many runs.
    pub voter_budget_increment: Exact,
    /// Fill what is left greedily with this satisfaction (`None`: leave it unspent).
    pub complete_with_greedy: Option<Satisfaction>,
    /// How ties are broken, in equal shares and in the greedy fill.
    pub tie_break: TieBreak,
}

impl Default for EqualSharesOptions {
    fn default() -> Self {
        EqualSharesOptions {
            satisfaction: Satisfaction::Cost,
            increase: BudgetIncrease::UntilExhaustive,
            voter_budget_increment: Exact::from(1u64),
            complete_with_greedy: Some(Satisfaction::Cost),
            tie_break: TieBreak::ProjectId,
        }
    }
}

impl EqualSharesOptions {
    /// Plain equal shares: no raising, no completion.
    pub fn plain() -> Self {
        EqualSharesOptions {
            increase: BudgetIncrease::None,
            complete_with_greedy: None,
            ..Self::default()
        }
    }

    /// The cities' add1 without exhaustive stop and without greedy fill.
    pub fn cities_add1() -> Self {
        EqualSharesOptions {
            increase: BudgetIncrease::WhileWithinBudget,
            complete_with_greedy: None,
            ..Self::default()
        }
    }
}

/// What one ballot group paid for a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The ballot group (index into [`EqualSharesOutcome::groups`]).
    pub group: usize,
    /// What each voter of the group paid, exactly.
    pub per_voter: Exact,
    /// The same, rounded to the nearest whole unit (a cent in the web app), for display.
    pub per_voter_rounded: u64,
}

/// Why a project was not selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Rejection {
    /// It costs more than the whole budget.
    CostsMoreThanBudget,
    /// Nobody values it (and it did not fit in the greedy fill, if there was one).
    NoSupporters,
    /// Its supporters' remaining shares together were less than its cost (no greedy fill ran).
    SupportersRanOut {
        /// What its supporters had left at the end of equal shares.
        supporters_money_left: Exact,
    },
    /// Its supporters' money ran out, and in the greedy fill it did not fit in what was left.
    DidNotFit {
        /// The budget left when the greedy fill reached it.
        budget_left: Exact,
        /// What its supporters had left at the end of equal shares.
        supporters_money_left: Exact,
    },
}

/// The verdict on one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum ProjectDecision {
    /// Selected by equal shares in `round` (from 1; 0 for a free project, taken up front).
    EqualShares {
        /// The round, from 1 (0: free project).
        round: usize,
        /// The rate: each supporter paid this much per unit of satisfaction, or all they had
        /// left if that was less. With cost satisfaction, `rate × cost` is the full payment.
        rate: Exact,
        /// Every paying ballot group's payment (they sum exactly to the cost).
        payments: Vec<Payment>,
    },
    /// Selected by the greedy fill after equal shares.
    Completion {
        /// Place in the overall selection order, from 0.
        position: usize,
    },
    /// Not selected.
    NotSelected(Rejection),
}

/// A set of identical ballots, counted together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallotGroup {
    /// The input ballots (indices into [`Profile::ballots`]).
    pub ballots: Vec<usize>,
    /// Number of voters (the sum of those ballots' multiplicities).
    pub voters: u64,
    /// What each of its voters had left at the end of equal shares.
    pub money_left: Exact,
}

/// The outcome of equal shares, with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EqualSharesOutcome {
    /// Selected projects in selection order (indices into the profile's projects): free ones,
    /// equal shares' rounds, then the greedy fill.
    pub selected: Vec<usize>,
    /// Sum of the selected projects' costs.
    pub total_cost: u128,
    /// The budget.
    pub budget: Exact,
    /// Number of voters.
    pub voters: u64,
    /// Each voter's starting share in the run that decided: budget / voters plus
    /// `increments` × the increment (0 without voters).
    pub voter_share: Exact,
    /// How many times the shares were raised for the deciding run.
    pub increments: u64,
    /// How many runs of equal shares were computed (not counting the recording rerun).
    pub runs: u64,
    /// Identical ballots grouped.
    pub groups: Vec<BallotGroup>,
    /// For each input ballot, its group.
    pub ballot_group: Vec<usize>,
    /// One entry per project of the profile, in the profile's order.
    pub projects: Vec<ProjectDecision>,
}

impl EqualSharesOutcome {
    /// Each input ballot's payments (per voter), as (project, amount) in selection order.
    pub fn payments_of_ballot(&self, ballot: usize) -> Vec<(usize, Exact)> {
        let Some(&group) = self.ballot_group.get(ballot) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &p in &self.selected {
            if let ProjectDecision::EqualShares { payments, .. } = &self.projects[p]
                && let Some(pay) = payments.iter().find(|pay| pay.group == group)
            {
                out.push((p, pay.per_voter.clone()));
            }
        }
        out
    }
}

/// Runs equal shares on `profile`.
pub fn equal_shares(
    profile: &Profile,
    options: &EqualSharesOptions,
) -> Result<EqualSharesOutcome, ProfileError> {
    profile.validate()?;
    if options.increase != BudgetIncrease::None
        && (options.voter_budget_increment.is_negative()
            || options.voter_budget_increment.is_zero())
    {
        return Err(ProfileError::BadIncrement);
    }
    let grouped = Grouped::new(profile, options.satisfaction);
    let ranks = options.tie_break.ranks(profile, &grouped)?;
    let engine = Engine::new(profile, &grouped, ranks.clone());
    let voters = profile.voters();
    let budget = &profile.budget;

    // Pick the deciding run (its increment count), as pabutools' loop does.
    let mut runs = 0u64;
    let mut chosen: Option<u64> = None; // None: no run counts (no voters).
    if voters > 0 && options.increase == BudgetIncrease::None {
        // One run, the recorded one below.
        runs = 1;
        chosen = Some(0);
    } else if voters > 0 {
        let base = budget.div_int(voters);
        let increment = &options.voter_budget_increment;
        let share_at = |k: u64| base.add(&increment.mul_int(k));
        let mut previous: Option<u64> = None;
        let mut k = 0u64;
        // Runs in a row with the same selection, and how many such runs make it worth asking
        // how far the shares can grow before anything changes.
        let mut same = 0u32;
        let mut ask_after = JUMP_AFTER;
        let mut last: Option<Vec<usize>> = None;
        // The parametric run is far slower than a run (exact fractions, every project every
        // round): only small profiles, the ones that can ask for millions of cheap runs, use it.
        let size = engine.size();
        let mut jumps_left = if size <= JUMP_SIZE { MAX_JUMPS } else { 0 };
        let max_runs = (MAX_WORK / size.max(1)).clamp(MIN_RUNS, MAX_RUNS);
        loop {
            if runs >= max_runs {
                return Err(ProfileError::TooManySteps { limit: max_runs });
            }
            let share = share_at(k);
            let run = engine.run(&share, false);
            runs += 1;
            if Exact::from(run.total_cost) > *budget {
                chosen = previous;
                break;
            }
            let done = match options.increase {
                BudgetIncrease::UntilExhaustive => engine.is_exhaustive(&run, budget),
                _ => run.selected.len() == engine.projects.len(),
            };
            if done {
                chosen = Some(k);
                break;
            }
            previous = Some(k);
            if last.as_ref() == Some(&run.selected) {
                same += 1;
            } else {
                same = 0;
                last = Some(run.selected.clone());
            }
            let mut next = k + 1;
            if same >= ask_after && jumps_left > 0 {
                jumps_left -= 1;
                same = 0;
                // Every run from here up to the share where some decision of this run could
                // turn has this run's selection, so neither stops the loop: pabutools would
                // step through them one increment at a time to the same end.
                let (selection, until) = engine.stable_until(&share);
                if selection == run.selected {
                    let Some(until) = until else {
                        // Nothing would ever change: pabutools would never stop.
                        return Err(ProfileError::TooManySteps { limit: max_runs });
                    };
                    match first_step_at(&until, &base, increment) {
                        Some(step) => next = next.max(step),
                        None => return Err(ProfileError::TooManySteps { limit: max_runs }),
                    }
                } else {
                    debug_assert!(false, "the two runs at {share} disagree");
                }
                // Worth asking again soon only after a long jump.
                ask_after = if next > k + JUMP_WORTH {
                    JUMP_AFTER
                } else {
                    ask_after.saturating_mul(2)
                };
            }
            if next > k + 1 {
                previous = Some(next - 1);
            }
            k = next;
        }
    }

    let share = match chosen {
        Some(k) => budget
            .div_int(voters)
            .add(&options.voter_budget_increment.mul_int(k)),
        None => Exact::zero(),
    };
    // `chosen` is None without voters, or if even the first run overspent (it cannot: the
    // shares add up to the budget); pabutools then keeps the empty outcome.
    let record = match chosen {
        Some(_) => engine.run(&share, true),
        None => Run::empty(grouped.len()),
    };

    let n = profile.projects.len();
    let mut decisions: Vec<Option<ProjectDecision>> = vec![None; n];
    let mut selected = Vec::new();
    let mut in_outcome = vec![false; n];
    // Free projects somebody values come first, as pabutools puts them into its initial
    // allocation (which it skips entirely without voters).
    if voters > 0 {
        for &p in &engine.free {
            decisions[p] = Some(ProjectDecision::EqualShares {
                round: 0,
                rate: Exact::zero(),
                payments: Vec::new(),
            });
            selected.push(p);
            in_outcome[p] = true;
        }
    }
    for (round, rec) in record.rounds.iter().enumerate() {
        let payments = rec
            .payments
            .iter()
            .map(|(group, amount)| Payment {
                group: *group,
                per_voter_rounded: amount.round_u64().unwrap_or(u64::MAX),
                per_voter: amount.clone(),
            })
            .collect();
        decisions[rec.project] = Some(ProjectDecision::EqualShares {
            round: round + 1,
            rate: rec.rate.clone(),
            payments,
        });
        selected.push(rec.project);
        in_outcome[rec.project] = true;
    }
    let mut total_cost: u128 = selected
        .iter()
        .map(|&p| u128::from(profile.projects[p].cost))
        .sum();

    // Money each project's supporters had left at the end of equal shares: summed as
    // numerators over the run's common denominator, reduced once per project.
    let mut supporters_left = vec![Exact::zero(); n];
    {
        let mut sums = vec![BigInt::zero(); n];
        for g in 0..grouped.len() {
            let num = &record.left_num[record.left_class[g] as usize];
            if num.is_zero() {
                continue;
            }
            let money = num * grouped.multiplicity[g];
            for &(p, _) in &grouped.sat[g] {
                sums[p] += &money;
            }
        }
        for (p, sum) in sums.into_iter().enumerate() {
            supporters_left[p] = Exact::ratio(sum, record.left_den.clone());
        }
    }

    let completion_budget = budget.sub(&Exact::from(total_cost));
    let mut greedy_left: Vec<Option<Exact>> = vec![None; n];
    if let Some(sat) = options.complete_with_greedy {
        let g2 = Grouped::new(profile, sat);
        let ranks2 = options.tie_break.ranks(profile, &g2)?;
        for step in greedy::fill(profile, &g2, &ranks2, &in_outcome, completion_budget) {
            match step.decision {
                GreedyDecision::Selected { position, .. } => {
                    decisions[step.project] = Some(ProjectDecision::Completion { position });
                    selected.push(step.project);
                    total_cost += u128::from(profile.projects[step.project].cost);
                }
                GreedyDecision::DidNotFit { budget_left } => {
                    greedy_left[step.project] = Some(budget_left);
                }
                GreedyDecision::CostsMoreThanBudget => {}
            }
        }
    }
    let supported = greedy::supporters(&grouped, n);
    let projects = decisions
        .into_iter()
        .enumerate()
        .map(|(p, d)| {
            d.unwrap_or_else(|| {
                let reason = if Exact::from(profile.projects[p].cost) > *budget {
                    Rejection::CostsMoreThanBudget
                } else if supported[p] == 0 {
                    Rejection::NoSupporters
                } else if let Some(budget_left) = greedy_left[p].take() {
                    Rejection::DidNotFit {
                        budget_left,
                        supporters_money_left: supporters_left[p].clone(),
                    }
                } else {
                    Rejection::SupportersRanOut {
                        supporters_money_left: supporters_left[p].clone(),
                    }
                };
                ProjectDecision::NotSelected(reason)
            })
        })
        .collect();

    let groups = (0..grouped.len())
        .map(|g| BallotGroup {
            ballots: grouped.members[g].clone(),
            voters: grouped.multiplicity[g],
            money_left: record.left[g].clone(),
        })
        .collect();
    Ok(EqualSharesOutcome {
        selected,
        total_cost,
        budget: budget.clone(),
        voters,
        voter_share: share,
        increments: chosen.unwrap_or(0),
        runs,
        groups,
        ballot_group: grouped.ballot_group.clone(),
        projects,
    })
}

/// A project as equal shares sees it: positive cost and at least one supporter.
struct MesProject {
    /// Index in the profile.
    index: usize,
    cost: u64,
    /// The supporters' satisfactions divided by their gcd `scale`; rates are computed for
    /// these and divided by `scale`, which keeps the numbers small (with cost satisfaction
    /// every supporter has 1 and the rate is the payment itself).
    scale: u64,
    supporters: Vec<(u32, u64)>,
    /// All reduced satisfactions are 1 (always so with cost satisfaction).
    unit: bool,
    /// The rate before anybody paid anything: cost / total satisfaction.
    initial_rate: Frac,
}

struct Engine {
    weights: Vec<u64>,
    projects: Vec<MesProject>,
    /// Free projects somebody values (selected up front), by tie rank.
    free: Vec<usize>,
    /// Tie rank per profile project.
    ranks: Vec<usize>,
}

/// One selection of a recorded run.
struct RoundRecord {
    project: usize,
    rate: Exact,
    payments: Vec<(usize, Exact)>,
}

/// The result of one run.
struct Run {
    /// Profile indices of the projects equal shares selected, in order (without free ones).
    selected: Vec<usize>,
    /// Cost of `selected` (free projects cost nothing).
    total_cost: u128,
    /// Only when recording: the rounds, and every group's money left at the end (also as
    /// class numerators over a common denominator, for fast sums).
    rounds: Vec<RoundRecord>,
    left: Vec<Exact>,
    left_class: Vec<u32>,
    left_num: Vec<BigInt>,
    left_den: BigInt,
}

impl Run {
    fn empty(groups: usize) -> Run {
        Run {
            selected: Vec::new(),
            total_cost: 0,
            rounds: Vec::new(),
            left: vec![Exact::zero(); groups],
            left_class: vec![0; groups],
            left_num: vec![BigInt::zero()],
            left_den: BigInt::from(1),
        }
    }
}

/// An unreduced fraction with a positive denominator. The engine's rates are compared far
/// more often than they are kept, and reducing them would cost a big gcd each time.
#[derive(Clone)]
struct Frac {
    num: BigInt,
    den: BigInt,
}

impl Frac {
    fn cmp(&self, other: &Frac) -> Ordering {
        (&self.num * &other.den).cmp(&(&other.num * &self.den))
    }

    fn approx(&self) -> f64 {
        approx_ratio(&self.num, &self.den)
    }
}

/// Voters of one budget class supporting a project with the same (reduced) satisfaction.
struct Bucket {
    class: u32,
    sat: u64,
    /// Number of voters.
    weight: u64,
    /// Cannot pay the full rate: pays all it has.
    poor: bool,
}

/// A project's current rate, with how its supporters would pay.
struct Evaluation {
    /// `α' = need / (den × rich)` is the rate for reduced satisfactions, `den` being the
    /// state's denominator when evaluated: supporters pay `min(money, α' × sat)`.
    need: BigInt,
    rich: u128,
    /// `α' / scale`, the value compared between projects.
    key: Frac,
    key_approx: f64,
    /// The supporters by class; the poor ones pay all they have.
    buckets: Vec<Bucket>,
}

/// The money of a run, grouped into budget classes over one common denominator, so that
/// sums and comparisons are plain integer operations without any gcd.
struct State {
    den: BigInt,
    /// Per class, the money of each of its voters times `den`; class 0 is "nothing left".
    num: Vec<BigInt>,
    /// Per class, the money as a close `f64`, to skip clear-cut exact comparisons.
    approx: Vec<f64>,
    /// Per class, how many ballot groups are in it (empty classes are not rescaled).
    members: Vec<u32>,
    /// Per class, its money reduced, once asked for (only when recording).
    exact: Vec<Option<Exact>>,
    /// Per ballot group, its class.
    class: Vec<u32>,
}

impl State {
    fn new_class(&mut self, num: BigInt, approx: f64) -> u32 {
        if num.is_zero() {
            return 0;
        }
        self.num.push(num);
        self.approx.push(approx);
        self.members.push(0);
        (self.num.len() - 1) as u32
    }

    /// A class's money as a reduced fraction (memoised: a class's value never changes, only
    /// its representation over the growing common denominator).
    fn money(&mut self, class: u32) -> Exact {
        let c = class as usize;
        if self.exact.len() <= c {
            self.exact.resize(c + 1, None);
        }
        self.exact[c]
            .get_or_insert_with(|| Exact::ratio(self.num[c].clone(), self.den.clone()))
            .clone()
    }
}

impl Engine {
    fn new(profile: &Profile, grouped: &Grouped, ranks: Vec<usize>) -> Engine {
        let n = profile.projects.len();
        let mut supporters: Vec<Vec<(u32, u64)>> = vec![Vec::new(); n];
        for g in 0..grouped.len() {
            for &(p, s) in &grouped.sat[g] {
                supporters[p].push((g as u32, s));
            }
        }
        let mut projects = Vec::new();
        let mut free = Vec::new();
        for (p, list) in supporters.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let cost = profile.projects[p].cost;
            if cost == 0 {
                free.push(p);
                continue;
            }
            let scale = list.iter().fold(0u64, |acc, &(_, s)| gcd(acc, s));
            let list: Vec<(u32, u64)> = list.into_iter().map(|(g, s)| (g, s / scale)).collect();
            let total: u128 = list
                .iter()
                .map(|&(g, s)| u128::from(grouped.multiplicity[g as usize]) * u128::from(s))
                .sum();
            projects.push(MesProject {
                index: p,
                cost,
                scale,
                unit: list.iter().all(|&(_, s)| s == 1),
                supporters: list,
                initial_rate: Frac {
                    num: BigInt::from(cost),
                    den: BigInt::from(total) * BigInt::from(scale),
                },
            });
        }
        free.sort_by_key(|&p| ranks[p]);
        Engine {
            weights: grouped.multiplicity.clone(),
            projects,
            free,
            ranks,
        }
    }

    /// The size of a run's work: every project's supporters and every ballot group.
    fn size(&self) -> u64 {
        let pairs: usize = self.projects.iter().map(|p| p.supporters.len()).sum();
        u64::try_from(pairs + self.weights.len()).unwrap_or(u64::MAX)
    }

    /// Whether no project equal shares could select still fits next to `run`'s selection.
    fn is_exhaustive(&self, run: &Run, budget: &Exact) -> bool {
        let left = budget.sub(&Exact::from(run.total_cost));
        let mut chosen = vec![false; self.ranks.len()];
        for &p in &run.selected {
            chosen[p] = true;
        }
        !self
            .projects
            .iter()
            .any(|mp| !chosen[mp.index] && Exact::from(mp.cost) <= left)
    }

    /// One run of equal shares with every voter starting at `share`.
    fn run(&self, share: &Exact, record: bool) -> Run {
        let groups = self.weights.len();
        let mut state = State {
            den: share.denom().clone(),
            num: vec![BigInt::zero()],
            approx: vec![0.0],
            members: vec![0],
            exact: Vec::new(),
            class: vec![0; groups],
        };
        let first = state.new_class(share.numer().clone(), share.approx());
        state.class.iter_mut().for_each(|c| *c = first);
        state.members[first as usize] = groups as u32;

        let np = self.projects.len();
        let mut alive = vec![true; np];
        let mut bound: Vec<Frac> = self
            .projects
            .iter()
            .map(|p| p.initial_rate.clone())
            .collect();
        let mut bound_approx: Vec<f64> = bound.iter().map(Frac::approx).collect();
        let mut order: Vec<usize> = (0..np).collect();
        let mut out = Run {
            selected: Vec::new(),
            total_cost: 0,
            rounds: Vec::new(),
            left: Vec::new(),
            left_class: Vec::new(),
            left_num: Vec::new(),
            left_den: BigInt::from(1),
        };
        let mut scratch = Scratch::default();

        loop {
            order.retain(|&j| alive[j]);
            order.sort_by(|&a, &b| {
                bound_approx[a]
                    .partial_cmp(&bound_approx[b])
                    .unwrap_or(Ordering::Equal)
            });
            let mut best: Option<(usize, Evaluation)> = None;
            for &j in &order {
                if let Some((_, ev)) = &best {
                    // Bounds are visited in increasing (approximate) order: once one is clearly
                    // above the best rate, all later ones are too.
                    if float_order(bound_approx[j], ev.key_approx) == Some(Ordering::Greater) {
                        break;
                    }
                    if bound[j].cmp(&ev.key) == Ordering::Greater {
                        continue;
                    }
                }
                let Some(ev) = self.evaluate(j, &state, &mut scratch) else {
                    alive[j] = false;
                    continue;
                };
                bound[j] = ev.key.clone();
                bound_approx[j] = ev.key_approx;
                let better = match &best {
                    None => true,
                    Some((b, bev)) => match ev.key.cmp(&bev.key) {
                        Ordering::Less => true,
                        Ordering::Equal => {
                            self.ranks[self.projects[j].index] < self.ranks[self.projects[*b].index]
                        }
                        Ordering::Greater => false,
                    },
                };
                if better {
                    best = Some((j, ev));
                }
            }
            let Some((j, ev)) = best else {
                break;
            };
            alive[j] = false;
            let payments = self.pay(j, &ev, &mut state, &mut scratch, record);
            let project = &self.projects[j];
            out.selected.push(project.index);
            out.total_cost += u128::from(project.cost);
            if record {
                out.rounds.push(RoundRecord {
                    project: project.index,
                    rate: Exact::ratio(ev.key.num.clone(), ev.key.den.clone()),
                    payments,
                });
            }
        }
        if record {
            let per_class: Vec<Exact> = (0..state.num.len() as u32)
                .map(|c| {
                    if state.members[c as usize] > 0 {
                        state.money(c)
                    } else {
                        Exact::zero()
                    }
                })
                .collect();
            out.left = state
                .class
                .iter()
                .map(|&c| per_class[c as usize].clone())
                .collect();
            out.left_class = state.class;
            out.left_num = state.num;
            out.left_den = state.den;
        }
        out
    }

    /// The smallest rate at which project `j`'s supporters can pay for it, or `None` if their
    /// money together falls short of its cost.
    ///
    /// The poor/rich iteration: guess that everybody pays the equal rate; whoever cannot
    /// afford it pays all they have; recompute the rate for the rest; repeat. Floats only
    /// skip exact comparisons whose answer is clear by a wide margin.
    fn evaluate(&self, j: usize, state: &State, scratch: &mut Scratch) -> Option<Evaluation> {
        let project = &self.projects[j];
        let mut buckets = scratch.buckets(project, &state.class, &self.weights);
        let full = &state.den * project.cost;
        let total_f: f64 = buckets
            .iter()
            .map(|b| state.approx[b.class as usize] * b.weight as f64)
            .sum();
        match float_order(total_f, project.cost as f64) {
            Some(Ordering::Less) => return None,
            Some(_) => {}
            None => {
                let total: BigInt = buckets
                    .iter()
                    .map(|b| &state.num[b.class as usize] * b.weight)
                    .sum();
                if total < full {
                    return None;
                }
            }
        }
        let mut rich: u128 = buckets
            .iter()
            .map(|b| u128::from(b.weight) * u128::from(b.sat))
            .sum();
        let mut poor_money = BigInt::zero();
        let mut need = full.clone();
        let mut passes = 0;
        loop {
            // rate = need / (den × rich); a bucket is poor iff money < rate × sat, i.e.
            // num × rich < need × sat.
            let rich_now = rich;
            let rate_f = approx_ratio(&need, &state.den) / rich_now as f64;
            let mut moved = false;
            for b in buckets.iter_mut().filter(|b| !b.poor) {
                let money_f = state.approx[b.class as usize];
                let due_f = rate_f * b.sat as f64;
                let poor = match float_order(money_f, due_f) {
                    Some(order) => order == Ordering::Less,
                    None => &state.num[b.class as usize] * rich_now < &need * b.sat,
                };
                if poor {
                    b.poor = true;
                    moved = true;
                    poor_money += &state.num[b.class as usize] * b.weight;
                    rich -= u128::from(b.weight) * u128::from(b.sat);
                }
            }
            if !moved {
                break;
            }
            if rich == 0 {
                return None;
            }
            need = &full - &poor_money;
            passes += 1;
            if passes == 4 {
                // Many small steps: finish with one sorted scan instead (poorest first; the
                // first that can pay the rate the richer ones need ends the poor prefix).
                let mut rest: Vec<usize> =
                    (0..buckets.len()).filter(|&i| !buckets[i].poor).collect();
                rest.sort_by(|&a, &b| ratio_cmp(state, &buckets[a], &buckets[b]));
                for i in rest {
                    let b = &buckets[i];
                    if &need * b.sat <= &state.num[b.class as usize] * rich {
                        break;
                    }
                    poor_money += &state.num[b.class as usize] * b.weight;
                    rich -= u128::from(b.weight) * u128::from(b.sat);
                    need = &full - &poor_money;
                    buckets[i].poor = true;
                }
                if rich == 0 {
                    return None;
                }
                break;
            }
        }
        let key = Frac {
            den: &state.den * rich * project.scale,
            num: need.clone(),
        };
        let key_approx = key.approx();
        Some(Evaluation {
            need,
            rich,
            key,
            key_approx,
            buckets,
        })
    }

    /// Charges project `j`'s supporters; returns each paying group's payment when recording.
    fn pay(
        &self,
        j: usize,
        ev: &Evaluation,
        state: &mut State,
        scratch: &mut Scratch,
        record: bool,
    ) -> Vec<(usize, Exact)> {
        let project = &self.projects[j];
        // The new common denominator is den × rich / g, with g = gcd(need, rich): what the
        // full payments (need × sat / (den × rich)) require.
        let rich_big = BigInt::from(ev.rich);
        let rem = (&ev.need % &rich_big).to_u128().unwrap_or(0);
        let g = gcd128(ev.rich, rem).max(1);
        let factor = ev.rich / g;
        let need_g = &ev.need / BigInt::from(g);
        let old_classes = state.num.len();
        let new_den = &state.den * factor;
        // Per bucket: the new class and, when recording, what each voter paid.
        let mut moves: Vec<(u32, Exact)> = Vec::with_capacity(ev.buckets.len());
        // Full payments depend only on the satisfaction: reduce each once.
        let mut dues: HashMap<u64, Exact> = HashMap::new();
        for b in &ev.buckets {
            let (class, paid) = if b.poor {
                let paid = if record {
                    state.money(b.class)
                } else {
                    Exact::zero()
                };
                (0, paid)
            } else {
                let due = &need_g * b.sat;
                let left = &state.num[b.class as usize] * factor - &due;
                let approx = approx_ratio(&left, &new_den);
                let paid = if record {
                    dues.entry(b.sat)
                        .or_insert_with(|| Exact::ratio(due, new_den.clone()))
                        .clone()
                } else {
                    Exact::zero()
                };
                (state.new_class(left, approx), paid)
            };
            moves.push((class, paid));
        }
        // Which bucket a supporter is in: by class alone when every satisfaction is 1 (an
        // array lookup), else by class and satisfaction.
        let mut by_key: HashMap<(u32, u64), usize> = HashMap::new();
        if project.unit {
            if scratch.slot.len() < old_classes {
                scratch.slot.resize(old_classes, 0);
            }
            for (i, b) in ev.buckets.iter().enumerate() {
                scratch.slot[b.class as usize] = i + 1;
            }
        } else {
            by_key.extend(
                ev.buckets
                    .iter()
                    .enumerate()
                    .map(|(i, b)| ((b.class, b.sat), i)),
            );
        }
        let mut payments = Vec::new();
        for &(g, s) in &project.supporters {
            let old = state.class[g as usize];
            if old == 0 {
                continue;
            }
            let bucket = if project.unit {
                scratch.slot[old as usize].checked_sub(1)
            } else {
                by_key.get(&(old, s)).copied()
            };
            if let Some(i) = bucket {
                let (new, paid) = &moves[i];
                state.class[g as usize] = *new;
                state.members[old as usize] -= 1;
                state.members[*new as usize] += 1;
                if record {
                    payments.push((g as usize, paid.clone()));
                }
            }
        }
        if project.unit {
            for b in &ev.buckets {
                scratch.slot[b.class as usize] = 0;
            }
        }
        if factor != 1 {
            let f = BigInt::from(factor);
            for c in 1..old_classes {
                if state.members[c] > 0 {
                    state.num[c] *= &f;
                }
            }
            state.den = new_den;
        }
        payments
    }
}

/// Reusable buffers for aggregating a project's supporters by budget class.
#[derive(Default)]
struct Scratch {
    weight: Vec<u64>,
    touched: Vec<u32>,
    /// Per class, 1 + the index of its bucket in the selected project (0: none).
    slot: Vec<usize>,
}

impl Scratch {
    fn buckets(&mut self, project: &MesProject, class: &[u32], weights: &[u64]) -> Vec<Bucket> {
        if project.unit {
            for &(g, _) in &project.supporters {
                let c = class[g as usize];
                if c == 0 {
                    continue;
                }
                let c = c as usize;
                if c >= self.weight.len() {
                    self.weight.resize(c + 1, 0);
                }
                if self.weight[c] == 0 {
                    self.touched.push(c as u32);
                }
                self.weight[c] += weights[g as usize];
            }
            let mut out = Vec::with_capacity(self.touched.len());
            for c in self.touched.drain(..) {
                out.push(Bucket {
                    class: c,
                    sat: 1,
                    weight: self.weight[c as usize],
                    poor: false,
                });
                self.weight[c as usize] = 0;
            }
            out
        } else {
            let mut map: HashMap<(u32, u64), u64> = HashMap::new();
            for &(g, s) in &project.supporters {
                let c = class[g as usize];
                if c == 0 {
                    continue;
                }
                *map.entry((c, s)).or_insert(0) += weights[g as usize];
            }
            map.into_iter()
                .map(|((class, sat), weight)| Bucket {
                    class,
                    sat,
                    weight,
                    poor: false,
                })
                .collect()
        }
    }
}

/// Orders buckets by money per unit of satisfaction, exactly (floats only decide when the
/// values are far apart).
fn ratio_cmp(state: &State, a: &Bucket, b: &Bucket) -> Ordering {
    let fa = state.approx[a.class as usize] / a.sat as f64;
    let fb = state.approx[b.class as usize] / b.sat as f64;
    if let Some(order) = float_order(fa, fb) {
        return order;
    }
    (&state.num[a.class as usize] * b.sat).cmp(&(&state.num[b.class as usize] * a.sat))
}

/// The order of two positive values from their close `f64` approximations (relative error
/// about 1e-15), when it is beyond doubt: both in the range where `f64` is that precise and
/// apart by more than a relative 1e-9. `None` means: compare exactly.
fn float_order(a: f64, b: f64) -> Option<Ordering> {
    const SAFE: std::ops::RangeInclusive<f64> = 1e-280..=1e280;
    if !SAFE.contains(&a) || !SAFE.contains(&b) {
        return None;
    }
    if a < b * (1.0 - 1e-9) {
        Some(Ordering::Less)
    } else if a > b * (1.0 + 1e-9) {
        Some(Ordering::Greater)
    } else {
        None
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn gcd128(a: u128, b: u128) -> u128 {
    if b == 0 { a } else { gcd128(b, a % b) }
}

/// After how many runs in a row with the same selection the completion asks how far the
/// shares can grow before the selection can change, and jumps there; after a question that
/// gave no jump, it waits twice as long before the next.
const JUMP_AFTER: u32 = 4;

/// A jump of fewer steps than this does not pay for the parametric run that found it.
const JUMP_WORTH: u64 = 64;

/// Profiles up to this size (supporters of all projects plus ballot groups) jump; the
/// parametric run costs far more than a run on larger ones, which need few steps anyway.
const JUMP_SIZE: u64 = 500;

/// The most parametric runs (jumps tried) in one completion.
const MAX_JUMPS: u32 = 32;

/// The most runs of equal shares one completion computes. Stepping one increment at a time, a
/// 200-byte file (a budget of millions, one project costing nearly all of it) would take
/// millions of runs; with the jumps it takes a handful. The shipped real elections need at
/// most 1,619 (Toulouse 2022).
pub const MAX_RUNS: u64 = 10_000;

/// The most work (runs × size) one completion does: about six times the largest shipped
/// election's (Łódź 2024: 91 runs of size 180,788; Toulouse 2022: 1,619 of size 9,388).
const MAX_WORK: u64 = 100_000_000;

/// However large the profile, this many runs are always allowed.
const MIN_RUNS: u64 = 100;

/// The first step `k` whose share `base + k × increment` is at least `share`.
fn first_step_at(share: &Exact, base: &Exact, increment: &Exact) -> Option<u64> {
    let steps = share.sub(base).div(increment);
    let floor = steps.floor();
    let ceil = if Exact::from_int(floor.clone()) == steps {
        floor
    } else {
        floor + 1
    };
    ceil.to_u64()
}

/// `a + b × s`: an amount of money as a function of the voters' starting share `s`. Within a
/// run whose decisions stay the same, every amount is such a function.
#[derive(Clone)]
struct Linear {
    a: Exact,
    b: Exact,
}

impl Linear {
    fn share() -> Linear {
        Linear {
            a: Exact::zero(),
            b: Exact::from(1u64),
        }
    }

    fn constant(value: Exact) -> Linear {
        Linear {
            a: value,
            b: Exact::zero(),
        }
    }

    fn add(&self, other: &Linear) -> Linear {
        Linear {
            a: self.a.add(&other.a),
            b: self.b.add(&other.b),
        }
    }

    fn sub(&self, other: &Linear) -> Linear {
        Linear {
            a: self.a.sub(&other.a),
            b: self.b.sub(&other.b),
        }
    }

    fn times(&self, k: &Exact) -> Linear {
        Linear {
            a: self.a.mul(k),
            b: self.b.mul(k),
        }
    }

    fn neg(&self) -> Linear {
        Linear::constant(Exact::zero()).sub(self)
    }
}

/// The share up to which (excluded) every condition a run's decisions rested on still holds.
#[derive(Default)]
struct Horizon {
    /// `None`: no condition ever turns.
    until: Option<Exact>,
}

impl Horizon {
    /// `f` is positive at the run's share (or zero, for a condition `f ≥ 0`) and has to stay
    /// so: that holds until its root when it falls, for ever when it does not.
    fn keep(&mut self, f: &Linear) {
        if f.b.is_negative() {
            let root = f.a.div(&Exact::zero().sub(&f.b));
            if self.until.as_ref().is_none_or(|u| root < *u) {
                self.until = Some(root);
            }
        }
    }
}

/// A project its supporters can pay for, in a parametric run.
struct Affordable {
    project: usize,
    /// What the rich supporters pay together, and its value at the run's share.
    need: Linear,
    need_value: Exact,
    /// The rich supporters' (reduced) satisfaction: the rate for reduced satisfactions is
    /// `need / rich`.
    rich: Exact,
    /// `rich × scale`: the compared rate is `need / den`.
    den: Exact,
    /// The supporters, poorest first; the first `poor` of them pay all they have.
    order: Vec<(u32, u64)>,
    poor: usize,
}

impl Engine {
    /// The run at `share` done plainly (every project evaluated every round, like pabutools),
    /// with every voter's money kept as a function of the share. Each decision of the run is
    /// the sign of such a function (affordable or not, poor or rich, which rate is lower), so
    /// the run's selection stays the same for every share from `share` up to the first root
    /// of those functions (excluded), which is returned with the selection (`None`: for ever).
    fn stable_until(&self, share: &Exact) -> (Vec<usize>, Option<Exact>) {
        let groups = self.weights.len();
        let mut money = vec![Linear::share(); groups];
        let mut value = vec![share.clone(); groups];
        let mut alive = vec![true; self.projects.len()];
        let mut horizon = Horizon::default();
        let mut selected = Vec::new();
        loop {
            let mut affordable: Vec<Affordable> = Vec::new();
            for (j, project) in self.projects.iter().enumerate() {
                if !alive[j] {
                    continue;
                }
                let cost = Exact::from(project.cost);
                let mut total = Linear::constant(Exact::zero());
                let mut total_value = Exact::zero();
                for &(g, _) in &project.supporters {
                    let w = Exact::from(self.weights[g as usize]);
                    total = total.add(&money[g as usize].times(&w));
                    total_value = total_value.add(&value[g as usize].mul(&w));
                }
                if total_value < cost {
                    // Money only shrinks during a run: it stays out of reach.
                    horizon.keep(&Linear::constant(cost).sub(&total));
                    alive[j] = false;
                    continue;
                }
                let mut order = project.supporters.clone();
                order.sort_by(|&(g, s), &(h, t)| {
                    value[g as usize]
                        .mul_int(t)
                        .cmp(&value[h as usize].mul_int(s))
                });
                let mut rich: u128 = order
                    .iter()
                    .map(|&(g, s)| u128::from(self.weights[g as usize]) * u128::from(s))
                    .sum();
                let mut need = Linear::constant(cost.clone());
                let mut need_value = cost;
                let mut poor = 0;
                for &(g, s) in &order {
                    let w = self.weights[g as usize];
                    if value[g as usize].mul(&Exact::from(rich)) >= need_value.mul_int(s) {
                        break;
                    }
                    need = need.sub(&money[g as usize].times(&Exact::from(w)));
                    need_value = need_value.sub(&value[g as usize].mul_int(w));
                    rich -= u128::from(w) * u128::from(s);
                    poor += 1;
                }
                if rich == 0 {
                    // Cannot happen for an affordable project; if it did, claim nothing.
                    horizon.until = Some(share.clone());
                    alive[j] = false;
                    continue;
                }
                let rich = Exact::from(rich);
                for (i, &(g, s)) in order.iter().enumerate() {
                    // Rich: money × rich ≥ need × s; poor: the opposite, strictly.
                    let gap = money[g as usize]
                        .times(&rich)
                        .sub(&need.times(&Exact::from(s)));
                    horizon.keep(&if i < poor { gap.neg() } else { gap });
                }
                affordable.push(Affordable {
                    project: j,
                    need,
                    need_value,
                    den: rich.mul_int(project.scale),
                    rich,
                    order,
                    poor,
                });
            }
            let rank = |a: &Affordable| self.ranks[self.projects[a.project].index];
            let mut best: Option<usize> = None;
            for (i, a) in affordable.iter().enumerate() {
                let better = match best {
                    None => true,
                    Some(b) => {
                        let b = &affordable[b];
                        match a.need_value.mul(&b.den).cmp(&b.need_value.mul(&a.den)) {
                            Ordering::Less => true,
                            Ordering::Equal => rank(a) < rank(b),
                            Ordering::Greater => false,
                        }
                    }
                };
                if better {
                    best = Some(i);
                }
            }
            let Some(best) = best else {
                break;
            };
            let b = &affordable[best];
            for (i, other) in affordable.iter().enumerate() {
                if i != best {
                    // The other's rate stays above the winner's (or equal, when the winner
                    // comes first in the tie order).
                    horizon.keep(&other.need.times(&b.den).sub(&b.need.times(&other.den)));
                }
            }
            for (i, &(g, s)) in b.order.iter().enumerate() {
                let g = g as usize;
                if i < b.poor {
                    money[g] = Linear::constant(Exact::zero());
                    value[g] = Exact::zero();
                } else {
                    let per = Exact::from(s).div(&b.rich);
                    money[g] = money[g].sub(&b.need.times(&per));
                    value[g] = value[g].sub(&b.need_value.mul(&per));
                }
            }
            alive[b.project] = false;
            selected.push(self.projects[b.project].index);
        }
        (selected, horizon.until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voting::greedy::{GreedyOptions, greedy};
    use crate::voting::profile::{Ballot, Choice, ProjectInput};
    use proptest::prelude::*;

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

    fn run(p: &Profile, options: &EqualSharesOptions) -> EqualSharesOutcome {
        match equal_shares(p, options) {
            Ok(out) => out,
            Err(e) => panic!("valid profile: {e}"),
        }
    }

    fn payments(out: &EqualSharesOutcome, project: usize) -> Vec<(usize, Exact)> {
        match &out.projects[project] {
            ProjectDecision::EqualShares { payments, .. } => payments
                .iter()
                .map(|p| (p.group, p.per_voter.clone()))
                .collect(),
            other => panic!("project {project} not selected by equal shares: {other:?}"),
        }
    }

    /// The motivating example of the equal shares literature (Peters and Skowron;
    /// equalshares.net): 51% want ten red projects, 49% ten blue ones, the money suffices for
    /// ten. Greedy funds the ten red ones; equal shares five of each.
    #[test]
    fn fifty_one_to_forty_nine() {
        let names: Vec<String> = (0..10)
            .map(|i| format!("r{i}"))
            .chain((0..10).map(|i| format!("b{i}")))
            .collect();
        let projects: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 100)).collect();
        let p = profile(
            1000,
            &projects,
            vec![
                Ballot::approval(0..10).times(51),
                Ballot::approval(10..20).times(49),
            ],
        );
        let g = greedy(&p, &GreedyOptions::default()).expect("valid");
        assert!(ids(&p, &g.selected).iter().all(|id| id.starts_with('r')));
        assert_eq!(g.selected.len(), 10);
        // Shares of 10: five red projects at 100/51 each, then four blue at 100/49; a fifth
        // blue would need 500/49 > 10. Raised to 11, the fifth blue fits: 5 + 5 = 1000.
        let plain = run(&p, &EqualSharesOptions::plain());
        assert_eq!(
            ids(&p, &plain.selected),
            ["r0", "r1", "r2", "r3", "r4", "b0", "b1", "b2", "b3"]
        );
        let out = run(&p, &EqualSharesOptions::default());
        assert_eq!(
            ids(&p, &out.selected),
            ["r0", "r1", "r2", "r3", "r4", "b0", "b1", "b2", "b3", "b4"]
        );
        assert_eq!(out.voter_share, Exact::from(11u64));
        assert_eq!(payments(&out, 10), vec![(1, Exact::ratio(100, 49))]);
    }

    /// A majority of 6 likes a and b, a minority of 4 likes c. Greedy gives the majority
    /// everything; equal shares gives the minority its proportional part.
    #[test]
    fn equal_shares_and_greedy_differ() {
        let p = profile(
            100,
            &[("a", 50), ("b", 50), ("c", 40)],
            vec![
                Ballot::approval([0, 1]).times(6),
                Ballot::approval([2]).times(4),
            ],
        );
        let g = greedy(&p, &GreedyOptions::default()).expect("valid");
        assert_eq!(ids(&p, &g.selected), ["a", "b"]);
        let out = run(&p, &EqualSharesOptions::default());
        // Shares of 10. a: 6 × 50/6 (rate 1/6); c: 4 × 10 (rate 1/4); a and b tie, "a" wins.
        // Then the majority has 6 × 5/3 = 10 left, too little for b.
        assert_eq!(ids(&p, &out.selected), ["a", "c"]);
        assert_eq!(out.voter_share, Exact::from(10u64));
        assert_eq!(out.increments, 0);
        assert_eq!(payments(&out, 0), vec![(0, Exact::ratio(25, 3))]);
        assert_eq!(payments(&out, 2), vec![(1, Exact::from(10u64))]);
        match &out.projects[0] {
            ProjectDecision::EqualShares {
                round,
                rate,
                payments,
            } => {
                assert_eq!(*round, 1);
                assert_eq!(*rate, Exact::ratio(1, 6));
                assert_eq!(payments[0].per_voter_rounded, 8);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            out.projects[1],
            ProjectDecision::NotSelected(Rejection::DidNotFit {
                budget_left: Exact::from(10u64),
                supporters_money_left: Exact::from(10u64),
            })
        );
        assert_eq!(out.groups[0].money_left, Exact::ratio(5, 3));
        assert_eq!(out.groups[1].money_left, Exact::zero());
        assert_eq!(out.payments_of_ballot(1), vec![(2, Exact::from(10u64))]);
    }

    /// Voter 0 spent most of its share on p1, so for p2 it pays what it has left and voter 3
    /// covers the rest.
    #[test]
    fn a_voter_short_of_money_pays_what_it_has() {
        let p = profile(
            40,
            &[("p1", 27), ("p2", 8), ("p3", 6)],
            vec![
                Ballot::approval([0, 1]),
                Ballot::approval([0, 2]),
                Ballot::approval([0, 2]),
                Ballot::approval([1]),
            ],
        );
        let out = run(&p, &EqualSharesOptions::plain());
        // Round 1: p1, 9 each from the first three (rate 1/3 < p2's 1/2). Round 2: p2 would
        // be 4 each, but voter 0 has 1 left: it pays 1, voter 3 pays 7 (rate 7/8).
        assert_eq!(ids(&p, &out.selected), ["p1", "p2"]);
        assert_eq!(out.ballot_group, vec![0, 1, 1, 2]);
        assert_eq!(
            payments(&out, 1),
            vec![(0, Exact::from(1u64)), (2, Exact::from(7u64))]
        );
        assert_eq!(
            out.projects[2],
            ProjectDecision::NotSelected(Rejection::SupportersRanOut {
                supporters_money_left: Exact::from(2u64)
            })
        );
        assert_eq!(out.total_cost, 35);
    }

    /// The shares are raised until the outcome is exhaustive.
    #[test]
    fn shares_are_raised_until_nothing_fits() {
        let p = profile(
            10,
            &[("a", 6), ("b", 4)],
            vec![Ballot::approval([0, 1]), Ballot::approval([0])],
        );
        assert_eq!(
            ids(&p, &run(&p, &EqualSharesOptions::plain()).selected),
            ["a"]
        );
        let out = run(
            &p,
            &EqualSharesOptions {
                complete_with_greedy: None,
                ..EqualSharesOptions::default()
            },
        );
        // Shares 5 and 6 leave 2 and 3 after a, short of b's 4; at 7 voter 0 pays for b.
        assert_eq!(ids(&p, &out.selected), ["a", "b"]);
        assert_eq!(out.increments, 2);
        assert_eq!(out.runs, 3);
        assert_eq!(out.voter_share, Exact::from(7u64));
        assert_eq!(payments(&out, 1), vec![(0, Exact::from(4u64))]);
        // A larger increment overshoots less often but decides at a coarser share.
        let coarse = run(
            &p,
            &EqualSharesOptions {
                voter_budget_increment: Exact::from(3u64),
                complete_with_greedy: None,
                ..EqualSharesOptions::default()
            },
        );
        assert_eq!(coarse.voter_share, Exact::from(8u64));
        assert_eq!(coarse.runs, 2);
    }

    /// When raising the shares would overspend, the last outcome that fits is kept and the
    /// greedy fill completes it.
    #[test]
    fn raising_stops_before_overspending() {
        let p = profile(
            10,
            &[("a", 6), ("b", 3), ("c", 3)],
            vec![Ballot::approval([0, 1]), Ballot::approval([0, 2])],
        );
        // Share 5: a, then 2 each, short of b and c. Share 6: a, then b and c: 12 > 10.
        let add1e = run(
            &p,
            &EqualSharesOptions {
                complete_with_greedy: None,
                ..EqualSharesOptions::default()
            },
        );
        assert_eq!(ids(&p, &add1e.selected), ["a"]);
        assert_eq!(add1e.increments, 0);
        assert_eq!(add1e.runs, 2);
        let out = run(&p, &EqualSharesOptions::default());
        // b and c tie on votes; "b" wins and fits, c does not.
        assert_eq!(ids(&p, &out.selected), ["a", "b"]);
        assert_eq!(out.projects[1], ProjectDecision::Completion { position: 1 });
        assert_eq!(
            out.projects[2],
            ProjectDecision::NotSelected(Rejection::DidNotFit {
                budget_left: Exact::from(1u64),
                supporters_money_left: Exact::from(2u64),
            })
        );
        let cities = run(&p, &EqualSharesOptions::cities_add1());
        assert_eq!(ids(&p, &cities.selected), ["a"]);
    }

    /// Without the exhaustive stop the shares keep growing while the outcome fits, and the
    /// outcome can change on the way.
    #[test]
    fn cities_add1_goes_past_the_first_exhaustive_outcome() {
        let p = Profile {
            budget: Exact::from(21u64),
            ..profile(
                0,
                &[("p", 11), ("q", 10), ("r", 9)],
                vec![Ballot::approval([0, 2]), Ballot::approval([1])],
            )
        };
        // Share 10.5: p is out of reach; q and r (rate 1 each) are paid in full: 19, and the
        // 2 left cannot buy p, so add1e stops here.
        let add1e = run(
            &p,
            &EqualSharesOptions {
                complete_with_greedy: None,
                ..EqualSharesOptions::default()
            },
        );
        assert_eq!(ids(&p, &add1e.selected), ["q", "r"]);
        assert_eq!(add1e.runs, 1);
        // From share 11.5 on, p ties with q and r at rate 1 and wins by id, leaving voter 0
        // too little for r: {p, q} costs 21. At share 20.5 voter 0 affords r too: 30 > 21.
        let cities = run(&p, &EqualSharesOptions::cities_add1());
        assert_eq!(ids(&p, &cities.selected), ["p", "q"]);
        assert_eq!(cities.increments, 9);
        // Stepping takes 11 runs (shares 10.5 to 20.5). After four runs in a row selecting
        // {p, q} (shares 12.5 to 15.5), the completion jumps to 20.5, where voter 0 affords r:
        // 6 runs, then the one at 20.5.
        assert_eq!(cities.runs, 7);
        assert_eq!(cities.voter_share, Exact::ratio(39, 2));
    }

    /// The 200-byte file that stalled the server: a budget of 3,000,000 € (in cents, raised by
    /// a euro per step, as rounds do) and a project costing nearly all of it, wanted by one of
    /// two voters. Stepping, its supporter's share reaches the cost after about 1.5 million
    /// runs; the completion jumps to the share where the outcome changes instead, and comes
    /// to pabutools' outcome in a handful of runs.
    #[test]
    fn a_project_costing_nearly_the_whole_budget_is_reached_in_few_runs() {
        let budget = 300_000_000;
        let p = profile(
            budget,
            &[("big", budget - 100), ("small", 100)],
            vec![Ballot::approval([0]), Ballot::approval([1])],
        );
        let options = EqualSharesOptions {
            voter_budget_increment: Exact::from(100u64),
            ..EqualSharesOptions::default()
        };
        let out = run(&p, &options);
        assert_eq!(ids(&p, &out.selected), ["big", "small"]);
        // The first share that pays for "big": 150,000,000 + k × 100 ≥ 299,999,900.
        assert_eq!(out.increments, 1_499_999);
        assert_eq!(out.voter_share, Exact::from(299_999_900u64));
        assert!(
            out.runs <= 2 * u64::from(JUMP_AFTER) + 2,
            "{} runs",
            out.runs
        );
        // The same file scaled down a thousandfold, stepped through like pabutools.
        let small = profile(
            300_000,
            &[("big", 299_900), ("small", 100)],
            vec![Ballot::approval([0]), Ballot::approval([1])],
        );
        assert_eq!(run(&small, &options).selected, naive(&small, &options));
    }

    /// A profile too large to jump (600 distinct ballots) that would need millions of runs is
    /// refused after a bounded number of them, never counted for ever.
    #[test]
    fn a_count_that_would_need_too_many_runs_is_refused() {
        let budget = 300_000_000;
        let mut ballots = vec![Ballot::points([(0, 1)])];
        ballots.extend((1..=600).map(|points| Ballot::points([(1, points)])));
        let p = profile(budget, &[("big", budget - 100), ("small", 100)], ballots);
        let options = EqualSharesOptions {
            satisfaction: Satisfaction::Utility,
            voter_budget_increment: Exact::from(100u64),
            ..EqualSharesOptions::default()
        };
        assert_eq!(
            equal_shares(&p, &options),
            Err(ProfileError::TooManySteps { limit: MAX_RUNS })
        );
    }

    #[test]
    fn ties_go_to_the_smaller_id_as_a_string() {
        let p = profile(
            10,
            &[("2", 10), ("10", 10)],
            vec![Ballot::approval([0]), Ballot::approval([1])],
        );
        let out = run(&p, &EqualSharesOptions::plain());
        assert!(out.selected.is_empty(), "each alone has only 5");
        let p = profile(10, &[("2", 10), ("10", 10)], vec![Ballot::approval([0, 1])]);
        assert_eq!(
            ids(&p, &run(&p, &EqualSharesOptions::plain()).selected),
            ["10"]
        );
        let cheap_first = EqualSharesOptions {
            tie_break: TieBreak::CostThenVotes { order: vec![0, 1] },
            ..EqualSharesOptions::plain()
        };
        assert_eq!(ids(&p, &run(&p, &cheap_first).selected), ["2"]);
    }

    #[test]
    fn special_projects() {
        let p = profile(
            10,
            &[("free", 0), ("huge", 11), ("nobody", 2), ("x", 4)],
            vec![Ballot::approval([0, 1, 3]).times(2)],
        );
        let out = run(&p, &EqualSharesOptions::default());
        // Cost satisfaction values a free project at 0, so the greedy fill takes it, after
        // x; "nobody" fits in the fill too.
        assert_eq!(ids(&p, &out.selected), ["x", "free", "nobody"]);
        assert_eq!(
            out.projects[1],
            ProjectDecision::NotSelected(Rejection::CostsMoreThanBudget)
        );
        let plain = run(&p, &EqualSharesOptions::plain());
        assert_eq!(
            plain.projects[2],
            ProjectDecision::NotSelected(Rejection::NoSupporters)
        );
        // Valued per project (cardinality), the free project is taken before round 1.
        let card = run(
            &p,
            &EqualSharesOptions {
                satisfaction: Satisfaction::Cardinality,
                ..EqualSharesOptions::plain()
            },
        );
        assert_eq!(ids(&p, &card.selected), ["free", "x"]);
        assert!(matches!(
            card.projects[0],
            ProjectDecision::EqualShares { round: 0, .. }
        ));
    }

    #[test]
    fn no_voters() {
        let p = profile(7, &[("b", 4), ("a", 4), ("c", 3)], vec![]);
        let out = run(&p, &EqualSharesOptions::default());
        assert_eq!(out.voter_share, Exact::zero());
        assert_eq!(out.runs, 0);
        // Only the greedy fill decides: all score 0, so by id.
        assert_eq!(ids(&p, &out.selected), ["a", "c"]);
        assert!(run(&p, &EqualSharesOptions::plain()).selected.is_empty());
    }

    #[test]
    fn points_pay_in_proportion() {
        // Cumulative points as utility: voter 0 gives x 3 points, voter 1 gives 1 point.
        let p = profile(
            8,
            &[("x", 8)],
            vec![Ballot::points([(0, 3)]), Ballot::points([(0, 1)])],
        );
        let options = EqualSharesOptions {
            satisfaction: Satisfaction::Utility,
            ..EqualSharesOptions::plain()
        };
        // Shares of 4: rate 8 / 4 = 2 per point would be 6 and 2; voter 0 has 4, pays 4,
        // voter 1 pays the remaining 4 (rate 4 per point, capped).
        let out = run(&p, &options);
        assert_eq!(
            payments(&out, 0),
            vec![(0, Exact::from(4u64)), (1, Exact::from(4u64))]
        );
        let zero_step = EqualSharesOptions {
            increase: BudgetIncrease::UntilExhaustive,
            voter_budget_increment: Exact::zero(),
            ..options
        };
        assert_eq!(
            equal_shares(&p, &zero_step),
            Err(ProfileError::BadIncrement)
        );
    }

    // ---- An independent, plain implementation to compare against ----

    /// Per voter (multiplicities expanded), every satisfaction as pabutools defines it.
    fn naive_sats(p: &Profile, sat: Satisfaction) -> Vec<Vec<(usize, u64)>> {
        let mut voters = Vec::new();
        for b in &p.ballots {
            let list: Vec<(usize, u64)> = match (&b.choice, sat) {
                (Choice::Approval(v), Satisfaction::Cardinality) => {
                    v.iter().map(|&x| (x, 1)).collect()
                }
                (Choice::Approval(v), _) => v.iter().map(|&x| (x, p.projects[x].cost)).collect(),
                (Choice::Points(v), Satisfaction::Cardinality) => {
                    v.iter().map(|&(x, _)| (x, 1)).collect()
                }
                (Choice::Points(v), Satisfaction::Cost) => {
                    v.iter().map(|&(x, _)| (x, p.projects[x].cost)).collect()
                }
                (Choice::Points(v), Satisfaction::Utility) => v.clone(),
                (Choice::Ranking(_), _) => unreachable!("not generated"),
            };
            for _ in 0..b.multiplicity {
                voters.push(list.iter().copied().filter(|&(_, s)| s > 0).collect());
            }
        }
        voters
    }

    /// One run of equal shares, written like pabutools' `naive_mes`.
    fn naive_run(
        p: &Profile,
        sats: &[Vec<(usize, u64)>],
        ranks: &[usize],
        share: &Exact,
    ) -> Vec<usize> {
        let n = p.projects.len();
        let mut budget = vec![share.clone(); sats.len()];
        let supporters: Vec<Vec<(usize, u64)>> = (0..n)
            .map(|j| {
                sats.iter()
                    .enumerate()
                    .filter_map(|(i, l)| l.iter().find(|&&(x, _)| x == j).map(|&(_, s)| (i, s)))
                    .collect()
            })
            .collect();
        let mut free: Vec<usize> = (0..n)
            .filter(|&j| p.projects[j].cost == 0 && !supporters[j].is_empty())
            .collect();
        free.sort_by_key(|&j| ranks[j]);
        let mut selected = free;
        let mut remaining: Vec<usize> = (0..n)
            .filter(|&j| p.projects[j].cost > 0 && !supporters[j].is_empty())
            .collect();
        loop {
            let mut best: Option<(Exact, usize)> = None;
            for &j in &remaining {
                let cost = Exact::from(p.projects[j].cost);
                let total = supporters[j]
                    .iter()
                    .fold(Exact::zero(), |a, &(i, _)| a.add(&budget[i]));
                if total < cost {
                    continue;
                }
                let mut sup = supporters[j].clone();
                sup.sort_by(|a, b| budget[a.0].div_int(a.1).cmp(&budget[b.0].div_int(b.1)));
                let mut paid = Exact::zero();
                let mut denom: u64 = sup.iter().map(|&(_, s)| s).sum();
                let mut rate = None;
                for &(i, s) in &sup {
                    let r = cost.sub(&paid).div_int(denom);
                    if r.mul_int(s) <= budget[i] {
                        rate = Some(r);
                        break;
                    }
                    paid = paid.add(&budget[i]);
                    denom -= s;
                }
                let Some(rate) = rate else { continue };
                let better = match &best {
                    None => true,
                    Some((b, bj)) => rate < *b || (rate == *b && ranks[j] < ranks[*bj]),
                };
                if better {
                    best = Some((rate, j));
                }
            }
            let Some((rate, j)) = best else { break };
            for &(i, s) in &supporters[j] {
                let due = rate.mul_int(s);
                budget[i] = if due >= budget[i] {
                    Exact::zero()
                } else {
                    budget[i].sub(&due)
                };
            }
            selected.push(j);
            remaining.retain(|&x| x != j);
        }
        selected
    }

    /// The whole rule, written like pabutools' loops.
    fn naive(p: &Profile, o: &EqualSharesOptions) -> Vec<usize> {
        let sats = naive_sats(p, o.satisfaction);
        let grouped = Grouped::new(p, o.satisfaction);
        let ranks = o.tie_break.ranks(p, &grouped).expect("valid order");
        let n = sats.len() as u64;
        let cost = |sel: &[usize]| sel.iter().map(|&j| p.projects[j].cost).sum::<u64>();
        let mut outcome = Vec::new();
        if n > 0 {
            let mes_projects: Vec<usize> = (0..p.projects.len())
                .filter(|&j| {
                    p.projects[j].cost > 0 && sats.iter().any(|l| l.iter().any(|&(x, _)| x == j))
                })
                .collect();
            let mut previous: Vec<usize> = Vec::new();
            let mut k = 0u64;
            loop {
                let share = p
                    .budget
                    .div_int(n)
                    .add(&o.voter_budget_increment.mul_int(k));
                let sel = naive_run(p, &sats, &ranks, &share);
                if o.increase == BudgetIncrease::None {
                    outcome = sel;
                    break;
                }
                if Exact::from(cost(&sel)) > p.budget {
                    outcome = previous;
                    break;
                }
                let left = p.budget.sub(&Exact::from(cost(&sel)));
                let exhaustive = !mes_projects
                    .iter()
                    .any(|j| !sel.contains(j) && Exact::from(p.projects[*j].cost) <= left);
                let all = mes_projects.iter().all(|j| sel.contains(j));
                if (o.increase == BudgetIncrease::UntilExhaustive && exhaustive)
                    || (o.increase == BudgetIncrease::WhileWithinBudget && all)
                {
                    outcome = sel;
                    break;
                }
                previous = sel;
                k += 1;
            }
        }
        if let Some(gsat) = o.complete_with_greedy {
            let g = Grouped::new(p, gsat);
            let (total, _) = g.totals(p.projects.len());
            let mut rest: Vec<usize> = (0..p.projects.len())
                .filter(|j| !outcome.contains(j))
                .collect();
            let density = |j: usize| -> (u8, Exact) {
                match (total[j], p.projects[j].cost) {
                    (0, _) => (0, Exact::zero()),
                    (_, 0) => (2, Exact::zero()),
                    (t, c) => (1, Exact::ratio(t, c)),
                }
            };
            rest.sort_by(|&a, &b| density(b).cmp(&density(a)).then(ranks[a].cmp(&ranks[b])));
            let mut left = p.budget.sub(&Exact::from(cost(&outcome)));
            for j in rest {
                let c = Exact::from(p.projects[j].cost);
                if c <= left {
                    left = left.sub(&c);
                    outcome.push(j);
                }
            }
        }
        outcome
    }

    const IDS: [&str; 6] = ["7", "10", "2", "b", "a1", "1"];

    fn arb_profile() -> impl Strategy<Value = Profile> {
        (1usize..=6, any::<bool>()).prop_flat_map(|(np, points)| {
            let projects = proptest::collection::vec(0u64..25, np);
            let ballot = (proptest::collection::vec(0u64..4, np), 1u64..=3);
            let ballots = proptest::collection::vec(ballot, 0..7);
            (projects, ballots, 0u64..120, 1u64..=4).prop_map(
                move |(costs, ballots, budget, den)| Profile {
                    budget: Exact::ratio(budget, den),
                    projects: costs
                        .iter()
                        .enumerate()
                        .map(|(i, &cost)| ProjectInput {
                            id: IDS[i].to_string(),
                            cost,
                        })
                        .collect(),
                    ballots: ballots
                        .into_iter()
                        .map(|(marks, multiplicity)| Ballot {
                            choice: if points {
                                Choice::Points(
                                    marks
                                        .iter()
                                        .enumerate()
                                        .filter(|(_, m)| **m > 0)
                                        .map(|(i, &m)| (i, m - 1))
                                        .collect(),
                                )
                            } else {
                                Choice::Approval(
                                    marks
                                        .iter()
                                        .enumerate()
                                        .filter(|(_, m)| **m >= 2)
                                        .map(|(i, _)| i)
                                        .collect(),
                                )
                            },
                            multiplicity,
                        })
                        .collect(),
                },
            )
        })
    }

    /// Like [`arb_profile`], with budgets and costs far above the increment, so that the
    /// completion needs many steps and jumps over most of them.
    fn arb_wide_profile() -> impl Strategy<Value = Profile> {
        (arb_profile(), 1u64..=60, 0u64..600).prop_map(|(mut p, factor, extra)| {
            for project in &mut p.projects {
                project.cost *= factor;
            }
            p.budget = p.budget.mul_int(factor).add(&Exact::from(extra));
            p
        })
    }

    fn variants() -> Vec<EqualSharesOptions> {
        let mut out = Vec::new();
        for satisfaction in [
            Satisfaction::Cost,
            Satisfaction::Cardinality,
            Satisfaction::Utility,
        ] {
            for increase in [
                BudgetIncrease::None,
                BudgetIncrease::UntilExhaustive,
                BudgetIncrease::WhileWithinBudget,
            ] {
                for complete_with_greedy in [None, Some(Satisfaction::Cost)] {
                    out.push(EqualSharesOptions {
                        satisfaction,
                        increase,
                        complete_with_greedy,
                        ..EqualSharesOptions::default()
                    });
                }
            }
        }
        out.push(EqualSharesOptions {
            voter_budget_increment: Exact::ratio(5, 2),
            tie_break: TieBreak::CostThenVotes {
                order: vec![5, 4, 3, 2, 1, 0],
            },
            ..EqualSharesOptions::default()
        });
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        #[test]
        fn matches_the_plain_implementation(p in arb_profile()) {
            for mut o in variants() {
                if let TieBreak::CostThenVotes { order } = &mut o.tie_break {
                    order.retain(|&i| i < p.projects.len());
                }
                let fast = run(&p, &o);
                prop_assert_eq!(&fast.selected, &naive(&p, &o), "options {:?}", o);
            }
        }

        #[test]
        fn outcomes_fit_and_payments_add_up(p in arb_profile()) {
            for o in variants().into_iter().filter(|o| matches!(o.tie_break, TieBreak::ProjectId)) {
                let out = run(&p, &o);
                let cost: u128 = out.selected.iter().map(|&j| u128::from(p.projects[j].cost)).sum();
                prop_assert_eq!(cost, out.total_cost);
                prop_assert!(Exact::from(cost) <= p.budget, "over budget: {:?}", o);
                let mut spent = vec![Exact::zero(); out.groups.len()];
                for (j, d) in out.projects.iter().enumerate() {
                    if let ProjectDecision::EqualShares { payments, rate, .. } = d {
                        // Everybody paid the rate × satisfaction, or all they had; together
                        // exactly the cost.
                        let mut sum = Exact::zero();
                        for pay in payments {
                            sum = sum.add(&pay.per_voter.mul_int(out.groups[pay.group].voters));
                            spent[pay.group] = spent[pay.group].add(&pay.per_voter);
                            prop_assert!(!pay.per_voter.is_negative());
                        }
                        prop_assert_eq!(sum, Exact::from(p.projects[j].cost));
                        prop_assert!(!rate.is_negative());
                    }
                }
                for (g, group) in out.groups.iter().enumerate() {
                    // Nobody pays more than the share, and what is left is the rest.
                    prop_assert!(spent[g] <= out.voter_share);
                    if out.voters > 0 {
                        prop_assert_eq!(&group.money_left, &out.voter_share.sub(&spent[g]));
                    }
                }
            }
        }

        #[test]
        fn jumps_match_stepping_on_wide_budgets(p in arb_wide_profile()) {
            for o in [
                EqualSharesOptions::default(),
                EqualSharesOptions::cities_add1(),
                EqualSharesOptions {
                    satisfaction: Satisfaction::Cardinality,
                    ..EqualSharesOptions::default()
                },
                EqualSharesOptions {
                    satisfaction: Satisfaction::Utility,
                    voter_budget_increment: Exact::ratio(7, 3),
                    ..EqualSharesOptions::default()
                },
            ] {
                let fast = run(&p, &o);
                prop_assert_eq!(&fast.selected, &naive(&p, &o), "options {:?}", o);
            }
        }

        #[test]
        fn engine_runs_match_at_any_share(p in arb_profile(), extra in 0u64..40, sat in 0usize..3) {
            let sat = [Satisfaction::Cost, Satisfaction::Cardinality, Satisfaction::Utility][sat];
            let grouped = Grouped::new(&p, sat);
            let ranks = TieBreak::ProjectId.ranks(&p, &grouped).expect("ranks");
            let engine = Engine::new(&p, &grouped, ranks.clone());
            let share = Exact::ratio(extra * 7 + 1, 3);
            let mut fast = engine.free.clone();
            fast.extend(engine.run(&share, false).selected);
            let recorded = engine.run(&share, true);
            prop_assert_eq!(&recorded.selected[..], &fast[engine.free.len()..]);
            let sats = naive_sats(&p, sat);
            prop_assert_eq!(fast, naive_run(&p, &sats, &ranks, &share));
        }
    }
}
