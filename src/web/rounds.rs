//! Voting round and priority poll pages: the list, the board's form to open a round or import
//! a Pabulib file, a round with its ballot form, turnout and (once closed) its explained
//! result and chart, the `.pb` export; polls with their ranking form and Schulze result.

use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;

use super::forms::{errors, invalid, see_other, upload_error};
use super::{AppError, AppState, Ctx, MAX_PABULIB_UPLOAD_BYTES, value};
use crate::authz::{Action, Denied, authorize};
use crate::i18n::t_with;
use crate::people::FieldErrors;
use crate::rounds::{self, RoundError, RoundForm, polls};
use crate::voting::round::{BallotProblem, RoundRule};
use crate::voting::{Choice, ProfileError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rounds", get(list_rounds))
        .route("/board/rounds/new", get(show_new_round))
        .route("/board/rounds", post(create_round))
        .route(
            "/board/rounds/import",
            post(import_round).layer(DefaultBodyLimit::max(MAX_PABULIB_UPLOAD_BYTES)),
        )
        .route("/rounds/{id}", get(show_round))
        .route("/rounds/{id}/ballots", post(cast_ballot))
        .route("/rounds/{id}/export.pb", get(export_round))
        .route("/polls/new", get(show_new_poll))
        .route("/polls", post(create_poll))
        .route("/polls/{id}", get(show_poll))
        .route("/polls/{id}/ballots", post(cast_poll_ballot))
}

impl From<RoundError> for AppError {
    fn from(error: RoundError) -> Self {
        match error {
            RoundError::Denied(denied) => denied.into(),
            RoundError::Unknown => AppError::not_found(),
            RoundError::NotOpen => AppError::conflict("round.not_open"),
            RoundError::Closed => AppError::conflict("round.closed"),
            RoundError::NotMember => AppError::status(StatusCode::FORBIDDEN, "round.not_member"),
            RoundError::JoinedAfterOpening => {
                AppError::status(StatusCode::FORBIDDEN, "round.joined_after_opening")
            }
            RoundError::LeavesBeforeClose => AppError::status(
                StatusCode::FORBIDDEN,
                "hardening.voting.leaves_before_close",
            ),
            RoundError::Ballot(_) | RoundError::Invalid(_) => {
                AppError::status(StatusCode::UNPROCESSABLE_ENTITY, "error.bad_request")
            }
            other => AppError::internal(other),
        }
    }
}

/// A refusal as a status and a message in the reader's language, for the page to show.
fn refusal(ctx: &Ctx, error: &RoundError) -> Option<(StatusCode, String)> {
    let problem = |key: &str, args: &[(&str, &str)]| t_with(ctx.locale, key, args);
    Some(match error {
        RoundError::NotOpen => (StatusCode::CONFLICT, ctx.t("round.not_open")),
        RoundError::Closed => (StatusCode::CONFLICT, ctx.t("round.closed")),
        RoundError::NotMember => (StatusCode::FORBIDDEN, ctx.t("round.not_member")),
        RoundError::JoinedAfterOpening => {
            (StatusCode::FORBIDDEN, ctx.t("round.joined_after_opening"))
        }
        RoundError::LeavesBeforeClose => (
            StatusCode::FORBIDDEN,
            ctx.t("hardening.voting.leaves_before_close"),
        ),
        RoundError::Ballot(p) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            match p {
                BallotProblem::Empty => ctx.t("round.ballot_empty"),
                BallotProblem::UnknownCandidate => ctx.t("round.unknown_candidate"),
                BallotProblem::TooManyApprovals { max } => {
                    problem("round.too_many_approvals", &[("max", &max.to_string())])
                }
                BallotProblem::PointsTotal { total, given } => problem(
                    "round.points_total",
                    &[("total", &total.to_string()), ("given", &given.to_string())],
                ),
                BallotProblem::Repeated => ctx.t("round.repeated"),
                BallotProblem::WrongType => ctx.t("round.wrong_type"),
            },
        ),
        RoundError::BudgetTooLarge { available } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            problem(
                "round.budget_too_large",
                &[("available", &available.format(ctx.locale))],
            ),
        ),
        RoundError::File(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            problem(
                "round.file_invalid",
                &[("line", &e.line.to_string()), ("message", &e.message)],
            ),
        ),
        RoundError::Import(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            problem("round.import_invalid", &[("message", &e.to_string())]),
        ),
        RoundError::Count(ProfileError::TooManySteps { limit }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            problem(
                "hardening.voting.too_many_runs",
                &[("limit", &limit.to_string())],
            ),
        ),
        RoundError::Count(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            problem("round.import_invalid", &[("message", &e.to_string())]),
        ),
        _ => return None,
    })
}

