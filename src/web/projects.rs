//! The project catalogue's pages: search, a project, adding (by form or from a
//! publiccode.yml), editing, maintainers and payout details.

use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::{errors, invalid, see_other, upload_error};
use super::{AppError, AppState, Ctx, MAX_PUBLICCODE_UPLOAD_BYTES, value};
use crate::authz::{Action, Denied, authorize};
use crate::catalogue::{self, CatalogueError, PayoutForm, Project, ProjectForm, Search};
use crate::people::FieldErrors;
use crate::proposals;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/new", get(show_new_project))
        .route(
            "/projects/import",
            post(import_publiccode).layer(DefaultBodyLimit::max(MAX_PUBLICCODE_UPLOAD_BYTES)),
        )
        .route("/projects/{slug}", get(show_project))
        .route(
            "/projects/{slug}/edit",
            get(show_edit_project).post(update_project),
        )
        .route("/projects/{slug}/payout", get(show_payout).post(set_payout))
        .route("/projects/{slug}/maintainers", post(invite_maintainer))
        .route("/projects/{slug}/leave", post(leave_project))
        .route(
            "/maintainer-invitations/{token}",
            get(show_maintainer_invitation).post(accept_maintainer_invitation),
        )
}

impl From<CatalogueError> for AppError {
    fn from(error: CatalogueError) -> Self {
        match error {
            CatalogueError::Denied(denied) => denied.into(),
            CatalogueError::UnknownProject => AppError::not_found(),
            CatalogueError::LastMaintainer => AppError::conflict("project.last_maintainer"),
            CatalogueError::AlreadyMaintainer => AppError::conflict("project.already_maintainer"),
            CatalogueError::InvitationInvalid => {
                AppError::status(StatusCode::GONE, "invitation.invalid")
            }
            CatalogueError::InvitationForSomeoneElse => {
                AppError::status(StatusCode::FORBIDDEN, "invitation.someone_else")
            }
            CatalogueError::Invalid(_) => AppError::bad_request("error.bad_request"),
            other => AppError::internal(other),
        }
    }
}

pub(super) async fn project(state: &AppState, slug: &str) -> Result<Project, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    catalogue::find_by_slug(&mut conn, slug)
        .await?
        .ok_or_else(AppError::not_found)
}

async fn list_projects(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let page = catalogue::search(&mut conn, &search).await?;
    let (categories, licences) = catalogue::filters(&mut conn).await?;
    drop(conn);
    let html = state.render(
        &ctx,
        "projects/list.html",
        context! {
            result => value(&page),
            search => value(&search),
            categories => categories,
            licences => licences,
            may_create => authorize(&ctx.principal, Action::CreateProject).is_ok(),
        },
    )?;
    Ok(html.into_response())
}

fn project_form_page(
    state: &AppState,
    ctx: &Ctx,
    form: &ProjectForm,
    problems: &FieldErrors,
    action: &str,
    title_key: &str,
    import_error: Option<String>,
) -> Result<Html<String>, AppError> {
    state.render(
        ctx,
        "projects/form.html",
        context! {
            form => value(form),
            errors => errors(ctx.locale, problems),
            action => action,
            title => ctx.t(title_key),
            importing => action == "/projects",
            import_error => import_error,
        },
    )
}

async fn show_new_project(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::CreateProject)?;
    Ok(project_form_page(
        &state,
        &ctx,
        &ProjectForm::default(),
        &FieldErrors::new(),
        "/projects",
        "project.new_title",
        None,
    )?
    .into_response())
}

async fn create_project(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<ProjectForm>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match catalogue::create(&mut tx, &ctx.principal, &form).await {
        Ok(project) => {
            tx.commit().await?;
            ctx.flash("flash.project_created");
            Ok(see_other(&format!("/projects/{}", project.slug)))
        }
        Err(CatalogueError::Invalid(problems)) => Ok(invalid(project_form_page(
            &state,
            &ctx,
            &form,
            &problems,
            "/projects",
            "project.new_title",
            None,
        )?)),
        Err(other) => Err(other.into()),
    }
}

/// A publiccode.yml, uploaded or pasted, fills the new-project form for the person to check.
async fn import_publiccode(
    State(state): State<AppState>,
    ctx: Ctx,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    authorize(&ctx.principal, Action::CreateProject)?;
    let mut text = String::new();
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(upload_error)?;
        let content = String::from_utf8_lossy(&bytes).into_owned();
        // A file wins over the text area; either may be empty.
        if (name == "file" || name == "yaml")
            && !content.trim().is_empty()
            && (text.is_empty() || name == "file")
        {
            text = content;
        }
    }
    match catalogue::form_from_publiccode(&text, ctx.locale) {
        Ok(form) => {
            let problems = form.problems();
            let page = project_form_page(
                &state,
                &ctx,
                &form,
                &problems,
                "/projects",
                "project.new_title",
                None,
            )?;
            Ok(page.into_response())
        }
        Err(CatalogueError::Publiccode { key, detail }) => {
            let message = format!("{} ({detail})", ctx.t(key));
            Ok(invalid(project_form_page(
                &state,
                &ctx,
                &ProjectForm::default(),
                &FieldErrors::new(),
                "/projects",
                "project.new_title",
                Some(message),
            )?))
        }
        Err(other) => Err(other.into()),
    }
}

