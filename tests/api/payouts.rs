//! Payouts: a SEPA file validated against the pain.001.001.09 schema, exported once and booked
//! when marked paid; Stripe Connect transfers against the local fake Stripe (success, failure,
//! retry); the credit note; every payable balance equal to releases minus payouts.

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

fn validate_pain001(xml: &str) {
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
        .expect("xmllint (Debian: libxml2-utils) must be installed; .ci/run installs it");
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