async fn list_rounds(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let now = state.clock.now_ms();
    let mut conn = state.db.pool().acquire().await?;
    let all = rounds::list(&mut conn, now).await?;
    let all_polls = polls::list(&mut conn, now).await?;
    drop(conn);
    let page = state.render(
        &ctx,
        "rounds/list.html",
        context! {
            rounds => value(&all),
            polls => value(&all_polls),
            may_manage => authorize(&ctx.principal, Action::ManageRounds).is_ok(),
            may_start_poll => authorize(&ctx.principal, Action::StartPoll).is_ok(),
        },
    )?;
    Ok(page.into_response())
}

async fn new_round_page(
    state: &AppState,
    ctx: &Ctx,
    form: &RoundForm,
    problems: &FieldErrors,
    message: Option<String>,
) -> Result<Html<String>, AppError> {
    let now = state.clock.now_ms();
    let mut conn = state.db.pool().acquire().await?;
    let open = rounds::open_proposals(&mut conn, now).await?;
    let available = rounds::available_budget(&mut conn).await?;
    drop(conn);
    state.render(
        ctx,
        "rounds/new.html",
        context! {
            form => value(form),
            errors => errors(ctx.locale, problems),
            proposals => value(&open),
            available => available,
            message => message,
            default_closes => crate::proposals::date_value(now + 14 * rounds::DAY_MS),
        },
    )
}

async fn show_new_round(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::ManageRounds)?;
    let form = RoundForm {
        ballot_type: "approval".into(),
        rule: RoundRule::EqualShares.name().into(),
        ..RoundForm::default()
    };
    Ok(
        new_round_page(&state, &ctx, &form, &FieldErrors::new(), None)
            .await?
            .into_response(),
    )
}

async fn create_round(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = RoundForm::from_fields(&fields);
    let mut tx = state.db.begin().await?;
    let created = rounds::create(
        &mut tx,
        &ctx.principal,
        &form,
        state.clock.now_ms(),
        state.config.max_amount,
    )
    .await;
    match created {
        Ok(id) => {
            tx.commit().await?;
            ctx.flash("flash.round_opened");
            Ok(see_other(&format!("/rounds/{id}")))
        }
        Err(RoundError::Invalid(problems)) => {
            drop(tx);
            Ok(invalid(
                new_round_page(&state, &ctx, &form, &problems, None).await?,
            ))
        }
        Err(error) => {
            drop(tx);
            let Some((status, message)) = refusal(&ctx, &error) else {
                return Err(error.into());
            };
            let page =
                new_round_page(&state, &ctx, &form, &FieldErrors::new(), Some(message)).await?;
            Ok((status, page).into_response())
        }
    }
}

async fn import_round(
    State(state): State<AppState>,
    ctx: Ctx,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::ManageRounds)?;
    let mut text = String::new();
    let mut rule = RoundRule::EqualShares;
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(upload_error)?;
        match name.as_str() {
            "file" => text = String::from_utf8_lossy(&bytes).into_owned(),
            "rule" => {
                rule = RoundRule::parse(&String::from_utf8_lossy(&bytes)).unwrap_or_default();
            }
            _ => {}
        }
    }
    // Read and count the file off the async threads and before any transaction: a file that
    // takes long to count stalls neither other requests nor other writers.
    let prepared = rounds::off_thread(move || rounds::prepare_import(&text, rule))
        .await
        .and_then(std::convert::identity);
    let imported = match prepared {
        Ok(prepared) => {
            let mut tx = state.db.begin().await?;
            let now = state.clock.now_ms();
            let imported = rounds::import(&mut tx, &ctx.principal, &prepared, now).await;
            if imported.is_ok() {
                tx.commit().await?;
            }
            imported
        }
        Err(error) => Err(error),
    };
    match imported {
        Ok(id) => {
            ctx.flash("flash.round_imported");
            Ok(see_other(&format!("/rounds/{id}")))
        }
        Err(error) => {
            let Some((status, message)) = refusal(&ctx, &error) else {
                return Err(error.into());
            };
            let form = RoundForm {
                ballot_type: "approval".into(),
                rule: RoundRule::EqualShares.name().into(),
                ..RoundForm::default()
            };
            let page =
                new_round_page(&state, &ctx, &form, &FieldErrors::new(), Some(message)).await?;
            Ok((status, page).into_response())
        }
    }
}

/// One candidate's place on an organisation's ballot form.
#[derive(serde::Serialize)]
struct Entry {
    approved: bool,
    points: u64,
    rank: Option<usize>,
}

