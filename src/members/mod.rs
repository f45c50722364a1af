//! Organisations and the people who act for them: creating and editing an organisation,
//! inviting people, roles (org admin, org member), removing and leaving. Cooperative
//! membership lives in [`membership`].

pub mod leitweg;
pub mod membership;
pub mod statutes;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::authz::{Action, Denied, OrgRole, Principal, authorize};
use crate::db::{new_id, now_ms};
use crate::i18n::Locale;
use crate::ledger::{self, AccountId, AccountKind};
use crate::mail;
use crate::people::{
    self, FieldErrors, hash_token, is_plausible_email, new_token, normalise_email,
};

/// How long an invitation link works.
pub const INVITATION_VALID_MS: i64 = 14 * 24 * 3_600_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Association,
    Foundation,
    CharityCompany,
    Municipality,
    PublicBody,
    Company,
}

impl OrgKind {
    pub const ALL: [OrgKind; 6] = [
        OrgKind::Association,
        OrgKind::Foundation,
        OrgKind::CharityCompany,
        OrgKind::Municipality,
        OrgKind::PublicBody,
        OrgKind::Company,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Association => "association",
            OrgKind::Foundation => "foundation",
            OrgKind::CharityCompany => "charity_company",
            OrgKind::Municipality => "municipality",
            OrgKind::PublicBody => "public_body",
            OrgKind::Company => "company",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Public bodies receive e-invoices (XRechnung) at their Leitweg-ID.
    pub fn is_public(self) -> bool {
        matches!(self, OrgKind::Municipality | OrgKind::PublicBody)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Organisation {
    pub id: String,
    pub slug: String,
    pub legal_name: String,
    pub kind: String,
    pub street: String,
    pub postcode: String,
    pub city: String,
    pub country: String,
    pub website: String,
    pub leitweg_id: Option<String>,
    pub representative: String,
    pub contact_name: String,
    pub contact_email: String,
    pub created_at: i64,
}

const ORG_COLUMNS: &str = "id, slug, legal_name, kind, street, postcode, city, country, website, \
     leitweg_id, representative, contact_name, contact_email, created_at";

fn organisation_from_row(row: &sqlx::any::AnyRow) -> Organisation {
    Organisation {
        id: row.get("id"),
        slug: row.get("slug"),
        legal_name: row.get("legal_name"),
        kind: row.get("kind"),
        street: row.get("street"),
        postcode: row.get("postcode"),
        city: row.get("city"),
        country: row.get("country"),
        website: row.get("website"),
        leitweg_id: row.get("leitweg_id"),
        representative: row.get("representative"),
        contact_name: row.get("contact_name"),
        contact_email: row.get("contact_email"),
        created_at: row.get("created_at"),
    }
}

pub async fn find_by_slug(
    conn: &mut AnyConnection,
    slug: &str,
) -> Result<Option<Organisation>, sqlx::Error> {
    let sql = format!("SELECT {ORG_COLUMNS} FROM organisations WHERE slug = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(organisation_from_row))
}

pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Organisation>, sqlx::Error> {
    let sql = format!("SELECT {ORG_COLUMNS} FROM organisations WHERE id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(organisation_from_row))
}

/// The organisations a person acts for, with the role, by name.
pub async fn of_person(
    conn: &mut AnyConnection,
    person_id: &str,
) -> Result<Vec<(Organisation, OrgRole)>, sqlx::Error> {
    let sql = format!(
        "SELECT {}, op.role FROM organisations o
         JOIN organisation_people op ON op.organisation_id = o.id
         WHERE op.person_id = $1 ORDER BY o.legal_name",
        ORG_COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(person_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let role: String = row.get("role");
            (
                organisation_from_row(row),
                OrgRole::parse(&role).unwrap_or(OrgRole::Member),
            )
        })
        .collect())
}

/// The organisation form, as entered.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct OrganisationForm {
    #[serde(default)]
    pub legal_name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub postcode: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub representative: String,
    #[serde(default)]
    pub contact_name: String,
    #[serde(default)]
    pub contact_email: String,
    #[serde(default)]
    pub website: String,
    #[serde(default)]
    pub leitweg_id: String,
}

impl OrganisationForm {
    pub fn from_organisation(org: &Organisation) -> Self {
        Self {
            legal_name: org.legal_name.clone(),
            kind: org.kind.clone(),
            street: org.street.clone(),
            postcode: org.postcode.clone(),
            city: org.city.clone(),
            country: org.country.clone(),
            representative: org.representative.clone(),
            contact_name: org.contact_name.clone(),
            contact_email: org.contact_email.clone(),
            website: org.website.clone(),
            leitweg_id: org.leitweg_id.clone().unwrap_or_default(),
        }
    }

    /// What is wrong with the form, field by field.
    pub fn problems(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let required = [
            ("legal_name", &self.legal_name),
            ("street", &self.street),
            ("postcode", &self.postcode),
            ("city", &self.city),
            ("representative", &self.representative),
            ("contact_name", &self.contact_name),
        ];
        for (field, value) in required {
            if value.trim().is_empty() {
                errors.insert(field, "form.required");
            }
        }
        let kind = OrgKind::parse(&self.kind);
        if kind.is_none() {
            errors.insert("kind", "organisation.kind_missing");
        }
        let country = self.country.trim();
        if !(country.is_empty()
            || (country.len() == 2 && country.chars().all(|c| c.is_ascii_alphabetic())))
        {
            errors.insert("country", "organisation.country_invalid");
        }
        if !is_plausible_email(&normalise_email(&self.contact_email)) {
            errors.insert("contact_email", "register.email_invalid");
        }
        let website = self.website.trim();
        if !website.is_empty()
            && url::Url::parse(website)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            errors.insert("website", "organisation.website_invalid");
        }
        let leitweg = self.leitweg_id.trim();
        if kind.is_some_and(OrgKind::is_public) && leitweg.is_empty() {
            errors.insert("leitweg_id", "organisation.leitweg_missing");
        } else if !leitweg.is_empty() && leitweg::parse(leitweg).is_none() {
            errors.insert("leitweg_id", "organisation.leitweg_invalid");
        }
        use crate::text;
        text::check(
            &mut errors,
            &[
                (&text::ORG_LEGAL_NAME, &self.legal_name),
                (&text::ORG_STREET, &self.street),
                (&text::ORG_POSTCODE, &self.postcode),
                (&text::ORG_CITY, &self.city),
                (&text::ORG_COUNTRY, &self.country),
                (&text::ORG_REPRESENTATIVE, &self.representative),
                (&text::ORG_CONTACT_NAME, &self.contact_name),
                (&text::ORG_CONTACT_EMAIL, &self.contact_email),
                (&text::ORG_WEBSITE, &self.website),
                (&text::ORG_LEITWEG_ID, &self.leitweg_id),
            ],
        );
        errors
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("the form has problems: {0:?}")]
    Invalid(FieldErrors),
    #[error("no such organisation")]
    UnknownOrganisation,
    #[error("no such person in the organisation")]
    UnknownPerson,
    #[error("the organisation needs at least one admin")]
    LastAdmin,
    #[error("this person already acts for the organisation")]
    AlreadyInOrganisation,
    #[error("the invitation is unknown, used or expired")]
    InvitationInvalid,
    #[error("the invitation was sent to another address")]
    InvitationForSomeoneElse,
    #[error(transparent)]
    Membership(#[from] membership::MembershipError),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A URL path segment from a name: lower case ASCII, umlauts spelled out, words joined by `-`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().to_lowercase().chars() {
        let piece = match c {
            'ä' => "ae",
            'ö' => "oe",
            'ü' => "ue",
            'ß' => "ss",
            'é' | 'è' | 'ê' => "e",
            'á' | 'à' | 'â' => "a",
            c if c.is_ascii_alphanumeric() => {
                slug.push(c);
                continue;
            }
            _ => "-",
        };
        slug.push_str(piece);
    }
    let parts: Vec<&str> = slug.split('-').filter(|p| !p.is_empty()).collect();
    let slug = parts.join("-");
    let slug: String = slug.chars().take(60).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "organisation".to_owned()
    } else {
        slug
    }
}

async fn free_slug(conn: &mut AnyConnection, base: &str) -> Result<String, sqlx::Error> {
    let mut candidate = base.to_owned();
    for n in 2.. {
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
                .bind(&candidate)
                .fetch_optional(&mut *conn)
                .await?;
        if taken.is_none() {
            break;
        }
        candidate = format!("{base}-{n}");
    }
    Ok(candidate)
}

/// Creates an organisation; its creator becomes its first admin, and it gets a wallet.
pub async fn create(
    conn: &mut AnyConnection,
    principal: &Principal,
    form: &OrganisationForm,
) -> Result<Organisation, MembersError> {
    authorize(principal, Action::CreateOrganisation)?;
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let problems = form.problems();
    if !problems.is_empty() {
        return Err(MembersError::Invalid(problems));
    }
    let id = new_id();
    let slug = free_slug(conn, &slugify(&form.legal_name)).await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO organisations
             (id, slug, legal_name, kind, street, postcode, city, country, website, leitweg_id,
              representative, contact_name, contact_email, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&id)
    .bind(&slug)
    .bind(form.legal_name.trim())
    .bind(&form.kind)
    .bind(form.street.trim())
    .bind(form.postcode.trim())
    .bind(form.city.trim())
    .bind(country_of(form))
    .bind(form.website.trim())
    .bind(leitweg_of(form))
    .bind(form.representative.trim())
    .bind(form.contact_name.trim())
    .bind(normalise_email(&form.contact_email))
    .bind(person_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO organisation_people (organisation_id, person_id, role, added_at)
         VALUES ($1, $2, 'admin', $3)",
    )
    .bind(&id)
    .bind(person_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    ledger::open_account(conn, &AccountId::wallet(&id), AccountKind::Wallet).await?;
    audit::record(
        conn,
        &principal.actor(),
        "organisation.created",
        &id,
        Some(&id),
        serde_json::json!({ "legal_name": form.legal_name.trim(), "kind": form.kind }),
    )
    .await?;
    find(conn, &id)
        .await?
        .ok_or(MembersError::UnknownOrganisation)
}

fn country_of(form: &OrganisationForm) -> String {
    let country = form.country.trim().to_uppercase();
    if country.is_empty() {
        "DE".into()
    } else {
        country
    }
}

fn leitweg_of(form: &OrganisationForm) -> Option<String> {
    leitweg::parse(&form.leitweg_id)
}

/// Changes an organisation's details (its admins only).
pub async fn update(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
    form: &OrganisationForm,
) -> Result<(), MembersError> {
    authorize(principal, Action::ManageOrganisation { organisation_id })?;
    let problems = form.problems();
    if !problems.is_empty() {
        return Err(MembersError::Invalid(problems));
    }
    sqlx::query(
        "UPDATE organisations SET legal_name = $1, kind = $2, street = $3, postcode = $4,
             city = $5, country = $6, website = $7, leitweg_id = $8, representative = $9,
             contact_name = $10, contact_email = $11
         WHERE id = $12",
    )
    .bind(form.legal_name.trim())
    .bind(&form.kind)
    .bind(form.street.trim())
    .bind(form.postcode.trim())
    .bind(form.city.trim())
    .bind(country_of(form))
    .bind(form.website.trim())
    .bind(leitweg_of(form))
    .bind(form.representative.trim())
    .bind(form.contact_name.trim())
    .bind(normalise_email(&form.contact_email))
    .bind(organisation_id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "organisation.updated",
        organisation_id,
        Some(organisation_id),
        serde_json::json!({ "legal_name": form.legal_name.trim() }),
    )
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct OrgPerson {
    pub person_id: String,
    pub name: String,
    pub email: String,
    pub role: OrgRole,
    pub added_at: i64,
}

/// The people who act for an organisation, admins first.
pub async fn people_of(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
) -> Result<Vec<OrgPerson>, MembersError> {
    authorize(
        principal,
        Action::ViewOrganisationInternals { organisation_id },
    )?;
    let rows = sqlx::query(
        "SELECT p.id, p.name, p.email, op.role, op.added_at
         FROM organisation_people op JOIN people p ON p.id = op.person_id
         WHERE op.organisation_id = $1
         ORDER BY op.role, p.name",
    )
    .bind(organisation_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let role: String = row.get("role");
            OrgPerson {
                person_id: row.get("id"),
                name: row.get("name"),
                email: row.get("email"),
                role: OrgRole::parse(&role).unwrap_or(OrgRole::Member),
                added_at: row.get("added_at"),
            }
        })
        .collect())
}

/// Locks the organisation's row for the rest of the transaction, so that two concurrent role
/// changes cannot both see "another admin remains" and leave none (PostgreSQL; SQLite's
/// writers are serialised anyway).
async fn lock_organisation(
    conn: &mut AnyConnection,
    organisation_id: &str,
) -> Result<(), MembersError> {
    let locked = sqlx::query("UPDATE organisations SET id = id WHERE id = $1")
        .bind(organisation_id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(MembersError::UnknownOrganisation);
    }
    Ok(())
}

async fn role_of(
    conn: &mut AnyConnection,
    organisation_id: &str,
    person_id: &str,
) -> Result<Option<OrgRole>, sqlx::Error> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM organisation_people WHERE organisation_id = $1 AND person_id = $2",
    )
    .bind(organisation_id)
    .bind(person_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(role.as_deref().and_then(OrgRole::parse))
}

