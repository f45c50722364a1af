//! Organisations: creating and editing, the people who act for them and their roles,
//! invitations, and the organisation's side of cooperative membership (apply, give notice).

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::{errors, invalid, see_other};
use super::{AppError, AppState, Ctx, value};
use crate::authz::{Action, Denied, OrgRole, authorize};
use crate::members::membership::{self, ApplicationForm, MembershipError};
use crate::members::{self, MembersError, OrgKind, Organisation, OrganisationForm};
use crate::people::FieldErrors;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/organisations/new", get(show_new_organisation))
        .route("/organisations", post(create_organisation))
        .route("/organisations/{slug}", get(show_organisation))
        .route(
            "/organisations/{slug}/edit",
            get(show_edit_organisation).post(update_organisation),
        )
        .route("/organisations/{slug}/invitations", post(invite_person))
        .route(
            "/organisations/{slug}/people/{person_id}/role",
            post(change_role),
        )
        .route(
            "/organisations/{slug}/people/{person_id}/remove",
            post(remove_person),
        )
        .route(
            "/invitations/{token}",
            get(show_invitation).post(accept_invitation),
        )
        .route(
            "/organisations/{slug}/membership",
            get(show_application).post(apply_for_membership),
        )
        .route("/organisations/{slug}/membership/notice", post(give_notice))
}

async fn organisation(state: &AppState, slug: &str) -> Result<Organisation, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    members::find_by_slug(&mut conn, slug)
        .await?
        .ok_or_else(AppError::not_found)
}

fn kinds(ctx: &Ctx) -> Vec<minijinja::Value> {
    OrgKind::ALL
        .iter()
        .map(|k| context! { value => k.as_str(), label => ctx.t(&format!("organisation.kind.{}", k.as_str())) })
        .collect()
}

fn organisation_form_page(
    state: &AppState,
    ctx: &Ctx,
    form: &OrganisationForm,
    problems: &FieldErrors,
    action: &str,
    title_key: &str,
) -> Result<axum::response::Html<String>, AppError> {
    state.render(
        ctx,
        "organisations/form.html",
        context! {
            form => value(form),
            errors => errors(ctx.locale, problems),
            kinds => kinds(ctx),
            action => action,
            title => ctx.t(title_key),
        },
    )
}

async fn show_new_organisation(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::CreateOrganisation)?;
    let form = OrganisationForm {
        country: "DE".into(),
        contact_name: ctx
            .person
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        contact_email: ctx
            .person
            .as_ref()
            .map(|p| p.email.clone())
            .unwrap_or_default(),
        ..OrganisationForm::default()
    };
    Ok(organisation_form_page(
        &state,
        &ctx,
        &form,
        &FieldErrors::new(),
        "/organisations",
        "organisation.new_title",
    )?
    .into_response())
}

async fn create_organisation(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<OrganisationForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match members::create(&mut tx, &ctx.principal, &form).await {
        Ok(org) => {
            tx.commit().await?;
            ctx.flash("flash.organisation_created");
            Ok(see_other(&format!("/organisations/{}", org.slug)))
        }
        Err(MembersError::Invalid(problems)) => Ok(invalid(organisation_form_page(
            &state,
            &ctx,
            &form,
            &problems,
            "/organisations",
            "organisation.new_title",
        )?)),
        Err(other) => Err(other.into()),
    }
}

async fn show_organisation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    let mut conn = state.db.pool().acquire().await?;
    let people = members::people_of(&mut conn, &ctx.principal, &org.id).await?;
    let entry = membership::entry_of(&mut conn, &org.id).await?;
    let obligations = match &entry {
        Some(entry) => membership::obligations_of(&mut conn, &entry.membership_id).await?,
        None => Vec::new(),
    };
    let application = membership::application_of(&mut conn, &org.id).await?;
    // What the organisation's money paid for: shown to the people who act for it.
    let paid_for = if ctx.principal.role_in(&org.id).is_some() {
        crate::reviews::release::paid_by_organisation(&mut conn, &org.id).await?
    } else {
        Vec::new()
    };
    // A leaving (or former) member's open commitments: for its people, the board and the
    // treasurer.
    let leaving = entry.as_ref().filter(|e| e.status != "active");
    let commitments = match leaving {
        Some(entry)
            if authorize(
                &ctx.principal,
                Action::ViewOrganisationInternals {
                    organisation_id: &org.id,
                },
            )
            .is_ok() =>
        {
            Some(membership::commitments_of(&mut conn, &org.id, Some(&entry.membership_id)).await?)
        }
        _ => None,
    };
    drop(conn);
    let is_admin = ctx.principal.is_admin_of(&org.id);
    let page = state.render(
        &ctx,
        "organisations/show.html",
        context! {
            org => value(&org),
            kind => ctx.t(&format!("organisation.kind.{}", org.kind)),
            people => value(&people),
            membership => value(&entry),
            obligations => value(&obligations),
            application => value(&application),
            paid_for => value(&paid_for),
            commitments => value(&commitments),
            is_admin => is_admin,
            me => ctx.person_id(),
            my_role => ctx.principal.role_in(&org.id).map(|r| r.as_str()),
            errors => context!{},
        },
    )?;
    Ok(page.into_response())
}