fn entries(choice: Option<&Choice>, candidates: usize) -> Vec<Entry> {
    (0..candidates)
        .map(|c| Entry {
            approved: matches!(choice, Some(Choice::Approval(v)) if v.contains(&c)),
            points: match choice {
                Some(Choice::Points(v)) => v.iter().find(|(p, _)| *p == c).map_or(0, |(_, n)| *n),
                _ => 0,
            },
            rank: match choice {
                Some(Choice::Ranking(v)) => v.iter().position(|&p| p == c).map(|r| r + 1),
                _ => None,
            },
        })
        .collect()
}

async fn round_page(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    message: Option<String>,
) -> Result<Html<String>, AppError> {
    let now = state.clock.now_ms();
    let mut conn = state.db.pool().acquire().await?;
    let round = rounds::find(&mut conn, id, now).await?;
    let candidates = rounds::candidates_of(&mut conn, id).await?;
    let results = rounds::results(&mut conn, &round).await?;
    let mut voters = Vec::new();
    if !round.imported {
        for option in rounds::voter_options(
            &mut conn,
            &ctx.principal,
            round.opens_at,
            round.closes_at,
            now,
        )
        .await?
        {
            let ballot = rounds::ballot_of(&mut conn, id, &option.organisation_id).await?;
            voters.push(context! {
                organisation_id => option.organisation_id,
                name => option.name,
                refusal => option.refusal,
                voted => ballot.is_some(),
                entries => value(&entries(ballot.as_ref(), candidates.len())),
            });
        }
    }
    drop(conn);
    let chart_height = i64::try_from(candidates.len()).unwrap_or(0) * 44 + 4;
    state.render(
        ctx,
        "rounds/show.html",
        context! {
            round => value(&round),
            candidates => value(&candidates),
            results => value(&results),
            voters => voters,
            message => message,
            chart_height => chart_height,
        },
    )
}

async fn show_round(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    Ok(round_page(&state, &ctx, &id, None).await?.into_response())
}

/// The ballot as the form sends it: `approve` (repeated), `points_<i>` or `rank_<i>`.
fn choice_from(ballot_type: &str, fields: &[(String, String)]) -> Result<Choice, ()> {
    let numbered = |prefix: &str| -> Result<Vec<(usize, u64)>, ()> {
        let mut out = Vec::new();
        for (key, value) in fields {
            if let Some(index) = key.strip_prefix(prefix) {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                let index = index.parse::<usize>().map_err(|_| ())?;
                let number = value.parse::<u64>().map_err(|_| ())?;
                out.push((index, number));
            }
        }
        Ok(out)
    };
    match ballot_type {
        "approval" => fields
            .iter()
            .filter(|(k, _)| k == "approve")
            .map(|(_, v)| v.trim().parse::<usize>().map_err(|_| ()))
            .collect::<Result<Vec<_>, _>>()
            .map(Choice::Approval),
        "points" => numbered("points_").map(Choice::Points),
        _ => {
            let mut ranks = numbered("rank_")?;
            if ranks.iter().any(|(_, r)| *r == 0) {
                return Err(());
            }
            // Ranks need not be consecutive (1, 2, 5 is fine); equal ranks are refused later.
            ranks.sort_by_key(|&(c, r)| (r, c));
            let mut order: Vec<usize> = ranks.iter().map(|(c, _)| *c).collect();
            let mut seen: Vec<u64> = ranks.iter().map(|(_, r)| *r).collect();
            seen.dedup();
            if seen.len() != ranks.len() {
                // Two candidates with the same rank: make the checker refuse it as repeated.
                order.push(order.first().copied().unwrap_or(0));
            }
            Ok(Choice::Ranking(order))
        }
    }
}

async fn cast_ballot(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let organisation_id = fields
        .iter()
        .find(|(k, _)| k == "organisation_id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let now = state.clock.now_ms();
    let round = {
        let mut conn = state.db.pool().acquire().await?;
        rounds::find(&mut conn, &id, now).await?
    };
    let Ok(choice) = choice_from(round.ballot_type, &fields) else {
        let page = round_page(&state, &ctx, &id, Some(ctx.t("round.number_invalid"))).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let mut tx = state.db.begin().await?;
    match rounds::cast(&mut tx, &ctx.principal, &id, &organisation_id, choice, now).await {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.ballot_cast");
            Ok(see_other(&format!("/rounds/{id}")))
        }
        Err(error) => {
            drop(tx);
            let Some((status, message)) = refusal(&ctx, &error) else {
                return Err(error.into());
            };
            let page = round_page(&state, &ctx, &id, Some(message)).await?;
            Ok((status, page).into_response())
        }
    }
}

async fn export_round(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let text = rounds::export(&mut conn, &id, state.clock.now_ms()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"round-{id}.pb\""),
            ),
        ],
        text,
    )
        .into_response())
}

