//! Proposal pages: the list with filters, proposing (feature or maintenance), a proposal with
//! its milestones, funding, backers, discussion and history, editing, and the lifecycle's
//! transitions.

use std::collections::BTreeMap;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::{errors, invalid, see_other};
use super::projects::project;
use super::{AppError, AppState, Ctx, value};
use crate::authz::{Action, Denied, authorize};
use crate::catalogue::Project;
use crate::people::FieldErrors;
use crate::pledges::{self, PledgeError};
use crate::proposals::lifecycle::Transition;
use crate::proposals::{
    self, Filter, MILESTONE_ROWS, ProposalError, ProposalForm, TransitionInput, comments, fee_of,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/proposals", get(list_proposals))
        .route(
            "/projects/{slug}/proposals",
            get(show_new_proposal).post(create_proposal),
        )
        .route("/proposals/{id}", get(show_proposal))
        .route(
            "/proposals/{id}/edit",
            get(show_edit_proposal).post(edit_proposal),
        )
        .route("/proposals/{id}/transitions", post(make_transition))
        .route("/proposals/{id}/comments", post(add_comment))
        .route("/proposals/{id}/pledges", post(create_pledge))
        .route("/proposals/{id}/withdrawals", post(withdraw_pledge))
        .route(
            "/proposals/{id}/recurring-pledges",
            post(create_recurring_pledge),
        )
        .route("/recurring-pledges/{id}/stop", post(stop_recurring_pledge))
        .route(
            "/recurring-pledges/{id}/periods/{period}/pay",
            post(pay_lapsed_period),
        )
        .route("/comments/{id}/edit", post(edit_comment))
        .route("/comments/{id}/hide", post(hide_comment))
}

impl From<ProposalError> for AppError {
    fn from(error: ProposalError) -> Self {
        match error {
            ProposalError::Denied(denied) => denied.into(),
            ProposalError::UnknownProposal | ProposalError::UnknownProject => AppError::not_found(),
            ProposalError::IllegalTransition { .. } => {
                AppError::conflict("proposal.illegal_transition")
            }
            ProposalError::TermsFrozen => AppError::conflict("proposal.terms_frozen"),
            ProposalError::Conflict => AppError::conflict("proposal.conflict"),
            ProposalError::Invalid(_) => AppError::bad_request("error.bad_request"),
            other => AppError::internal(other),
        }
    }
}

async fn list_proposals(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(filter): Query<Filter>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let listed = proposals::list(&mut conn, &filter).await?;
    let projects: Vec<(String, String)> =
        sqlx::query_as("SELECT slug, name FROM projects ORDER BY LOWER(name)")
            .fetch_all(&mut *conn)
            .await?;
    drop(conn);
    let html = state.render(
        &ctx,
        "proposals/list.html",
        context! {
            proposals => value(&listed),
            filter => value(&filter),
            projects => projects.into_iter().map(|(slug, name)| context! { slug => slug, name => name }).collect::<Vec<_>>(),
            states => proposals::state_names(ctx.locale).into_iter().map(|(v, l)| context! { value => v, label => l }).collect::<Vec<_>>(),
        },
    )?;
    Ok(html.into_response())
}

#[derive(Debug, Deserialize)]
struct KindQuery {
    #[serde(default)]
    kind: String,
}

/// The organisations the person may request for, and whether they may offer (maintainers).
fn proposer_choices(ctx: &Ctx, project: &Project) -> (Vec<minijinja::Value>, bool) {
    let organisations = ctx
        .organisations
        .iter()
        .map(|(o, _)| context! { id => o.id.clone(), name => o.legal_name.clone() })
        .collect();
    (organisations, ctx.principal.maintains(&project.id))
}

async fn proposal_form_page(
    state: &AppState,
    ctx: &Ctx,
    project: &Project,
    form: &ProposalForm,
    problems: &FieldErrors,
    action: &str,
    editing_terms: bool,
) -> Result<Html<String>, AppError> {
    let (organisations, may_offer) = proposer_choices(ctx, project);
    let fee_basis_points = state.cooperative_terms().await?.fee_basis_points;
    let mut form = form.clone();
    while form.milestones.len() < MILESTONE_ROWS {
        form.milestones.push(Default::default());
    }
    state.render(
        ctx,
        "proposals/form.html",
        context! {
            project => value(project),
            form => value(&form),
            errors => errors(ctx.locale, problems),
            organisations => organisations,
            may_offer => may_offer,
            action => action,
            editing_terms => editing_terms,
            creating => action.ends_with("/proposals"),
            fee_percent => fee_percent(fee_basis_points, ctx.locale),
        },
    )
}

