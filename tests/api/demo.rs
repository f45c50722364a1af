//! The demo cooperative.

use allmende::demo::{self, DemoError};
use allmende::ledger::AccountId;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_demo_fills_an_empty_database_with_a_cooperative_that_balances() {
    let app = spawn_app().await;
    let summary = demo::load(&app.db).await.unwrap();
    // Five members and one applicant waiting for the board.
    assert_eq!(summary.organisations, 6);
    assert_eq!(
        summary.people,
        3 + 6 + 3,
        "staff, one admin per organisation, three maintainers"
    );
    assert!(summary.projects >= 3);
    assert!(summary.proposals >= 5);
    app.assert_books_balance().await;

    let mut conn = app.conn().await;
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status FROM proposals ORDER BY status")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    for stage in [
        "awaiting_maintainer",
        "cancelled",
        "completed",
        "draft",
        "expired",
        "funded",
        "in_progress",
        "open",
    ] {
        assert!(statuses.iter().any(|s| s == stage), "no {stage} proposal");
    }
    let pending: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM membership_applications")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(pending, 1);
    drop(conn);
    // Money went everywhere DESIGN.md names: capital, pool, escrow, fees, payouts.
    assert_eq!(app.balance(&AccountId::capital()).await, 14 * 10_000);
    // Dues (1,680 EUR) and 20,000 EUR of earlier years, less 12,000 EUR the closed round gave.
    assert_eq!(
        app.balance(&AccountId::pool()).await,
        168_000 + 2_000_000 - 1_200_000
    );
    // The completed proposal (15,000 EUR) and two maintenance periods (1,000 EUR each) were
    // released with the 5 % fee kept; the rest was paid out (by SEPA and by Stripe).
    assert_eq!(app.balance(&AccountId::fees()).await, 75_000 + 2 * 5_000);
    assert_eq!(
        app.balance(&AccountId::external_payouts()).await,
        1_425_000 + 2 * 95_000
    );

    // A closed round with its explained result, an open one, a poll with its ranking.
    let list = app.get("/rounds").await.text().await.unwrap();
    assert!(list.contains("Frühjahrsrunde 2026") && list.contains("Sommerrunde 2026"));
    let link = |title: &str| {
        let at = list.find(title).unwrap();
        let start = list[..at].rfind("href=\"").unwrap() + 6;
        list[start..start + list[start..].find('"').unwrap()].to_owned()
    };
    let closed = app
        .get(&link("Frühjahrsrunde 2026"))
        .await
        .text()
        .await
        .unwrap();
    assert!(closed.contains("Bezahlt von"), "the explanation");
    assert!(closed.contains("<svg"));
    let poll = app
        .get(&link("Was ist uns am wichtigsten?"))
        .await
        .text()
        .await
        .unwrap();
    assert!(poll.contains("Paarweise Vorlieben"));
    assert!(poll.contains("bewegt kein Geld"));
    // The demo ran on the system's clock, a moment after the server's stood still.
    app.clock
        .advance(allmende::db::now_ms() - allmende::jobs::Clock::now_ms(app.clock.as_ref()));
    let member = app.browser();
    member
        .log_in("it@musterhausen.example", demo::DEMO_PASSWORD)
        .await;
    let open = member.page(&link("Sommerrunde 2026")).await;
    assert!(open.contains("Stimmzettel für"), "the demo admin can vote");
    assert!(open.contains("2 Organisationen haben abgestimmt"));
}

#[tokio::test]
async fn the_demo_refuses_a_database_that_holds_data() {
    let app = spawn_app().await;
    demo::load(&app.db).await.unwrap();
    let again = demo::load(&app.db).await;
    assert!(matches!(again, Err(DemoError::NotEmpty)), "{again:?}");
    app.assert_books_balance().await;
}
