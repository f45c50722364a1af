//! Organisations: creating, roles, invitations, the last-admin rule.

use allmende::ledger::AccountId;

use crate::helpers::{PASSWORD, location, spawn_app};

#[tokio::test]
async fn an_unverified_person_cannot_create_an_organisation() {
    let app = spawn_app().await;
    let browser = app.browser();
    browser
        .post(
            "/register",
            &[
                ("name", "Neu"),
                ("email", "neu@verein.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        browser
            .log_in("neu@verein.example", PASSWORD)
            .await
            .status(),
        303
    );
    let response = browser.get("/organisations/new").await;
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse")
    );
}

#[tokio::test]
async fn the_creator_becomes_admin_and_the_organisation_gets_a_wallet() {
    let app = spawn_app().await;
    let (_, erika) = app
        .person("Erika Mustermann", "erika@verein.example", &[])
        .await;
    let (slug, id) = app.organisation(&erika, "Offene Daten Leipzig e. V.").await;
    assert_eq!(slug, "offene-daten-leipzig-e-v");
    let page = erika.page(&format!("/organisations/{slug}")).await;
    assert!(page.contains("Offene Daten Leipzig e. V."));
    assert!(page.contains("Organisations-Admin"));
    assert!(
        page.contains("Sie handeln für"),
        "the header says for whom the person acts"
    );
    assert_eq!(app.balance(&AccountId::wallet(&id)).await, 0);

    // The same name again gets its own address.
    let (second, _) = app.organisation(&erika, "Offene Daten Leipzig e. V.").await;
    assert_eq!(second, "offene-daten-leipzig-e-v-2");
    let audit: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_events WHERE action = 'organisation.created' AND organisation_id = $1",
    )
    .bind(&id)
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(audit, 1);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_public_body_needs_a_valid_leitweg_id() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "it@stadt.example", &[]).await;
    let fields = |leitweg: &'static str| {
        vec![
            ("legal_name", "Stadt Musterhausen"),
            ("kind", "municipality"),
            ("street", "Rathausplatz 1"),
            ("postcode", "34567"),
            ("city", "Musterhausen"),
            ("country", "DE"),
            ("representative", "Die Bürgermeisterin"),
            ("contact_name", "Erika"),
            ("contact_email", "it@stadt.example"),
            ("website", "https://stadt.example"),
            ("leitweg_id", leitweg),
        ]
    };
    let response = erika
        .post("/organisations", &fields("04011000-1234512345-07"))
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("Diese Leitweg-ID ist ungültig"));
    assert!(
        page.contains("value=\"Stadt Musterhausen\""),
        "entered values are kept"
    );
    let missing = erika.post("/organisations", &fields("")).await;
    assert_eq!(missing.status(), 422);

    let created = erika
        .post("/organisations", &fields("04011000-1234512345-06"))
        .await;
    assert_eq!(created.status(), 303);
    let page = erika.page(&location(&created)).await;
    assert!(page.contains("04011000-1234512345-06"));
}

