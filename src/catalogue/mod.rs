//! The project catalogue: open-source projects under OSI-approved licences, their maintainers
//! (who join by invitation and may leave), and where their released money is paid out.

pub mod iban;
pub mod licences;
pub mod publiccode;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, Principal, authorize};
use crate::db::{new_id, now_ms};
use crate::i18n::Locale;
use crate::ledger::{self, AccountId, AccountKind};
use crate::mail;
use crate::members::slugify;
use crate::people::{
    self, FieldErrors, hash_token, is_plausible_email, new_token, normalise_email,
};

/// How long a maintainer invitation works.
pub const INVITATION_VALID_MS: i64 = 14 * 24 * 3_600_000;
/// Projects per catalogue page.
pub const PER_PAGE: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("the form has problems: {0:?}")]
    Invalid(FieldErrors),
    #[error("the publiccode.yml file is not usable: {key}")]
    Publiccode { key: &'static str, detail: String },
    #[error("no such project")]
    UnknownProject,
    #[error("the project needs at least one maintainer")]
    LastMaintainer,
    #[error("this person maintains the project already")]
    AlreadyMaintainer,
    #[error("the invitation is unknown, used or expired")]
    InvitationInvalid,
    #[error("the invitation was sent to another address")]
    InvitationForSomeoneElse,
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Clone, Debug, Serialize)]
pub struct Project {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub summary: String,
    /// Markdown as written.
    pub description: String,
    /// The description rendered: raw HTML never passes.
    pub description_html: String,
    pub repository_url: String,
    pub homepage_url: String,
    pub licence: String,
    pub software_version: String,
    pub categories: Vec<String>,
    pub languages: Vec<String>,
    pub created_at: i64,
}

const PROJECT_COLUMNS: &str = "id, slug, name, summary, description, repository_url, homepage_url, \
     licence, software_version, created_at";

async fn project_from_row(
    conn: &mut AnyConnection,
    row: &sqlx::any::AnyRow,
) -> Result<Project, sqlx::Error> {
    let id: String = row.get("id");
    let description: String = row.get("description");
    let categories = sqlx::query_scalar(
        "SELECT category FROM project_categories WHERE project_id = $1 ORDER BY category",
    )
    .bind(&id)
    .fetch_all(&mut *conn)
    .await?;
    let languages = sqlx::query_scalar(
        "SELECT language FROM project_languages WHERE project_id = $1 ORDER BY language",
    )
    .bind(&id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Project {
        description_html: crate::markdown::to_html(&description),
        id,
        slug: row.get("slug"),
        name: row.get("name"),
        summary: row.get("summary"),
        description,
        repository_url: row.get("repository_url"),
        homepage_url: row.get("homepage_url"),
        licence: row.get("licence"),
        software_version: row.get("software_version"),
        categories,
        languages,
        created_at: row.get("created_at"),
    })
}