async fn admin_count(conn: &mut AnyConnection, organisation_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM organisation_people
         WHERE organisation_id = $1 AND role = 'admin'",
    )
    .bind(organisation_id)
    .fetch_one(&mut *conn)
    .await
}

/// Changes a person's role; the last admin cannot be demoted.
pub async fn change_role(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
    person_id: &str,
    role: OrgRole,
) -> Result<(), MembersError> {
    authorize(principal, Action::ManageOrganisation { organisation_id })?;
    lock_organisation(conn, organisation_id).await?;
    let current = role_of(conn, organisation_id, person_id)
        .await?
        .ok_or(MembersError::UnknownPerson)?;
    if current == role {
        return Ok(());
    }
    if current == OrgRole::Admin && admin_count(conn, organisation_id).await? <= 1 {
        return Err(MembersError::LastAdmin);
    }
    sqlx::query(
        "UPDATE organisation_people SET role = $1 WHERE organisation_id = $2 AND person_id = $3",
    )
    .bind(role.as_str())
    .bind(organisation_id)
    .bind(person_id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "organisation.role_changed",
        person_id,
        Some(organisation_id),
        serde_json::json!({ "from": current.as_str(), "to": role.as_str() }),
    )
    .await?;
    Ok(())
}

/// Removes a person from the organisation (an admin removing someone, or oneself leaving);
/// the last admin can neither be removed nor leave.
pub async fn remove_person(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
    person_id: &str,
) -> Result<(), MembersError> {
    if principal.person_id.as_deref() == Some(person_id) {
        authorize(principal, Action::LeaveOrganisation { organisation_id })?;
    } else {
        authorize(principal, Action::ManageOrganisation { organisation_id })?;
    }
    lock_organisation(conn, organisation_id).await?;
    let current = role_of(conn, organisation_id, person_id)
        .await?
        .ok_or(MembersError::UnknownPerson)?;
    if current == OrgRole::Admin && admin_count(conn, organisation_id).await? <= 1 {
        return Err(MembersError::LastAdmin);
    }
    sqlx::query("DELETE FROM organisation_people WHERE organisation_id = $1 AND person_id = $2")
        .bind(organisation_id)
        .bind(person_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE sessions SET acting_organisation_id = NULL
         WHERE person_id = $1 AND acting_organisation_id = $2",
    )
    .bind(person_id)
    .bind(organisation_id)
    .execute(&mut *conn)
    .await?;
    let action = if principal.person_id.as_deref() == Some(person_id) {
        "organisation.person_left"
    } else {
        "organisation.person_removed"
    };
    audit::record(
        conn,
        &principal.actor(),
        action,
        person_id,
        Some(organisation_id),
        serde_json::json!({ "role": current.as_str() }),
    )
    .await?;
    Ok(())
}

