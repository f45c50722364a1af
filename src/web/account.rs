//! Accounts: registration, email verification, login and logout, the account page, password
//! change and reset.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::forms::{self, errors, invalid, see_other};
use super::{AppError, AppState, Ctx};
use crate::authz::Denied;
use crate::db::now_ms;
use crate::people::login::{self, LoginError};
use crate::people::{self, FieldErrors, PeopleError, Registration, sessions};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", get(show_registration).post(register))
        .route("/verify-email/{token}", get(verify_email))
        .route("/account/verify-email", post(resend_verification))
        .route("/login", get(show_login).post(log_in))
        .route("/logout", post(log_out))
        .route("/account", get(show_account))
        .route("/account/acting-for", post(choose_acting_organisation))
        .route(
            "/account/password",
            get(show_password_change).post(change_password),
        )
        .route(
            "/password-reset",
            get(show_reset_request).post(request_reset),
        )
        .route(
            "/password-reset/{token}",
            get(show_reset).post(reset_password),
        )
}

/// A page with a title and a message (after registration, for used links, ...).
fn message_page(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    title_key: &str,
    message: String,
) -> Result<Response, AppError> {
    let page = state.render(
        ctx,
        "message.html",
        context! { title => ctx.t(title_key), message => message },
    )?;
    Ok((status, page).into_response())
}

async fn show_registration(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let csrf = ctx.csrf_token(&state).await?;
    let page = state.render(
        &ctx,
        "account/register.html",
        context! { form => super::value(&Registration::default()), errors => context!{}, csrf_token => csrf },
    )?;
    Ok(page.into_response())
}

async fn register(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Registration>,
) -> Result<Response, AppError> {
    let problems = form.problems();
    if !problems.is_empty() {
        return registration_with_problems(&state, &ctx, &form, &problems);
    }
    let origin = people::Origin {
        address: &ctx.address,
        now_ms: state.clock.now_ms(),
    };
    match people::register(
        &state.db,
        &state.hasher,
        &state.config.limits,
        &form,
        ctx.locale,
        &state.config.base_url,
        origin,
    )
    .await
    {
        Ok(_) => {}
        Err(PeopleError::Invalid(problems)) => {
            return registration_with_problems(&state, &ctx, &form, &problems);
        }
        Err(other) => return Err(other.into()),
    }
    // The same answer whether or not the address had an account: the mail tells the owner.
    message_page(
        &state,
        &ctx,
        StatusCode::OK,
        "register.done_title",
        ctx.t("register.done"),
    )
}

fn registration_with_problems(
    state: &AppState,
    ctx: &Ctx,
    form: &Registration,
    problems: &FieldErrors,
) -> Result<Response, AppError> {
    let page = state.render(
        ctx,
        "account/register.html",
        context! { form => super::value(form), errors => errors(ctx.locale, problems) },
    )?;
    Ok(invalid(page))
}

async fn verify_email(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut tx = state.db.begin().await?;
    match people::verify_email(&mut tx, &token).await {
        Ok(_) => {
            tx.commit().await?;
            ctx.flash("flash.email_verified");
            Ok(see_other(if ctx.person.is_some() {
                "/account"
            } else {
                "/login"
            }))
        }
        Err(PeopleError::TokenInvalid) => message_page(
            &state,
            &ctx,
            StatusCode::GONE,
            "token.invalid_title",
            ctx.t("token.invalid"),
        ),
        Err(other) => Err(other.into()),
    }
}

