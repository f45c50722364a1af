//! Payouts: a SEPA file validated against the pain.001.001.09 schema, exported once and booked
//! when marked paid; Stripe Connect transfers against the local fake Stripe (success, failure,
//! retry, a 5xx, a lost answer, a transfer in flight); the credit note; every payable balance
//! equal to releases minus payouts, and every Stripe transfer to one paid payout.

use allmende::ledger::AccountId;

use crate::helpers::{Browser, spawn_app, spawn_app_with};
use crate::reviews::{Stage, stage_in};
use crate::stripe_server::{FakeStripe, WEBHOOK_SECRET};

/// Milestone 1 (600 €) accepted by A and B: 570 € payable to Lea's project, 30 € fee.
async fn released(stage: &Stage) {
    assert_eq!(stage.submit(&stage.m1).await.status(), 303);
    for i in 0..2 {
        let (admin, org) = stage.org(i);
        let accepted = stage.review(admin, org, "accept", "", &stage.m1).await;
        assert_eq!(accepted.status(), 303);
    }
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        57_000
    );
}

async fn treasurer(stage: &Stage) -> Browser {
    stage
        .app
        .person("Karl", "kasse@coop.example", &["treasurer"])
        .await
        .1
}

async fn payout_details(stage: &Stage, method: &str) {
    let sql = if method == "sepa" {
        "INSERT INTO project_payouts (project_id, method, account_holder, iban, bic, updated_by, updated_at)
         VALUES ($1, 'sepa', 'Lea Lange & Söhne GbR', 'DE89370400440532013000', 'COBADEFFXXX', 'test', 0)"
    } else {
        "INSERT INTO project_payouts (project_id, method, stripe_account_id, updated_by, updated_at)
         VALUES ($1, 'stripe', 'acct_1TestWerkzeug', 'test', 0)"
    };
    sqlx::query(sql)
        .bind(&stage.project)
        .execute(&mut *stage.app.conn().await)
        .await
        .unwrap();
}

async fn payout_ids(stage: &Stage) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id, status FROM payouts ORDER BY created_at, id")
        .fetch_all(&mut *stage.app.conn().await)
        .await
        .unwrap()
}

