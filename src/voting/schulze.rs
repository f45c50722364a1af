//! The Schulze method, for the non-binding priority polls (it ignores costs and is not
//! proportional, so it never decides funding).
//!
//! Ballots rank some or all candidates, possibly with ties; unranked candidates count as tied
//! below every ranked one. The result has the pairwise preferences `d`, the strongest paths
//! `p` and a complete order.

use serde::{Deserialize, Serialize};

/// One ranked ballot: tiers of candidates, best tier first; candidates in a tier are tied;
/// candidates not listed rank below all listed ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankedBallot {
    /// Tiers of candidate indices, most preferred first.
    pub tiers: Vec<Vec<usize>>,
    /// How many voters cast this ballot.
    pub weight: u64,
}

impl RankedBallot {
    /// A strict ranking, best first, of one voter.
    pub fn strict(order: impl IntoIterator<Item = usize>) -> Self {
        RankedBallot {
            tiers: order.into_iter().map(|c| vec![c]).collect(),
            weight: 1,
        }
    }

    /// The same ballot cast by `weight` voters.
    pub fn times(mut self, weight: u64) -> Self {
        self.weight = weight;
        self
    }
}

/// Why a Schulze count cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchulzeError {
    /// A ballot names a candidate that does not exist.
    #[error("ballot {ballot} ranks candidate {candidate}, but there are only {candidates}")]
    UnknownCandidate {
        /// Index of the ballot.
        ballot: usize,
        /// The bad candidate index.
        candidate: usize,
        /// Number of candidates.
        candidates: usize,
    },
    /// A ballot ranks a candidate twice.
    #[error("ballot {ballot} ranks candidate {candidate} twice")]
    RankedTwice {
        /// Index of the ballot.
        ballot: usize,
        /// The candidate.
        candidate: usize,
    },
}

/// The result of a Schulze count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchulzeResult {
    /// `d[i][j]`: how many voters prefer `i` to `j`.
    pub d: Vec<Vec<u64>>,
    /// `p[i][j]`: the strength of the strongest path from `i` to `j` (0 if none).
    pub p: Vec<Vec<u64>>,
    /// Tiers of the Schulze ranking: the first holds the Schulze winners (nobody beats them:
    /// `p[j][i] > p[i][j]` for no `j`); each next tier holds the candidates no remaining one
    /// beats. Candidates in one tier are tied in Schulze's sense (neither beats the other);
    /// each tier is sorted by candidate index.
    pub tiers: Vec<Vec<usize>>,
    /// The complete order: the tiers concatenated, so ties are broken by lower candidate index.
    pub order: Vec<usize>,
}

impl SchulzeResult {
    /// Whether `i` beats `j` (`p[i][j] > p[j][i]`).
    pub fn beats(&self, i: usize, j: usize) -> bool {
        self.p[i][j] > self.p[j][i]
    }
}