async fn new_poll_page(
    state: &AppState,
    ctx: &Ctx,
    form: &polls::PollForm,
    problems: &FieldErrors,
    message: Option<String>,
) -> Result<Html<String>, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let wishes = polls::wish_list(&mut conn).await?;
    drop(conn);
    state.render(
        ctx,
        "polls/new.html",
        context! {
            form => value(form),
            errors => errors(ctx.locale, problems),
            wishes => value(&wishes),
            message => message,
            default_closes => crate::proposals::date_value(state.clock.now_ms() + 14 * rounds::DAY_MS),
        },
    )
}

async fn show_new_poll(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::StartPoll)?;
    Ok(new_poll_page(
        &state,
        &ctx,
        &polls::PollForm::default(),
        &FieldErrors::new(),
        None,
    )
    .await?
    .into_response())
}

async fn create_poll(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = polls::PollForm::from_fields(&fields);
    let mut tx = state.db.begin().await?;
    match polls::create(&mut tx, &ctx.principal, &form, state.clock.now_ms()).await {
        Ok(id) => {
            tx.commit().await?;
            ctx.flash("flash.poll_started");
            Ok(see_other(&format!("/polls/{id}")))
        }
        Err(RoundError::Invalid(problems)) => {
            drop(tx);
            Ok(invalid(
                new_poll_page(&state, &ctx, &form, &problems, None).await?,
            ))
        }
        Err(error) => {
            drop(tx);
            let Some((status, message)) = refusal(&ctx, &error) else {
                return Err(error.into());
            };
            let page =
                new_poll_page(&state, &ctx, &form, &FieldErrors::new(), Some(message)).await?;
            Ok((status, page).into_response())
        }
    }
}

async fn poll_page(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    message: Option<String>,
) -> Result<Html<String>, AppError> {
    let now = state.clock.now_ms();
    let mut conn = state.db.pool().acquire().await?;
    let poll = polls::find(&mut conn, id, now).await?;
    let options = polls::options_of(&mut conn, id).await?;
    let mut voters = Vec::new();
    for option in rounds::voter_options(
        &mut conn,
        &ctx.principal,
        poll.opens_at,
        poll.closes_at,
        now,
    )
    .await?
    {
        let ballot = polls::ballot_of(&mut conn, id, &option.organisation_id).await?;
        let choice = ballot.map(Choice::Ranking);
        voters.push(context! {
            organisation_id => option.organisation_id,
            name => option.name,
            refusal => option.refusal,
            voted => choice.is_some(),
            entries => value(&entries(choice.as_ref(), options.len())),
        });
    }
    let result = if poll.phase == "closed" {
        let counted = polls::count(&mut conn, &poll, options.len()).await?;
        let ranking: Vec<minijinja::Value> = counted
            .tiers
            .iter()
            .enumerate()
            .flat_map(|(place, tier)| tier.iter().map(move |&o| (place + 1, o, tier.len() > 1)))
            .map(|(place, o, tied)| {
                context! {
                    place => place,
                    title => options.get(o).map(|x| x.title.clone()),
                    proposal_id => options.get(o).map(|x| x.proposal_id.clone()),
                    tied => tied,
                }
            })
            .collect();
        Some(context! { ranking => ranking, d => counted.d, p => counted.p })
    } else {
        None
    };
    drop(conn);
    state.render(
        ctx,
        "polls/show.html",
        context! {
            poll => value(&poll),
            options => value(&options),
            voters => voters,
            result => result,
            message => message,
        },
    )
}

async fn show_poll(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    Ok(poll_page(&state, &ctx, &id, None).await?.into_response())
}

async fn cast_poll_ballot(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let organisation_id = fields
        .iter()
        .find(|(k, _)| k == "organisation_id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let Ok(Choice::Ranking(ranking)) = choice_from("ranking", &fields) else {
        let page = poll_page(&state, &ctx, &id, Some(ctx.t("round.number_invalid"))).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let now = state.clock.now_ms();
    let mut tx = state.db.begin().await?;
    match polls::cast(&mut tx, &ctx.principal, &id, &organisation_id, ranking, now).await {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.ballot_cast");
            Ok(see_other(&format!("/polls/{id}")))
        }
        Err(error) => {
            drop(tx);
            let Some((status, message)) = refusal(&ctx, &error) else {
                return Err(error.into());
            };
            let page = poll_page(&state, &ctx, &id, Some(message)).await?;
            Ok((status, page).into_response())
        }
    }
}