/// Basis points as a percentage in the reader's notation: 500 → "5", 250 → "2,5" / "2.5".
fn fee_percent(basis_points: u32, locale: crate::i18n::Locale) -> String {
    let whole = basis_points / 100;
    let fraction = basis_points % 100;
    if fraction == 0 {
        return whole.to_string();
    }
    let mark = match locale {
        crate::i18n::Locale::De => ',',
        crate::i18n::Locale::En => '.',
    };
    format!(
        "{whole}{mark}{}",
        format!("{fraction:02}").trim_end_matches('0')
    )
}

async fn show_new_proposal(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Query(query): Query<KindQuery>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let project = project(&state, &slug).await?;
    let (organisations, may_offer) = proposer_choices(&ctx, &project);
    if organisations.is_empty() && !may_offer {
        return Err(AppError::status(
            StatusCode::FORBIDDEN,
            "proposal.no_organisation",
        ));
    }
    let form = ProposalForm {
        kind: if query.kind == "maintenance" {
            "maintenance".into()
        } else {
            "feature".into()
        },
        period: "quarter".into(),
        organisation_id: ctx.acting_organisation_id().unwrap_or_default(),
        ..ProposalForm::default()
    };
    let action = format!("/projects/{slug}/proposals");
    Ok(proposal_form_page(
        &state,
        &ctx,
        &project,
        &form,
        &FieldErrors::new(),
        &action,
        true,
    )
    .await?
    .into_response())
}

