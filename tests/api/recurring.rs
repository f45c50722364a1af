//! Recurring pledges for maintenance contracts: funding by commitments, collection at each
//! period's start, a wallet that runs short (reminder, lapse, paying later), stopping, expiry.

use allmende::jobs::{self, Clock, ManualClock};
use allmende::ledger::AccountId;

use crate::helpers::{Browser, TestApp, location, spawn_app};

const DAY: i64 = 86_400_000;

fn in_days(days: i64) -> String {
    allmende::proposals::date_value(allmende::db::now_ms() + days * DAY)
}

struct Contract {
    app: TestApp,
    id: String,
}

/// Lea's maintenance contract: `per_period` euros a month for four months, starting in ten
/// days, open for funding for five days.
async fn contract(per_period: &str) -> Contract {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (slug, _) = app.project(&lea, "Werkzeug").await;
    let fields: Vec<(String, String)> = [
        ("kind", "maintenance"),
        ("organisation_id", ""),
        ("title", "Wartung Werkzeug"),
        ("summary", "Sicherheitsupdates"),
        ("security_response_hours", "48"),
        ("releases", "monatlich"),
        ("support", "Forum"),
        ("period_amount", per_period),
        ("period", "month"),
        ("term_periods", "4"),
        ("start_date", &in_days(10)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let created = lea
        .post(&format!("/projects/{slug}/proposals"), &borrowed)
        .await;
    assert_eq!(created.status(), 303);
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    lea.post(
        &format!("/proposals/{id}/transitions"),
        &[("transition", "submit")],
    )
    .await;
    let agreed = lea
        .post(
            &format!("/proposals/{id}/transitions"),
            &[("transition", "agree"), ("deadline", &in_days(5))],
        )
        .await;
    assert_eq!(agreed.status(), 303);
    Contract { app, id }
}

impl Contract {
    async fn backer(&self, name: &str, email: &str, cents: i64) -> (Browser, String) {
        let (_, admin) = self.app.person(name, email, &[]).await;
        let (_, org) = self.app.organisation(&admin, name).await;
        self.app.funded_wallet(&org, cents).await;
        (admin, org)
    }

    async fn pledge_monthly(
        &self,
        admin: &Browser,
        org: &str,
        amount: &str,
        key: &str,
    ) -> reqwest::Response {
        admin
            .post(
                &format!("/proposals/{}/recurring-pledges", self.id),
                &[("organisation_id", org), ("amount", amount), ("key", key)],
            )
            .await
    }

    async fn period_start(&self, period: i64) -> i64 {
        let proposal = allmende::proposals::find(&mut *self.app.conn().await, &self.id)
            .await
            .unwrap()
            .unwrap();
        proposal.period_start(period).unwrap()
    }

    /// Runs the jobs due at `at` (two workers at once: each job runs once).
    async fn run_jobs_at(&self, at: i64) {
        let clock = ManualClock::at(at);
        let (one, two) = tokio::join!(
            jobs::run_due(&self.app.db, clock.as_ref(), "w1"),
            jobs::run_due(&self.app.db, clock.as_ref(), "w2"),
        );
        assert_eq!(one.unwrap().failed + two.unwrap().failed, 0);
    }

    /// Moves the server's clock to `at`.
    fn set_server_time(&self, at: i64) {
        self.app.clock.advance(at - self.app.clock.now_ms());
    }

    async fn escrow(&self) -> i64 {
        self.app.balance(&AccountId::escrow(&self.id)).await
    }

    async fn recurring_id(&self, org: &str) -> String {
        sqlx::query_scalar("SELECT id FROM recurring_pledges WHERE organisation_id = $1")
            .bind(org)
            .fetch_one(&mut *self.app.conn().await)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn recurring_pledges_fund_a_contract_and_are_collected_each_period_until_a_wallet_runs_short()
{
    let c = contract("100").await;
    let (a, a_org) = c.backer("Verein A", "a@verein.example", 25_000).await;
    let (b, b_org) = c.backer("Verein B", "b@verein.example", 10_000).await;

    // Refusals first: nothing may be booked by any of them.
    let too_much = c.pledge_monthly(&a, &a_org, "101", "a-too-much").await;
    assert_eq!(too_much.status(), 422);
    assert!(
        too_much
            .text()
            .await
            .unwrap()
            .contains("höchstens 100,00\u{a0}€ je Zeitraum für die 4")
    );
    let zero = c.pledge_monthly(&a, &a_org, "0", "a-zero").await;
    assert_eq!(zero.status(), 422);
    let (_, stranger) = c.app.person("Otto", "otto@example.org", &[]).await;
    let forbidden = c.pledge_monthly(&stranger, &a_org, "10", "otto").await;
    assert_eq!(forbidden.status(), 403);
    assert_eq!(c.escrow().await, 0);

    // A pledges 60 € a month: the first instalment is collected at once; a double click books once.
    for _ in 0..2 {
        let made = c.pledge_monthly(&a, &a_org, "60", "a-monthly").await;
        assert_eq!(made.status(), 303);
    }
    assert_eq!(c.escrow().await, 6_000);
    assert_eq!(c.app.balance(&AccountId::wallet(&a_org)).await, 19_000);
    let page = a.page(&format!("/proposals/{}", c.id)).await;
    assert!(
        page.contains("240,00\u{a0}€ von 400,00\u{a0}€"),
        "commitments count towards the goal"
    );
    assert_eq!(c.app.proposal_state(&c.id).await, "open");

    // B may add at most 40 € a month; with that the commitments reach the goal.
    let over = c.pledge_monthly(&b, &b_org, "40,01", "b-over").await;
    assert_eq!(over.status(), 422);
    assert!(
        over.text()
            .await
            .unwrap()
            .contains("höchstens 40,00\u{a0}€")
    );
    let made = c.pledge_monthly(&b, &b_org, "40", "b-monthly").await;
    assert_eq!(made.status(), 303);
    assert_eq!(c.app.proposal_state(&c.id).await, "funded");
    assert_eq!(c.escrow().await, 10_000, "the first period is covered");
    assert!(
        c.app
            .last_mail("b@verein.example", "proposal_funded")
            .await
            .is_some()
    );
    c.app.assert_books_balance().await;

    // Period 2: both wallets hold enough, nobody is reminded; each instalment is collected once.
    let p2 = c.period_start(2).await;
    c.run_jobs_at(p2 - 3 * DAY).await;
    assert!(
        c.app
            .last_mail("b@verein.example", "wallet_short")
            .await
            .is_none()
    );
    c.run_jobs_at(p2).await;
    c.run_jobs_at(p2 + 1000).await;
    assert_eq!(c.escrow().await, 20_000);
    assert_eq!(c.app.balance(&AccountId::wallet(&b_org)).await, 2_000);

    // Period 3: B's wallet (20 €) is short. B is warned three days before, then the collection
    // lapses and B is told; A's instalment is collected.
    let p3 = c.period_start(3).await;
    c.run_jobs_at(p3 - 3 * DAY).await;
    let (_, warning) = c
        .app
        .last_mail("b@verein.example", "wallet_short")
        .await
        .expect("warned before the collection");
    assert!(warning.contains("20,00"), "{warning}");
    c.run_jobs_at(p3).await;
    assert_eq!(c.escrow().await, 26_000);
    assert_eq!(c.app.balance(&AccountId::wallet(&b_org)).await, 2_000);
    let (_, lapsed) = c
        .app
        .last_mail("b@verein.example", "recurring_lapsed")
        .await
        .expect("told of the lapse");
    assert!(lapsed.contains("Zeitraum 3"), "{lapsed}");
    let page = b.page(&format!("/proposals/{}", c.id)).await;
    assert!(page.contains("Nicht gedeckt"), "period 3 is short");
    assert!(page.contains("Zeitraum 3 jetzt bezahlen"));

    // A stops during period 3: period 4 is not collected from A.
    c.set_server_time(p3 + DAY);
    let a_recurring = c.recurring_id(&a_org).await;
    let stopped = a
        .post(&format!("/recurring-pledges/{a_recurring}/stop"), &[])
        .await;
    assert_eq!(stopped.status(), 303);
    // Nobody else may stop or pay B's pledge.
    let b_recurring = c.recurring_id(&b_org).await;
    let not_yours = a
        .post(
            &format!("/recurring-pledges/{b_recurring}/periods/3/pay"),
            &[],
        )
        .await;
    assert_eq!(not_yours.status(), 403);

    // B tops up and pays period 3 later; a second click pays nothing more.
    let short = b
        .post(
            &format!("/recurring-pledges/{b_recurring}/periods/3/pay"),
            &[],
        )
        .await;
    assert_eq!(short.status(), 422, "still too little in the wallet");
    c.app.funded_wallet(&b_org, 10_000).await;
    for _ in 0..2 {
        let paid = b
            .post(
                &format!("/recurring-pledges/{b_recurring}/periods/3/pay"),
                &[],
            )
            .await;
        assert_eq!(paid.status(), 303);
    }
    assert_eq!(c.escrow().await, 30_000);
    assert_eq!(c.app.balance(&AccountId::wallet(&b_org)).await, 8_000);

    // Period 4: only B's 40 € come in; the period is not covered.
    let p4 = c.period_start(4).await;
    c.run_jobs_at(p4).await;
    assert_eq!(c.escrow().await, 34_000);
    assert_eq!(c.app.balance(&AccountId::wallet(&a_org)).await, 7_000);
    let coverage = allmende::pledges::recurring::coverage(
        &mut *c.app.conn().await,
        &allmende::proposals::find(&mut *c.app.conn().await, &c.id)
            .await
            .unwrap()
            .unwrap(),
    )
    .await
    .unwrap();
    let covered: Vec<(i64, bool)> = coverage
        .iter()
        .map(|p| (p.covered.cents(), p.is_covered))
        .collect();
    assert_eq!(
        covered,
        vec![
            (10_000, true),
            (10_000, true),
            (10_000, true),
            (4_000, false)
        ]
    );
    let collections: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM pledges WHERE recurring_pledge_id IS NOT NULL",
    )
    .fetch_one(&mut *c.app.conn().await)
    .await
    .unwrap();
    assert_eq!(collections, 7, "A: periods 1–3, B: periods 1–4");
    c.app.assert_books_balance().await;
}

#[tokio::test]
async fn an_expired_contract_returns_the_instalments_and_collects_no_more() {
    let c = contract("100").await;
    let (a, a_org) = c.backer("Verein A", "a@verein.example", 10_000).await;
    let made = c.pledge_monthly(&a, &a_org, "30", "a-monthly").await;
    assert_eq!(made.status(), 303);
    assert_eq!(c.app.balance(&AccountId::wallet(&a_org)).await, 7_000);

    let deadline: i64 = sqlx::query_scalar("SELECT funding_deadline FROM proposals WHERE id = $1")
        .bind(&c.id)
        .fetch_one(&mut *c.app.conn().await)
        .await
        .unwrap();
    c.run_jobs_at(deadline + 1).await;
    assert_eq!(c.app.proposal_state(&c.id).await, "expired");
    assert_eq!(c.app.balance(&AccountId::wallet(&a_org)).await, 10_000);

    c.run_jobs_at(c.period_start(2).await).await;
    assert_eq!(c.escrow().await, 0, "no collection after expiry");
    assert_eq!(c.app.balance(&AccountId::wallet(&a_org)).await, 10_000);
    c.app.assert_books_balance().await;
}

#[tokio::test]
async fn recurring_pledges_are_for_maintenance_contracts_only() {
    let app = spawn_app().await;
    let (_, lea) = app.person("Lea", "lea@werk.example", &[]).await;
    let (_, admin) = app.person("Erika", "erika@verein.example", &[]).await;
    let (slug, _) = app.project(&lea, "Werkzeug").await;
    let (_, org) = app.organisation(&admin, "Verein A").await;
    app.funded_wallet(&org, 10_000).await;
    let created = lea
        .post(
            &format!("/projects/{slug}/proposals"),
            &[
                ("kind", "feature"),
                ("organisation_id", ""),
                ("title", "Export"),
                ("summary", "CSV"),
                ("problem", "Kein Export"),
                ("desired_outcome", "Export"),
                ("m1_title", "Export"),
                ("m1_criteria", "Tests"),
                ("m1_amount", "500"),
                ("m1_due", &in_days(60)),
            ],
        )
        .await;
    let id = location(&created)
        .trim_start_matches("/proposals/")
        .to_owned();
    lea.post(
        &format!("/proposals/{id}/transitions"),
        &[("transition", "submit")],
    )
    .await;
    lea.post(
        &format!("/proposals/{id}/transitions"),
        &[("transition", "agree"), ("deadline", &in_days(30))],
    )
    .await;
    let refused = admin
        .post(
            &format!("/proposals/{id}/recurring-pledges"),
            &[("organisation_id", &org), ("amount", "10"), ("key", "k")],
        )
        .await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("nur für Wartungsverträge")
    );
    assert_eq!(app.balance(&AccountId::wallet(&org)).await, 10_000);
    app.assert_books_balance().await;
}