async fn show_project(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
    let mut conn = state.db.pool().acquire().await?;
    let maintainers = catalogue::maintainers_of(&mut conn, &project.id).await?;
    let proposals = proposals::of_project(&mut conn, &ctx.principal, &project.id).await?;
    let payout = match catalogue::payout_of(&mut conn, &ctx.principal, &project.id).await {
        Ok(payout) => Some(payout),
        Err(CatalogueError::Denied(_)) => None,
        Err(other) => return Err(other.into()),
    };
    drop(conn);
    let maintainer = ctx.principal.maintains(&project.id);
    let html = state.render(
        &ctx,
        "projects/show.html",
        context! {
            project => value(&project),
            maintainers => value(&maintainers),
            proposals => value(&proposals),
            may_see_payout => payout.is_some(),
            payout => value(&payout.flatten()),
            maintainer => maintainer,
            may_request => !ctx.organisations.is_empty(),
            errors => minijinja::context!{},
        },
    )?;
    Ok(html.into_response())
}

async fn show_edit_project(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
    authorize(
        &ctx.principal,
        Action::MaintainProject {
            project_id: &project.id,
        },
    )?;
    Ok(project_form_page(
        &state,
        &ctx,
        &ProjectForm::from_project(&project),
        &FieldErrors::new(),
        &format!("/projects/{slug}/edit"),
        "project.edit_title",
        None,
    )?
    .into_response())
}

async fn update_project(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<ProjectForm>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
    let mut tx = state.db.begin().await?;
    match catalogue::update(&mut tx, &ctx.principal, &project.id, &form).await {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.saved");
            Ok(see_other(&format!("/projects/{slug}")))
        }
        Err(CatalogueError::Invalid(problems)) => Ok(invalid(project_form_page(
            &state,
            &ctx,
            &form,
            &problems,
            &format!("/projects/{slug}/edit"),
            "project.edit_title",
            None,
        )?)),
        Err(other) => Err(other.into()),
    }
}

fn payout_page(
    state: &AppState,
    ctx: &Ctx,
    project: &Project,
    form: &PayoutForm,
    problems: &FieldErrors,
) -> Result<Html<String>, AppError> {
    state.render(
        ctx,
        "projects/payout.html",
        context! { project => value(project), form => value(form), errors => errors(ctx.locale, problems) },
    )
}

async fn show_payout(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
    authorize(
        &ctx.principal,
        Action::MaintainProject {
            project_id: &project.id,
        },
    )?;
    let mut conn = state.db.pool().acquire().await?;
    let current = catalogue::payout_of(&mut conn, &ctx.principal, &project.id).await?;
    drop(conn);
    let form = current
        .map(|p| PayoutForm {
            method: p.method,
            stripe_account_id: p.stripe_account_id.unwrap_or_default(),
            account_holder: p.account_holder.unwrap_or_default(),
            iban: p.iban.unwrap_or_default(),
            bic: p.bic.unwrap_or_default(),
        })
        .unwrap_or_else(|| PayoutForm {
            method: "sepa".into(),
            ..PayoutForm::default()
        });
    Ok(payout_page(&state, &ctx, &project, &form, &FieldErrors::new())?.into_response())
}

async fn set_payout(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<PayoutForm>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
    let mut tx = state.db.begin().await?;
    match catalogue::set_payout(&mut tx, &ctx.principal, &project.id, &form).await {
        Ok(()) => {
            tx.commit().await?;
            ctx.flash("flash.saved");
            Ok(see_other(&format!("/projects/{slug}")))
        }
        Err(CatalogueError::Invalid(problems)) => Ok(invalid(payout_page(
            &state, &ctx, &project, &form, &problems,
        )?)),
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
struct InviteForm {
    #[serde(default)]
    email: String,
}

async fn invite_maintainer(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<InviteForm>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
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
    match catalogue::invite_maintainer(
        &mut tx,
        &ctx.principal,
        &project.id,
        &form.email,
        ctx.locale,
        &state.config.base_url,
    )
    .await
    {
        Ok(()) => {}
        Err(CatalogueError::Invalid(_)) => {
            return Err(AppError::bad_request("register.email_invalid"));
        }
        Err(other) => return Err(other.into()),
    }
    tx.commit().await?;
    ctx.flash("flash.invitation_sent");
    Ok(see_other(&format!("/projects/{slug}")))
}

async fn leave_project(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let project = project(&state, &slug).await?;
    let mut tx = state.db.begin().await?;
    catalogue::leave(&mut tx, &ctx.principal, &project.id).await?;
    tx.commit().await?;
    ctx.flash("flash.left_project");
    Ok(see_other(&format!("/projects/{slug}")))
}

async fn show_maintainer_invitation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    let invitation = catalogue::find_maintainer_invitation(&mut conn, &token).await?;
    drop(conn);
    let (_, project_name, email) = invitation.ok_or(CatalogueError::InvitationInvalid)?;
    let csrf = ctx.csrf_token(&state).await?;
    let html = state.render(
        &ctx,
        "projects/invitation.html",
        context! { project_name => project_name, email => email, token => token, csrf_token => csrf },
    )?;
    Ok(html.into_response())
}

async fn accept_maintainer_invitation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    if ctx.person.is_none() {
        return Err(Denied::NotLoggedIn.into());
    }
    let mut tx = state.db.begin().await?;
    let project_id =
        catalogue::accept_maintainer_invitation(&mut tx, &ctx.principal, &token).await?;
    tx.commit().await?;
    let mut conn = state.db.pool().acquire().await?;
    let project = catalogue::find(&mut conn, &project_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    ctx.flash("flash.maintainer_joined");
    Ok(see_other(&format!("/projects/{}", project.slug)))
}
