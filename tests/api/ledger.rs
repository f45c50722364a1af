//! The ledger: balanced transactions, idempotency, overdrafts, concurrency, reversals,
//! statements, and `verify` catching tampering.

use allmende::ledger::{
    self, AccountId, AccountKind, Actor, LedgerError, NewTransaction, Posted, TxKind,
};
use allmende::money::Money;

use crate::helpers::spawn_app;

fn eur(cents: i64) -> Money {
    Money::from_cents(cents)
}

fn transfer(key: &str, from: &AccountId, to: &AccountId, cents: i64) -> NewTransaction {
    NewTransaction::transfer(
        key,
        TxKind::Pledge,
        "test transfer",
        Actor::person("p1"),
        from.clone(),
        to.clone(),
        eur(cents),
    )
    .expect("transfer")
}

async fn transaction_count(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_transactions")
        .fetch_one(&mut *app.conn().await)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_balanced_transfer_moves_money_between_accounts() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await;

    let mut tx = app.db.begin().await.unwrap();
    let posted = ledger::post(&mut tx, transfer("k1", &wallet, &AccountId::pool(), 2_550))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert!(matches!(posted, Posted::New(_)));
    assert_eq!(posted.transaction().postings.len(), 2);
    assert_eq!(app.balance(&wallet).await, 7_450);
    assert_eq!(app.balance(&AccountId::pool()).await, 2_550);
    assert_eq!(app.balance(&AccountId::external_bank()).await, -10_000);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_transaction_with_three_postings_splits_an_amount_and_its_fee() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 100_000).await;
    let mut tx = app.db.begin().await.unwrap();
    ledger::post(
        &mut tx,
        NewTransaction::new("dues", TxKind::Dues, "dues and a fee", Actor::system())
            .posting(wallet.clone(), eur(-100_000))
            .posting(AccountId::pool(), eur(95_000))
            .posting(AccountId::fees(), eur(5_000)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(app.balance(&wallet).await, 0);
    assert_eq!(app.balance(&AccountId::pool()).await, 95_000);
    assert_eq!(app.balance(&AccountId::fees()).await, 5_000);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn an_unbalanced_transaction_is_refused_and_moves_nothing() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await;
    let before = transaction_count(&app).await;

    let mut tx = app.db.begin().await.unwrap();
    let result = ledger::post(
        &mut tx,
        NewTransaction::new("bad", TxKind::Dues, "unbalanced", Actor::system())
            .posting(wallet.clone(), eur(-1_000))
            .posting(AccountId::pool(), eur(999)),
    )
    .await;
    drop(tx);

    assert!(
        matches!(result, Err(LedgerError::Unbalanced { sum }) if sum == eur(-1)),
        "{result:?}"
    );
    assert_eq!(app.balance(&wallet).await, 10_000);
    assert_eq!(transaction_count(&app).await, before);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_transaction_needs_two_nonzero_postings() {
    let app = spawn_app().await;
    let mut tx = app.db.begin().await.unwrap();
    let one = ledger::post(
        &mut tx,
        NewTransaction::new("one", TxKind::Dues, "alone", Actor::system())
            .posting(AccountId::pool(), eur(0)),
    )
    .await;
    assert!(matches!(one, Err(LedgerError::TooFewPostings)), "{one:?}");
    let zero = ledger::post(
        &mut tx,
        NewTransaction::new("zero", TxKind::Dues, "zeros", Actor::system())
            .posting(AccountId::pool(), eur(0))
            .posting(AccountId::external_bank(), eur(0)),
    )
    .await;
    assert!(matches!(zero, Err(LedgerError::ZeroPosting)), "{zero:?}");
}

#[tokio::test]
async fn posting_to_an_unknown_account_is_refused() {
    let app = spawn_app().await;
    let mut tx = app.db.begin().await.unwrap();
    let result = ledger::post(
        &mut tx,
        transfer(
            "k",
            &AccountId::external_bank(),
            &AccountId::wallet("nobody"),
            500,
        ),
    )
    .await;
    drop(tx);
    assert!(
        matches!(&result, Err(LedgerError::UnknownAccount(id)) if id == &AccountId::wallet("nobody")),
        "{result:?}"
    );
    assert_eq!(app.balance(&AccountId::external_bank()).await, 0);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn replaying_an_idempotency_key_returns_the_first_transaction_and_moves_nothing() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await;

    let mut first_id = String::new();
    for attempt in 0..3 {
        let mut tx = app.db.begin().await.unwrap();
        let posted = ledger::post(
            &mut tx,
            transfer("pledge-42", &wallet, &AccountId::pool(), 3_000),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        if attempt == 0 {
            assert!(!posted.is_replay());
            first_id = posted.transaction().id.clone();
        } else {
            assert!(posted.is_replay(), "attempt {attempt} moved money again");
            assert_eq!(posted.transaction().id, first_id);
        }
    }
    assert_eq!(app.balance(&wallet).await, 7_000);
    assert_eq!(app.balance(&AccountId::pool()).await, 3_000);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn the_same_key_for_a_different_movement_is_a_conflict() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await;
    let mut tx = app.db.begin().await.unwrap();
    ledger::post(&mut tx, transfer("key", &wallet, &AccountId::pool(), 3_000))
        .await
        .unwrap();
    let again = ledger::post(&mut tx, transfer("key", &wallet, &AccountId::pool(), 4_000)).await;
    assert!(
        matches!(&again, Err(LedgerError::KeyConflict(k)) if k == "key"),
        "{again:?}"
    );
}

#[tokio::test]
async fn an_overdraft_is_refused_and_the_whole_transaction_rolls_back() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 1_000).await;
    let before = transaction_count(&app).await;

    let mut tx = app.db.begin().await.unwrap();
    let result = ledger::post(
        &mut tx,
        transfer("too-much", &wallet, &AccountId::pool(), 1_001),
    )
    .await;
    drop(tx);

    match result {
        Err(LedgerError::InsufficientFunds {
            account,
            balance,
            needed,
        }) => {
            assert_eq!(account, wallet);
            assert_eq!(balance, eur(1_000));
            assert_eq!(needed, eur(1_001));
        }
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    assert_eq!(app.balance(&wallet).await, 1_000);
    assert_eq!(app.balance(&AccountId::pool()).await, 0);
    assert_eq!(
        transaction_count(&app).await,
        before,
        "no half-written transaction"
    );
    app.assert_books_balance().await;
}

#[tokio::test]
async fn external_accounts_may_go_negative_and_the_coop_pool_may_not() {
    let app = spawn_app().await;
    let mut tx = app.db.begin().await.unwrap();
    let result = ledger::post(
        &mut tx,
        transfer(
            "from-pool",
            &AccountId::pool(),
            &AccountId::external_payouts(),
            1,
        ),
    )
    .await;
    assert!(
        matches!(result, Err(LedgerError::InsufficientFunds { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn fifty_concurrent_transfers_racing_on_one_account_never_overdraw_it() {
    let app = spawn_app().await;
    // Enough for exactly 20 of the 50 transfers of 5 EUR.
    let wallet = app.funded_wallet("org-race", 10_000).await;

    let mut tasks = Vec::new();
    for i in 0..50 {
        let db = app.db.clone();
        let wallet = wallet.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await?;
            let result = ledger::post(
                &mut tx,
                transfer(&format!("race-{i}"), &wallet, &AccountId::pool(), 500),
            )
            .await;
            match result {
                Ok(_) => {
                    tx.commit().await?;
                    Ok::<bool, sqlx::Error>(true)
                }
                Err(LedgerError::InsufficientFunds { .. }) => Ok(false),
                Err(other) => panic!("unexpected error: {other:?}"),
            }
        }));
    }
    let mut succeeded = 0;
    for task in tasks {
        if task.await.expect("task").expect("database") {
            succeeded += 1;
        }
    }

    assert_eq!(
        succeeded, 20,
        "exactly the transfers the money covers succeed"
    );
    assert_eq!(app.balance(&wallet).await, 0);
    assert_eq!(app.balance(&AccountId::pool()).await, 10_000);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn concurrent_requests_with_the_same_key_move_money_once() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let db = app.db.clone();
        let wallet = wallet.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await.expect("begin");
            let posted = ledger::post(
                &mut tx,
                transfer("double-click", &wallet, &AccountId::pool(), 700),
            )
            .await
            .expect("post");
            tx.commit().await.expect("commit");
            posted
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut new = 0;
    for task in tasks {
        let posted = task.await.expect("task");
        if !posted.is_replay() {
            new += 1;
        }
        ids.insert(posted.transaction().id.clone());
    }
    assert_eq!(new, 1);
    assert_eq!(ids.len(), 1, "every request sees the same transaction");
    assert_eq!(app.balance(&wallet).await, 9_300);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_reversal_restores_the_balances_and_happens_once() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await;
    let mut tx = app.db.begin().await.unwrap();
    let original = ledger::post(
        &mut tx,
        transfer("dues", &wallet, &AccountId::pool(), 4_000),
    )
    .await
    .unwrap()
    .into_transaction();
    let reversal = ledger::reverse(
        &mut tx,
        &original.id,
        "undo-dues",
        Actor::person("treasurer"),
        "booked twice",
    )
    .await
    .unwrap()
    .into_transaction();
    tx.commit().await.unwrap();

    assert_eq!(reversal.reverses_id.as_deref(), Some(original.id.as_str()));
    assert_eq!(reversal.kind, "reversal");
    assert_eq!(app.balance(&wallet).await, 10_000);
    assert_eq!(app.balance(&AccountId::pool()).await, 0);

    let mut tx = app.db.begin().await.unwrap();
    let replay = ledger::reverse(
        &mut tx,
        &original.id,
        "undo-dues",
        Actor::system(),
        "booked twice",
    )
    .await
    .unwrap();
    assert!(
        replay.is_replay(),
        "the same reversal request again is a replay"
    );
    let twice = ledger::reverse(
        &mut tx,
        &original.id,
        "undo-again",
        Actor::system(),
        "again",
    )
    .await;
    assert!(
        matches!(twice, Err(LedgerError::AlreadyReversed(_))),
        "{twice:?}"
    );
    let of_reversal =
        ledger::reverse(&mut tx, &reversal.id, "undo-undo", Actor::system(), "x").await;
    assert!(
        matches!(of_reversal, Err(LedgerError::ReversalOfReversal)),
        "{of_reversal:?}"
    );
    drop(tx);
    assert_eq!(app.balance(&wallet).await, 10_000);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_reversal_of_spent_money_is_refused_rather_than_overdrawing() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 5_000).await;
    let top_up_id: String = sqlx::query_scalar(
        "SELECT id FROM ledger_transactions WHERE idempotency_key LIKE 'test:top-up:org-a:%'",
    )
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    ledger::post(
        &mut tx,
        transfer("spend", &wallet, &AccountId::pool(), 4_000),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = app.db.begin().await.unwrap();
    let result = ledger::reverse(
        &mut tx,
        &top_up_id,
        "chargeback",
        Actor::system(),
        "card charged back",
    )
    .await;
    drop(tx);
    assert!(
        matches!(&result, Err(LedgerError::InsufficientFunds { balance, .. }) if *balance == eur(1_000)),
        "{result:?}"
    );
    assert_eq!(app.balance(&wallet).await, 1_000);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_statement_pages_newest_first_with_the_balance_after_each_line() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await; // line 1: +100.00
    for (i, cents) in [1_000, 2_000, 500, 1_500].into_iter().enumerate() {
        let mut tx = app.db.begin().await.unwrap();
        ledger::post(
            &mut tx,
            transfer(&format!("s{i}"), &wallet, &AccountId::pool(), cents),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        // Distinct timestamps keep the order independent of id generation.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let mut conn = app.conn().await;
    let page1 = ledger::statement(&mut conn, &wallet, 1, 2).await.unwrap();
    let page2 = ledger::statement(&mut conn, &wallet, 2, 2).await.unwrap();
    let page3 = ledger::statement(&mut conn, &wallet, 3, 2).await.unwrap();

    assert_eq!(page1.total_lines, 5);
    let amounts: Vec<i64> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p.lines.iter().map(|l| l.amount.cents()))
        .collect();
    assert_eq!(amounts, vec![-1_500, -500, -2_000, -1_000, 10_000]);
    let after: Vec<i64> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p.lines.iter().map(|l| l.balance_after.cents()))
        .collect();
    assert_eq!(after, vec![5_000, 6_500, 7_000, 9_000, 10_000]);
    assert_eq!(page1.account.balance, eur(5_000));

    let unknown = ledger::statement(&mut conn, &AccountId::wallet("ghost"), 1, 10).await;
    assert!(matches!(unknown, Err(LedgerError::UnknownAccount(_))));
}

#[tokio::test]
async fn the_transactions_of_a_proposal_are_listed_with_their_postings() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 10_000).await;
    let escrow = AccountId::escrow("prop-7");
    let mut tx = app.db.begin().await.unwrap();
    ledger::open_account(&mut tx, &escrow, AccountKind::Escrow)
        .await
        .unwrap();
    ledger::post(
        &mut tx,
        transfer("p1", &wallet, &escrow, 3_000).for_proposal("prop-7"),
    )
    .await
    .unwrap();
    ledger::post(
        &mut tx,
        transfer("other", &wallet, &AccountId::pool(), 1_000),
    )
    .await
    .unwrap();
    ledger::post(
        &mut tx,
        transfer("w1", &escrow, &wallet, 1_000).for_proposal("prop-7"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut conn = app.conn().await;
    let listed = ledger::transactions_of_proposal(&mut conn, "prop-7")
        .await
        .unwrap();
    let keys: Vec<&str> = listed.iter().map(|t| t.idempotency_key.as_str()).collect();
    assert_eq!(keys, vec!["p1", "w1"]);
    assert!(listed.iter().all(|t| t.postings.len() == 2));
    assert_eq!(listed[0].actor, "person:p1");
    app.books_broken_on_purpose();
    // Escrow without pledge rows: the verify check for escrow names this proposal's account.
    drop(conn);
    let report = allmende::verify::run(&mut *app.conn().await).await.unwrap();
    let escrow_check = report
        .checks
        .iter()
        .find(|c| c.name.contains("escrow"))
        .unwrap();
    assert_eq!(escrow_check.violations, 1);
    assert!(escrow_check.examples[0].contains("proposal:prop-7:escrow"));
}

#[tokio::test]
async fn verify_catches_a_tampered_balance() {
    let app = spawn_app().await;
    app.books_broken_on_purpose();
    let wallet = app.funded_wallet("org-a", 10_000).await;
    app.assert_books_balance().await;

    sqlx::query("UPDATE accounts SET balance = balance + 100 WHERE id = $1")
        .bind(wallet.as_str())
        .execute(&mut *app.conn().await)
        .await
        .unwrap();

    let report = allmende::verify::run(&mut *app.conn().await).await.unwrap();
    assert!(!report.passed());
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.passed()).collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(
        failed[0].name,
        "every account balance equals the sum of its postings"
    );
    assert_eq!(failed[0].examples, vec![format!("{wallet}: 100")]);
}

#[tokio::test]
async fn verify_catches_an_unbalanced_transaction_written_by_hand() {
    let app = spawn_app().await;
    app.books_broken_on_purpose();
    let wallet = app.funded_wallet("org-a", 10_000).await;
    let id: String = sqlx::query_scalar("SELECT id FROM ledger_transactions")
        .fetch_one(&mut *app.conn().await)
        .await
        .unwrap();
    // A forged third line, with the account's balance kept in step so only the sum is off.
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("INSERT INTO ledger_postings (transaction_id, line, account_id, amount) VALUES ($1, 2, $2, 1)")
        .bind(&id)
        .bind(wallet.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE accounts SET balance = balance + 1 WHERE id = $1")
        .bind(wallet.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let report = allmende::verify::run(&mut *app.conn().await).await.unwrap();
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, vec!["every transaction sums to zero"], "{report}");
}

#[tokio::test]
async fn a_refused_posting_leaves_nothing_behind_in_the_callers_transaction() {
    let app = spawn_app().await;
    let wallet = app.funded_wallet("org-a", 1_000).await;
    let mut tx = app.db.begin().await.unwrap();
    let refused = ledger::post(
        &mut tx,
        transfer("too-much", &wallet, &AccountId::pool(), 1_001),
    )
    .await;
    assert!(
        matches!(refused, Err(LedgerError::InsufficientFunds { .. })),
        "{refused:?}"
    );
    // The caller goes on and commits: the refused transaction left no row and its key is free.
    ledger::post(&mut tx, transfer("fits", &wallet, &AccountId::pool(), 400))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_transactions WHERE idempotency_key = 'too-much'",
    )
    .fetch_one(&mut *app.conn().await)
    .await
    .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(app.balance(&wallet).await, 600);
    app.assert_books_balance().await;
}
