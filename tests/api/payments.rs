//! Money in: bank transfers confirmed by the treasurer, camt.053 statements, Stripe Checkout
//! against a local fake Stripe, signed webhooks (valid, tampered, old, replayed, out of order,
//! unknown), refunds and disputes with shortfalls, and a webhook racing the treasurer.

use allmende::ledger::AccountId;

use crate::helpers::{Browser, TestApp, location, spawn_app, spawn_app_with};
use crate::stripe_server::{self, FakeStripe};

const WEBHOOK_SECRET: &str = "whsec_test_allmende";

struct Org {
    app: TestApp,
    admin: Browser,
    treasurer: Browser,
    slug: String,
    id: String,
}

async fn org_in(app: TestApp) -> Org {
    let (_, admin) = app.person("Erika", "erika@verein.example", &[]).await;
    let (_, treasurer) = app
        .person("Karl Kasse", "kasse@coop.example", &["treasurer"])
        .await;
    let (slug, id) = app.organisation(&admin, "Verein A").await;
    Org {
        app,
        admin,
        treasurer,
        slug,
        id,
    }
}

async fn start(org: &Org, fields: &[(&str, &str)]) -> reqwest::Response {
    org.admin
        .post(&format!("/organisations/{}/payments", org.slug), fields)
        .await
}

async fn payment_id_of(response: &reqwest::Response) -> String {
    location(response)
        .trim_start_matches("/payments/")
        .to_owned()
}

