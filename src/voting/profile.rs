//! The rules' input, independent of any file format or database: a budget, projects with
//! costs, and ballots with multiplicities.
//!
//! The web app builds a [`Profile`] from its database (one ballot per member organisation,
//! costs in cents); the CLI builds one from a Pabulib file (`From<&Election>`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::exact::Exact;

/// A project the voters could fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInput {
    /// Unique id. Ties are broken by comparing ids as strings (`"10"` before `"2"`).
    pub id: String,
    /// Cost in the profile's money unit (cents for the web app, the file's currency in `.pb`).
    pub cost: u64,
}

/// What a ballot says. Projects are indices into [`Profile::projects`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// The set of approved projects (order irrelevant).
    Approval(Vec<usize>),
    /// Points given to projects (cumulative or scoring ballots). Listed with 0 points still
    /// counts as "on the ballot" for cost satisfaction.
    Points(Vec<(usize, u64)>),
    /// Projects in order of preference, most preferred first; unlisted ones rank below all.
    Ranking(Vec<usize>),
}

/// A ballot cast by `multiplicity` voters (one organisation each in the web app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    /// What the voters chose.
    pub choice: Choice,
    /// How many voters cast exactly this ballot; each gets an equal share of the budget.
    pub multiplicity: u64,
}

impl Ballot {
    /// An approval ballot of one voter.
    pub fn approval(projects: impl IntoIterator<Item = usize>) -> Self {
        Ballot {
            choice: Choice::Approval(projects.into_iter().collect()),
            multiplicity: 1,
        }
    }

    /// A points ballot of one voter.
    pub fn points(points: impl IntoIterator<Item = (usize, u64)>) -> Self {
        Ballot {
            choice: Choice::Points(points.into_iter().collect()),
            multiplicity: 1,
        }
    }

    /// A ranking of one voter, most preferred first.
    pub fn ranking(projects: impl IntoIterator<Item = usize>) -> Self {
        Ballot {
            choice: Choice::Ranking(projects.into_iter().collect()),
            multiplicity: 1,
        }
    }

    /// The same ballot cast by `multiplicity` voters.
    pub fn times(mut self, multiplicity: u64) -> Self {
        self.multiplicity = multiplicity;
        self
    }
}

/// A participatory-budgeting election: the input of the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The money to distribute, in the same unit as the costs (exact; may be fractional when
    /// read from a file, e.g. `1331751.11`).
    pub budget: Exact,
    /// The projects.
    pub projects: Vec<ProjectInput>,
    /// The ballots. Identical ballots may be listed once with a multiplicity or repeatedly.
    pub ballots: Vec<Ballot>,
}

/// How much a voter values a project on their ballot (pabutools' satisfaction classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    /// `Cost_Sat`: a project on the ballot is worth its cost. The default, and what the
    /// cities' equal shares uses with approval ballots.
    #[default]
    Cost,
    /// `Cardinality_Sat`: every project on the ballot is worth 1.
    Cardinality,
    /// The ballot's own utility: points for points ballots (`Additive_Cardinal_Sat`), the Borda
    /// score for rankings (`Additive_Borda_Sat`: length − position − 1, so the last listed
    /// project is worth 0) and, for approval ballots, the cost (as `Cost`).
    Utility,
}

/// Why a [`Profile`] cannot be tallied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Two projects share an id.
    #[error("project id {0:?} appears twice")]
    DuplicateProject(String),
    /// A ballot names a project index that does not exist.
    #[error("ballot {ballot} names project index {project}, but there are only {count} projects")]
    UnknownProject {
        /// Index of the ballot.
        ballot: usize,
        /// The bad project index.
        project: usize,
        /// Number of projects.
        count: usize,
    },
    /// A ballot lists the same project twice.
    #[error("ballot {ballot} lists project {project:?} twice")]
    RepeatedProject {
        /// Index of the ballot.
        ballot: usize,
        /// Id of the repeated project.
        project: String,
    },
    /// A ballot with multiplicity 0.
    #[error("ballot {0} has multiplicity 0")]
    ZeroMultiplicity(usize),
    /// The budget is negative.
    #[error("the budget {0} is negative")]
    NegativeBudget(Exact),
    /// Numbers so large that the exact arithmetic's bounds are not guaranteed.
    #[error("{0} is too large (voters at most 2^40 in total, costs and points at most 2^62)")]
    TooLarge(String),
    /// A tie-breaking order that is not a permutation of the projects.
    #[error("the tie-breaking order must list every project index exactly once")]
    BadTieOrder,
    /// The budget increment of equal shares' completion is zero or negative.
    #[error("the voter budget increment must be positive")]
    BadIncrement,
    /// Equal shares' completion would need more runs than the bound allows (pabutools would
    /// step through them one increment at a time; no upload may keep a server busy that long).
    #[error("counting would need more than {limit} runs of equal shares")]
    TooManySteps {
        /// The most runs one count computes.
        limit: u64,
    },
}