/// Validates a pain.001 file with `xmllint` against the official schema. Where `xmllint` is not
/// installed the validation is skipped with a note, so `cargo test` passes with only the Rust
/// toolchain; under CI (`CI` set, `.ci/run` installs libxml2-utils) it must run.
fn validate_pain001(xml: &str) {
    if std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but xmllint is not installed: .ci/run installs it (Debian: libxml2-utils)"
        );
        eprintln!(
            "xmllint is not installed (Debian: libxml2-utils): the pain.001 file was not \
             validated against its schema"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pain001.xml");
    std::fs::write(&file, xml).unwrap();
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sepa/pain.001.001.09.xsd"
    );
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema", schema])
        .arg(&file)
        .output()
        .expect("xmllint runs");
    assert!(
        out.status.success(),
        "the file does not validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_sepa_payout_is_exported_once_validates_and_is_booked_when_marked_paid() {
    let stage = stage_in(spawn_app().await, ["300", "300", "100"]).await;
    released(&stage).await;
    payout_details(&stage, "sepa").await;
    let karl = treasurer(&stage).await;
    let (admin_a, _) = stage.org(0);
    assert_eq!(admin_a.get("/treasurer/payouts").await.status(), 403);
    let page = karl.page("/treasurer/payouts").await;
    assert!(page.contains("570,00"), "the payable balance is listed");

    let created = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(created.status(), 303);
    let again = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(again.status(), 409, "the money is already in a payout");
    let (payout, status) = payout_ids(&stage).await.remove(0);
    assert_eq!(status, "pending");

    let export = karl
        .post("/treasurer/payouts/export", &[("payout", &payout)])
        .await;
    assert_eq!(export.status(), 200);
    assert!(
        export.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let xml = export.text().await.unwrap();
    validate_pain001(&xml);
    assert!(xml.contains("<CtrlSum>570.00</CtrlSum>"), "{xml}");
    assert!(xml.contains("DE89370400440532013000"));
    assert!(
        xml.contains("Lea Lange + Soehne GbR"),
        "SEPA characters: {xml}"
    );

    let twice = karl
        .post("/treasurer/payouts/export", &[("payout", &payout)])
        .await;
    assert_eq!(twice.status(), 409, "a payout goes into one file only");
    let export_id: String = sqlx::query_scalar("SELECT export_id FROM payouts WHERE id = $1")
        .bind(&payout)
        .fetch_one(&mut *stage.app.conn().await)
        .await
        .unwrap();
    let again = karl
        .page(&format!("/treasurer/payouts/exports/{export_id}"))
        .await;
    assert_eq!(again, xml, "the file can be downloaded again unchanged");
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        57_000,
        "nothing is booked before the bank has paid"
    );
    stage.app.assert_books_balance().await;

    let paid = karl.post(&format!("/payouts/{payout}/paid"), &[]).await;
    assert_eq!(paid.status(), 303);
    let paid_again = karl.post(&format!("/payouts/{payout}/paid"), &[]).await;
    assert_eq!(paid_again.status(), 409);
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        0
    );
    assert_eq!(
        stage.app.balance(&AccountId::external_payouts()).await,
        57_000,
        "the money has left for the maintainer"
    );
    let note = stage
        .lea
        .page(&format!("/payouts/{payout}/credit-note"))
        .await;
    assert!(note.contains("Gutschrift"), "{note}");
    assert!(note.contains("600,00") && note.contains("30,00") && note.contains("570,00"));
    // A second milestone and a second payout: each credit note names what it paid.
    assert_eq!(stage.submit(&stage.m2).await.status(), 303);
    for i in 0..2 {
        let (admin, org) = stage.org(i);
        let accepted = stage.review(admin, org, "accept", "", &stage.m2).await;
        assert_eq!(accepted.status(), 303);
    }
    let second = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(second.status(), 303);
    let (second, _) = payout_ids(&stage).await.remove(1);
    assert_ne!(second, payout);
    let karl_note = karl.page(&format!("/payouts/{second}/credit-note")).await;
    assert!(karl_note.contains("380,00"), "{karl_note}");
    assert!(karl_note.contains("Oberfläche") && !karl_note.contains("Datenmodell"));
    assert!(note.contains("Datenmodell") && !note.contains("Oberfläche"));
    let money = stage.lea.page("/projects/werkzeug/money").await;
    assert!(
        money.contains("Datenmodell"),
        "the maintainers see their releases"
    );
    let (a, a_org) = stage.org(0);
    let slug: String = sqlx::query_scalar("SELECT slug FROM organisations WHERE id = $1")
        .bind(a_org)
        .fetch_one(&mut *stage.app.conn().await)
        .await
        .unwrap();
    let org_page = a.page(&format!("/organisations/{slug}")).await;
    assert!(
        org_page.contains("Datenmodell") && org_page.contains("180,00"),
        "backers see which milestones their money paid for"
    );
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_stripe_transfer_that_fails_is_shown_and_can_be_tried_again() {
    let stripe = FakeStripe::start().await;
    let url = stripe.url();
    let app = spawn_app_with(&[
        ("ALLMENDE_STRIPE_SECRET_KEY", "sk_test_allmende"),
        ("ALLMENDE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("ALLMENDE_STRIPE_PUBLISHABLE_KEY", "pk_test_allmende"),
        ("ALLMENDE_STRIPE_API_BASE", &url),
    ])
    .await;
    let stage = stage_in(app, ["300", "300", "100"]).await;
    released(&stage).await;
    payout_details(&stage, "stripe").await;
    let karl = treasurer(&stage).await;

    stripe.fail_next(402);
    let failed = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(failed.status(), 303);
    let (payout, status) = payout_ids(&stage).await.remove(0);
    assert_eq!(status, "failed");
    let page = karl.page("/treasurer/payouts").await;
    assert!(page.contains("fehlgeschlagen"), "the failure is shown");
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        57_000
    );

    let retried = karl.post(&format!("/payouts/{payout}/transfer"), &[]).await;
    assert_eq!(retried.status(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "paid");
    let transfers: Vec<_> = stripe
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/transfers")
        .collect();
    assert_eq!(transfers.len(), 2);
    let last = transfers.last().unwrap();
    assert_eq!(last.field("amount"), Some("57000"));
    assert_eq!(last.field("destination"), Some("acct_1TestWerkzeug"));
    assert_eq!(last.field("currency"), Some("eur"));
    assert_ne!(
        transfers[0].idempotency_key, last.idempotency_key,
        "a try Stripe refused is retried under a new key"
    );
    assert!(
        last.idempotency_key
            .as_deref()
            .is_some_and(|k| k.starts_with(&format!("payout:{payout}")))
    );
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        0
    );
    let again = karl.post(&format!("/payouts/{payout}/transfer"), &[]).await;
    assert_eq!(again.status(), 409, "a paid payout is not sent again");
    stage.app.assert_books_balance().await;
}