async fn create_proposal(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
    let fields: BTreeMap<String, String> = fields.into_iter().collect();
    let form = ProposalForm::from_fields(&fields);
    let mut tx = state.db.begin().await?;
    match proposals::create(
        &mut tx,
        &ctx.principal,
        &project.id,
        &form,
        state.config.max_amount,
        ctx.locale,
    )
    .await
    {
        Ok(id) => {
            tx.commit().await?;
            ctx.flash("flash.proposal_created");
            Ok(see_other(&format!("/proposals/{id}")))
        }
        Err(ProposalError::Invalid(problems)) => {
            let action = format!("/projects/{slug}/proposals");
            Ok(invalid(
                proposal_form_page(&state, &ctx, &project, &form, &problems, &action, true).await?,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn proposal_page(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    problems: &FieldErrors,
    pledge_message: Option<String>,
) -> Result<Html<String>, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let proposal = proposals::visible(&mut conn, &ctx.principal, id).await?;
    let backers = proposals::public_backers(&mut conn, id).await?;
    let discussion = comments::of_proposal(&mut conn, id).await?;
    let revisions = proposals::revisions_of(&mut conn, id).await?;
    let history = proposals::history_of(&mut conn, id).await?;
    drop(conn);
    let terms = state.cooperative_terms().await?;
    let fee = proposal
        .milestones
        .iter()
        .map(|m| fee_of(m.amount, terms.fee_basis_points).cents())
        .sum::<i64>();
    let transitions: Vec<&str> = proposals::available_transitions(&ctx.principal, &proposal)
        .into_iter()
        .map(Transition::as_str)
        .collect();
    let roles = proposals::roles_of(&ctx.principal, &proposal);
    let (coverage, recurring) = if proposal.kind == "maintenance" {
        let mut conn = state.db.pool().acquire().await?;
        let admin_of: Vec<String> = ctx
            .principal
            .organisations
            .iter()
            .filter(|(_, role)| **role == crate::authz::OrgRole::Admin)
            .map(|(id, _)| id.clone())
            .collect();
        (
            pledges::recurring::coverage(&mut conn, &proposal).await?,
            pledges::recurring::of_organisations(&mut conn, id, &admin_of).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let delivery = {
        let mut conn = state.db.pool().acquire().await?;
        crate::reviews::milestone_views(
            &mut conn,
            &ctx.principal,
            &proposal,
            state.clock.now_ms(),
            ctx.locale,
        )
        .await?
    };
    let (pledge_options, still_needed) =
        if proposal.status == crate::proposals::lifecycle::State::Open {
            let mut conn = state.db.pool().acquire().await?;
            let options = pledges::options_for(&mut conn, &ctx.principal, id).await?;
            let needed = pledges::still_needed(&mut conn, id)
                .await
                .map_err(AppError::internal)?;
            (options, needed)
        } else {
            (Vec::new(), crate::money::Money::ZERO)
        };
    state.render(
        ctx,
        "proposals/show.html",
        context! {
            proposal => value(&proposal),
            fee => fee,
            maintainer_receives => proposal.funding_goal.cents() - fee,
            backers => value(&backers),
            comments => value(&discussion),
            revisions => value(&revisions),
            history => value(&history),
            transitions => transitions,
            may_edit => !roles.is_empty() && !matches!(proposal.status.as_str(), "completed" | "expired" | "cancelled"),
            may_comment => authorize(&ctx.principal, Action::Comment).is_ok(),
            may_moderate => authorize(&ctx.principal, Action::ModerateComments).is_ok(),
            me => ctx.person_id(),
            errors => errors(ctx.locale, problems),
            default_deadline => proposals::date_value(crate::db::now_ms() + 30 * 86_400_000),
            pledge_options => value(&pledge_options),
            still_needed => still_needed,
            pledge_key => crate::people::new_token(),
            pledge_message => pledge_message,
            coverage => value(&coverage),
            delivery => value(&delivery),
            review_window_days => terms.review_window_days,
            recurring => value(&recurring),
            periods_left => proposal.term_periods.map(|t| t - proposal.current_period(state.clock.now_ms()) + 1),
        },
    )
}

async fn show_proposal(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    Ok(proposal_page(&state, &ctx, &id, &FieldErrors::new(), None)
        .await?
        .into_response())
}

async fn show_edit_proposal(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut conn = state.db.pool().acquire().await?;
    let proposal = proposals::visible(&mut conn, &ctx.principal, &id).await?;
    let project = crate::catalogue::find(&mut conn, &proposal.project_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    drop(conn);
    if proposals::roles_of(&ctx.principal, &proposal).is_empty() {
        return Err(Denied::Forbidden.into());
    }
    let form = ProposalForm::from_proposal(&proposal, ctx.locale);
    let action = format!("/proposals/{id}/edit");
    Ok(proposal_form_page(
        &state,
        &ctx,
        &project,
        &form,
        &FieldErrors::new(),
        &action,
        proposal.status.terms_editable(),
    )
    .await?
    .into_response())
}

async fn edit_proposal(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let fields: BTreeMap<String, String> = fields.into_iter().collect();
    let form = ProposalForm::from_fields(&fields);
    let mut tx = state.db.begin().await?;
    match proposals::edit(
        &mut tx,
        &ctx.principal,
        &id,
        &form,
        state.config.max_amount,
        ctx.locale,
    )
    .await
    {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.saved");
            Ok(see_other(&format!("/proposals/{id}")))
        }
        Err(ProposalError::Invalid(problems)) => {
            drop(tx);
            let mut conn = state.db.pool().acquire().await?;
            let proposal = proposals::visible(&mut conn, &ctx.principal, &id).await?;
            let project = crate::catalogue::find(&mut conn, &proposal.project_id)
                .await?
                .ok_or_else(AppError::not_found)?;
            drop(conn);
            let form = ProposalForm {
                kind: proposal.kind.clone(),
                ..form
            };
            let action = format!("/proposals/{id}/edit");
            Ok(invalid(
                proposal_form_page(
                    &state,
                    &ctx,
                    &project,
                    &form,
                    &problems,
                    &action,
                    proposal.status.terms_editable(),
                )
                .await?,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
struct TransitionForm {
    #[serde(default)]
    transition: String,
    /// YYYY-MM-DD, when a maintainer agrees.
    #[serde(default)]
    deadline: String,
    #[serde(default)]
    reason: String,
}

async fn make_transition(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<TransitionForm>,
) -> Result<Response, AppError> {
    let transition = Transition::parse(&form.transition)
        .ok_or_else(|| AppError::bad_request("proposal.illegal_transition"))?;
    let input = TransitionInput {
        // The funding ends at the end of the chosen day.
        deadline: proposals::parse_date(&form.deadline).map(|d| d + 86_400_000 - 1),
        reason: form.reason,
    };
    let mut tx = state.db.begin().await?;
    match proposals::transition(&mut tx, &ctx.principal, &id, transition, &input, false).await {
        Ok(_) => {
            tx.commit().await?;
            ctx.flash("flash.proposal_state_changed");
            Ok(see_other(&format!("/proposals/{id}")))
        }
        Err(ProposalError::Invalid(problems)) => {
            drop(tx);
            Ok(invalid(
                proposal_page(&state, &ctx, &id, &problems, None).await?,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
struct CommentForm {
    #[serde(default)]
    body: String,
}

async fn add_comment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CommentForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match comments::add(&mut tx, &ctx.principal, &id, &form.body).await {
        Ok(comment) => {
            tx.commit().await?;
            Ok(see_other(&format!("/proposals/{id}#comment-{comment}")))
        }
        Err(ProposalError::Invalid(problems)) => {
            drop(tx);
            Ok(invalid(
                proposal_page(&state, &ctx, &id, &problems, None).await?,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

async fn edit_comment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CommentForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match comments::edit(&mut tx, &ctx.principal, &id, &form.body).await {
        Ok(proposal_id) => {
            tx.commit().await?;
            Ok(see_other(&format!("/proposals/{proposal_id}#comment-{id}")))
        }
        Err(ProposalError::Invalid(problems)) => {
            Err(super::forms::first_problem(&problems, "comment.empty"))
        }
        Err(other) => Err(other.into()),
    }
}

async fn hide_comment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    let proposal_id = comments::hide(&mut tx, &ctx.principal, &id).await?;
    tx.commit().await?;
    ctx.flash("flash.comment_hidden");
    Ok(see_other(&format!("/proposals/{proposal_id}#comment-{id}")))
}

impl From<PledgeError> for AppError {
    fn from(error: PledgeError) -> Self {
        match error {
            PledgeError::Denied(denied) => denied.into(),
            PledgeError::UnknownProposal | PledgeError::UnknownRecurring => AppError::not_found(),
            PledgeError::Proposal(error) => error.into(),
            other => AppError::internal(other),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PledgeForm {
    #[serde(default)]
    organisation_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    show_publicly: Option<String>,
    #[serde(default)]
    key: String,
}

impl PledgeForm {
    fn request<'a>(
        &'a self,
        proposal_id: &'a str,
        max_amount: crate::money::Money,
    ) -> pledges::PledgeRequest<'a> {
        pledges::PledgeRequest {
            proposal_id,
            organisation_id: &self.organisation_id,
            amount: &self.amount,
            show_publicly: self.show_publicly.is_some(),
            key: &self.key,
            max_amount,
        }
    }
}

/// The message for a refused pledge or withdrawal, with the numbers the person needs.
fn pledge_problem(ctx: &Ctx, error: &PledgeError) -> Option<String> {
    let money = |m: crate::money::Money| m.format(ctx.locale);
    Some(match error {
        PledgeError::Amount(e) => ctx.t(proposals::money_message_key(e)),
        PledgeError::Zero => ctx.t("milestone.amount_zero"),
        PledgeError::InsufficientFunds { balance } => crate::i18n::t_with(
            ctx.locale,
            "pledge.insufficient",
            &[("balance", &money(*balance))],
        ),
        PledgeError::ExceedsRemaining { remaining } => crate::i18n::t_with(
            ctx.locale,
            "pledge.exceeds",
            &[("remaining", &money(*remaining))],
        ),
        PledgeError::ExceedsPledged { pledged } => crate::i18n::t_with(
            ctx.locale,
            "pledge.exceeds_pledged",
            &[("pledged", &money(*pledged))],
        ),
        PledgeError::ExceedsRemainingPerPeriod {
            per_period,
            periods,
        } => crate::i18n::t_with(
            ctx.locale,
            "pledge.exceeds_per_period",
            &[
                ("per_period", &money(*per_period)),
                ("periods", &periods.to_string()),
            ],
        ),
        PledgeError::NotMaintenance => ctx.t("pledge.not_maintenance"),
        PledgeError::NotLapsed => ctx.t("pledge.not_lapsed"),
        PledgeError::NotOpen => ctx.t("pledge.not_open"),
        PledgeError::DeadlinePassed => ctx.t("pledge.deadline_passed"),
        PledgeError::InvalidKey => ctx.t("hardening.keys.invalid"),
        PledgeError::KeyConflict => ctx.t("hardening.keys.conflict"),
        _ => return None,
    })
}

async fn pledge_refused(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    error: PledgeError,
) -> Result<Response, AppError> {
    let Some(message) = pledge_problem(ctx, &error) else {
        return Err(error.into());
    };
    let status = match error {
        PledgeError::NotOpen
        | PledgeError::DeadlinePassed
        | PledgeError::NotLapsed
        | PledgeError::KeyConflict => StatusCode::CONFLICT,
        PledgeError::InvalidKey => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let page = proposal_page(state, ctx, id, &FieldErrors::new(), Some(message)).await?;
    Ok((status, page).into_response())
}

/// Commits a pledge-like change and goes back to the proposal with `flash`, or shows the
/// proposal again with the refusal's message (nothing was booked: the transaction is dropped).
async fn pledge_done(
    state: &AppState,
    ctx: &Ctx,
    tx: sqlx::Transaction<'static, sqlx::Any>,
    proposal_id: &str,
    result: Result<&'static str, PledgeError>,
) -> Result<Response, AppError> {
    match result {
        Ok(flash) => {
            tx.commit().await?;
            ctx.flash(flash);
            Ok(see_other(&format!("/proposals/{proposal_id}")))
        }
        Err(error) => {
            drop(tx);
            pledge_refused(state, ctx, proposal_id, error).await
        }
    }
}

async fn create_pledge(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PledgeForm>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    let result = pledges::pledge(
        &mut tx,
        &ctx.principal,
        form.request(&id, state.config.max_amount),
        state.clock.now_ms(),
    )
    .await
    .map(|p| {
        if p.funded {
            "flash.funded"
        } else {
            "flash.pledged"
        }
    });
    pledge_done(&state, &ctx, tx, &id, result).await
}

async fn withdraw_pledge(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PledgeForm>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    let result = pledges::withdraw(
        &mut tx,
        &ctx.principal,
        form.request(&id, state.config.max_amount),
        state.clock.now_ms(),
    )
    .await
    .map(|_| "flash.withdrawn");
    pledge_done(&state, &ctx, tx, &id, result).await
}

/// A pledge per period: the form is the pledge form, its amount per period.
async fn create_recurring_pledge(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PledgeForm>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    let result = pledges::recurring::pledge_recurring(
        &mut tx,
        &ctx.principal,
        form.request(&id, state.config.max_amount),
        state.clock.now_ms(),
    )
    .await
    .map(|p| {
        if p.funded {
            "flash.funded"
        } else {
            "flash.pledged_recurring"
        }
    });
    pledge_done(&state, &ctx, tx, &id, result).await
}

/// The proposal a recurring pledge belongs to (for redirects and error pages).
async fn proposal_of_recurring(state: &AppState, recurring_id: &str) -> Result<String, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    sqlx::query_scalar("SELECT proposal_id FROM recurring_pledges WHERE id = $1")
        .bind(recurring_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(AppError::not_found)
}

async fn stop_recurring_pledge(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let proposal_id = proposal_of_recurring(&state, &id).await?;
    let mut tx = state.db.begin().await?;
    let result = pledges::recurring::stop(&mut tx, &ctx.principal, &id, state.clock.now_ms())
        .await
        .map(|()| "flash.recurring_stopped");
    pledge_done(&state, &ctx, tx, &proposal_id, result).await
}

async fn pay_lapsed_period(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, period)): Path<(String, String)>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let period: i64 = period.parse().map_err(|_| AppError::not_found())?;
    let proposal_id = proposal_of_recurring(&state, &id).await?;
    let mut tx = state.db.begin().await?;
    let result =
        pledges::recurring::pay_lapsed(&mut tx, &ctx.principal, &id, period, state.clock.now_ms())
            .await
            .map(|_| "flash.paid_late");
    pledge_done(&state, &ctx, tx, &proposal_id, result).await
}
