//! Tallying a Pabulib file with a named rule: what `allmende tally FILE.pb --rule ...` runs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::equal_shares::{EqualSharesOptions, equal_shares};
use super::exact::Exact;
use super::greedy::{GreedyOptions, greedy};
use super::pabulib::{self, ConversionError, Election, ParseError};
use super::profile::{Profile, ProfileError, Satisfaction};

/// A rule the CLI can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `equal-shares`: equal shares with the ballots' utility (cost for approval, points for
    /// cumulative and scoring, Borda for rankings), shares raised by 1 currency unit per voter
    /// until exhaustive, then greedy by votes. pabutools:
    /// `completion_by_rule_combination(inst, mp, [method_of_equal_shares,
    /// greedy_utilitarian_welfare], [{"sat_class": <utility>, "voter_budget_increment": 1},
    /// {"sat_class": Cost_Sat}])`; reference key `mes_util_sat_add1e_then_greedy_cost`.
    EqualShares,
    /// `greedy`: by number of votes (cost satisfaction), each project taken if it fits.
    /// pabutools: `greedy_utilitarian_welfare(inst, prof, sat_class=Cost_Sat)`; reference key
    /// `greedy_cost_sat`.
    Greedy,
}

impl Rule {
    /// Every rule, in the order the CLI lists them.
    pub const ALL: [Rule; 2] = [Rule::EqualShares, Rule::Greedy];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::EqualShares => "equal-shares",
            Rule::Greedy => "greedy",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule name that is not one of [`Rule::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule {0:?} (expected equal-shares or greedy)")]
pub struct UnknownRule(pub String);

impl FromStr for Rule {
    type Err = UnknownRule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRule(s.to_string()))
    }
}

/// The result of tallying one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyReport {
    /// The rule that ran.
    pub rule: Rule,
    /// Ids of the selected projects, sorted as strings (the reference outcome is a set).
    pub selected: Vec<String>,
    /// The same ids in selection order.
    pub selected_in_order: Vec<String>,
    /// Sum of their costs.
    pub total_cost: u128,
    /// The budget.
    pub budget: Exact,
    /// Number of projects in the file.
    pub projects: usize,
    /// Number of voters in the file.
    pub voters: u64,
    /// Time the rule took (reading and parsing the file not included).
    pub elapsed: Duration,
}

impl TallyReport {
    /// One line for stderr: rule, counts, cost, budget and time.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} of {} projects selected, cost {} of budget {}, {} voters, {:.3} s",
            self.rule,
            self.selected.len(),
            self.projects,
            self.total_cost,
            pabulib::format_number(&self.budget),
            self.voters,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Why a file could not be tallied.
#[derive(Debug, thiserror::Error)]
pub enum TallyError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid Pabulib.
    #[error("{}:{}: {}", path.display(), source.line, source.message)]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line and message.
        source: ParseError,
    },
    /// The ballots cannot be used by the rules.
    #[error(transparent)]
    Conversion(#[from] ConversionError),
    /// The election cannot be tallied.
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

/// Reads, parses and tallies a `.pb` file.
pub fn tally_file(path: &Path, rule: Rule) -> Result<TallyReport, TallyError> {
    let text = std::fs::read_to_string(path).map_err(|source| TallyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let election = pabulib::parse(&text).map_err(|source| TallyError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    tally(&election, rule)
}

/// Tallies a parsed election.
pub fn tally(election: &Election, rule: Rule) -> Result<TallyReport, TallyError> {
    let profile = Profile::try_from(election)?;
    let start = Instant::now();
    let (order, total_cost) = match rule {
        Rule::EqualShares => {
            let options = EqualSharesOptions {
                satisfaction: Satisfaction::Utility,
                ..EqualSharesOptions::default()
            };
            let out = equal_shares(&profile, &options)?;
            (out.selected, out.total_cost)
        }
        Rule::Greedy => {
            let out = greedy(&profile, &GreedyOptions::default())?;
            (out.selected, out.total_cost)
        }
    };
    let elapsed = start.elapsed();
    let selected_in_order: Vec<String> = order
        .iter()
        .map(|&p| profile.projects[p].id.clone())
        .collect();
    let mut selected = selected_in_order.clone();
    selected.sort();
    Ok(TallyReport {
        rule,
        selected,
        selected_in_order,
        total_cost,
        budget: profile.budget.clone(),
        projects: profile.projects.len(),
        voters: profile.voters(),
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names() {
        assert_eq!("equal-shares".parse(), Ok(Rule::EqualShares));
        assert_eq!("greedy".parse(), Ok(Rule::Greedy));
        assert!("mes".parse::<Rule>().is_err());
        for r in Rule::ALL {
            assert_eq!(r.to_string().parse(), Ok(r));
        }
    }

    #[test]
    fn tallies_a_small_file() {
        let text = "META\nkey;value\nbudget;10\nvote_type;approval\nPROJECTS\nproject_id;cost\na;6\nb;5\nc;4\nVOTES\nvoter_id;vote\n1;a\n2;a\n3;b,c\n";
        let election = pabulib::parse(text).expect("valid");
        let g = tally(&election, Rule::Greedy).expect("tallies");
        assert_eq!(g.selected, ["a", "c"]);
        assert_eq!(g.total_cost, 10);
        assert!(
            g.summary()
                .starts_with("greedy: 2 of 3 projects selected, cost 10 of budget 10")
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.pb");
        std::fs::write(&path, text.replace("b,c", "b,zz")).expect("write");
        let e = tally_file(&path, Rule::EqualShares).expect_err("unknown project");
        assert!(
            e.to_string()
                .ends_with("x.pb:14: voter \"3\" votes for unknown project \"zz\""),
            "{e}"
        );
        let e = tally_file(&dir.path().join("missing.pb"), Rule::Greedy).expect_err("no file");
        assert!(matches!(e, TallyError::Io { .. }));
    }
}