async fn stripe_stage() -> (Stage, FakeStripe, Browser) {
    let stripe = FakeStripe::start().await;
    let url = stripe.url();
    let app = spawn_app_with(&[
        ("ALLMENDE_STRIPE_SECRET_KEY", "sk_test_allmende"),
        ("ALLMENDE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("ALLMENDE_STRIPE_PUBLISHABLE_KEY", "pk_test_allmende"),
        ("ALLMENDE_STRIPE_API_BASE", &url),
    ])
    .await;
    let stage = stage_in(app, ["300", "300", "100"]).await;
    released(&stage).await;
    payout_details(&stage, "stripe").await;
    let karl = treasurer(&stage).await;
    (stage, stripe, karl)
}

fn transfer_posts(stripe: &FakeStripe) -> Vec<crate::stripe_server::RecordedRequest> {
    stripe
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/transfers")
        .collect()
}

fn transfer_lookups(stripe: &FakeStripe) -> usize {
    stripe
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v1/transfers")
        .count()
}

async fn recorded_transfers(stage: &Stage) -> Vec<(String, String, i64)> {
    sqlx::query_as("SELECT id, payout_id, amount FROM stripe_transfers ORDER BY recorded_at, id")
        .fetch_all(&mut *stage.app.conn().await)
        .await
        .unwrap()
}

/// The names of the `verify` checks that fail.
async fn failed_checks(stage: &Stage) -> Vec<String> {
    let mut conn = stage.app.conn().await;
    let report = allmende::verify::run(&mut conn).await.unwrap();
    report
        .checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.name.to_owned())
        .collect()
}