#[tokio::test]
async fn an_invitation_link_adds_the_invited_person_once() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, _) = app.organisation(&erika, "Verein A").await;
    let (max_id, max) = app.person("Max", "max@verein.example", &[]).await;
    let (_, mallory) = app.person("Mallory", "mallory@example.org", &[]).await;

    let invited = erika
        .post(
            &format!("/organisations/{slug}/invitations"),
            &[("email", "Max@Verein.example"), ("role", "member")],
        )
        .await;
    assert_eq!(invited.status(), 303);
    let (subject, text) = app
        .last_mail("max@verein.example", "invitation")
        .await
        .unwrap();
    assert_eq!(subject, "Einladung: Verein A bei Allmende");
    assert!(text.contains("Erika lädt Sie ein"), "{text}");
    let link = app.link_in_mail("max@verein.example", "invitation").await;

    // Someone else who got hold of the link cannot use it.
    let response = mallory.post(&link, &[]).await;
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("andere E-Mail-Adresse")
    );

    assert_eq!(max.get(&link).await.status(), 200);
    let accepted = max.post(&link, &[]).await;
    assert_eq!(accepted.status(), 303);
    assert_eq!(location(&accepted), format!("/organisations/{slug}"));
    let page = max.page(&format!("/organisations/{slug}")).await;
    assert!(page.contains("Organisationsmitglied"));
    let role: String =
        sqlx::query_scalar("SELECT role FROM organisation_people WHERE person_id = $1")
            .bind(&max_id)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(role, "member");

    assert_eq!(max.post(&link, &[]).await.status(), 410, "used once");
    let again = erika
        .post(
            &format!("/organisations/{slug}/invitations"),
            &[("email", "max@verein.example"), ("role", "admin")],
        )
        .await;
    assert_eq!(again.status(), 409, "already in the organisation");
}

#[tokio::test]
async fn the_last_admin_can_neither_leave_nor_be_demoted() {
    let app = spawn_app().await;
    let (erika_id, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, org_id) = app.organisation(&erika, "Verein A").await;

    let demote = erika
        .post(
            &format!("/organisations/{slug}/people/{erika_id}/role"),
            &[("role", "member")],
        )
        .await;
    assert_eq!(demote.status(), 409);
    assert!(
        demote
            .text()
            .await
            .unwrap()
            .contains("mindestens einen Admin")
    );
    let leave = erika
        .post(
            &format!("/organisations/{slug}/people/{erika_id}/remove"),
            &[],
        )
        .await;
    assert_eq!(leave.status(), 409);

    // With a second admin, the first may go.
    let (max_id, max) = app.person("Max", "max@verein.example", &[]).await;
    sqlx::query("INSERT INTO organisation_people (organisation_id, person_id, role, added_at) VALUES ($1, $2, 'member', 1)")
        .bind(&org_id)
        .bind(&max_id)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    // A member may not promote themselves.
    let promote_self = max
        .post(
            &format!("/organisations/{slug}/people/{max_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(promote_self.status(), 403);
    let promote = erika
        .post(
            &format!("/organisations/{slug}/people/{max_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(promote.status(), 303);
    let leave = erika
        .post(
            &format!("/organisations/{slug}/people/{erika_id}/remove"),
            &[],
        )
        .await;
    assert_eq!(leave.status(), 303);
    assert_eq!(
        erika.get(&format!("/organisations/{slug}")).await.status(),
        403
    );
    // And the remaining admin can remove nobody into an admin-less organisation.
    let demote = max
        .post(
            &format!("/organisations/{slug}/people/{max_id}/role"),
            &[("role", "member")],
        )
        .await;
    assert_eq!(demote.status(), 409);
}

#[tokio::test]
async fn a_person_acting_for_several_organisations_chooses_which() {
    let app = spawn_app().await;
    let (_, erika) = app.person("Erika", "erika@verein.example", &[]).await;
    let (_, a) = app.organisation(&erika, "Verein A").await;
    let (b_slug, b) = app.organisation(&erika, "Verein B").await;
    let account = erika.page("/account").await;
    assert!(account.contains("Verein A") && account.contains("Verein B"));
    let chosen = erika
        .post("/account/acting-for", &[("organisation_id", &b)])
        .await;
    assert_eq!(chosen.status(), 303);
    assert_eq!(location(&chosen), format!("/organisations/{b_slug}"));
    let page = erika.page("/account").await;
    let header = &page[..page.find("</header>").unwrap()];
    assert!(header.contains("<strong>Verein B</strong>"), "{header}");
    // An organisation the person does not act for cannot be chosen.
    let (_, other) = app.person("Other", "other@verein.example", &[]).await;
    let refused = other
        .post("/account/acting-for", &[("organisation_id", &a)])
        .await;
    assert_eq!(refused.status(), 403);
}