const MAX_VOTERS: u64 = 1 << 40;
const MAX_AMOUNT: u64 = 1 << 62;

impl Profile {
    /// The number of voters: the sum of the multiplicities.
    pub fn voters(&self) -> u64 {
        self.ballots.iter().map(|b| b.multiplicity).sum()
    }

    /// The number of distinct ballots (identical ones counted once), which is what the
    /// rules' running time depends on.
    pub fn distinct_ballots(&self) -> usize {
        Grouped::new(self, Satisfaction::Cardinality).len()
    }

    /// Checks ids, indices, multiplicities and size limits.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.budget.is_negative() {
            return Err(ProfileError::NegativeBudget(self.budget.clone()));
        }
        let mut ids = HashMap::new();
        for p in &self.projects {
            if ids.insert(p.id.as_str(), ()).is_some() {
                return Err(ProfileError::DuplicateProject(p.id.clone()));
            }
            if p.cost > MAX_AMOUNT {
                return Err(ProfileError::TooLarge(format!("the cost of {:?}", p.id)));
            }
        }
        // Ballot groups and projects are indexed with u32 inside the rules.
        if self.ballots.len() > u32::MAX as usize || self.projects.len() > u32::MAX as usize {
            return Err(ProfileError::TooLarge(
                "the number of ballots or projects".into(),
            ));
        }
        let count = self.projects.len();
        let mut voters: u64 = 0;
        let mut seen = vec![usize::MAX; count];
        for (bi, ballot) in self.ballots.iter().enumerate() {
            if ballot.multiplicity == 0 {
                return Err(ProfileError::ZeroMultiplicity(bi));
            }
            voters = voters.saturating_add(ballot.multiplicity);
            if voters > MAX_VOTERS {
                return Err(ProfileError::TooLarge("the number of voters".into()));
            }
            for (project, points) in listed(&ballot.choice) {
                if project >= count {
                    return Err(ProfileError::UnknownProject {
                        ballot: bi,
                        project,
                        count,
                    });
                }
                if seen[project] == bi {
                    return Err(ProfileError::RepeatedProject {
                        ballot: bi,
                        project: self.projects[project].id.clone(),
                    });
                }
                seen[project] = bi;
                if points > MAX_AMOUNT {
                    return Err(ProfileError::TooLarge(format!("points in ballot {bi}")));
                }
            }
        }
        Ok(())
    }
}

/// The projects a choice lists, with their points (0 for approval and rankings).
fn listed(choice: &Choice) -> Box<dyn Iterator<Item = (usize, u64)> + '_> {
    match choice {
        Choice::Approval(v) | Choice::Ranking(v) => Box::new(v.iter().map(|&p| (p, 0))),
        Choice::Points(v) => Box::new(v.iter().copied()),
    }
}

/// Identical ballots merged (pabutools' multiprofile), with each voter's satisfaction.
#[derive(Debug, Clone)]
pub(crate) struct Grouped {
    /// Per group: the number of voters.
    pub multiplicity: Vec<u64>,
    /// Per group: the input ballots merged into it.
    pub members: Vec<Vec<usize>>,
    /// Per group: the projects on the ballot with a positive satisfaction, and that value.
    pub sat: Vec<Vec<(usize, u64)>>,
    /// Per group: every project listed on the ballot (satisfaction or not).
    pub listed: Vec<Vec<usize>>,
    /// Per input ballot: its group.
    pub ballot_group: Vec<usize>,
}