/// Counts `ballots` over `candidates` candidates with the Schulze method.
pub fn schulze(candidates: usize, ballots: &[RankedBallot]) -> Result<SchulzeResult, SchulzeError> {
    let n = candidates;
    let mut d = vec![vec![0u64; n]; n];
    // Position of each candidate on the current ballot; unranked = after every tier.
    let mut level = vec![usize::MAX; n];
    for (bi, ballot) in ballots.iter().enumerate() {
        level.iter_mut().for_each(|l| *l = usize::MAX);
        for (t, tier) in ballot.tiers.iter().enumerate() {
            for &c in tier {
                if c >= n {
                    return Err(SchulzeError::UnknownCandidate {
                        ballot: bi,
                        candidate: c,
                        candidates: n,
                    });
                }
                if level[c] != usize::MAX {
                    return Err(SchulzeError::RankedTwice {
                        ballot: bi,
                        candidate: c,
                    });
                }
                level[c] = t;
            }
        }
        for i in 0..n {
            for j in 0..n {
                if level[i] < level[j] {
                    d[i][j] += ballot.weight;
                }
            }
        }
    }
    // Strongest paths (Floyd–Warshall on the widest-path semiring).
    let mut p = vec![vec![0u64; n]; n];
    for i in 0..n {
        for j in 0..n {
            if i != j && d[i][j] > d[j][i] {
                p[i][j] = d[i][j];
            }
        }
    }
    for k in 0..n {
        for i in 0..n {
            if i == k {
                continue;
            }
            for j in 0..n {
                if j == i || j == k {
                    continue;
                }
                let via = p[i][k].min(p[k][j]);
                if via > p[i][j] {
                    p[i][j] = via;
                }
            }
        }
    }
    // "Beats" is transitive (Schulze 2011, §4.1), so peeling off the unbeaten candidates
    // gives a ranking consistent with every pairwise verdict.
    let mut remaining: Vec<usize> = (0..n).collect();
    let mut tiers = Vec::new();
    while !remaining.is_empty() {
        let tier: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&i| !remaining.iter().any(|&j| p[j][i] > p[i][j]))
            .collect();
        // A transitive strict order always has an unbeaten element; guard anyway.
        let tier = if tier.is_empty() {
            remaining.clone()
        } else {
            tier
        };
        remaining.retain(|c| !tier.contains(c));
        tiers.push(tier);
    }
    let order = tiers.iter().flatten().copied().collect();
    Ok(SchulzeResult { d, p, tiers, order })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: usize = 0;
    const B: usize = 1;
    const C: usize = 2;
    const D: usize = 3;
    const E: usize = 4;

    /// The 45-voter example of the Wikipedia article on the Schulze method.
    fn wikipedia() -> Vec<RankedBallot> {
        vec![
            RankedBallot::strict([A, C, B, E, D]).times(5),
            RankedBallot::strict([A, D, E, C, B]).times(5),
            RankedBallot::strict([B, E, D, A, C]).times(8),
            RankedBallot::strict([C, A, B, E, D]).times(3),
            RankedBallot::strict([C, A, E, B, D]).times(7),
            RankedBallot::strict([C, B, A, D, E]).times(2),
            RankedBallot::strict([D, C, E, B, A]).times(7),
            RankedBallot::strict([E, B, A, D, C]).times(8),
        ]
    }

    #[test]
    fn wikipedia_example() {
        let r = schulze(5, &wikipedia()).expect("valid");
        assert_eq!(
            r.d,
            vec![
                vec![0, 20, 26, 30, 22],
                vec![25, 0, 16, 33, 18],
                vec![19, 29, 0, 17, 24],
                vec![15, 12, 28, 0, 14],
                vec![23, 27, 21, 31, 0],
            ]
        );
        assert_eq!(
            r.p,
            vec![
                vec![0, 28, 28, 30, 24],
                vec![25, 0, 28, 33, 24],
                vec![25, 29, 0, 29, 24],
                vec![25, 28, 28, 0, 24],
                vec![25, 28, 28, 31, 0],
            ]
        );
        assert_eq!(r.order, vec![E, A, C, B, D]);
        assert_eq!(r.tiers, vec![vec![E], vec![A], vec![C], vec![B], vec![D]]);
        assert!(r.beats(E, A));
    }

    #[test]
    fn ties_are_reported_and_broken_by_index() {
        // A perfect cycle of three: everybody ties.
        let ballots = vec![
            RankedBallot::strict([A, B, C]),
            RankedBallot::strict([B, C, A]),
            RankedBallot::strict([C, A, B]),
        ];
        let r = schulze(3, &ballots).expect("valid");
        assert_eq!(r.tiers, vec![vec![A, B, C]]);
        assert_eq!(r.order, vec![A, B, C]);
        // Two voters with opposite views.
        let r = schulze(
            2,
            &[RankedBallot::strict([B, A]), RankedBallot::strict([A, B])],
        )
        .expect("valid");
        assert_eq!(r.tiers, vec![vec![A, B]]);
    }

    #[test]
    fn partial_rankings_put_unranked_candidates_last() {
        let ballots = vec![
            RankedBallot::strict([C]).times(3),
            RankedBallot::strict([B, C]),
            RankedBallot {
                tiers: vec![vec![A, B]],
                weight: 1,
            },
        ];
        let r = schulze(4, &ballots).expect("valid");
        // C is preferred to A by 4 (the C-only ballots and B,C), A to C by 1.
        assert_eq!(r.d[C][A], 4);
        assert_eq!(r.d[A][C], 1);
        // Tied within a tier: neither A nor B over the other on the last ballot.
        assert_eq!(r.d[A][B], 0);
        assert_eq!(r.d[B][A], 1);
        // D is never ranked: everybody who ranked anything prefers that to D.
        assert_eq!(r.d[D][A], 0);
        assert_eq!(r.d[C][D], 4);
        // C over B 3 to 2 (B is ranked, C not, on the last ballot).
        assert_eq!((r.d[C][B], r.d[B][C]), (3, 2));
        assert_eq!(r.order, vec![C, B, A, D]);
        assert_eq!(r.tiers.len(), 4);
    }

    #[test]
    fn bad_ballots() {
        assert_eq!(
            schulze(2, &[RankedBallot::strict([0, 2])]),
            Err(SchulzeError::UnknownCandidate {
                ballot: 0,
                candidate: 2,
                candidates: 2
            })
        );
        assert_eq!(
            schulze(2, &[RankedBallot::strict([1, 1])]),
            Err(SchulzeError::RankedTwice {
                ballot: 0,
                candidate: 1
            })
        );
        let empty = schulze(0, &[]).expect("valid");
        assert!(empty.order.is_empty());
    }
}