#[tokio::test]
async fn a_stripe_5xx_keeps_the_key_so_the_retry_pays_once() {
    let (stage, stripe, karl) = stripe_stage().await;
    stripe.fail_next(500);
    let failed = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(failed.status(), 303);
    let (payout, status) = payout_ids(&stage).await.remove(0);
    assert_eq!(status, "failed");
    let page = karl.page("/treasurer/payouts").await;
    assert!(
        page.contains("Ungeklärt") && page.contains("Bei Stripe nachfragen"),
        "a 5xx leaves the outcome open"
    );

    let retried = karl.post(&format!("/payouts/{payout}/transfer"), &[]).await;
    assert_eq!(retried.status(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "paid");
    let posts = transfer_posts(&stripe);
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0].idempotency_key, posts[1].idempotency_key,
        "a try Stripe answered with 500 is retried under the same key"
    );
    assert_eq!(
        posts[1].field("transfer_group"),
        Some(format!("payout:{payout}").as_str())
    );
    assert_eq!(posts[1].field("metadata[payout_id]"), Some(payout.as_str()));
    assert_eq!(
        transfer_lookups(&stripe),
        1,
        "Stripe is asked before the retry"
    );
    assert_eq!(
        stripe.transfers().len(),
        1,
        "exactly one transfer at Stripe"
    );
    let recorded = recorded_transfers(&stage).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].1, payout);
    assert_eq!(recorded[0].2, 57_000);
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        0
    );
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_transfer_whose_answer_was_lost_cannot_be_returned_and_is_settled_by_asking_stripe() {
    let (stage, stripe, karl) = stripe_stage().await;
    // Stripe makes the transfer, but its answer is lost.
    stripe.lose_next_answer(500);
    let created = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(created.status(), 303);
    let (payout, status) = payout_ids(&stage).await.remove(0);
    assert_eq!(status, "failed");
    assert_eq!(stripe.transfers().len(), 1);

    let returned = karl.post(&format!("/payouts/{payout}/return"), &[]).await;
    assert_eq!(returned.status(), 409, "its transfer may have happened");
    assert!(
        returned
            .text()
            .await
            .unwrap()
            .contains("kann nicht zurückgenommen werden")
    );
    assert_eq!(payout_ids(&stage).await.remove(0).1, "failed");
    let again = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(again.status(), 409, "its money stays under way");

    let checked = karl.post(&format!("/payouts/{payout}/check"), &[]).await;
    assert_eq!(checked.status(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "paid");
    let transfer_id = stripe.transfers()[0]["id"].as_str().unwrap().to_owned();
    let booked: Option<String> =
        sqlx::query_scalar("SELECT stripe_transfer_id FROM payouts WHERE id = $1")
            .bind(&payout)
            .fetch_one(&mut *stage.app.conn().await)
            .await
            .unwrap();
    assert_eq!(booked.as_deref(), Some(transfer_id.as_str()));
    assert_eq!(
        karl.post(&format!("/payouts/{payout}/return"), &[])
            .await
            .status(),
        409
    );
    assert_eq!(
        karl.post(&format!("/payouts/{payout}/transfer"), &[])
            .await
            .status(),
        409
    );
    assert_eq!(transfer_posts(&stripe).len(), 1, "never sent again");
    assert_eq!(stripe.transfers().len(), 1);
    assert_eq!(recorded_transfers(&stage).await.len(), 1);
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        0
    );
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn retrying_a_transfer_whose_answer_was_lost_asks_stripe_and_does_not_pay_again() {
    let (stage, stripe, karl) = stripe_stage().await;
    stripe.lose_next_answer(503);
    karl.post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    let (payout, status) = payout_ids(&stage).await.remove(0);
    assert_eq!(status, "failed");
    let retried = karl.post(&format!("/payouts/{payout}/transfer"), &[]).await;
    assert_eq!(retried.status(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "paid");
    assert_eq!(transfer_posts(&stripe).len(), 1, "found, not sent again");
    assert_eq!(stripe.transfers().len(), 1);
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_payout_stripe_has_no_transfer_for_can_be_returned_after_asking() {
    let (stage, stripe, karl) = stripe_stage().await;
    // A 500 before anything happened at Stripe: the outcome looks open to us.
    stripe.fail_next(500);
    karl.post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    let (payout, _) = payout_ids(&stage).await.remove(0);
    assert_eq!(
        karl.post(&format!("/payouts/{payout}/return"), &[])
            .await
            .status(),
        409
    );
    let checked = karl.post(&format!("/payouts/{payout}/check"), &[]).await;
    assert_eq!(checked.status(), 303);
    let page = karl.page("/treasurer/payouts").await;
    assert!(
        page.contains("Stripe kennt keine Überweisung"),
        "the treasurer is told"
    );
    assert_eq!(payout_ids(&stage).await.remove(0).1, "failed");
    let returned = karl.post(&format!("/payouts/{payout}/return"), &[]).await;
    assert_eq!(returned.status(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "returned");
    assert!(stripe.transfers().is_empty());
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        57_000,
        "the money is available again"
    );
    stage.app.assert_books_balance().await;
}

/// Starts a Stripe payout in the background while the fake Stripe holds its transfer.
fn create_in_background(
    karl: &Browser,
    project: &str,
) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let karl = Browser {
        client: karl.client.clone(),
        base: karl.base.clone(),
    };
    let project = project.to_owned();
    tokio::spawn(async move {
        karl.post("/treasurer/payouts", &[("project_id", &project)])
            .await
            .status()
    })
}

#[tokio::test]
async fn a_payout_cannot_be_returned_while_its_transfer_is_in_flight() {
    let (stage, stripe, karl) = stripe_stage().await;
    stripe.hold_transfers();
    let sending = create_in_background(&karl, &stage.project);
    stripe.transfer_requests_arrived(1).await;
    let (payout, status) = payout_ids(&stage).await.remove(0);
    assert_eq!(status, "pending");

    let returned = karl.post(&format!("/payouts/{payout}/return"), &[]).await;
    assert_eq!(returned.status(), 409);
    assert!(
        returned
            .text()
            .await
            .unwrap()
            .contains("kann nicht zurückgenommen werden")
    );
    let twice = karl.post(&format!("/payouts/{payout}/transfer"), &[]).await;
    assert_eq!(twice.status(), 409, "one try at a time");
    assert!(twice.text().await.unwrap().contains("läuft gerade"));
    let check = karl.post(&format!("/payouts/{payout}/check"), &[]).await;
    assert_eq!(check.status(), 409, "nothing to ask while the try runs");

    stripe.release_transfers();
    assert_eq!(sending.await.unwrap(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "paid");
    assert_eq!(stripe.transfers().len(), 1);
    assert_eq!(
        stage.app.balance(&AccountId::payable(&stage.project)).await,
        0
    );
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_try_that_never_answered_can_be_settled_once_it_cannot_be_running_any_more() {
    let (stage, stripe, karl) = stripe_stage().await;
    stripe.fail_next(500);
    karl.post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    let (payout, _) = payout_ids(&stage).await.remove(0);
    // As if the process had died during the call: ordered, no answer recorded.
    sqlx::query("UPDATE payouts SET status = 'pending', failure = NULL WHERE id = $1")
        .bind(&payout)
        .execute(&mut *stage.app.conn().await)
        .await
        .unwrap();
    assert_eq!(
        karl.post(&format!("/payouts/{payout}/return"), &[])
            .await
            .status(),
        409
    );
    assert_eq!(
        karl.post(&format!("/payouts/{payout}/check"), &[])
            .await
            .status(),
        409,
        "the try may still be running"
    );
    stage.app.clock.advance(61_000);
    let checked = karl.post(&format!("/payouts/{payout}/check"), &[]).await;
    assert_eq!(checked.status(), 303);
    let returned = karl.post(&format!("/payouts/{payout}/return"), &[]).await;
    assert_eq!(returned.status(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "returned");
    stage.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_transfer_for_a_payout_no_longer_under_way_is_recorded_shown_and_a_double_payment_reported()
 {
    let (stage, stripe, karl) = stripe_stage().await;
    // The test makes Stripe pay twice to see the books' checks report it.
    stage.app.books_broken_on_purpose();
    stripe.hold_transfers();
    let sending = create_in_background(&karl, &stage.project);
    stripe.transfer_requests_arrived(1).await;
    let (payout, _) = payout_ids(&stage).await.remove(0);
    // What the old `return` did while the transfer was in flight.
    sqlx::query("UPDATE payouts SET status = 'returned' WHERE id = $1")
        .bind(&payout)
        .execute(&mut *stage.app.conn().await)
        .await
        .unwrap();
    stripe.release_transfers();
    assert_eq!(sending.await.unwrap(), 303);
    assert_eq!(payout_ids(&stage).await.remove(0).1, "returned");
    let recorded = recorded_transfers(&stage).await;
    assert_eq!(recorded.len(), 1, "the transfer is recorded, not ignored");
    assert_eq!(recorded[0].1, payout);
    let page = karl.page("/treasurer/payouts").await;
    assert!(
        page.contains("nicht zu den Büchern passen") && page.contains(&recorded[0].0),
        "the treasurer sees the problem"
    );
    assert!(
        failed_checks(&stage)
            .await
            .contains(&"every Stripe transfer paid a payout booked as paid".to_owned())
    );
    // The money looks available again; paying it is a second transfer for one release.
    let second = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(second.status(), 303);
    assert_eq!(stripe.transfers().len(), 2);
    let failed = failed_checks(&stage).await;
    assert!(
        failed
            .contains(&"no project received more by Stripe than its releases less fees".to_owned()),
        "{failed:?}"
    );
}

#[tokio::test]
async fn two_transfers_for_one_payout_are_reported_by_verify() {
    let (stage, stripe, karl) = stripe_stage().await;
    // The test makes Stripe pay twice to see the books' checks report it.
    stage.app.books_broken_on_purpose();
    let created = karl
        .post("/treasurer/payouts", &[("project_id", &stage.project)])
        .await;
    assert_eq!(created.status(), 303);
    let (payout, status) = payout_ids(&stage).await.remove(0);
    assert_eq!(status, "paid");
    let recorded = recorded_transfers(&stage).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].2, 57_000);
    assert_eq!(stripe.transfers().len(), 1);
    stage.app.assert_books_balance().await;
    // Stripe reports a second transfer for the same payout.
    sqlx::query(
        "INSERT INTO stripe_transfers (id, payout_id, project_id, amount, destination, idempotency_key, found_by, recorded_at)
         VALUES ('tr_second', $1, $2, 57000, 'acct_1TestWerkzeug', NULL, 'lookup', 0)",
    )
    .bind(&payout)
    .bind(&stage.project)
    .execute(&mut *stage.app.conn().await)
    .await
    .unwrap();
    let failed = failed_checks(&stage).await;
    assert!(
        failed.contains(&"each payout has at most one executed Stripe transfer".to_owned()),
        "{failed:?}"
    );
    assert!(
        failed
            .contains(&"no project received more by Stripe than its releases less fees".to_owned()),
        "{failed:?}"
    );
    let page = karl.page("/treasurer/payouts").await;
    assert!(page.contains("tr_second"), "shown to the treasurer");
}