impl Grouped {
    /// Groups identical ballots (in order of first appearance) and evaluates `satisfaction`.
    /// The profile must be valid.
    pub fn new(profile: &Profile, satisfaction: Satisfaction) -> Grouped {
        let mut index: HashMap<Choice, usize> = HashMap::new();
        let mut g = Grouped {
            multiplicity: Vec::new(),
            members: Vec::new(),
            sat: Vec::new(),
            listed: Vec::new(),
            ballot_group: Vec::with_capacity(profile.ballots.len()),
        };
        for (bi, ballot) in profile.ballots.iter().enumerate() {
            let key = normalised(&ballot.choice);
            let gi = match index.get(&key) {
                Some(&gi) => gi,
                None => {
                    let gi = g.multiplicity.len();
                    g.multiplicity.push(0);
                    g.members.push(Vec::new());
                    g.sat.push(satisfactions(profile, &key, satisfaction));
                    g.listed.push(listed(&key).map(|(p, _)| p).collect());
                    index.insert(key, gi);
                    gi
                }
            };
            g.multiplicity[gi] += ballot.multiplicity;
            g.members[gi].push(bi);
            g.ballot_group.push(gi);
        }
        g
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.multiplicity.len()
    }

    /// Per project: the total satisfaction and the number of voters listing it.
    pub fn totals(&self, projects: usize) -> (Vec<u128>, Vec<u64>) {
        let mut total = vec![0u128; projects];
        let mut listed_by = vec![0u64; projects];
        for gi in 0..self.len() {
            let m = self.multiplicity[gi];
            for &(p, s) in &self.sat[gi] {
                total[p] += u128::from(m) * u128::from(s);
            }
            for &p in &self.listed[gi] {
                listed_by[p] += m;
            }
        }
        (total, listed_by)
    }
}

/// The form under which identical ballots compare equal: approval sets and points sorted by
/// project; rankings keep their order.
fn normalised(choice: &Choice) -> Choice {
    match choice {
        Choice::Approval(v) => {
            let mut v = v.clone();
            v.sort_unstable();
            Choice::Approval(v)
        }
        Choice::Points(v) => {
            let mut v = v.clone();
            v.sort_unstable();
            Choice::Points(v)
        }
        Choice::Ranking(v) => Choice::Ranking(v.clone()),
    }
}

fn satisfactions(
    profile: &Profile,
    choice: &Choice,
    satisfaction: Satisfaction,
) -> Vec<(usize, u64)> {
    let cost = |p: usize| profile.projects[p].cost;
    let values: Vec<(usize, u64)> = match (satisfaction, choice) {
        (Satisfaction::Cardinality, c) => listed(c).map(|(p, _)| (p, 1)).collect(),
        (Satisfaction::Cost, c) | (Satisfaction::Utility, c @ Choice::Approval(_)) => {
            listed(c).map(|(p, _)| (p, cost(p))).collect()
        }
        (Satisfaction::Utility, Choice::Points(v)) => v.clone(),
        (Satisfaction::Utility, Choice::Ranking(v)) => {
            let len = v.len() as u64;
            v.iter()
                .enumerate()
                .map(|(pos, &p)| (p, len - pos as u64 - 1))
                .collect()
        }
    };
    // A project worth nothing to the voter does not count as supported (as in pabutools).
    values.into_iter().filter(|&(_, s)| s > 0).collect()
}

/// How ties between projects are broken.
///
/// The default, [`TieBreak::ProjectId`], is pabutools' `lexico_tie_breaking`: the project whose
/// id comes first as a string wins (`"10"` before `"2"`). [`TieBreak::CostThenVotes`] is what
/// equalshares.net does: the cheaper project wins, then the one more voters listed, then the
/// one earlier in an order drawn at random once before counting (the caller draws it and keeps
/// it with the round, so a recount gives the same result).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// Lowest project id as a string wins.
    #[default]
    ProjectId,
    /// Lowest cost, then most voters listing it, then earliest in `order` (a permutation of
    /// the project indices).
    CostThenVotes {
        /// The fixed random order, a permutation of `0..projects.len()`.
        order: Vec<usize>,
    },
}

