//! Authorization: the one place that answers "may this person do this to that?". Domain
//! functions call [`authorize`] before they change anything; web handlers never decide it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::{AnyConnection, Row};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformRole {
    Board,
    Treasurer,
    Admin,
}

impl PlatformRole {
    pub const ALL: [PlatformRole; 3] = [
        PlatformRole::Board,
        PlatformRole::Treasurer,
        PlatformRole::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlatformRole::Board => "board",
            PlatformRole::Treasurer => "treasurer",
            PlatformRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Member,
    Admin,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(OrgRole::Admin),
            "member" => Some(OrgRole::Member),
            _ => None,
        }
    }
}

/// Who is asking: nobody (a visitor) or a person with their roles.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Principal {
    pub person_id: Option<String>,
    pub email_verified: bool,
    pub platform_roles: BTreeSet<PlatformRole>,
    /// Organisation id → the person's role in it.
    pub organisations: BTreeMap<String, OrgRole>,
    /// The projects the person maintains.
    pub projects: BTreeSet<String>,
    /// The projects the person maintained at any time, now or earlier (from the maintainer
    /// history): the four-eyes rule keeps them out of those projects' reviews and disputes.
    pub maintained: BTreeSet<String>,
}

impl Principal {
    pub fn visitor() -> Self {
        Self::default()
    }

    pub fn has(&self, role: PlatformRole) -> bool {
        self.platform_roles.contains(&role)
    }

    pub fn role_in(&self, organisation_id: &str) -> Option<OrgRole> {
        self.organisations.get(organisation_id).copied()
    }

    pub fn is_admin_of(&self, organisation_id: &str) -> bool {
        self.role_in(organisation_id) == Some(OrgRole::Admin)
    }

    pub fn maintains(&self, project_id: &str) -> bool {
        self.projects.contains(project_id)
    }

    /// Maintains the project now or maintained it at any time before.
    pub fn maintained(&self, project_id: &str) -> bool {
        self.maintains(project_id) || self.maintained.contains(project_id)
    }

    /// Whether the person is one of `people` (ids).
    fn is_one_of(&self, people: &[String]) -> bool {
        self.person_id
            .as_deref()
            .is_some_and(|me| people.iter().any(|p| p == me))
    }

    /// The actor recorded in the ledger and the audit trail.
    pub fn actor(&self) -> crate::ledger::Actor {
        match &self.person_id {
            Some(id) => crate::ledger::Actor::person(id),
            None => crate::ledger::Actor::system(),
        }
    }
}

