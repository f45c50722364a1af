//! The authorization matrix: every guarded route, asked by every kind of visitor, gets the
//! answer the roles say, including a refusal for another organisation's admin.

use crate::helpers::{Browser, location, spawn_app};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Sent to the login page.
    Login,
    /// 403.
    Forbidden,
    /// Done: 2xx, or a redirect that is not to the login page.
    Allowed,
}
use Answer::{Allowed as A, Forbidden as F, Login as L};

/// One guarded route: method, path, form fields, and the answer for each of [`ROLES`].
type Rule<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, [Answer; 8]);

const ROLES: [&str; 8] = [
    "visitor",
    "person",
    "org member",
    "admin of another organisation",
    "org admin",
    "treasurer",
    "board",
    "platform admin",
];

async fn answer(
    browser: &Browser,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (Answer, u16) {
    let response = match method {
        "GET" => browser.get(path).await,
        _ => browser.post(path, form).await,
    };
    let status = response.status().as_u16();
    let answer = match status {
        303 if location(&response).starts_with("/login") => Answer::Login,
        403 => Answer::Forbidden,
        200..=299 | 303 => Answer::Allowed,
        other => panic!("{method} {path}: unexpected status {other}"),
    };
    (answer, status)
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_rules_say() {
    let app = spawn_app().await;
    let visitor = app.browser();
    let (_, person) = app.person("Paula Person", "person@example.org", &[]).await;
    let (member_id, member) = app
        .person("Mia Mitglied", "member@verein-a.example", &[])
        .await;
    let (_, other_admin) = app
        .person("Otto Other", "admin@verein-b.example", &[])
        .await;
    let (_, org_admin) = app
        .person("Anna Admin", "admin@verein-a.example", &[])
        .await;
    let (_, treasurer) = app
        .person("Karl Kasse", "kasse@coop.example", &["treasurer"])
        .await;
    let (_, board) = app
        .person("Vera Vorstand", "vorstand@coop.example", &["board"])
        .await;
    let (_, platform_admin) = app
        .person("Ada Admin", "root@coop.example", &["admin"])
        .await;
    let (bystander, _) = app.person("Bea Bystander", "bea@example.org", &[]).await;

    let (a, a_id) = app.organisation(&org_admin, "Verein A").await;
    app.organisation(&other_admin, "Verein B").await;
    sqlx::query("INSERT INTO organisation_people (organisation_id, person_id, role, added_at) VALUES ($1, $2, 'member', 1)")
        .bind(&a_id)
        .bind(&member_id)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();

    let browsers = [
        &visitor,
        &person,
        &member,
        &other_admin,
        &org_admin,
        &treasurer,
        &board,
        &platform_admin,
    ];
    let org = format!("/organisations/{a}");
    let role_change = format!("{org}/people/{member_id}/role");
    let grant = format!("/admin/people/{bystander}/roles");
    #[rustfmt::skip]
    let matrix: Vec<Rule> = vec![
        //                                                              visitor person member otherAdm admin treas board pAdmin
        ("GET",  org.clone(),                      vec![],                               [L, F, A, F, A, A, A, F]),
        ("GET",  format!("{org}/edit"),            vec![],                               [L, F, F, F, A, F, F, F]),
        ("POST", format!("{org}/invitations"),     vec![("email", "new@verein-a.example"), ("role", "member")],
                                                                                          [L, F, F, F, A, F, F, F]),
        ("POST", role_change.clone(),              vec![("role", "member")],             [L, F, F, F, A, F, F, F]),
        ("GET",  format!("{org}/membership"),      vec![],                               [L, F, F, F, A, F, F, F]),
        ("GET",  "/organisations/new".into(),      vec![],                               [L, A, A, A, A, A, A, A]),
        ("GET",  "/account".into(),                vec![],                               [L, A, A, A, A, A, A, A]),
        ("GET",  "/board/applications".into(),     vec![],                               [L, F, F, F, F, F, A, F]),
        ("GET",  "/members".into(),                vec![],                               [L, F, F, F, F, A, A, F]),
        ("GET",  "/members.csv".into(),            vec![],                               [L, F, F, F, F, A, A, F]),
        ("POST", "/members/dues".into(),           vec![("year", "2030")],               [L, F, F, F, F, A, A, F]),
        ("GET",  "/board/audit".into(),            vec![],                               [L, F, F, F, F, F, A, F]),
        ("GET",  "/admin/people".into(),           vec![],                               [L, F, F, F, F, F, F, A]),
        ("POST", grant.clone(),                    vec![("role", "treasurer"), ("change", "grant")],
                                                                                          [L, F, F, F, F, F, F, A]),
        ("GET",  "/board/rounds/new".into(),       vec![],                               [L, F, F, F, F, F, A, F]),
        ("GET",  "/polls/new".into(),              vec![],                               [L, F, A, A, A, F, A, F]),
        ("GET",  "/rounds".into(),                 vec![],                               [A, A, A, A, A, A, A, A]),
        ("GET",  "/board/settings".into(),         vec![],                               [L, F, F, F, F, F, A, F]),
        ("GET",  "/treasurer/payouts".into(),      vec![],                               [L, F, F, F, F, A, F, F]),
        ("GET",  "/statutes".into(),               vec![],                               [A, A, A, A, A, A, A, A]),
        ("GET",  "/".into(),                       vec![],                               [A, A, A, A, A, A, A, A]),
    ];

    let mut wrong = Vec::new();
    for (method, path, form, expected) in &matrix {
        for (i, browser) in browsers.iter().enumerate() {
            let (got, status) = answer(browser, method, path, form).await;
            if got != expected[i] {
                wrong.push(format!(
                    "{method} {path} as {}: expected {:?}, got {got:?} ({status})",
                    ROLES[i], expected[i]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "authorization matrix:\n{}",
        wrong.join("\n")
    );

    // The refusals changed nothing: the member is still a member, and the only invitation
    // and role grant are the ones the allowed roles made.
    let invitations: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM invitations")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    assert_eq!(invitations, 1);
    let role: String =
        sqlx::query_scalar("SELECT role FROM organisation_people WHERE person_id = $1")
            .bind(&member_id)
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    assert_eq!(role, "member");
}

#[tokio::test]
async fn another_organisations_admin_cannot_touch_its_people() {
    let app = spawn_app().await;
    let (member_id, _) = app.person("Mia", "mia@verein-a.example", &[]).await;
    let (_, admin_a) = app.person("Anna", "anna@verein-a.example", &[]).await;
    let (_, admin_b) = app.person("Otto", "otto@verein-b.example", &[]).await;
    let (a, a_id) = app.organisation(&admin_a, "Verein A").await;
    sqlx::query("INSERT INTO organisation_people (organisation_id, person_id, role, added_at) VALUES ($1, $2, 'member', 1)")
        .bind(&a_id)
        .bind(&member_id)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    for (path, form) in [
        (
            format!("/organisations/{a}/people/{member_id}/role"),
            vec![("role", "admin")],
        ),
        (
            format!("/organisations/{a}/people/{member_id}/remove"),
            vec![],
        ),
        (
            format!("/organisations/{a}/edit"),
            vec![("legal_name", "Gekapert e. V.")],
        ),
    ] {
        let response = admin_b.post(&path, &form).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Dazu sind Sie nicht berechtigt.")
        );
    }
    let people: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM organisation_people WHERE organisation_id = $1 AND role = 'member'",
    )
    .bind(&a_id)
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(people, 1);
}