async fn status(app: &TestApp, id: &str) -> (String, i64) {
    sqlx::query_as("SELECT status, received FROM payments WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap()
}

async fn confirm(org: &Org, id: &str, received: &str, key: &str) -> reqwest::Response {
    org.treasurer
        .post(
            &format!("/treasurer/payments/{id}/confirm"),
            &[("received", received), ("form_key", key)],
        )
        .await
}

#[tokio::test]
async fn a_bank_transfer_top_up_is_booked_when_the_treasurer_confirms_it() {
    let org = org_in(spawn_app().await).await;
    let page = org
        .admin
        .page(&format!("/organisations/{}/payments", org.slug))
        .await;
    assert!(
        !page.contains("Karte oder Lastschrift"),
        "no Stripe without keys"
    );

    let started = start(
        &org,
        &[
            ("purpose", "top_up"),
            ("amount", "250,00"),
            ("method", "bank_transfer"),
        ],
    )
    .await;
    assert_eq!(started.status(), 303);
    let id = payment_id_of(&started).await;
    let page = org.admin.page(&format!("/payments/{id}")).await;
    assert!(page.contains("Bitte überweisen Sie"));
    assert!(
        page.contains("DE02 1203 0000 0000 2020 51"),
        "the cooperative's account"
    );
    let reference: String = sqlx::query_scalar("SELECT reference FROM payments WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut *org.app.conn().await)
        .await
        .unwrap();
    assert!(page.contains(&reference));
    let wallet = AccountId::wallet(&org.id);
    assert_eq!(
        org.app.balance(&wallet).await,
        0,
        "nothing before the money is there"
    );

    assert_eq!(
        org.admin
            .post(
                &format!("/treasurer/payments/{id}/confirm"),
                &[("received", "250"), ("form_key", "x")]
            )
            .await
            .status(),
        403
    );
    assert_eq!(confirm(&org, &id, "250,00", "key-1").await.status(), 303);
    assert_eq!(
        confirm(&org, &id, "250,00", "key-1").await.status(),
        303,
        "a double click"
    );
    assert_eq!(org.app.balance(&wallet).await, 25_000, "booked once");
    assert_eq!(status(&org.app, &id).await, ("paid".to_owned(), 25_000));
    assert_eq!(
        confirm(&org, &id, "250,00", "key-2").await.status(),
        409,
        "paid is paid"
    );

    let receipt = org.admin.page(&format!("/payments/{id}/receipt")).await;
    assert!(receipt.contains("Zahlungsbeleg"));
    assert!(receipt.contains("250,00\u{a0}€"));
    assert!(receipt.contains("Verein A"));
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn partial_and_excess_transfers_are_booked_and_shown() {
    let org = org_in(spawn_app().await).await;
    let started = start(
        &org,
        &[
            ("purpose", "top_up"),
            ("amount", "100"),
            ("method", "bank_transfer"),
        ],
    )
    .await;
    let id = payment_id_of(&started).await;
    confirm(&org, &id, "60", "k1").await;
    assert_eq!(
        status(&org.app, &id).await,
        ("partly_paid".to_owned(), 6_000)
    );
    let page = org.treasurer.page("/treasurer/payments").await;
    assert!(page.contains("teilweise bezahlt"));
    confirm(&org, &id, "50", "k2").await;
    assert_eq!(
        status(&org.app, &id).await,
        ("paid".to_owned(), 11_000),
        "more than asked is shown"
    );
    assert_eq!(org.app.balance(&AccountId::wallet(&org.id)).await, 11_000);

    let bad = confirm(&org, &id, "zehn", "k3").await;
    assert_eq!(bad.status(), 400);
    org.app.assert_books_balance().await;
}

/// Makes the organisation a member owing shares and dues; returns the dues obligation's id.
async fn member_owing(org: &Org) -> (String, String) {
    let (_, board) = org
        .app
        .person("Vera", "vorstand@coop.example", &["board"])
        .await;
    let mut conn = org.app.conn().await;
    sqlx::query(
        "INSERT INTO membership_applications (id, organisation_id, shares, statutes_version, statutes_accepted_at, applied_by, created_at)
         SELECT 'app-1', $1, 2, 'v', 1, person_id, 1 FROM organisation_people WHERE organisation_id = $1",
    )
    .bind(&org.id)
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    assert_eq!(
        board
            .post("/board/applications/app-1/admit", &[])
            .await
            .status(),
        303
    );
    let ids: Vec<(String, String)> = sqlx::query_as(
        "SELECT b.kind, b.id FROM member_obligations b JOIN memberships m ON m.id = b.membership_id
         WHERE m.organisation_id = $1 ORDER BY b.kind",
    )
    .bind(&org.id)
    .fetch_all(&mut *org.app.conn().await)
    .await
    .unwrap();
    (ids[0].1.clone(), ids[1].1.clone()) // (dues, shares)
}

#[tokio::test]
async fn dues_and_shares_go_to_pool_and_capital_and_an_excess_to_the_wallet() {
    let org = org_in(spawn_app().await).await;
    let (dues, shares) = member_owing(&org).await;
    let page = org
        .admin
        .page(&format!("/organisations/{}/payments", org.slug))
        .await;
    assert!(page.contains("Offene Beträge"));

    let started = start(
        &org,
        &[
            ("purpose", "dues"),
            ("obligation_id", &dues),
            ("method", "bank_transfer"),
        ],
    )
    .await;
    let dues_payment = payment_id_of(&started).await;
    confirm(&org, &dues_payment, "150", "d1").await;
    assert_eq!(
        org.app.balance(&AccountId::pool()).await,
        12_000,
        "the dues"
    );
    assert_eq!(
        org.app.balance(&AccountId::wallet(&org.id)).await,
        3_000,
        "the excess"
    );
    let receipt = org
        .admin
        .page(&format!("/payments/{dues_payment}/receipt"))
        .await;
    assert!(
        receipt.contains("Mitgliedsbeitrag an die Genossenschaft"),
        "dues receipts say what they are"
    );

    let started = start(
        &org,
        &[
            ("purpose", "shares"),
            ("obligation_id", &shares),
            ("method", "bank_transfer"),
        ],
    )
    .await;
    let shares_payment = payment_id_of(&started).await;
    confirm(&org, &shares_payment, "200", "s1").await;
    assert_eq!(org.app.balance(&AccountId::capital()).await, 20_000);
    // Nothing is owed any more: a second payment for it is refused.
    let again = start(
        &org,
        &[
            ("purpose", "dues"),
            ("obligation_id", &dues),
            ("method", "bank_transfer"),
        ],
    )
    .await;
    assert_eq!(again.status(), 409);
    let paid: i64 = sqlx::query_scalar("SELECT paid FROM member_obligations WHERE id = $1")
        .bind(&dues)
        .fetch_one(&mut *org.app.conn().await)
        .await
        .unwrap();
    assert_eq!(paid, 12_000);
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn payments_are_refused_to_people_who_may_not_pay() {
    let org = org_in(spawn_app().await).await;
    let (_, stranger) = org.app.person("Otto", "otto@example.org", &[]).await;
    let response = stranger
        .post(
            &format!("/organisations/{}/payments", org.slug),
            &[
                ("purpose", "top_up"),
                ("amount", "10"),
                ("method", "bank_transfer"),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        stranger
            .get(&format!("/organisations/{}/payments", org.slug))
            .await
            .status(),
        403
    );
    let zero = start(
        &org,
        &[
            ("purpose", "top_up"),
            ("amount", "0"),
            ("method", "bank_transfer"),
        ],
    )
    .await;
    assert_eq!(zero.status(), 422);
    let stripe = start(
        &org,
        &[
            ("purpose", "top_up"),
            ("amount", "10"),
            ("method", "stripe"),
        ],
    )
    .await;
    assert_eq!(stripe.status(), 400, "no Stripe without keys");
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/camt053/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn upload(browser: &Browser, xml: &str) -> reqwest::Response {
    let token = browser.csrf().await;
    browser
        .client
        .post(browser.url("/treasurer/statements"))
        .multipart(
            reqwest::multipart::Form::new()
                .text("csrf_token", token)
                .part(
                    "statement",
                    reqwest::multipart::Part::bytes(xml.as_bytes().to_vec())
                        .file_name("auszug.xml"),
                ),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_camt053_statement_books_what_it_can_match_and_lists_the_rest() {
    let org = org_in(spawn_app().await).await;
    let mut ids = Vec::new();
    for (amount, reference) in [
        ("250", "AM-7KX4-93QF"),
        ("100", "AM-P2M8-R4TZ"),
        ("1200", "AM-Z9Q3-H6WN"),
    ] {
        let started = start(
            &org,
            &[
                ("purpose", "top_up"),
                ("amount", amount),
                ("method", "bank_transfer"),
            ],
        )
        .await;
        let id = payment_id_of(&started).await;
        sqlx::query("UPDATE payments SET reference = $1 WHERE id = $2")
            .bind(reference)
            .bind(&id)
            .execute(&mut *org.app.conn().await)
            .await
            .unwrap();
        ids.push(id);
    }
    let response = upload(&org.treasurer, &fixture("statement_1.xml")).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("3 zugeordnet und 1 offen"), "{page}");
    assert!(
        page.contains("Spende ohne Verwendungszweck"),
        "the unmatched credit is listed"
    );
    assert_eq!(status(&org.app, &ids[0]).await, ("paid".to_owned(), 25_000));
    assert_eq!(
        status(&org.app, &ids[1]).await,
        ("paid".to_owned(), 10_000),
        "a reference split across lines"
    );
    assert_eq!(
        status(&org.app, &ids[2]).await,
        ("partly_paid".to_owned(), 100_000),
        "less arrived than asked"
    );
    let wallet = AccountId::wallet(&org.id);
    assert_eq!(org.app.balance(&wallet).await, 135_000);

    let again = upload(&org.treasurer, &fixture("statement_1.xml")).await;
    assert_eq!(again.status(), 200);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("0 zugeordnet und 0 offen")
    );
    assert_eq!(
        org.app.balance(&wallet).await,
        135_000,
        "importing twice books nothing twice"
    );

    // The treasurer matches the donation by hand to the partly paid payment.
    let entry: String =
        sqlx::query_scalar("SELECT entry_ref FROM bank_entries WHERE status = 'unmatched'")
            .fetch_one(&mut *org.app.conn().await)
            .await
            .unwrap();
    let wrong = org
        .treasurer
        .post(
            &format!("/treasurer/bank-entries/{}/assign", urlencode(&entry)),
            &[("reference", "AM-ZZZZ-ZZZZ")],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let assigned = org
        .treasurer
        .post(
            &format!("/treasurer/bank-entries/{}/assign", urlencode(&entry)),
            &[("reference", "am-z9q3-h6wn")],
        )
        .await;
    assert_eq!(assigned.status(), 303);
    assert_eq!(
        status(&org.app, &ids[2]).await,
        ("partly_paid".to_owned(), 105_000)
    );

    let broken = upload(&org.treasurer, &fixture("malformed.xml")).await;
    assert_eq!(broken.status(), 422);
    assert!(broken.text().await.unwrap().contains("kein gültiges XML"));
    let other = upload(&org.treasurer, &fixture("not_camt.xml")).await;
    assert_eq!(other.status(), 422);
    assert!(
        other
            .text()
            .await
            .unwrap()
            .contains("kein Kontoauszug im Format camt.053")
    );
    org.app.assert_books_balance().await;
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn stripe_org() -> (Org, FakeStripe) {
    let stripe = FakeStripe::start().await;
    let url = stripe.url();
    let app = spawn_app_with(&[
        ("ALLMENDE_STRIPE_SECRET_KEY", "sk_test_allmende"),
        ("ALLMENDE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("ALLMENDE_STRIPE_PUBLISHABLE_KEY", "pk_test_allmende"),
        ("ALLMENDE_STRIPE_API_BASE", &url),
    ])
    .await;
    (org_in(app).await, stripe)
}

async fn webhook(app: &TestApp, payload: &str, signature: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(payload.to_owned())
        .send()
        .await
        .unwrap()
}

async fn send_event(
    app: &TestApp,
    id: &str,
    kind: &str,
    object: serde_json::Value,
) -> reqwest::Response {
    let payload = stripe_server::event_json(id, kind, object);
    let signature = stripe_server::sign(&payload, WEBHOOK_SECRET);
    webhook(app, &payload, &signature).await
}

/// Starts a Stripe top-up; returns (payment id, session id).
async fn stripe_top_up(org: &Org, stripe: &FakeStripe, amount: &str) -> (String, String) {
    let started = start(
        org,
        &[
            ("purpose", "top_up"),
            ("amount", amount),
            ("method", "stripe"),
        ],
    )
    .await;
    assert_eq!(started.status(), 303);
    assert!(
        location(&started).starts_with("https://checkout.stripe.com/"),
        "{}",
        location(&started)
    );
    let (id, session): (String, String) = sqlx::query_as(
        "SELECT id, stripe_session_id FROM payments WHERE organisation_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(&org.id)
    .fetch_one(&mut *org.app.conn().await)
    .await
    .unwrap();
    let last = stripe.requests().last().cloned().unwrap();
    assert_eq!(last.path, "/v1/checkout/sessions");
    assert!(last.authorization_ok, "the secret key is sent");
    assert_eq!(
        last.idempotency_key.as_deref(),
        Some(format!("checkout:{id}").as_str())
    );
    let field = |name: &str| {
        last.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("metadata[payment_id]").as_deref(), Some(id.as_str()));
    assert_eq!(field("client_reference_id").as_deref(), Some(id.as_str()));
    (id, session)
}

#[tokio::test]
async fn a_stripe_card_payment_is_booked_by_the_webhook_once() {
    let (org, stripe) = stripe_org().await;
    let page = org
        .admin
        .page(&format!("/organisations/{}/payments", org.slug))
        .await;
    assert!(page.contains("Karte oder Lastschrift"));
    let (id, session) = stripe_top_up(&org, &stripe, "500").await;
    let form = &stripe.requests().last().cloned().unwrap().form;
    assert!(
        form.iter()
            .any(|(k, v)| k.starts_with("line_items[0][price_data][unit_amount]") && v == "50000"),
        "{form:?}"
    );
    let wallet = AccountId::wallet(&org.id);
    assert_eq!(
        org.app.balance(&wallet).await,
        0,
        "only the webhook moves money"
    );

    let object = stripe_server::checkout_session_object(&session, &id, "paid", "pi_1");
    assert_eq!(
        send_event(
            &org.app,
            "evt_1",
            "checkout.session.completed",
            object.clone()
        )
        .await
        .status(),
        200
    );
    assert_eq!(org.app.balance(&wallet).await, 50_000);
    assert_eq!(
        send_event(
            &org.app,
            "evt_1",
            "checkout.session.completed",
            object.clone()
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        send_event(&org.app, "evt_1b", "checkout.session.completed", object)
            .await
            .status(),
        200
    );
    assert_eq!(
        org.app.balance(&wallet).await,
        50_000,
        "a replay or a duplicate books nothing more"
    );
    assert_eq!(status(&org.app, &id).await, ("paid".to_owned(), 50_000));
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn forged_old_and_unknown_webhooks_change_nothing() {
    let (org, stripe) = stripe_org().await;
    let (id, session) = stripe_top_up(&org, &stripe, "100").await;
    let payload = stripe_server::event_json(
        "evt_x",
        "checkout.session.completed",
        stripe_server::checkout_session_object(&session, &id, "paid", "pi_x"),
    );
    let tampered = payload.replace("evt_x", "evt_y");
    let good = stripe_server::sign(&payload, WEBHOOK_SECRET);
    assert_eq!(webhook(&org.app, &tampered, &good).await.status(), 400);
    let wrong = stripe_server::sign(&payload, "whsec_someone_else");
    assert_eq!(webhook(&org.app, &payload, &wrong).await.status(), 400);
    let old = stripe_server::sign_at(
        &payload,
        WEBHOOK_SECRET,
        allmende::db::now_ms() / 1000 - 600,
    );
    assert_eq!(webhook(&org.app, &payload, &old).await.status(), 400);
    assert_eq!(webhook(&org.app, &payload, "").await.status(), 400);
    assert_eq!(org.app.balance(&AccountId::wallet(&org.id)).await, 0);
    let unknown = send_event(
        &org.app,
        "evt_u",
        "customer.created",
        serde_json::json!({ "id": "cus_1", "object": "customer" }),
    )
    .await;
    assert_eq!(
        unknown.status(),
        200,
        "unknown types are acknowledged and ignored"
    );
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_sepa_debit_counts_only_once_cleared_whatever_the_order_of_events() {
    let (org, stripe) = stripe_org().await;
    let wallet = AccountId::wallet(&org.id);

    // In order: completed (unpaid), then succeeded.
    let (id, session) = stripe_top_up(&org, &stripe, "300").await;
    send_event(
        &org.app,
        "evt_a1",
        "checkout.session.completed",
        stripe_server::checkout_session_object(&session, &id, "unpaid", "pi_a"),
    )
    .await;
    assert_eq!(status(&org.app, &id).await.0, "processing");
    assert_eq!(
        org.app.balance(&wallet).await,
        0,
        "pending SEPA money is not spendable"
    );
    send_event(
        &org.app,
        "evt_a2",
        "checkout.session.async_payment_succeeded",
        stripe_server::checkout_session_object(&session, &id, "paid", "pi_a"),
    )
    .await;
    assert_eq!(status(&org.app, &id).await, ("paid".to_owned(), 30_000));

    // Out of order: succeeded first, the late "completed (unpaid)" does not undo it.
    let (id2, session2) = stripe_top_up(&org, &stripe, "200").await;
    send_event(
        &org.app,
        "evt_b2",
        "checkout.session.async_payment_succeeded",
        stripe_server::checkout_session_object(&session2, &id2, "paid", "pi_b"),
    )
    .await;
    send_event(
        &org.app,
        "evt_b1",
        "checkout.session.completed",
        stripe_server::checkout_session_object(&session2, &id2, "unpaid", "pi_b"),
    )
    .await;
    assert_eq!(status(&org.app, &id2).await, ("paid".to_owned(), 20_000));

    // A failed debit books nothing.
    let (id3, session3) = stripe_top_up(&org, &stripe, "70").await;
    send_event(
        &org.app,
        "evt_c1",
        "checkout.session.completed",
        stripe_server::checkout_session_object(&session3, &id3, "unpaid", "pi_c"),
    )
    .await;
    send_event(
        &org.app,
        "evt_c2",
        "checkout.session.async_payment_failed",
        stripe_server::checkout_session_object(&session3, &id3, "unpaid", "pi_c"),
    )
    .await;
    assert_eq!(status(&org.app, &id3).await, ("failed".to_owned(), 0));
    assert_eq!(org.app.balance(&wallet).await, 50_000);
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn refunds_and_disputes_are_booked_back_and_a_spent_wallet_shows_a_shortfall() {
    let (org, stripe) = stripe_org().await;
    let wallet = AccountId::wallet(&org.id);
    let (id, session) = stripe_top_up(&org, &stripe, "400").await;
    send_event(
        &org.app,
        "evt_1",
        "checkout.session.completed",
        stripe_server::checkout_session_object(&session, &id, "paid", "pi_r"),
    )
    .await;
    assert_eq!(org.app.balance(&wallet).await, 40_000);

    send_event(
        &org.app,
        "evt_2",
        "charge.refunded",
        stripe_server::charge_object("pi_r", 10_000),
    )
    .await;
    assert_eq!(org.app.balance(&wallet).await, 30_000);
    // Stripe reports refunds cumulatively: 150 in all means 50 more.
    send_event(
        &org.app,
        "evt_3",
        "charge.refunded",
        stripe_server::charge_object("pi_r", 15_000),
    )
    .await;
    send_event(
        &org.app,
        "evt_3",
        "charge.refunded",
        stripe_server::charge_object("pi_r", 15_000),
    )
    .await;
    assert_eq!(org.app.balance(&wallet).await, 25_000);

    // The organisation spends most of its wallet, then the rest is disputed.
    let escrow_like = AccountId::pool();
    let mut tx = org.app.db.begin().await.unwrap();
    allmende::ledger::post(
        &mut tx,
        allmende::ledger::NewTransaction::transfer(
            "spend",
            allmende::ledger::TxKind::Pledge,
            "spent",
            allmende::ledger::Actor::system(),
            wallet.clone(),
            escrow_like,
            allmende::money::Money::from_cents(20_000),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    send_event(
        &org.app,
        "evt_4",
        "charge.dispute.created",
        stripe_server::dispute_object("pi_r", 25_000),
    )
    .await;
    assert_eq!(
        org.app.balance(&wallet).await,
        0,
        "what was there went back"
    );
    let shortfall: i64 =
        sqlx::query_scalar("SELECT amount FROM payment_shortfalls WHERE payment_id = $1")
            .bind(&id)
            .fetch_one(&mut *org.app.conn().await)
            .await
            .unwrap();
    assert_eq!(shortfall, 20_000, "the rest is owed, not hidden");
    let page = org.treasurer.page("/treasurer/payments").await;
    assert!(page.contains("Fehlbeträge") && page.contains("200,00\u{a0}€"));
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn when_stripe_is_down_no_payment_is_left_open() {
    let (org, stripe) = stripe_org().await;
    stripe.fail_next(500);
    let response = start(
        &org,
        &[
            ("purpose", "top_up"),
            ("amount", "100"),
            ("method", "stripe"),
        ],
    )
    .await;
    assert_eq!(response.status(), 502);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Stripe ist gerade nicht erreichbar")
    );
    let open: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status <> 'cancelled'",
    )
    .fetch_one(&mut *org.app.conn().await)
    .await
    .unwrap();
    assert_eq!(open, 0, "the payment is cancelled, not left waiting");
    // The next try goes through.
    let retry = start(
        &org,
        &[
            ("purpose", "top_up"),
            ("amount", "100"),
            ("method", "stripe"),
        ],
    )
    .await;
    assert_eq!(retry.status(), 303);
}

#[tokio::test]
async fn a_webhook_and_the_treasurer_racing_book_a_payment_once() {
    let (org, stripe) = stripe_org().await;
    let wallet = AccountId::wallet(&org.id);
    for round in 0..5 {
        let (id, session) = stripe_top_up(&org, &stripe, "100").await;
        let payload = stripe_server::event_json(
            &format!("evt_race_{round}"),
            "checkout.session.completed",
            stripe_server::checkout_session_object(&session, &id, "paid", &format!("pi_{round}")),
        );
        let signature = stripe_server::sign(&payload, WEBHOOK_SECRET);
        let token = org.treasurer.csrf().await;
        let confirm_request = org
            .treasurer
            .client
            .post(
                org.treasurer
                    .url(&format!("/treasurer/payments/{id}/confirm")),
            )
            .form(&[
                ("received", "100"),
                ("form_key", &format!("race-{round}")),
                ("csrf_token", &token),
            ])
            .send();
        let (hook, confirmed) =
            tokio::join!(webhook(&org.app, &payload, &signature), confirm_request);
        assert_eq!(hook.status(), 200);
        let confirmed = confirmed.unwrap().status().as_u16();
        assert!(confirmed == 303 || confirmed == 409, "{confirmed}");
        assert_eq!(
            status(&org.app, &id).await,
            ("paid".to_owned(), 10_000),
            "round {round}"
        );
    }
    assert_eq!(
        org.app.balance(&wallet).await,
        50_000,
        "five payments, five bookings"
    );
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_refund_takes_back_only_what_the_payment_put_where_it_put_it() {
    let (org, _stripe) = stripe_org().await;
    let (dues, _) = member_owing(&org).await;
    // The dues are started by Stripe, and paid meanwhile by bank transfer.
    let by_card = start(
        &org,
        &[
            ("purpose", "dues"),
            ("obligation_id", &dues),
            ("method", "stripe"),
        ],
    )
    .await;
    assert_eq!(by_card.status(), 303);
    let (card_id, session): (String, String) =
        sqlx::query_as("SELECT id, stripe_session_id FROM payments WHERE method = 'stripe'")
            .fetch_one(&mut *org.app.conn().await)
            .await
            .unwrap();
    let by_bank = start(
        &org,
        &[
            ("purpose", "dues"),
            ("obligation_id", &dues),
            ("method", "bank_transfer"),
        ],
    )
    .await;
    let bank_id = payment_id_of(&by_bank).await;
    confirm(&org, &bank_id, "120", "b1").await;
    assert_eq!(org.app.balance(&AccountId::pool()).await, 12_000);

    // The card payment arrives too: the dues are paid, so it is credited to the wallet.
    send_event(
        &org.app,
        "evt_d1",
        "checkout.session.completed",
        stripe_server::checkout_session_object(&session, &card_id, "paid", "pi_d"),
    )
    .await;
    assert_eq!(org.app.balance(&AccountId::wallet(&org.id)).await, 12_000);

    // Refunded: it comes out of the wallet it went to; the pool keeps the bank transfer's dues.
    send_event(
        &org.app,
        "evt_d2",
        "charge.refunded",
        stripe_server::charge_object("pi_d", 12_000),
    )
    .await;
    assert_eq!(org.app.balance(&AccountId::wallet(&org.id)).await, 0);
    assert_eq!(
        org.app.balance(&AccountId::pool()).await,
        12_000,
        "other money stays where it is"
    );
    let paid: i64 = sqlx::query_scalar("SELECT paid FROM member_obligations WHERE id = $1")
        .bind(&dues)
        .fetch_one(&mut *org.app.conn().await)
        .await
        .unwrap();
    assert_eq!(paid, 12_000, "the dues stay paid");
    let shortfalls: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM payment_shortfalls")
            .fetch_one(&mut *org.app.conn().await)
            .await
            .unwrap();
    assert_eq!(shortfalls, 0);
    org.app.assert_books_balance().await;
}

/// What the organisation's wallet holds and what its payment says was taken back.
async fn wallet_and_refunded(org: &Org, payment: &str) -> (i64, i64) {
    let refunded: i64 = sqlx::query_scalar("SELECT refunded FROM payments WHERE id = $1")
        .bind(payment)
        .fetch_one(&mut *org.app.conn().await)
        .await
        .unwrap();
    (org.app.balance(&AccountId::wallet(&org.id)).await, refunded)
}

/// A refund or a dispute of 30 € out of an 80 € top-up, in both orders: the wallet ends with
/// 50 € either way, also when the refund arrived before the payment's completion (Stripe sends
/// each event until it gets a 2xx, then never again).
#[tokio::test]
async fn a_refund_or_dispute_before_the_completion_is_applied_when_the_payment_completes() {
    let (org, stripe) = stripe_org().await;
    let mut expected_wallet = 0;
    for (n, kind) in ["charge.refunded", "charge.dispute.created"]
        .into_iter()
        .enumerate()
    {
        let object = |intent: &str| {
            if kind == "charge.refunded" {
                stripe_server::charge_object(intent, 3_000)
            } else {
                stripe_server::dispute_object(intent, 3_000)
            }
        };
        // Taken back first, completed after.
        let (early, session) = stripe_top_up(&org, &stripe, "80").await;
        let intent = format!("pi_early_{n}");
        let taken = send_event(&org.app, &format!("evt_e{n}_1"), kind, object(&intent)).await;
        assert_eq!(taken.status(), 200, "parked, not lost");
        assert_eq!(
            wallet_and_refunded(&org, &early).await,
            (expected_wallet, 0)
        );
        let completed = send_event(
            &org.app,
            &format!("evt_e{n}_2"),
            "checkout.session.completed",
            stripe_server::checkout_session_object(&session, &early, "paid", &intent),
        )
        .await;
        assert_eq!(completed.status(), 200);
        expected_wallet += 5_000;
        assert_eq!(
            wallet_and_refunded(&org, &early).await,
            (expected_wallet, 3_000),
            "{kind} before the completion"
        );
        // A replay of either changes nothing.
        send_event(&org.app, &format!("evt_e{n}_1"), kind, object(&intent)).await;
        send_event(
            &org.app,
            &format!("evt_e{n}_2"),
            "checkout.session.completed",
            stripe_server::checkout_session_object(&session, &early, "paid", &intent),
        )
        .await;
        assert_eq!(
            wallet_and_refunded(&org, &early).await,
            (expected_wallet, 3_000)
        );
        org.app.assert_books_balance().await;

        // Completed first, taken back after.
        let (late, session) = stripe_top_up(&org, &stripe, "80").await;
        let intent = format!("pi_late_{n}");
        send_event(
            &org.app,
            &format!("evt_l{n}_1"),
            "checkout.session.completed",
            stripe_server::checkout_session_object(&session, &late, "paid", &intent),
        )
        .await;
        let taken = send_event(&org.app, &format!("evt_l{n}_2"), kind, object(&intent)).await;
        assert_eq!(taken.status(), 200);
        expected_wallet += 5_000;
        assert_eq!(
            wallet_and_refunded(&org, &late).await,
            (expected_wallet, 3_000),
            "{kind} after the completion"
        );
        org.app.assert_books_balance().await;
    }
}

/// A SEPA debit disputed (reported) while it is still processing: applied once it has cleared.
#[tokio::test]
async fn a_dispute_of_a_debit_still_processing_waits_for_its_money() {
    let (org, stripe) = stripe_org().await;
    let (id, session) = stripe_top_up(&org, &stripe, "80").await;
    send_event(
        &org.app,
        "evt_p1",
        "checkout.session.completed",
        stripe_server::checkout_session_object(&session, &id, "unpaid", "pi_p"),
    )
    .await;
    assert_eq!(status(&org.app, &id).await.0, "processing");
    let disputed = send_event(
        &org.app,
        "evt_p2",
        "charge.dispute.created",
        stripe_server::dispute_object("pi_p", 8_000),
    )
    .await;
    assert_eq!(disputed.status(), 200);
    assert_eq!(wallet_and_refunded(&org, &id).await, (0, 0));
    send_event(
        &org.app,
        "evt_p3",
        "checkout.session.async_payment_succeeded",
        stripe_server::checkout_session_object(&session, &id, "paid", "pi_p"),
    )
    .await;
    assert_eq!(status(&org.app, &id).await, ("paid".to_owned(), 8_000));
    assert_eq!(
        wallet_and_refunded(&org, &id).await,
        (0, 8_000),
        "the disputed money is taken back"
    );
    org.app.assert_books_balance().await;
}