/// Invites someone by email; the mail carries a single-use link valid for 14 days.
pub async fn invite(
    conn: &mut AnyConnection,
    principal: &Principal,
    organisation_id: &str,
    email: &str,
    role: OrgRole,
    locale: Locale,
    base_url: &url::Url,
) -> Result<(), MembersError> {
    authorize(principal, Action::ManageOrganisation { organisation_id })?;
    crate::text::checked(&[(&crate::text::INVITATION_EMAIL, email)])
        .map_err(MembersError::Invalid)?;
    let email = normalise_email(email);
    if !is_plausible_email(&email) {
        let mut errors = FieldErrors::new();
        errors.insert("email", "register.email_invalid");
        return Err(MembersError::Invalid(errors));
    }
    let org = find(conn, organisation_id)
        .await?
        .ok_or(MembersError::UnknownOrganisation)?;
    let already: Option<String> = sqlx::query_scalar(
        "SELECT p.id FROM people p JOIN organisation_people op ON op.person_id = p.id
         WHERE op.organisation_id = $1 AND p.email = $2",
    )
    .bind(organisation_id)
    .bind(&email)
    .fetch_optional(&mut *conn)
    .await?;
    if already.is_some() {
        return Err(MembersError::AlreadyInOrganisation);
    }
    let token = new_token();
    let now = now_ms();
    let inviter = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    sqlx::query(
        "INSERT INTO invitations (token_hash, organisation_id, email, role, invited_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(hash_token(&token))
    .bind(organisation_id)
    .bind(&email)
    .bind(role.as_str())
    .bind(inviter)
    .bind(now)
    .bind(now + INVITATION_VALID_MS)
    .execute(&mut *conn)
    .await?;
    let inviter_name = people::find(conn, inviter)
        .await?
        .map(|p| p.name)
        .unwrap_or_default();
    // The invitee may have no account yet: their language is the inviter's, or their own.
    let recipient_locale = people::find_by_email(conn, &email)
        .await?
        .map(|p| p.locale)
        .unwrap_or(locale);
    let role_name = crate::i18n::t(recipient_locale, &format!("role.{}", role.as_str()));
    let mail = mail::compose(
        &email,
        recipient_locale,
        "invitation",
        "mail.invitation",
        &[
            ("organisation", &org.legal_name),
            ("inviter", &inviter_name),
            ("role", &role_name),
        ],
        Some(format!(
            "{}/invitations/{token}",
            base_url.as_str().trim_end_matches('/')
        )),
    );
    mail::enqueue(conn, &mail).await?;
    audit::record(
        conn,
        &principal.actor(),
        "organisation.person_invited",
        &email,
        Some(organisation_id),
        serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct Invitation {
    pub organisation_id: String,
    pub organisation_name: String,
    pub email: String,
    pub role: OrgRole,
}

/// What an invitation link offers, while it is valid.
pub async fn find_invitation(
    conn: &mut AnyConnection,
    token: &str,
) -> Result<Option<Invitation>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.organisation_id, o.legal_name, i.email, i.role
         FROM invitations i JOIN organisations o ON o.id = i.organisation_id
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2",
    )
    .bind(hash_token(token))
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| {
        let role: String = row.get("role");
        Invitation {
            organisation_id: row.get("organisation_id"),
            organisation_name: row.get("legal_name"),
            email: row.get("email"),
            role: OrgRole::parse(&role).unwrap_or(OrgRole::Member),
        }
    }))
}