async fn resend_verification(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Response, AppError> {
    let person = ctx.person.as_ref().ok_or(Denied::NotLoggedIn)?;
    if !person.email_verified {
        let origin = people::Origin {
            address: &ctx.address,
            now_ms: state.clock.now_ms(),
        };
        let mut tx = state.db.begin().await?;
        people::resend_verification(
            &mut tx,
            &state.config.limits,
            person,
            &state.config.base_url,
            origin,
        )
        .await?;
        tx.commit().await?;
    }
    ctx.flash("flash.verification_sent");
    Ok(see_other("/account"))
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn show_login(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let csrf = ctx.csrf_token(&state).await?;
    let form = LoginForm {
        next: query.next,
        ..LoginForm::default()
    };
    let page = state.render(
        &ctx,
        "account/login.html",
        context! { form => super::value(&form), errors => context!{}, csrf_token => csrf },
    )?;
    Ok(page.into_response())
}

async fn log_in(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let failed = |status: StatusCode, message: String| -> Result<Response, AppError> {
        let page = state.render(
            &ctx,
            "account/login.html",
            context! {
                form => super::value(&form),
                errors => context! { email => message },
            },
        )?;
        Ok((status, page).into_response())
    };
    match login::authenticate(
        &state.db,
        &state.hasher,
        &state.config.limits,
        &form.email,
        &form.password,
        &ctx.address,
    )
    .await
    {
        Ok(person) => {
            let mut tx = state.db.begin().await?;
            let old = ctx.session_token_hash();
            let (token, _) = sessions::renew_for(&mut tx, old.as_deref(), &person.id).await?;
            tx.commit().await?;
            ctx.set_session_cookie(&token);
            Ok(see_other(&forms::local_path(form.next.as_deref())))
        }
        Err(LoginError::Invalid) => {
            failed(StatusCode::UNPROCESSABLE_ENTITY, ctx.t("login.invalid"))
        }
        Err(LoginError::Throttled { until_ms }) => {
            let seconds = ((until_ms - now_ms()) / 1_000).max(1);
            let minutes = ((until_ms - now_ms()) / 60_000 + 1).max(1).to_string();
            let mut response = failed(
                StatusCode::TOO_MANY_REQUESTS,
                crate::i18n::t_with(ctx.locale, "login.throttled", &[("minutes", &minutes)]),
            )?;
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

async fn log_out(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    if let Some(hash) = ctx.session_token_hash() {
        let mut tx = state.db.begin().await?;
        sessions::end(&mut tx, &hash).await?;
        tx.commit().await?;
    }
    ctx.clear_session_cookie();
    ctx.flash("flash.logged_out");
    Ok(see_other("/"))
}

async fn show_account(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let person = ctx.person.as_ref().ok_or(Denied::NotLoggedIn)?;
    let page = state.render(
        &ctx,
        "account/account.html",
        context! { account => super::value(person) },
    )?;
    Ok(page.into_response())
}

#[derive(Debug, Deserialize)]
struct ActingForm {
    organisation_id: String,
}

async fn choose_acting_organisation(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<ActingForm>,
) -> Result<Response, AppError> {
    ctx.person.as_ref().ok_or(Denied::NotLoggedIn)?;
    let Some((org, _)) = ctx
        .organisations
        .iter()
        .find(|(o, _)| o.id == form.organisation_id)
    else {
        return Err(Denied::Forbidden.into());
    };
    let hash = ctx.session_token_hash().ok_or(Denied::NotLoggedIn)?;
    let mut tx = state.db.begin().await?;
    sessions::set_acting_organisation(&mut tx, &hash, Some(&org.id)).await?;
    tx.commit().await?;
    ctx.flash("flash.acting_changed");
    Ok(see_other(&format!("/organisations/{}", org.slug)))
}

async fn show_password_change(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Response, AppError> {
    ctx.person.as_ref().ok_or(Denied::NotLoggedIn)?;
    let page = state.render(
        &ctx,
        "account/password.html",
        context! { errors => context!{} },
    )?;
    Ok(page.into_response())
}

#[derive(Debug, Deserialize)]
struct PasswordChangeForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<PasswordChangeForm>,
) -> Result<Response, AppError> {
    let person = ctx.person.as_ref().ok_or(Denied::NotLoggedIn)?;
    let keep = ctx.session_token_hash().unwrap_or_default();
    let mut problems = FieldErrors::new();
    match people::change_password(
        &state.db,
        &state.hasher,
        &state.config.limits,
        person,
        &form.current_password,
        &form.new_password,
        &keep,
        &ctx.address,
    )
    .await
    {
        Ok(()) => {
            ctx.flash("flash.password_changed");
            return Ok(see_other("/account"));
        }
        Err(PeopleError::WrongPassword) => {
            problems.insert("current_password", "password.wrong_current");
        }
        Err(PeopleError::Password(problem)) => {
            problems.insert("new_password", problem.message_key());
        }
        Err(other) => return Err(other.into()),
    }
    let page = state.render(
        &ctx,
        "account/password.html",
        context! { errors => errors(ctx.locale, &problems) },
    )?;
    Ok(invalid(page))
}

async fn show_reset_request(State(state): State<AppState>, ctx: Ctx) -> Result<Response, AppError> {
    let csrf = ctx.csrf_token(&state).await?;
    let page = state.render(
        &ctx,
        "account/reset_request.html",
        context! { csrf_token => csrf, errors => context!{}, email => "" },
    )?;
    Ok(page.into_response())
}

#[derive(Debug, Deserialize)]
struct ResetRequestForm {
    #[serde(default)]
    email: String,
}

async fn request_reset(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<ResetRequestForm>,
) -> Result<Response, AppError> {
    if !people::is_plausible_email(&people::normalise_email(&form.email)) {
        let mut problems = FieldErrors::new();
        problems.insert("email", "register.email_invalid");
        let page = state.render(
            &ctx,
            "account/reset_request.html",
            context! { errors => errors(ctx.locale, &problems), email => form.email },
        )?;
        return Ok(invalid(page));
    }
    let origin = people::Origin {
        address: &ctx.address,
        now_ms: state.clock.now_ms(),
    };
    let mut tx = state.db.begin().await?;
    people::request_password_reset(
        &mut tx,
        &state.config.limits,
        &form.email,
        &state.config.base_url,
        origin,
    )
    .await?;
    tx.commit().await?;
    message_page(
        &state,
        &ctx,
        StatusCode::OK,
        "reset.sent_title",
        ctx.t("reset.sent"),
    )
}

async fn show_reset(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut conn = state.db.pool().acquire().await?;
    if !people::token_is_valid(&mut conn, &token, "reset_password").await? {
        drop(conn);
        return message_page(
            &state,
            &ctx,
            StatusCode::GONE,
            "token.invalid_title",
            ctx.t("token.invalid"),
        );
    }
    drop(conn);
    let csrf = ctx.csrf_token(&state).await?;
    let page = state.render(
        &ctx,
        "account/reset.html",
        context! { csrf_token => csrf, errors => context!{}, token => token },
    )?;
    Ok(page.into_response())
}

#[derive(Debug, Deserialize)]
struct ResetForm {
    #[serde(default)]
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(form): Form<ResetForm>,
) -> Result<Response, AppError> {
    match people::reset_password(&state.db, &state.hasher, &token, &form.password).await {
        Ok(_) => {
            ctx.flash("flash.password_reset");
            Ok(see_other("/login"))
        }
        Err(PeopleError::Password(problem)) => {
            let mut problems = FieldErrors::new();
            problems.insert("password", problem.message_key());
            let page = state.render(
                &ctx,
                "account/reset.html",
                context! { errors => errors(ctx.locale, &problems), token => token },
            )?;
            Ok(invalid(page))
        }
        Err(PeopleError::TokenInvalid) => message_page(
            &state,
            &ctx,
            StatusCode::GONE,
            "token.invalid_title",
            ctx.t("token.invalid"),
        ),
        Err(other) => Err(other.into()),
    }
}