/// Everything a person may be allowed or refused to do.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// Set up a new organisation on the platform.
    CreateOrganisation,
    /// See who acts for an organisation and its membership record.
    ViewOrganisationInternals { organisation_id: &'a str },
    /// Edit the organisation, invite people, change roles, remove people.
    ManageOrganisation { organisation_id: &'a str },
    /// Leave an organisation (oneself).
    LeaveOrganisation { organisation_id: &'a str },
    /// Apply for cooperative membership, or give notice of exit, for the organisation.
    ActForOrganisationInCooperative { organisation_id: &'a str },
    /// Admit or reject applications.
    DecideApplications,
    /// The member list and its CSV export.
    ViewMemberList,
    /// Record an exit decided by the board (exclusion, dissolution) and members' dues.
    ManageMembers,
    /// Read the audit log.
    ViewAuditLog,
    /// See the background jobs that failed, with their errors, and hear when one gives up
    /// (the board, which answers for what did not happen, and the platform's admins).
    ViewFailedJobs,
    /// Try a job that gave up again, once its cause is seen to (the same people).
    RetryFailedJobs,
    /// Grant and withdraw the platform roles.
    ManagePlatformRoles,
    /// Add a project to the catalogue (and become its maintainer).
    CreateProject,
    /// Edit a project, invite maintainers, set its payout details, make offers for it.
    MaintainProject { project_id: &'a str },
    /// See a project's payout details (the bank account is personal data).
    ViewPayoutDetails { project_id: &'a str },
    /// Request work on behalf of an organisation.
    RequestForOrganisation { organisation_id: &'a str },
    /// Take part in a proposal's discussion.
    Comment,
    /// Hide comments.
    ModerateComments,
    /// Pay a top-up, shares or dues for an organisation.
    PayForOrganisation { organisation_id: &'a str },
    /// Pledge (and withdraw) the organisation's money to proposals.
    PledgeForOrganisation { organisation_id: &'a str },
    /// See an organisation's payments and receipts.
    ViewPayments { organisation_id: &'a str },
    /// Confirm payments, import bank statements, match entries (the treasurer).
    ManagePayments,
    /// See what is open and what is short (treasurer and board).
    ViewShortfalls,
    /// Review a submitted milestone for a backer: the organisation's admins, or the board for
    /// the pool's share. Four-eyes rule: never whoever submitted the milestone (in any round,
    /// `submitted_by`) nor anyone who maintains the project or maintained it at any time, so
    /// leaving the project before judging one's own work does not help.
    ReviewMilestone {
        organisation_id: Option<&'a str>,
        project_id: &'a str,
        submitted_by: &'a [String],
    },
    /// Decide a milestone's dispute: the board, with the same four-eyes rule as reviews.
    ArbitrateDispute {
        project_id: &'a str,
        submitted_by: &'a [String],
    },
    /// See a proposal before it opens for funding. A draft is its proposer's working copy: its
    /// author, the people of the requesting organisation and the project's maintainers see it,
    /// the board does not. Once submitted to the maintainers (`submitted`: awaiting a
    /// maintainer) the board sees it too. Visitors and the treasurer see it once it is open.
    ViewUnopenedProposal {
        project_id: &'a str,
        organisation_id: Option<&'a str>,
        proposed_by: Option<&'a str>,
        submitted: bool,
    },
    /// Set the fee on releases and the review window (the board).
    SetCooperativeTerms,
    /// Open voting rounds on the pool and import them from Pabulib files (the board).
    ManageRounds,
    /// Cast the organisation's ballot in a voting round or a priority poll (its admins).
    VoteForOrganisation { organisation_id: &'a str },
    /// Start a priority poll: the board, or anyone acting for an organisation (the domain
    /// checks that the organisation is a member of the cooperative).
    StartPoll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("please log in first")]
    NotLoggedIn,
    #[error("please confirm your email address first")]
    EmailNotVerified,
    #[error("not allowed")]
    Forbidden,
}

impl Denied {
    pub fn message_key(self) -> &'static str {
        match self {
            Denied::NotLoggedIn => "error.not_logged_in",
            Denied::EmailNotVerified => "error.email_not_verified",
            Denied::Forbidden => "error.forbidden",
        }
    }
}

/// May `principal` do `action`?
pub fn authorize(principal: &Principal, action: Action<'_>) -> Result<(), Denied> {
    if principal.person_id.is_none() {
        return Err(Denied::NotLoggedIn);
    }
    let board = principal.has(PlatformRole::Board);
    let treasurer = principal.has(PlatformRole::Treasurer);
    let allowed = match action {
        Action::CreateOrganisation | Action::CreateProject | Action::Comment => {
            if !principal.email_verified {
                return Err(Denied::EmailNotVerified);
            }
            true
        }
        Action::MaintainProject { project_id } => principal.maintains(project_id),
        Action::ViewPayoutDetails { project_id } => principal.maintains(project_id) || treasurer,
        Action::RequestForOrganisation { organisation_id } => {
            principal.role_in(organisation_id).is_some()
        }
        Action::ModerateComments => board,
        Action::PayForOrganisation { organisation_id }
        | Action::PledgeForOrganisation { organisation_id } => {
            principal.is_admin_of(organisation_id)
        }
        Action::ViewPayments { organisation_id } => {
            principal.role_in(organisation_id).is_some() || board || treasurer
        }
        Action::ManagePayments => treasurer,
        Action::ViewShortfalls => treasurer || board,
        Action::ViewOrganisationInternals { organisation_id } => {
            principal.role_in(organisation_id).is_some() || board || treasurer
        }
        Action::ManageOrganisation { organisation_id }
        | Action::ActForOrganisationInCooperative { organisation_id } => {
            principal.is_admin_of(organisation_id)
        }
        Action::LeaveOrganisation { organisation_id } => {
            principal.role_in(organisation_id).is_some()
        }
        Action::DecideApplications | Action::ViewAuditLog => board,
        Action::ViewMemberList | Action::ManageMembers => board || treasurer,
        Action::ManagePlatformRoles => principal.has(PlatformRole::Admin),
        Action::ViewFailedJobs | Action::RetryFailedJobs => {
            board || principal.has(PlatformRole::Admin)
        }
        Action::ReviewMilestone {
            organisation_id,
            project_id,
            submitted_by,
        } => {
            !principal.maintained(project_id)
                && !principal.is_one_of(submitted_by)
                && match organisation_id {
                    Some(organisation_id) => principal.is_admin_of(organisation_id),
                    None => board,
                }
        }
        Action::ArbitrateDispute {
            project_id,
            submitted_by,
        } => board && !principal.maintained(project_id) && !principal.is_one_of(submitted_by),
        Action::ViewUnopenedProposal {
            project_id,
            organisation_id,
            proposed_by,
            submitted,
        } => {
            let author = proposed_by.is_some() && proposed_by == principal.person_id.as_deref();
            let requester = organisation_id.is_some_and(|org| principal.role_in(org).is_some());
            author || requester || principal.maintains(project_id) || (submitted && board)
        }
        Action::SetCooperativeTerms => board,
        Action::ManageRounds => board,
        Action::VoteForOrganisation { organisation_id } => principal.is_admin_of(organisation_id),
        Action::StartPoll => board || !principal.organisations.is_empty(),
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied::Forbidden)
    }
}

/// Loads a person's roles.
pub async fn principal_of(
    conn: &mut AnyConnection,
    person_id: &str,
) -> Result<Principal, sqlx::Error> {
    let verified: Option<Option<i64>> =
        sqlx::query_scalar("SELECT email_verified_at FROM people WHERE id = $1")
            .bind(person_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(verified) = verified else {
        return Ok(Principal::visitor());
    };
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT role FROM platform_roles WHERE person_id = $1")
            .bind(person_id)
            .fetch_all(&mut *conn)
            .await?;
    let organisations =
        sqlx::query("SELECT organisation_id, role FROM organisation_people WHERE person_id = $1")
            .bind(person_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|row| {
                let role: String = row.get("role");
                Some((
                    row.get::<String, _>("organisation_id"),
                    OrgRole::parse(&role)?,
                ))
            })
            .collect();
    let projects: Vec<String> =
        sqlx::query_scalar("SELECT project_id FROM project_maintainers WHERE person_id = $1")
            .bind(person_id)
            .fetch_all(&mut *conn)
            .await?;
    let maintained: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT project_id FROM project_maintainer_history WHERE person_id = $1",
    )
    .bind(person_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Principal {
        person_id: Some(person_id.to_owned()),
        email_verified: verified.is_some(),
        platform_roles: roles
            .iter()
            .filter_map(|r| PlatformRole::parse(r))
            .collect(),
        organisations,
        projects: projects.into_iter().collect(),
        maintained: maintained.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(orgs: &[(&str, OrgRole)], roles: &[PlatformRole]) -> Principal {
        Principal {
            person_id: Some("p".into()),
            email_verified: true,
            platform_roles: roles.iter().copied().collect(),
            organisations: orgs.iter().map(|(o, r)| (o.to_string(), *r)).collect(),
            ..Principal::default()
        }
    }

    #[test]
    fn visitors_must_log_in_for_everything() {
        let visitor = Principal::visitor();
        assert_eq!(
            authorize(&visitor, Action::CreateOrganisation),
            Err(Denied::NotLoggedIn)
        );
        assert_eq!(
            authorize(&visitor, Action::ViewMemberList),
            Err(Denied::NotLoggedIn)
        );
    }

    #[test]
    fn an_admin_of_another_organisation_is_refused() {
        let other_admin = person(&[("b", OrgRole::Admin)], &[]);
        let org_a = Action::ManageOrganisation {
            organisation_id: "a",
        };
        assert_eq!(authorize(&other_admin, org_a), Err(Denied::Forbidden));
        assert!(authorize(&person(&[("a", OrgRole::Admin)], &[]), org_a).is_ok());
        assert_eq!(
            authorize(&person(&[("a", OrgRole::Member)], &[]), org_a),
            Err(Denied::Forbidden),
            "members are not admins"
        );
    }

    #[test]
    fn an_unverified_address_cannot_create_organisations() {
        let mut p = person(&[], &[]);
        p.email_verified = false;
        assert_eq!(
            authorize(&p, Action::CreateOrganisation),
            Err(Denied::EmailNotVerified)
        );
    }

    #[test]
    fn staff_roles_grant_only_their_own_powers() {
        let board = person(&[], &[PlatformRole::Board]);
        let treasurer = person(&[], &[PlatformRole::Treasurer]);
        assert!(authorize(&board, Action::DecideApplications).is_ok());
        assert_eq!(
            authorize(&treasurer, Action::DecideApplications),
            Err(Denied::Forbidden)
        );
        assert!(authorize(&treasurer, Action::ViewMemberList).is_ok());
        assert_eq!(
            authorize(&board, Action::ManagePlatformRoles),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            authorize(
                &board,
                Action::ManageOrganisation {
                    organisation_id: "a"
                }
            ),
            Err(Denied::Forbidden),
            "the board does not run members' organisations"
        );
    }

    #[test]
    fn maintainers_never_review_or_arbitrate_their_own_project() {
        let mut both = person(&[("a", OrgRole::Admin)], &[PlatformRole::Board]);
        let review_a = Action::ReviewMilestone {
            organisation_id: Some("a"),
            project_id: "werk",
            submitted_by: &[],
        };
        let review_pool = Action::ReviewMilestone {
            organisation_id: None,
            project_id: "werk",
            submitted_by: &[],
        };
        let arbitrate = Action::ArbitrateDispute {
            project_id: "werk",
            submitted_by: &[],
        };
        for action in [review_a, review_pool, arbitrate] {
            assert!(authorize(&both, action).is_ok(), "{action:?}");
        }
        both.projects.insert("werk".into());
        for action in [review_a, review_pool, arbitrate] {
            assert_eq!(
                authorize(&both, action),
                Err(Denied::Forbidden),
                "{action:?}"
            );
        }
        let admin_only = person(&[("a", OrgRole::Admin)], &[]);
        assert_eq!(
            authorize(&admin_only, review_pool),
            Err(Denied::Forbidden),
            "the pool's share is the board's"
        );
        assert_eq!(authorize(&admin_only, arbitrate), Err(Denied::Forbidden));
    }

    #[test]
    fn failed_jobs_are_shown_to_the_board_and_the_admins_only() {
        let board = person(&[], &[PlatformRole::Board]);
        let admin = person(&[], &[PlatformRole::Admin]);
        for action in [Action::ViewFailedJobs, Action::RetryFailedJobs] {
            assert!(authorize(&board, action).is_ok());
            assert!(authorize(&admin, action).is_ok());
            for p in [
                person(&[], &[PlatformRole::Treasurer]),
                person(&[("a", OrgRole::Admin)], &[]),
            ] {
                assert_eq!(authorize(&p, action), Err(Denied::Forbidden));
            }
            assert_eq!(
                authorize(&Principal::visitor(), action),
                Err(Denied::NotLoggedIn)
            );
        }
    }

    #[test]
    fn rounds_are_the_boards_and_ballots_the_org_admins() {
        let board = person(&[], &[PlatformRole::Board]);
        let treasurer = person(&[], &[PlatformRole::Treasurer]);
        let admin = person(&[("a", OrgRole::Admin)], &[]);
        let member = person(&[("a", OrgRole::Member)], &[]);
        assert!(authorize(&board, Action::ManageRounds).is_ok());
        for p in [&treasurer, &admin, &member] {
            assert_eq!(authorize(p, Action::ManageRounds), Err(Denied::Forbidden));
        }
        let vote_a = Action::VoteForOrganisation {
            organisation_id: "a",
        };
        assert!(authorize(&admin, vote_a).is_ok());
        assert_eq!(authorize(&member, vote_a), Err(Denied::Forbidden));
        assert_eq!(
            authorize(&board, vote_a),
            Err(Denied::Forbidden),
            "the board does not vote for members"
        );
        assert!(authorize(&board, Action::StartPoll).is_ok());
        assert!(authorize(&member, Action::StartPoll).is_ok());
        assert_eq!(
            authorize(&treasurer, Action::StartPoll),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            authorize(&Principal::visitor(), Action::StartPoll),
            Err(Denied::NotLoggedIn)
        );
    }

    /// Reviewing for organisation A, for the pool, and arbitrating, on project "werk".
    fn judging(submitted_by: &[String]) -> [Action<'_>; 3] {
        [
            Action::ReviewMilestone {
                organisation_id: Some("a"),
                project_id: "werk",
                submitted_by,
            },
            Action::ReviewMilestone {
                organisation_id: None,
                project_id: "werk",
                submitted_by,
            },
            Action::ArbitrateDispute {
                project_id: "werk",
                submitted_by,
            },
        ]
    }

    #[test]
    fn former_maintainers_and_submitters_never_review_or_arbitrate() {
        let mut former = person(&[("a", OrgRole::Admin)], &[PlatformRole::Board]);
        for action in judging(&[]) {
            assert!(authorize(&former, action).is_ok(), "{action:?}");
        }
        // Left the project: still refused.
        former.maintained.insert("werk".into());
        for action in judging(&[]) {
            assert_eq!(
                authorize(&former, action),
                Err(Denied::Forbidden),
                "{action:?}"
            );
        }
        // Submitted the milestone (even if no maintainer history says so): refused.
        let submitters = ["lea".to_owned()];
        let mut submitter = person(&[("a", OrgRole::Admin)], &[PlatformRole::Board]);
        submitter.person_id = Some("lea".into());
        for action in judging(&submitters) {
            assert_eq!(
                authorize(&submitter, action),
                Err(Denied::Forbidden),
                "{action:?}"
            );
        }
        // Someone else with the same roles may.
        let other = person(&[("a", OrgRole::Admin)], &[PlatformRole::Board]);
        for action in judging(&submitters) {
            assert!(authorize(&other, action).is_ok(), "{action:?}");
        }
    }

    #[test]
    fn drafts_are_their_proposers_and_the_board_sees_proposals_once_submitted() {
        let draft = |submitted| Action::ViewUnopenedProposal {
            project_id: "werk",
            organisation_id: Some("a"),
            proposed_by: Some("erika"),
            submitted,
        };
        let board = person(&[], &[PlatformRole::Board]);
        let treasurer = person(&[], &[PlatformRole::Treasurer]);
        let org_member = person(&[("a", OrgRole::Member)], &[]);
        let org_admin = person(&[("a", OrgRole::Admin)], &[]);
        let outsider = person(&[("b", OrgRole::Admin)], &[]);
        let mut author = person(&[], &[]);
        author.person_id = Some("erika".into());
        let mut maintainer = person(&[], &[]);
        maintainer.projects.insert("werk".into());
        let mut former_maintainer = person(&[], &[]);
        former_maintainer.maintained.insert("werk".into());
        for p in [&author, &org_member, &org_admin, &maintainer] {
            assert!(authorize(p, draft(false)).is_ok(), "{p:?}");
            assert!(authorize(p, draft(true)).is_ok(), "{p:?}");
        }
        for p in [&board, &treasurer, &outsider, &former_maintainer] {
            assert_eq!(authorize(p, draft(false)), Err(Denied::Forbidden), "{p:?}");
        }
        assert!(
            authorize(&board, draft(true)).is_ok(),
            "submitted: the board sees it"
        );
        assert_eq!(authorize(&treasurer, draft(true)), Err(Denied::Forbidden));
        assert_eq!(
            authorize(&Principal::visitor(), draft(true)),
            Err(Denied::NotLoggedIn)
        );
    }
}