/// Accepts an invitation for the logged-in person, whose address must be the invited one.
/// The link works once.
pub async fn accept_invitation(
    conn: &mut AnyConnection,
    principal: &Principal,
    token: &str,
) -> Result<Invitation, MembersError> {
    let person_id = principal.person_id.as_deref().ok_or(Denied::NotLoggedIn)?;
    let person = people::find(conn, person_id)
        .await?
        .ok_or(Denied::NotLoggedIn)?;
    let invitation = find_invitation(conn, token)
        .await?
        .ok_or(MembersError::InvitationInvalid)?;
    if invitation.email != person.email {
        return Err(MembersError::InvitationForSomeoneElse);
    }
    let used = sqlx::query(
        "UPDATE invitations SET accepted_at = $1, accepted_by = $2
         WHERE token_hash = $3 AND accepted_at IS NULL AND expires_at > $1",
    )
    .bind(now_ms())
    .bind(person_id)
    .bind(hash_token(token))
    .execute(&mut *conn)
    .await?;
    if used.rows_affected() != 1 {
        return Err(MembersError::InvitationInvalid);
    }
    if role_of(conn, &invitation.organisation_id, person_id)
        .await?
        .is_some()
    {
        return Err(MembersError::AlreadyInOrganisation);
    }
    sqlx::query(
        "INSERT INTO organisation_people (organisation_id, person_id, role, added_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&invitation.organisation_id)
    .bind(person_id)
    .bind(invitation.role.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    // Following the link proved the address.
    sqlx::query(
        "UPDATE people SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
    )
    .bind(now_ms())
    .bind(person_id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &principal.actor(),
        "organisation.invitation_accepted",
        person_id,
        Some(&invitation.organisation_id),
        serde_json::json!({ "role": invitation.role.as_str() }),
    )
    .await?;
    Ok(invitation)
}

/// The addresses and languages of an organisation's admins.
pub(crate) async fn admin_addresses(
    conn: &mut AnyConnection,
    organisation_id: &str,
) -> Result<Vec<(String, Locale)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.email, p.locale FROM people p
         JOIN organisation_people op ON op.person_id = p.id
         WHERE op.organisation_id = $1 AND op.role = 'admin'",
    )
    .bind(organisation_id)
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

/// Mails every admin of an organisation, each in their own language.
pub(crate) async fn mail_admins(
    conn: &mut AnyConnection,
    organisation_id: &str,
    kind: &'static str,
    key_prefix: &str,
    args: &[(&str, &str)],
) -> Result<(), mail::MailError> {
    for (email, locale) in admin_addresses(conn, organisation_id).await? {
        let mail = mail::compose(&email, locale, kind, key_prefix, args, None);
        mail::enqueue(conn, &mail).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_spell_out_umlauts_and_join_words() {
        assert_eq!(
            slugify("Zweckverband Kommunale IT Süd"),
            "zweckverband-kommunale-it-sued"
        );
        assert_eq!(
            slugify("  Offene Daten Leipzig e. V. "),
            "offene-daten-leipzig-e-v"
        );
        assert_eq!(slugify("Straßen & Plätze"), "strassen-plaetze");
        assert_eq!(slugify("!!!"), "organisation");
    }

    fn valid_form() -> OrganisationForm {
        OrganisationForm {
            legal_name: "Offene Daten Leipzig e. V.".into(),
            kind: "association".into(),
            street: "Markt 1".into(),
            postcode: "04109".into(),
            city: "Leipzig".into(),
            country: "DE".into(),
            representative: "Erika Mustermann (Vorstand)".into(),
            contact_name: "Max Mustermann".into(),
            contact_email: "kontakt@offene-daten.example".into(),
            website: "https://offene-daten.example".into(),
            leitweg_id: String::new(),
        }
    }

    #[test]
    fn a_complete_form_has_no_problems() {
        assert!(valid_form().problems().is_empty());
    }

    #[test]
    fn public_bodies_need_a_valid_leitweg_id() {
        let mut form = valid_form();
        form.kind = "municipality".into();
        assert_eq!(
            form.problems().get("leitweg_id"),
            Some(&"organisation.leitweg_missing")
        );
        form.leitweg_id = "04011000-1234512345-07".into();
        assert_eq!(
            form.problems().get("leitweg_id"),
            Some(&"organisation.leitweg_invalid")
        );
        form.leitweg_id = "04011000-1234512345-06".into();
        assert!(form.problems().is_empty());
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        let form = OrganisationForm {
            website: "javascript:alert(1)".into(),
            contact_email: "nobody".into(),
            ..OrganisationForm::default()
        };
        let problems = form.problems();
        for field in [
            "legal_name",
            "kind",
            "street",
            "city",
            "contact_email",
            "website",
        ] {
            assert!(problems.contains_key(field), "{field}: {problems:?}");
        }
    }
}
