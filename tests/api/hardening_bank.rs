//! Issue #20, items 1, 18 and 19: what a bank statement must not be able to do. A huge amount
//! never reaches the ledger (and the ledger refuses any balance beyond `i64` itself), `verify`
//! reports damaged rows instead of stopping, a credit without a bank reference is booked once
//! however many overlapping statements show it, and a statement id seen before still books its
//! new credits, with a report that says what became of each entry.

use allmende::db::Backend;
use allmende::ledger::{self, AccountId, Actor, LedgerError, NewTransaction, TxKind};
use allmende::money::Money;

use crate::helpers::{Browser, TestApp, location, spawn_app};

/// The cooperative's account, as the statements name it.
const ACCOUNT: &str = "DE02120300000000202051";

struct Org {
    app: TestApp,
    admin: Browser,
    treasurer: Browser,
    slug: String,
    id: String,
}

async fn org() -> Org {
    let app = spawn_app().await;
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

/// An open bank-transfer top-up of `amount` whose reference is set to `reference`.
async fn open_top_up(org: &Org, amount: &str, reference: &str) -> String {
    let started = org
        .admin
        .post(
            &format!("/organisations/{}/payments", org.slug),
            &[
                ("purpose", "top_up"),
                ("amount", amount),
                ("method", "bank_transfer"),
            ],
        )
        .await;
    assert_eq!(started.status(), 303);
    let id = location(&started)
        .trim_start_matches("/payments/")
        .to_owned();
    sqlx::query("UPDATE payments SET reference = $1 WHERE id = $2")
        .bind(reference)
        .bind(&id)
        .execute(&mut *org.app.conn().await)
        .await
        .unwrap();
    id
}

async fn payment(app: &TestApp, id: &str) -> (String, i64) {
    sqlx::query_as("SELECT status, received FROM payments WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap()
}

/// Uploads a statement as the treasurer's browser does; the CSRF token goes in the header.
async fn upload(browser: &Browser, xml: &str) -> reqwest::Response {
    let token = browser.csrf().await;
    browser
        .client
        .post(browser.url("/treasurer/statements"))
        .header("x-csrf-token", token)
        .multipart(reqwest::multipart::Form::new().part(
            "statement",
            reqwest::multipart::Part::bytes(xml.as_bytes().to_vec()).file_name("auszug.xml"),
        ))
        .send()
        .await
        .unwrap()
}

async fn upload_ok(browser: &Browser, xml: &str) -> String {
    let response = upload(browser, xml).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// A booked credit: `bank_ref` becomes its `AcctSvcrRef` (none if `None`).
fn credit(amount: &str, date: &str, bank_ref: Option<&str>, remittance: &str) -> String {
    let bank_ref = bank_ref
        .map(|r| format!("<AcctSvcrRef>{r}</AcctSvcrRef>"))
        .unwrap_or_default();
    format!(
        r#"<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>{date}</Dt></BookgDt><ValDt><Dt>{date}</Dt></ValDt>{bank_ref}
<NtryDtls><TxDtls><RltdPties><Dbtr><Nm>Verein A e.V.</Nm></Dbtr>
<DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>{remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#
    )
}

/// One `Stmt` with the given id and entries.
fn stmt(id: &str, entries: &[String]) -> String {
    format!(
        r#"<Stmt><Id>{id}</Id><CreDtTm>2026-12-01T07:00:00+01:00</CreDtTm>
<Acct><Id><IBAN>{ACCOUNT}</IBAN></Id><Ccy>EUR</Ccy></Acct>
{}
</Stmt>"#,
        entries.concat()
    )
}

/// A camt.053 document of the given statements.
fn document(statements: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt><GrpHdr><MsgId>M-1</MsgId><CreDtTm>2026-12-01T07:00:00+01:00</CreDtTm></GrpHdr>
{}
</BkToCstmrStmt></Document>"#,
        statements.concat()
    )
}

/// The import report's table on the page shown after an upload.
fn report_of(page: &str) -> &str {
    let start = page.find("Gutschriften dieses Auszugs").expect("a report");
    let end = page[start..].find("</section>").expect("the report's end") + start;
    &page[start..end]
}

fn eur(cents: i64) -> Money {
    Money::from_cents(cents)
}

// ------------------------------------------------------------------------------------------
// Item 1: amounts beyond plausibility, and beyond what a balance can hold.
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_statement_amount_above_the_limit_is_listed_and_never_booked() {
    let org = org().await;
    let wallet = AccountId::wallet(&org.id);
    let first = open_top_up(&org, "250", "AM-7KX4-93QF").await;
    let huge = open_top_up(&org, "500", "AM-P2M8-R4TZ").await;
    let halves = open_top_up(&org, "700", "AM-Z9Q3-H6WN").await;
    upload_ok(
        &org.treasurer,
        &document(&[stmt(
            "S-1",
            &[credit("250.00", "2026-12-01", Some("B-1"), "AM-7KX4-93QF")],
        )]),
    )
    .await;
    assert_eq!(org.app.balance(&wallet).await, 25_000);

    // The attack of the issue: the largest amount a BIGINT holds, carrying an open payment's
    // reference, into a wallet that already holds money; then two entries of ~4.7·10¹⁶ € that
    // only together overflow.
    let page = upload_ok(
        &org.treasurer,
        &document(&[stmt(
            "S-2",
            &[
                credit(
                    "92233720368547758.07",
                    "2026-12-02",
                    Some("B-2"),
                    "AM-P2M8-R4TZ",
                ),
                credit(
                    "47000000000000000.00",
                    "2026-12-02",
                    Some("B-3"),
                    "AM-Z9Q3-H6WN",
                ),
                credit(
                    "47000000000000000.00",
                    "2026-12-02",
                    Some("B-4"),
                    "AM-Z9Q3-H6WN",
                ),
            ],
        )]),
    )
    .await;
    assert!(page.contains("0 zugeordnet und 3 offen"), "{page}");
    let report = report_of(&page);
    assert_eq!(
        report
            .matches(
                "Der Betrag liegt über der Plausibilitätsgrenze und wird nie automatisch gebucht."
            )
            .count(),
        3,
        "{report}"
    );
    assert_eq!(org.app.balance(&wallet).await, 25_000, "nothing booked");
    assert_eq!(payment(&org.app, &huge).await, ("pending".to_owned(), 0));
    assert_eq!(payment(&org.app, &halves).await, ("pending".to_owned(), 0));
    assert_eq!(payment(&org.app, &first).await, ("paid".to_owned(), 25_000));

    // The worklist lists them without a way to book them by hand, and booking by hand is
    // refused all the same.
    let worklist = org.treasurer.page("/treasurer/payments").await;
    assert_eq!(
        worklist
            .matches("Kann nicht von Hand zugeordnet werden")
            .count(),
        3,
        "{worklist}"
    );
    let assigned = org
        .treasurer
        .post(
            "/treasurer/bank-entries/B-2/assign",
            &[("reference", "AM-P2M8-R4TZ")],
        )
        .await;
    assert_eq!(assigned.status(), 409);
    assert!(
        assigned
            .text()
            .await
            .unwrap()
            .contains("Plausibilitätsgrenze")
    );
    assert_eq!(org.app.balance(&wallet).await, 25_000);
    assert_eq!(payment(&org.app, &huge).await, ("pending".to_owned(), 0));

    // The organisation's pages answer as before.
    for path in [
        format!("/organisations/{}/payments", org.slug),
        format!("/organisations/{}", org.slug),
        format!("/payments/{huge}"),
    ] {
        let response = org.admin.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    org.app.assert_books_balance().await;
}

async fn post_transfer(
    app: &TestApp,
    key: &str,
    from: AccountId,
    to: AccountId,
    cents: i64,
) -> Result<ledger::Posted, LedgerError> {
    let mut tx = app.db.begin().await.unwrap();
    let new = NewTransaction::transfer(
        key,
        TxKind::TopUp,
        "test",
        Actor::system(),
        from,
        to,
        eur(cents),
    )
    .unwrap();
    let posted = ledger::post(&mut tx, new).await;
    tx.commit().await.unwrap();
    posted
}

async fn key_used(app: &TestApp, key: &str) -> bool {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM ledger_transactions WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&mut *app.conn().await)
            .await
            .unwrap();
    found.is_some()
}

#[tokio::test]
async fn the_ledger_refuses_a_balance_beyond_the_range_of_whole_cents() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 25_000).await;

    // Upwards: a wallet holding money takes the largest amount there is.
    let refused = post_transfer(
        &app,
        "huge",
        AccountId::external_stripe(),
        wallet.clone(),
        i64::MAX,
    )
    .await;
    assert!(
        matches!(&refused, Err(LedgerError::Overflow { account }) if *account == wallet),
        "{refused:?}"
    );
    assert!(!key_used(&app, "huge").await, "nothing left behind");
    assert_eq!(app.balance(&wallet).await, 25_000);
    assert_eq!(app.balance(&AccountId::external_stripe()).await, 0);

    // Two amounts of ~4.7·10¹⁶ €: each fits, together they do not.
    let half = 4_700_000_000_000_000_000;
    let other = app.funded_wallet("org-b", 0).await;
    post_transfer(
        &app,
        "half-1",
        AccountId::external_stripe(),
        other.clone(),
        half,
    )
    .await
    .unwrap();
    let refused = post_transfer(
        &app,
        "half-2",
        AccountId::external_stripe(),
        other.clone(),
        half,
    )
    .await;
    // external:stripe comes first in account order, and would go below i64::MIN first.
    assert!(
        matches!(&refused, Err(LedgerError::Overflow { account }) if *account == AccountId::external_stripe()),
        "{refused:?}"
    );
    assert_eq!(app.balance(&other).await, half);
    assert_eq!(app.balance(&AccountId::external_stripe()).await, -half);

    // Downwards on the other side: an account that may go negative still stops at i64::MIN.
    let refused = post_transfer(
        &app,
        "below",
        AccountId::external_stripe(),
        AccountId::pool(),
        i64::MAX - half + 2,
    )
    .await;
    assert!(
        matches!(&refused, Err(LedgerError::Overflow { .. })),
        "{refused:?}"
    );
    assert!(!key_used(&app, "below").await);
    // Right up to the limit is fine.
    post_transfer(
        &app,
        "to-the-limit",
        AccountId::external_stripe(),
        AccountId::pool(),
        i64::MAX - half + 1,
    )
    .await
    .unwrap();
    assert_eq!(
        app.balance(&AccountId::external_stripe()).await,
        i64::MIN,
        "exactly the smallest balance there is"
    );
    app.assert_books_balance().await;
}

#[tokio::test]
async fn verify_reports_damaged_amounts_and_never_stops() {
    let org = org().await;
    let app = &org.app;
    app.books_broken_on_purpose();
    let wallet = AccountId::wallet(&org.id);
    let id = open_top_up(&org, "250", "AM-7KX4-93QF").await;
    upload_ok(
        &org.treasurer,
        &document(&[stmt(
            "S-1",
            &[credit("250.00", "2026-12-01", Some("B-1"), "AM-7KX4-93QF")],
        )]),
    )
    .await;
    assert_eq!(payment(app, &id).await.1, 25_000);
    app.assert_books_balance().await;

    // Postings written by hand that no sum can hold: SQLite's SUM stops with "integer
    // overflow", PostgreSQL's cast of the sum back to BIGINT fails.
    let transaction: String =
        sqlx::query_scalar("SELECT transaction_id FROM ledger_postings WHERE account_id = $1")
            .bind(wallet.as_str())
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
    for line in [7_i64, 8] {
        sqlx::query(
            "INSERT INTO ledger_postings (transaction_id, line, account_id, amount)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&transaction)
        .bind(line)
        .bind(wallet.as_str())
        .bind(i64::MAX)
        .execute(&mut *app.conn().await)
        .await
        .unwrap();
    }
    let sqlite = app.db.backend() == Backend::Sqlite;
    if sqlite {
        // What the overflow of `balance + amount` left on SQLite before the guard: a float.
        sqlx::query("UPDATE accounts SET balance = balance + 9223372036854775807 WHERE id = $1")
            .bind(wallet.as_str())
            .execute(&mut *app.conn().await)
            .await
            .unwrap();
        let kind: String = sqlx::query_scalar("SELECT typeof(balance) FROM accounts WHERE id = $1")
            .bind(wallet.as_str())
            .fetch_one(&mut *app.conn().await)
            .await
            .unwrap();
        assert_eq!(kind, "real", "the damage the issue describes");
    }

    let report = allmende::verify::run(&mut *app.conn().await)
        .await
        .expect("verify runs to the end on damaged rows");
    assert!(!report.passed());
    let text = report.to_string();
    assert!(text.contains("every transaction sums to zero"), "{text}");
    let sums = report
        .checks
        .iter()
        .find(|c| c.name == "every transaction sums to zero")
        .unwrap();
    assert!(!sums.passed(), "{text}");
    let whole = report
        .checks
        .iter()
        .find(|c| c.name.contains("whole number"))
        .unwrap();
    if sqlite {
        assert_eq!(whole.violations, 1, "{text}");
        assert!(whole.examples[0].starts_with(wallet.as_str()), "{text}");
        // The organisation's pages do not fail on the damaged balance.
        for path in [
            format!("/organisations/{}/payments", org.slug),
            format!("/organisations/{}", org.slug),
            format!("/payments/{id}"),
        ] {
            let response = org.admin.get(&path).await;
            assert_eq!(response.status(), 200, "{path}");
        }
    } else {
        assert!(whole.passed(), "{text}");
    }
    // A later check still ran after the ones that could not.
    let last = report.checks.last().unwrap();
    assert!(last.error.is_none(), "{text}");
}

// ------------------------------------------------------------------------------------------
// Item 18: a credit without a bank reference, in overlapping statements.
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_credit_without_bank_reference_in_overlapping_statements_is_booked_once() {
    let org = org().await;
    let wallet = AccountId::wallet(&org.id);
    let id = open_top_up(&org, "1000", "AM-7KX4-93QF").await;
    let shared = credit("100.00", "2026-12-03", None, "Aufladung AM-7KX4-93QF");

    // Monday to Wednesday, then Wednesday to Friday: the Wednesday credit is in both, at
    // another position and under another statement id.
    let page = upload_ok(
        &org.treasurer,
        &document(&[stmt(
            "2026-48",
            &[credit("1.00", "2026-12-01", None, "Spende"), shared.clone()],
        )]),
    )
    .await;
    assert!(page.contains("1 zugeordnet und 1 offen"), "{page}");
    assert_eq!(
        payment(&org.app, &id).await,
        ("partly_paid".to_owned(), 10_000)
    );
    let page = upload_ok(
        &org.treasurer,
        &document(&[stmt(
            "2026-49",
            &[
                credit("2.00", "2026-12-04", None, "Spende"),
                credit("3.00", "2026-12-04", None, "Spende"),
                shared.clone(),
            ],
        )]),
    )
    .await;
    assert!(
        page.contains("0 zugeordnet und 2 offen; 1 waren schon bekannt"),
        "{page}"
    );
    assert_eq!(
        payment(&org.app, &id).await,
        ("partly_paid".to_owned(), 10_000),
        "the shared credit is booked once"
    );
    assert_eq!(org.app.balance(&wallet).await, 10_000);

    // Two overlapping statements in one file.
    let thursday = credit("50.00", "2026-12-05", None, "AM-7KX4-93QF");
    let page = upload_ok(
        &org.treasurer,
        &document(&[
            stmt("2026-50a", std::slice::from_ref(&thursday)),
            stmt(
                "2026-50b",
                &[credit("4.00", "2026-12-05", None, "Spende"), thursday],
            ),
        ]),
    )
    .await;
    assert!(page.contains("1 zugeordnet"), "{page}");
    assert_eq!(payment(&org.app, &id).await.1, 15_000);

    // Two equal credits in one statement are two payments, and stay two on a second import.
    let twice = credit("25.00", "2026-12-07", None, "AM-7KX4-93QF");
    let file = document(&[stmt("2026-51", &[twice.clone(), twice])]);
    let page = upload_ok(&org.treasurer, &file).await;
    assert!(page.contains("2 zugeordnet"), "{page}");
    assert_eq!(payment(&org.app, &id).await.1, 20_000);
    let page = upload_ok(&org.treasurer, &file).await;
    assert!(page.contains("0 zugeordnet und 0 offen; 2 waren"), "{page}");
    assert_eq!(payment(&org.app, &id).await.1, 20_000);
    assert_eq!(org.app.balance(&wallet).await, 20_000);
    org.app.assert_books_balance().await;
}

#[tokio::test]
async fn a_credit_imported_under_the_former_key_stays_known() {
    let org = org().await;
    let id = open_top_up(&org, "1000", "AM-7KX4-93QF").await;
    let file = document(&[stmt(
        "2026-48",
        &[credit("100.00", "2026-12-03", None, "AM-7KX4-93QF")],
    )]);
    // As an import before the content keys left it: the entry under its `h:` key, booked.
    let parsed = allmende::payments::camt053::parse(&file).unwrap();
    let entry = &parsed[0].entries[0];
    assert!(entry.entry_ref.starts_with("c:"));
    let previous = entry.previous_ref.clone().unwrap();
    assert!(previous.starts_with("h:"));
    let mut conn = org.app.conn().await;
    sqlx::query(
        "INSERT INTO bank_statements (id, statement_ref, imported_by, imported_at, entries, matched)
         VALUES ('st-old', 'old', 'cli', 0, 1, 1)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO bank_entries (entry_ref, statement_id, amount, remittance, status, created_at)
         VALUES ($1, 'st-old', 10000, 'AM-7KX4-93QF', 'matched', 0)",
    )
    .bind(&previous)
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);

    let page = upload_ok(&org.treasurer, &file).await;
    assert!(page.contains("1 waren schon bekannt"), "{page}");
    assert_eq!(payment(&org.app, &id).await, ("pending".to_owned(), 0));
}

// ------------------------------------------------------------------------------------------
// Item 19: a statement id seen before.
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_statement_seen_before_still_books_its_new_credits_and_reports_each_entry() {
    let org = org().await;
    let wallet = AccountId::wallet(&org.id);
    let first = open_top_up(&org, "250", "AM-7KX4-93QF").await;
    let second = open_top_up(&org, "100", "AM-P2M8-R4TZ").await;
    let paid = open_top_up(&org, "10", "AM-Z9Q3-H6WN").await;
    let known = credit("250.00", "2026-12-01", Some("B-1"), "AM-7KX4-93QF");
    upload_ok(
        &org.treasurer,
        &document(&[stmt(
            "S-7",
            &[
                known.clone(),
                credit("10.00", "2026-12-01", Some("B-0"), "AM-Z9Q3-H6WN"),
            ],
        )]),
    )
    .await;
    assert_eq!(payment(&org.app, &paid).await.0, "paid");

    // The bank re-issues statement S-7 with what arrived later that day (or sends its second
    // page under the same id).
    let page = upload_ok(
        &org.treasurer,
        &document(&[stmt(
            "S-7",
            &[
                known,
                credit("100.00", "2026-12-01", Some("B-2"), "AM-P2M8-R4TZ"),
                credit("5.00", "2026-12-01", Some("B-3"), "Spende ohne Referenz"),
                credit("7.00", "2026-12-01", Some("B-4"), "AM-ZZZZ-ZZZZ"),
                credit("8.00", "2026-12-01", Some("B-5"), "AM-Z9Q3-H6WN nochmal"),
            ],
        )]),
    )
    .await;
    assert!(
        page.contains("1 zugeordnet und 3 offen; 1 waren schon bekannt"),
        "{page}"
    );
    assert_eq!(payment(&org.app, &first).await, ("paid".to_owned(), 25_000));
    assert_eq!(
        payment(&org.app, &second).await,
        ("paid".to_owned(), 10_000),
        "the new credit is booked"
    );
    assert_eq!(org.app.balance(&wallet).await, 36_000);

    // The report lists each entry with its outcome, in the file's order.
    let report = report_of(&page);
    let outcomes = [
        "Schon bekannt, nichts gebucht",
        "Gebucht für AM-P2M8-R4TZ",
        "Der Verwendungszweck enthält keine Zahlungsreferenz.",
        "Die Zahlungsreferenz gehört zu keiner Zahlung.",
        "Die Zahlung ist nicht mehr offen.",
    ];
    let mut at = 0;
    for outcome in outcomes {
        let found = report[at..]
            .find(outcome)
            .unwrap_or_else(|| panic!("{outcome} after {at} in {report}"));
        at += found + outcome.len();
    }
    assert_eq!(report.matches("Braucht Aufmerksamkeit").count(), 3);

    // The entries needing attention are on the worklist with their reason.
    let worklist = org.treasurer.page("/treasurer/payments").await;
    for reason in &outcomes[2..] {
        assert!(worklist.contains(reason), "{reason}");
    }
    org.app.assert_books_balance().await;
}