impl TieBreak {
    /// For each project its rank: the lower rank wins a tie. Ranks are distinct.
    pub(crate) fn ranks(
        &self,
        profile: &Profile,
        grouped: &Grouped,
    ) -> Result<Vec<usize>, ProfileError> {
        let n = profile.projects.len();
        let mut order: Vec<usize> = (0..n).collect();
        match self {
            TieBreak::ProjectId => {
                order.sort_by(|&a, &b| profile.projects[a].id.cmp(&profile.projects[b].id));
            }
            TieBreak::CostThenVotes { order: fixed } => {
                let mut position = vec![usize::MAX; n];
                if fixed.len() != n {
                    return Err(ProfileError::BadTieOrder);
                }
                for (i, &p) in fixed.iter().enumerate() {
                    if p >= n || position[p] != usize::MAX {
                        return Err(ProfileError::BadTieOrder);
                    }
                    position[p] = i;
                }
                let (_, listed_by) = grouped.totals(n);
                order.sort_by(|&a, &b| {
                    profile.projects[a]
                        .cost
                        .cmp(&profile.projects[b].cost)
                        .then(listed_by[b].cmp(&listed_by[a]))
                        .then(position[a].cmp(&position[b]))
                });
            }
        }
        let mut rank = vec![0; n];
        for (r, &p) in order.iter().enumerate() {
            rank[p] = r;
        }
        Ok(rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(ballots: Vec<Ballot>) -> Profile {
        Profile {
            budget: Exact::from(10u64),
            projects: ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(i, id)| ProjectInput {
                    id: id.to_string(),
                    cost: (i as u64 + 1) * 2,
                })
                .collect(),
            ballots,
        }
    }

    #[test]
    fn validation_catches_bad_ballots() {
        assert!(profile(vec![Ballot::approval([0, 2])]).validate().is_ok());
        assert!(matches!(
            profile(vec![Ballot::approval([0, 3])]).validate(),
            Err(ProfileError::UnknownProject { project: 3, .. })
        ));
        assert!(matches!(
            profile(vec![Ballot::approval([1]), Ballot::approval([0, 0])]).validate(),
            Err(ProfileError::RepeatedProject { ballot: 1, .. })
        ));
        assert_eq!(
            profile(vec![Ballot::approval([0]).times(0)]).validate(),
            Err(ProfileError::ZeroMultiplicity(0))
        );
        let mut p = profile(vec![]);
        p.projects[1].id = "a".into();
        assert_eq!(
            p.validate(),
            Err(ProfileError::DuplicateProject("a".into()))
        );
    }

    #[test]
    fn grouping_merges_identical_ballots() {
        let p = profile(vec![
            Ballot::approval([2, 0]),
            Ballot::approval([1]),
            Ballot::approval([0, 2]).times(3),
            Ballot::ranking([0, 1]),
            Ballot::ranking([1, 0]),
        ]);
        let g = Grouped::new(&p, Satisfaction::Utility);
        assert_eq!(g.len(), 4);
        assert_eq!(g.multiplicity, vec![4, 1, 1, 1]);
        assert_eq!(g.members[0], vec![0, 2]);
        assert_eq!(g.ballot_group, vec![0, 1, 0, 2, 3]);
        // Cost satisfaction for approval; Borda for rankings (last place is worth 0).
        assert_eq!(g.sat[0], vec![(0, 2), (2, 6)]);
        assert_eq!(g.sat[2], vec![(0, 1)]);
        let (total, listed_by) = g.totals(3);
        assert_eq!(total, vec![4 * 2 + 1, 4 + 1, 4 * 6]);
        assert_eq!(listed_by, vec![6, 3, 4]);
    }

    #[test]
    fn tie_ranks() {
        let mut p = profile(vec![Ballot::approval([2]), Ballot::approval([2, 1])]);
        p.projects[0].id = "2".into();
        p.projects[1].id = "10".into();
        p.projects[2].id = "1".into();
        let g = Grouped::new(&p, Satisfaction::Cost);
        assert_eq!(TieBreak::ProjectId.ranks(&p, &g), Ok(vec![2, 1, 0]));
        p.projects[2].cost = 2;
        let t = TieBreak::CostThenVotes {
            order: vec![2, 1, 0],
        };
        // Costs 2, 4, 2: project 2 (2 votes) before project 0 (0 votes), then project 1.
        assert_eq!(t.ranks(&p, &g), Ok(vec![1, 2, 0]));
        let bad = TieBreak::CostThenVotes {
            order: vec![0, 0, 1],
        };
        assert_eq!(bad.ranks(&p, &g), Err(ProfileError::BadTieOrder));
    }
}
