//! A proposal's lifecycle in one place: its states, the transitions between them, and who may
//! make each one.
//!
//! ```text
//! draft ──submit──▶ awaiting maintainer ──agree──▶ open for funding ──fund──▶ funded ──start──▶ in progress ──complete──▶ completed
//!   ▲                    │                              │        │                 │                   │
//!   └──return to─────────┘                              │        └─expire─▶ expired│                   │
//!      proposer                                          └──────────cancel─────────┴───────────────────┴──▶ cancelled
//! draft / awaiting maintainer ──withdraw──▶ cancelled
//! ```

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    AwaitingMaintainer,
    Open,
    Funded,
    InProgress,
    Completed,
    Expired,
    Cancelled,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Draft,
        State::AwaitingMaintainer,
        State::Open,
        State::Funded,
        State::InProgress,
        State::Completed,
        State::Expired,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::AwaitingMaintainer => "awaiting_maintainer",
            State::Open => "open",
            State::Funded => "funded",
            State::InProgress => "in_progress",
            State::Completed => "completed",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Milestones and amounts may change only before funding opens.
    pub fn terms_editable(self) -> bool {
        matches!(self, State::Draft | State::AwaitingMaintainer)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The proposer hands the proposal to the project's maintainers.
    Submit,
    /// A maintainer sends it back for changes.
    ReturnToProposer,
    /// The proposer withdraws it, or a maintainer declines it, before it opens.
    Withdraw,
    /// A maintainer agrees to the milestones and amounts; funding opens until the deadline.
    Agree,
    /// The escrow reached the goal.
    Fund,
    /// The maintainer starts the work.
    Start,
    /// The last milestone was released.
    Complete,
    /// The deadline passed without the goal reached.
    Expire,
    /// Cancelled after opening; the escrow goes back to the backers.
    Cancel,
}

impl Transition {
    pub const ALL: [Transition; 9] = [
        Transition::Submit,
        Transition::ReturnToProposer,
        Transition::Withdraw,
        Transition::Agree,
        Transition::Fund,
        Transition::Start,
        Transition::Complete,
        Transition::Expire,
        Transition::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Submit => "submit",
            Transition::ReturnToProposer => "return_to_proposer",
            Transition::Withdraw => "withdraw",
            Transition::Agree => "agree",
            Transition::Fund => "fund",
            Transition::Start => "start",
            Transition::Complete => "complete",
            Transition::Expire => "expire",
            Transition::Cancel => "cancel",
        }
    }

    pub fn parse(text: &str) -> Option<Transition> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// How the actor stands to the proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Who proposed it, or an admin of the organisation that requested it.
    Proposer,
    /// A maintainer of the proposal's project.
    Maintainer,
    Board,
    /// The platform itself (funding reached, deadline passed, last release).
    System,
}

/// Where a transition leads from a state, if it is allowed there at all.
pub fn target(from: State, transition: Transition) -> Option<State> {
    use State::*;
    use Transition::*;
    Some(match (from, transition) {
        (Draft, Submit) => AwaitingMaintainer,
        (AwaitingMaintainer, ReturnToProposer) => Draft,
        (Draft | AwaitingMaintainer, Withdraw) => Cancelled,
        (AwaitingMaintainer, Agree) => Open,
        (Open, Fund) => Funded,
        (Funded, Start) => InProgress,
        (InProgress, Complete) => Completed,
        (Open, Expire) => Expired,
        (Open | Funded | InProgress, Cancel) => Cancelled,
        _ => return None,
    })
}

/// Whether someone in `roles` may make `transition` from `from`.
pub fn may(from: State, transition: Transition, roles: &[Role]) -> bool {
    use Role::*;
    let has = |role: Role| roles.contains(&role);
    match transition {
        Transition::Submit | Transition::Withdraw => has(Proposer) || has(Maintainer),
        Transition::ReturnToProposer | Transition::Agree | Transition::Start => has(Maintainer),
        Transition::Fund | Transition::Complete | Transition::Expire => has(System),
        // The board always; a maintainer only before the work starts.
        Transition::Cancel => has(Board) || (has(Maintainer) && from != State::InProgress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_runs_from_draft_to_completed() {
        let mut state = State::Draft;
        for (transition, by) in [
            (Transition::Submit, Role::Proposer),
            (Transition::Agree, Role::Maintainer),
            (Transition::Fund, Role::System),
            (Transition::Start, Role::Maintainer),
            (Transition::Complete, Role::System),
        ] {
            assert!(may(state, transition, &[by]), "{transition:?} by {by:?}");
            state = target(state, transition).unwrap_or(state);
        }
        assert_eq!(state, State::Completed);
    }

    #[test]
    fn finished_proposals_go_nowhere() {
        for state in [State::Completed, State::Expired, State::Cancelled] {
            for transition in Transition::ALL {
                assert_eq!(target(state, transition), None, "{state:?} {transition:?}");
            }
        }
    }

    #[test]
    fn only_the_board_cancels_work_in_progress() {
        assert!(may(State::InProgress, Transition::Cancel, &[Role::Board]));
        assert!(!may(
            State::InProgress,
            Transition::Cancel,
            &[Role::Maintainer]
        ));
        assert!(may(State::Funded, Transition::Cancel, &[Role::Maintainer]));
        assert!(!may(State::Open, Transition::Cancel, &[Role::Proposer]));
    }

    #[test]
    fn people_cannot_do_what_the_platform_does() {
        for transition in [Transition::Fund, Transition::Expire, Transition::Complete] {
            assert!(!may(
                State::Open,
                transition,
                &[Role::Board, Role::Maintainer, Role::Proposer]
            ));
        }
    }
}