async fn show_edit_organisation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    authorize(
        &ctx.principal,
        Action::ManageOrganisation {
            organisation_id: &org.id,
        },
    )?;
    Ok(organisation_form_page(
        &state,
        &ctx,
        &OrganisationForm::from_organisation(&org),
        &FieldErrors::new(),
        &format!("/organisations/{slug}/edit"),
        "organisation.edit_title",
    )?
    .into_response())
}

async fn update_organisation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<OrganisationForm>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    let mut tx = state.db.begin().await?;
    match members::update(&mut tx, &ctx.principal, &org.id, &form).await {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.saved");
            Ok(see_other(&format!("/organisations/{slug}")))
        }
        Err(MembersError::Invalid(problems)) => Ok(invalid(organisation_form_page(
            &state,
            &ctx,
            &form,
            &problems,
            &format!("/organisations/{slug}/edit"),
            "organisation.edit_title",
        )?)),
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn invite_person(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<InviteForm>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    let role = OrgRole::parse(&form.role)
        .ok_or_else(|| AppError::bad_request("organisation.role_invalid"))?;
    let mut tx = state.db.begin().await?;
    // Mails from the cooperative's address to anyone: limited per person and per address.
    crate::people::limits::take_invitation(
        &mut tx,
        &state.config.limits,
        ctx.person_id(),
        &ctx.address,
        state.clock.now_ms(),
    )
    .await?;
    match members::invite(
        &mut tx,
        &ctx.principal,
        &org.id,
        &form.email,
        role,
        ctx.locale,
        &state.config.base_url,
    )
    .await
    {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.invitation_sent");
            Ok(see_other(&format!("/organisations/{slug}")))
        }
        Err(MembersError::Invalid(_)) => Err(AppError::bad_request("register.email_invalid")),
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((slug, person_id)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    let role = OrgRole::parse(&form.role)
        .ok_or_else(|| AppError::bad_request("organisation.role_invalid"))?;
    let mut tx = state.db.begin().await?;
    members::change_role(&mut tx, &ctx.principal, &org.id, &person_id, role).await?;
    tx.commit().await?;
    ctx.flash("flash.saved");
    Ok(see_other(&format!("/organisations/{slug}")))
}

async fn remove_person(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((slug, person_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    let mut tx = state.db.begin().await?;
    members::remove_person(&mut tx, &ctx.principal, &org.id, &person_id).await?;
    tx.commit().await?;
    if ctx.person_id() == Some(person_id.as_str()) {
        ctx.flash("flash.left_organisation");
        Ok(see_other("/account"))
    } else {
        ctx.flash("flash.person_removed");
        Ok(see_other(&format!("/organisations/{slug}")))
    }
}

async fn show_invitation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let invitation = members::find_invitation(&mut conn, &token).await?;
    drop(conn);
    let Some(invitation) = invitation else {
        return Err(MembersError::InvitationInvalid.into());
    };
    let csrf = ctx.csrf_token(&state).await?;
    let page = state.render(
        &ctx,
        "organisations/invitation.html",
        context! {
            invitation => value(&invitation),
            role => ctx.t(&format!("role.{}", invitation.role.as_str())),
            token => token,
            csrf_token => csrf,
        },
    )?;
    Ok(page.into_response())
}

async fn accept_invitation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    let invitation = members::accept_invitation(&mut tx, &ctx.principal, &token).await?;
    tx.commit().await?;
    let mut conn = state.db.pool().acquire().await?;
    let org = members::find(&mut conn, &invitation.organisation_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    ctx.flash("flash.invitation_accepted");
    Ok(see_other(&format!("/organisations/{}", org.slug)))
}

fn application_page(
    state: &AppState,
    ctx: &Ctx,
    org: &Organisation,
    form: &ApplicationForm,
    problems: &FieldErrors,
) -> Result<axum::response::Html<String>, AppError> {
    state.render(
        ctx,
        "organisations/apply.html",
        context! {
            org => value(org),
            form => value(form),
            errors => errors(ctx.locale, problems),
            statutes => value(&*state.statutes),
            share_price => state.config.share_price,
            annual_dues => state.config.annual_dues,
            max_shares => membership::MAX_SHARES,
        },
    )
}

async fn show_application(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    authorize(
        &ctx.principal,
        Action::ActForOrganisationInCooperative {
            organisation_id: &org.id,
        },
    )?;
    let form = ApplicationForm {
        shares: "1".into(),
        statutes_version: state.statutes.version.clone(),
        ..ApplicationForm::default()
    };
    Ok(application_page(&state, &ctx, &org, &form, &FieldErrors::new())?.into_response())
}

async fn apply_for_membership(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<ApplicationForm>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    let mut tx = state.db.begin().await?;
    match membership::apply(&mut tx, &ctx.principal, &org.id, &form, &state.statutes).await {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.application_sent");
            Ok(see_other(&format!("/organisations/{slug}")))
        }
        Err(MembershipError::Invalid(problems)) => Ok(invalid(application_page(
            &state, &ctx, &org, &form, &problems,
        )?)),
        Err(other) => Err(other.into()),
    }
}

async fn give_notice(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let org = organisation(&state, &slug).await?;
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    membership::give_notice(
        &mut tx,
        &ctx.principal,
        &org.id,
        state.clock.now_ms(),
        state.config.base_url.as_str(),
    )
    .await?;
    tx.commit().await?;
    ctx.flash("flash.notice_given");
    Ok(see_other(&format!("/organisations/{slug}")))
}