pub async fn find_by_slug(
    conn: &mut AnyConnection,
    slug: &str,
) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE slug = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(project_from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(project_from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

/// What the catalogue page asks for.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Search {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub licence: String,
    #[serde(default)]
    pub page: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProjectPage {
    pub projects: Vec<Project>,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
}

/// Projects by name, optionally only those whose name contains `q`, in a category, under a
/// licence; `PER_PAGE` a page.
pub async fn search(conn: &mut AnyConnection, search: &Search) -> Result<ProjectPage, sqlx::Error> {
    let mut conditions = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    let q = search.q.trim().to_lowercase();
    if !q.is_empty() {
        binds.push(format!("%{}%", q.replace(['%', '_'], "")));
        conditions.push(format!(
            "(LOWER(name) LIKE ${n} OR LOWER(summary) LIKE ${n})",
            n = binds.len()
        ));
    }
    if !search.category.trim().is_empty() {
        binds.push(search.category.trim().to_owned());
        conditions.push(format!(
            "id IN (SELECT project_id FROM project_categories WHERE category = ${})",
            binds.len()
        ));
    }
    if !search.licence.trim().is_empty() {
        binds.push(search.licence.trim().to_owned());
        conditions.push(format!("licence = ${}", binds.len()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let count_sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM projects {filter}");
    let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    for bind in &binds {
        count = count.bind(bind.clone());
    }
    let total = count.fetch_one(&mut *conn).await?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let page = search.page.unwrap_or(1).clamp(1, pages);
    let sql = format!(
        "SELECT {PROJECT_COLUMNS} FROM projects {filter} ORDER BY LOWER(name), id LIMIT {PER_PAGE} OFFSET {}",
        (page - 1) * PER_PAGE
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in &binds {
        query = query.bind(bind.clone());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut projects = Vec::with_capacity(rows.len());
    for row in &rows {
        projects.push(project_from_row(conn, row).await?);
    }
    Ok(ProjectPage {
        projects,
        page,
        pages,
        total,
    })
}

/// The categories and licences in use, for the catalogue's filters.
pub async fn filters(conn: &mut AnyConnection) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let categories =
        sqlx::query_scalar("SELECT DISTINCT category FROM project_categories ORDER BY category")
            .fetch_all(&mut *conn)
            .await?;
    let licences = sqlx::query_scalar("SELECT DISTINCT licence FROM projects ORDER BY licence")
        .fetch_all(&mut *conn)
        .await?;
    Ok((categories, licences))
}

/// The project form, as entered.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ProjectForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub repository_url: String,
    #[serde(default)]
    pub homepage_url: String,
    #[serde(default)]
    pub licence: String,
    /// Comma-separated.
    #[serde(default)]
    pub categories: String,
    /// Comma-separated.
    #[serde(default)]
    pub languages: String,
    #[serde(default)]
    pub software_version: String,
}

fn split_list(text: &str) -> Vec<String> {
    let mut items: Vec<String> = text
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    items.sort();
    items.dedup();
    items
}

fn is_web_url(text: &str) -> bool {
    url::Url::parse(text.trim())
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}

impl ProjectForm {
    pub fn from_project(project: &Project) -> Self {
        Self {
            name: project.name.clone(),
            summary: project.summary.clone(),
            description: project.description.clone(),
            repository_url: project.repository_url.clone(),
            homepage_url: project.homepage_url.clone(),
            licence: project.licence.clone(),
            categories: project.categories.join(", "),
            languages: project.languages.join(", "),
            software_version: project.software_version.clone(),
        }
    }

    /// What is wrong, field by field; the licence is checked against the OSI list.
    pub fn problems(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        for (field, value) in [("name", &self.name), ("summary", &self.summary)] {
            if value.trim().is_empty() {
                errors.insert(field, "form.required");
            }
        }
        if !is_web_url(&self.repository_url) {
            errors.insert("repository_url", "project.url_invalid");
        }
        if !self.homepage_url.trim().is_empty() && !is_web_url(&self.homepage_url) {
            errors.insert("homepage_url", "project.url_invalid");
        }
        if let Err(error) = licences::parse_expression(&self.licence) {
            errors.insert("licence", error.message_key());
        }
        for (field, list) in [
            ("categories", &self.categories),
            ("languages", &self.languages),
        ] {
            let items = split_list(list);
            if items.len() > 10 || items.iter().any(|i| i.chars().count() > 40) {
                errors.insert(field, "project.list_too_long");
            }
        }
        use crate::text;
        text::check(
            &mut errors,
            &[
                (&text::PROJECT_NAME, &self.name),
                (&text::PROJECT_SUMMARY, &self.summary),
                (&text::PROJECT_DESCRIPTION, &self.description),
                (&text::PROJECT_REPOSITORY_URL, &self.repository_url),
                (&text::PROJECT_HOMEPAGE_URL, &self.homepage_url),
                (&text::PROJECT_LICENCE, &self.licence),
                (&text::PROJECT_CATEGORIES, &self.categories),
                (&text::PROJECT_LANGUAGES, &self.languages),
                (&text::PROJECT_SOFTWARE_VERSION, &self.software_version),
            ],
        );
        errors
    }
}

async fn free_slug(conn: &mut AnyConnection, base: &str) -> Result<String, sqlx::Error> {
    let mut candidate = base.to_owned();
    let mut n = 1;
    loop {
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
            .bind(&candidate)
            .fetch_optional(&mut *conn)
            .await?;
        if taken.is_none() {
            return Ok(candidate);
        }
        n += 1;
        candidate = format!("{base}-{n}");
    }
}

async fn write_lists(
    conn: &mut AnyConnection,
    project_id: &str,
    form: &ProjectForm,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM project_categories WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM project_languages WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    for category in split_list(&form.categories) {
        sqlx::query("INSERT INTO project_categories (project_id, category) VALUES ($1, $2)")
            .bind(project_id)
            .bind(category)
            .execute(&mut *conn)
            .await?;
    }
    for language in split_list(&form.languages) {
        sqlx::query("INSERT INTO project_languages (project_id, language) VALUES ($1, $2)")
            .bind(project_id)
            .bind(language)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Adds a project; its creator becomes its maintainer, and it gets an account for what is
/// released to it.
pub async fn create(
    conn: &mut AnyConnection,
    principal: &Principal,
    form: &ProjectForm,
) -> Result<Project, CatalogueError> {
    authorize(principal, Action::CreateProject)?;
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let problems = form.problems();
    if !problems.is_empty() {
        return Err(CatalogueError::Invalid(problems));
    }
    let licence = licences::parse_expression(&form.licence).unwrap_or_default();
    let id = new_id();
    let slug = free_slug(conn, &slugify(&form.name)).await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO projects
             (id, slug, name, summary, description, repository_url, homepage_url, licence,
              software_version, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&id)
    .bind(&slug)
    .bind(form.name.trim())
    .bind(form.summary.trim())
    .bind(form.description.trim())
    .bind(form.repository_url.trim())
    .bind(form.homepage_url.trim())
    .bind(&licence)
    .bind(form.software_version.trim())
    .bind(person_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    write_lists(conn, &id, form).await?;
    sqlx::query(
        "INSERT INTO project_maintainers (project_id, person_id, added_at) VALUES ($1, $2, $3)",
    )
    .bind(&id)
    .bind(person_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    record_maintainer_joined(conn, &id, person_id, now).await?;
    ledger::open_account(conn, &AccountId::payable(&id), AccountKind::Payable).await?;
    audit::record(
        conn,
        &principal.actor(),
        "project.created",
        &id,
        None,
        serde_json::json!({ "name": form.name.trim(), "licence": licence }),
    )
    .await?;
    find(conn, &id).await?.ok_or(CatalogueError::UnknownProject)
}

/// Changes a project's details (its maintainers only).
pub async fn update(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
    form: &ProjectForm,
) -> Result<(), CatalogueError> {
    authorize(principal, Action::MaintainProject { project_id })?;
    let problems = form.problems();
    if !problems.is_empty() {
        return Err(CatalogueError::Invalid(problems));
    }
    let licence = licences::parse_expression(&form.licence).unwrap_or_default();
    sqlx::query(
        "UPDATE projects SET name = $1, summary = $2, description = $3, repository_url = $4,
             homepage_url = $5, licence = $6, software_version = $7, updated_at = $8
         WHERE id = $9",
    )
    .bind(form.name.trim())
    .bind(form.summary.trim())
    .bind(form.description.trim())
    .bind(form.repository_url.trim())
    .bind(form.homepage_url.trim())
    .bind(&licence)
    .bind(form.software_version.trim())
    .bind(now_ms())
    .bind(project_id)
    .execute(&mut *conn)
    .await?;
    write_lists(conn, project_id, form).await?;
    audit::record(
        conn,
        &principal.actor(),
        "project.updated",
        project_id,
        None,
        serde_json::json!({ "name": form.name.trim(), "licence": licence }),
    )
    .await?;
    Ok(())
}

/// A project form filled from a `publiccode.yml` file, in the reader's language where the file
/// has it. The person checks it and submits it as usual.
pub fn form_from_publiccode(text: &str, locale: Locale) -> Result<ProjectForm, CatalogueError> {
    let parsed = publiccode::parse(text).map_err(|error| CatalogueError::Publiccode {
        key: error.message_key(),
        detail: error.to_string(),
    })?;
    let description = parsed.description_for(locale.as_str());
    let summary = description
        .and_then(|d| d.short.clone())
        .unwrap_or_default();
    let mut long = description.and_then(|d| d.long.clone()).unwrap_or_default();
    if let Some(features) = description.map(|d| &d.features).filter(|f| !f.is_empty()) {
        long.push_str("\n\n");
        for feature in features {
            long.push_str(&format!("- {feature}\n"));
        }
    }
    Ok(ProjectForm {
        name: parsed.name.clone(),
        summary: summary.chars().take(300).collect(),
        description: long.trim().to_owned(),
        repository_url: parsed.url.clone(),
        homepage_url: parsed.landing_url.clone().unwrap_or_default(),
        licence: parsed.licence.clone(),
        categories: parsed.categories.join(", "),
        languages: String::new(),
        software_version: parsed.software_version.clone().unwrap_or_default(),
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct Maintainer {
    pub person_id: String,
    pub name: String,
    pub added_at: i64,
}

pub async fn maintainers_of(
    conn: &mut AnyConnection,
    project_id: &str,
) -> Result<Vec<Maintainer>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.id, p.name, m.added_at FROM project_maintainers m JOIN people p ON p.id = m.person_id
         WHERE m.project_id = $1 ORDER BY m.added_at, p.name",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Maintainer {
            person_id: row.get("id"),
            name: row.get("name"),
            added_at: row.get("added_at"),
        })
        .collect())
}

/// The email addresses of a project's maintainers, with their languages (for mails).
pub async fn maintainer_addresses(
    conn: &mut AnyConnection,
    project_id: &str,
) -> Result<Vec<(String, Locale)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.email, p.locale FROM project_maintainers m JOIN people p ON p.id = m.person_id
         WHERE m.project_id = $1",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let locale: String = row.get("locale");
            (
                row.get("email"),
                Locale::from_tag(&locale).unwrap_or_default(),
            )
        })
        .collect())
}

/// Invites someone to maintain the project, by email (a single-use link, 14 days).
pub async fn invite_maintainer(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
    email: &str,
    locale: Locale,
    base_url: &url::Url,
) -> Result<(), CatalogueError> {
    authorize(principal, Action::MaintainProject { project_id })?;
    crate::text::checked(&[(&crate::text::MAINTAINER_INVITATION_EMAIL, email)])
        .map_err(CatalogueError::Invalid)?;
    let email = normalise_email(email);
    if !is_plausible_email(&email) {
        let mut errors = FieldErrors::new();
        errors.insert("email", "register.email_invalid");
        return Err(CatalogueError::Invalid(errors));
    }
    let project = find(conn, project_id)
        .await?
        .ok_or(CatalogueError::UnknownProject)?;
    let already: Option<String> = sqlx::query_scalar(
        "SELECT p.id FROM people p JOIN project_maintainers m ON m.person_id = p.id
         WHERE m.project_id = $1 AND p.email = $2",
    )
    .bind(project_id)
    .bind(&email)
    .fetch_optional(&mut *conn)
    .await?;
    if already.is_some() {
        return Err(CatalogueError::AlreadyMaintainer);
    }
    let inviter = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let token = new_token();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO maintainer_invitations (token_hash, project_id, email, invited_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash_token(&token))
    .bind(project_id)
    .bind(&email)
    .bind(inviter)
    .bind(now)
    .bind(now + INVITATION_VALID_MS)
    .execute(&mut *conn)
    .await?;
    let inviter_name = people::find(conn, inviter)
        .await?
        .map(|p| p.name)
        .unwrap_or_default();
    let recipient_locale = people::find_by_email(conn, &email)
        .await?
        .map(|p| p.locale)
        .unwrap_or(locale);
    let mail = mail::compose(
        &email,
        recipient_locale,
        "maintainer_invitation",
        "mail.maintainer_invitation",
        &[("project", &project.name), ("inviter", &inviter_name)],
        Some(format!(
            "{}/maintainer-invitations/{token}",
            base_url.as_str().trim_end_matches('/')
        )),
    );
    mail::enqueue(conn, &mail).await?;
    audit::record(
        conn,
        &principal.actor(),
        "project.maintainer_invited",
        project_id,
        None,
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// The project a maintainer invitation is for, while it is valid: (project id, name, email).
pub async fn find_maintainer_invitation(
    conn: &mut AnyConnection,
    token: &str,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.project_id, p.name, i.email FROM maintainer_invitations i
         JOIN projects p ON p.id = i.project_id
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2",
    )
    .bind(hash_token(token))
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| (row.get("project_id"), row.get("name"), row.get("email"))))
}

/// Accepts a maintainer invitation for the logged-in person (the invited address only, once).
pub async fn accept_maintainer_invitation(
    conn: &mut AnyConnection,
    principal: &Principal,
    token: &str,
) -> Result<String, CatalogueError> {
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let person = people::find(conn, person_id)
        .await?
        .ok_or(Denied::NotLoggedIn)?;
    let (project_id, _, email) = find_maintainer_invitation(conn, token)
        .await?
        .ok_or(CatalogueError::InvitationInvalid)?;
    if email != person.email {
        return Err(CatalogueError::InvitationForSomeoneElse);
    }
    let used = sqlx::query(
        "UPDATE maintainer_invitations SET accepted_at = $1, accepted_by = $2
         WHERE token_hash = $3 AND accepted_at IS NULL AND expires_at > $1",
    )
    .bind(now_ms())
    .bind(person_id)
    .bind(hash_token(token))
    .execute(&mut *conn)
    .await?;
    if used.rows_affected() != 1 {
        return Err(CatalogueError::InvitationInvalid);
    }
    if principal.maintains(&project_id) {
        return Err(CatalogueError::AlreadyMaintainer);
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO project_maintainers (project_id, person_id, added_at) VALUES ($1, $2, $3)",
    )
    .bind(&project_id)
    .bind(person_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    record_maintainer_joined(conn, &project_id, person_id, now).await?;
    audit::record(
        conn,
        &principal.actor(),
        "project.maintainer_joined",
        &project_id,
        None,
        serde_json::json!({}),
    )
    .await?;
    Ok(project_id)
}

/// Notes in the maintainer history (never deleted) that a person became a maintainer; the
/// four-eyes rule reads it (see `authz::Principal::maintained`).
async fn record_maintainer_joined(
    conn: &mut AnyConnection,
    project_id: &str,
    person_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO project_maintainer_history (project_id, person_id, added_at) VALUES ($1, $2, $3)",
    )
    .bind(project_id)
    .bind(person_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A maintainer stops maintaining the project; the last one cannot (the project's proposals
/// and money need someone to answer for them).
pub async fn leave(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
) -> Result<(), CatalogueError> {
    authorize(principal, Action::MaintainProject { project_id })?;
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    // Serialise leaving per project, so two maintainers cannot both leave at once.
    sqlx::query("UPDATE projects SET id = id WHERE id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM project_maintainers WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_one(&mut *conn)
    .await?;
    if count <= 1 {
        return Err(CatalogueError::LastMaintainer);
    }
    sqlx::query("DELETE FROM project_maintainers WHERE project_id = $1 AND person_id = $2")
        .bind(project_id)
        .bind(person_id)
        .execute(&mut *conn)
        .await?;
    // The history keeps them: whoever maintained a project never reviews its milestones.
    sqlx::query(
        "UPDATE project_maintainer_history SET removed_at = $1
         WHERE project_id = $2 AND person_id = $3 AND removed_at IS NULL",
    )
    .bind(now_ms())
    .bind(project_id)
    .bind(person_id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "project.maintainer_left",
        project_id,
        None,
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// Where a project's released money goes.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PayoutForm {
    /// stripe or sepa
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub stripe_account_id: String,
    #[serde(default)]
    pub account_holder: String,
    #[serde(default)]
    pub iban: String,
    #[serde(default)]
    pub bic: String,
}

impl PayoutForm {
    pub fn problems(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        match self.method.as_str() {
            "stripe" => {
                let id = self.stripe_account_id.trim();
                let valid = id.len() > 5
                    && id.len() <= 255
                    && id.starts_with("acct_")
                    && id[5..].chars().all(|c| c.is_ascii_alphanumeric());
                if !valid {
                    errors.insert("stripe_account_id", "payout.stripe_invalid");
                }
            }
            "sepa" => {
                if self.account_holder.trim().is_empty() {
                    errors.insert("account_holder", "form.required");
                } else if self.account_holder.chars().count() > 70 {
                    // SEPA credit transfers carry at most 70 characters of the name.
                    errors.insert("account_holder", "payout.holder_too_long");
                }
                if let Err(error) = iban::Iban::parse(&self.iban) {
                    errors.insert("iban", error.message_key());
                }
                if !self.bic.trim().is_empty()
                    && let Err(error) = iban::Bic::parse(&self.bic)
                {
                    errors.insert("bic", error.message_key());
                }
            }
            _ => {
                errors.insert("method", "payout.method_missing");
            }
        }
        use crate::text;
        text::check(
            &mut errors,
            &[
                (&text::PAYOUT_ACCOUNT_HOLDER, &self.account_holder),
                (&text::PAYOUT_STRIPE_ACCOUNT, &self.stripe_account_id),
                (&text::PAYOUT_IBAN, &self.iban),
                (&text::PAYOUT_BIC, &self.bic),
            ],
        );
        errors
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Payout {
    pub method: String,
    pub stripe_account_id: Option<String>,
    pub account_holder: Option<String>,
    /// Formatted in groups of four.
    pub iban: Option<String>,
    pub bic: Option<String>,
    pub updated_at: i64,
}

/// Sets the payout details (maintainers only); the IBAN's checksum is verified.
pub async fn set_payout(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
    form: &PayoutForm,
) -> Result<(), CatalogueError> {
    authorize(principal, Action::MaintainProject { project_id })?;
    let problems = form.problems();
    if !problems.is_empty() {
        return Err(CatalogueError::Invalid(problems));
    }
    let (stripe, holder, iban, bic) = match form.method.as_str() {
        "stripe" => (
            Some(form.stripe_account_id.trim().to_owned()),
            None,
            None,
            None,
        ),
        _ => (
            None,
            Some(form.account_holder.trim().to_owned()),
            iban::Iban::parse(&form.iban).ok().map(|i| i.to_string()),
            iban::Bic::parse(&form.bic).ok().map(|b| b.to_string()),
        ),
    };
    let now = now_ms();
    let actor = principal.actor();
    sqlx::query("DELETE FROM project_payouts WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO project_payouts
             (project_id, method, stripe_account_id, account_holder, iban, bic, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(project_id)
    .bind(&form.method)
    .bind(stripe)
    .bind(holder)
    .bind(iban)
    .bind(bic)
    .bind(actor.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // The trail says that the details changed, not what they are.
    audit::record(
        conn,
        &actor,
        "project.payout_changed",
        project_id,
        None,
        serde_json::json!({ "method": form.method }),
    )
    .await?;
    Ok(())
}

/// The payout details, for the project's maintainers and the treasurer.
pub async fn payout_of(
    conn: &mut AnyConnection,
    principal: &Principal,
    project_id: &str,
) -> Result<Option<Payout>, CatalogueError> {
    authorize(principal, Action::ViewPayoutDetails { project_id })?;
    let row = sqlx::query(
        "SELECT method, stripe_account_id, account_holder, iban, bic, updated_at
         FROM project_payouts WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| {
        let iban: Option<String> = row.get("iban");
        Payout {
            method: row.get("method"),
            stripe_account_id: row.get("stripe_account_id"),
            account_holder: row.get("account_holder"),
            iban: iban.and_then(|i| iban::Iban::parse(&i).ok().map(|i| i.formatted())),
            bic: row.get("bic"),
            updated_at: row.get("updated_at"),
        }
    }))
}
