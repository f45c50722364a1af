//! `allmende verify`: the money invariants of DESIGN.md, checked against the whole database.
//!
//! Each check reads with plain SQL, independent of the code that writes, so that a bug there
//! (or a hand-edited row) shows up here.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::db::Backend;

/// How many offending rows a check lists; the count is always complete.
const EXAMPLES: i64 = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// How many rows break the rule (0 = passed).
    pub violations: i64,
    /// Up to [`EXAMPLES`] of them, described.
    pub examples: Vec<String>,
    /// Why the check could not run at all (a row the database cannot sum, say); a check that
    /// could not run has not passed.
    pub error: Option<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.violations == 0 && self.error.is_none()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for check in &self.checks {
            if let Some(error) = &check.error {
                writeln!(f, "FAIL  {} (could not be checked: {error})", check.name)?;
            } else if check.passed() {
                writeln!(f, "ok    {}", check.name)?;
            } else {
                writeln!(f, "FAIL  {} ({} violations)", check.name, check.violations)?;
                for example in &check.examples {
                    writeln!(f, "        {example}")?;
                }
            }
        }
        let failed = self.checks.iter().filter(|c| !c.passed()).count();
        if failed == 0 {
            write!(f, "all {} checks passed", self.checks.len())
        } else {
            write!(f, "{failed} of {} checks failed", self.checks.len())
        }
    }
}

/// One invariant: a query that returns one row per violation, `(subject, detail)`.
struct Rule {
    name: &'static str,
    violations_sql: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        name: "every transaction has at least two postings",
        violations_sql: "SELECT t.id AS subject,
                CAST(COUNT(p.line) AS BIGINT) AS detail
            FROM ledger_transactions t
            LEFT JOIN ledger_postings p ON p.transaction_id = t.id
            GROUP BY t.id
            HAVING COUNT(p.line) < 2",
    },
    Rule {
        name: "every transaction sums to zero",
        violations_sql: "SELECT transaction_id AS subject,
                CAST(SUM(amount) AS BIGINT) AS detail
            FROM ledger_postings
            GROUP BY transaction_id
            HAVING SUM(amount) <> 0",
    },
    Rule {
        name: "every account balance equals the sum of its postings",
        violations_sql: "SELECT a.id AS subject,
                CAST(a.balance - COALESCE(s.total, 0) AS BIGINT) AS detail
            FROM accounts a
            LEFT JOIN (SELECT account_id, SUM(amount) AS total
                       FROM ledger_postings GROUP BY account_id) s
              ON s.account_id = a.id
            WHERE a.balance <> COALESCE(s.total, 0)",
    },
    Rule {
        name: "no account that may not go negative is below zero",
        violations_sql: "SELECT id AS subject, CAST(balance AS BIGINT) AS detail
            FROM accounts
            WHERE may_go_negative = 0 AND balance < 0",
    },
    Rule {
        name: "only external accounts may go negative",
        violations_sql: "SELECT id AS subject, CAST(may_go_negative AS BIGINT) AS detail
            FROM accounts
            WHERE may_go_negative <> 0 AND kind <> 'external'",
    },
    Rule {
        name: "every reversal mirrors the transaction it reverses",
        violations_sql: "SELECT r.id AS subject, CAST(SUM(x.amount) AS BIGINT) AS detail
            FROM ledger_transactions r
            JOIN ledger_postings x
              ON x.transaction_id = r.id OR x.transaction_id = r.reverses_id
            WHERE r.reverses_id IS NOT NULL
            GROUP BY r.id, x.account_id
            HAVING SUM(x.amount) <> 0",
    },
    Rule {
        name: "each proposal's escrow equals its pledges' open amounts",
        violations_sql: "SELECT a.id AS subject,
                CAST(a.balance - COALESCE(pl.open, 0) AS BIGINT) AS detail
            FROM accounts a
            LEFT JOIN (SELECT 'proposal:' || proposal_id || ':escrow' AS account_id,
                              SUM(committed - released - refunded) AS open
                       FROM pledges GROUP BY proposal_id) pl
              ON pl.account_id = a.id
            WHERE a.kind = 'escrow' AND a.balance <> COALESCE(pl.open, 0)",
    },
    Rule {
        name: "every collected instalment is one pledge of the recurring amount",
        violations_sql: "SELECT rc.recurring_pledge_id AS subject,
                CAST(COALESCE(pl.committed, 0) - rp.amount AS BIGINT) AS detail
            FROM recurring_collections rc
            JOIN recurring_pledges rp ON rp.id = rc.recurring_pledge_id
            LEFT JOIN pledges pl ON pl.id = rc.pledge_id
            WHERE rc.status = 'collected'
              AND (pl.id IS NULL OR pl.committed <> rp.amount
                   OR pl.recurring_pledge_id <> rc.recurring_pledge_id OR pl.period <> rc.period)",
    },
    Rule {
        name: "every payable balance equals releases minus paid payouts",
        violations_sql: "SELECT a.id AS subject,
                CAST(a.balance - (COALESCE(r.net, 0) - COALESCE(p.paid, 0)) AS BIGINT) AS detail
            FROM accounts a
            LEFT JOIN (SELECT 'maintainer:' || project_id || ':payable' AS account_id,
                              SUM(amount - fee) AS net
                       FROM releases GROUP BY project_id) r ON r.account_id = a.id
            LEFT JOIN (SELECT 'maintainer:' || project_id || ':payable' AS account_id,
                              SUM(amount) AS paid
                       FROM payouts WHERE status = 'paid' GROUP BY project_id) p ON p.account_id = a.id
            WHERE a.kind = 'payable' AND a.balance <> COALESCE(r.net, 0) - COALESCE(p.paid, 0)",
    },
    Rule {
        name: "every pledge has an escrow account",
        violations_sql: "SELECT p.id AS subject, CAST(p.committed AS BIGINT) AS detail
            FROM pledges p
            LEFT JOIN accounts a ON a.id = 'proposal:' || p.proposal_id || ':escrow'
            WHERE a.id IS NULL",
    },
];

const WHOLE_CENTS: &str = "every balance and posting amount is a whole number of cents";

/// The rule that every stored amount is an integer: what the other rules add up. Its SQL
/// differs between the databases (see [`Backend::not_an_integer_sql`]).
fn whole_cents_sql(backend: Backend) -> String {
    format!(
        "SELECT id AS subject, CAST(balance AS TEXT) AS detail
            FROM accounts WHERE {}
         UNION ALL
         SELECT transaction_id || '/' || CAST(line AS TEXT) AS subject,
                CAST(amount AS TEXT) AS detail
            FROM ledger_postings WHERE {}",
        backend.not_an_integer_sql("balance"),
        backend.not_an_integer_sql("amount"),
    )
}

/// Runs every check and reports each with its result.
///
/// A check that fails to run (a sum that overflows, a value of the wrong type) is reported as
/// failed with the database's message, and the other checks still run: a damaged database is
/// exactly when the report is needed.
pub async fn run(conn: &mut AnyConnection) -> Result<Report, sqlx::Error> {
    let mut checks = Vec::with_capacity(RULES.len() + STRIPE_TRANSFER_RULES.len() + 1);
    match Backend::of_connection(conn) {
        Some(backend) => checks.push(check(conn, WHOLE_CENTS, &whole_cents_sql(backend)).await?),
        None => checks.push(Check {
            name: WHOLE_CENTS,
            violations: 0,
            examples: Vec::new(),
            error: Some(format!("unknown database {}", conn.backend_name())),
        }),
    }
    for rule in RULES {
        checks.push(check(conn, rule.name, rule.violations_sql).await?);
    }
    for rule in STRIPE_TRANSFER_RULES {
        checks.push(check(conn, rule.name, rule.violations_sql).await?);
    }
    Ok(Report { checks })
}

/// Runs one rule in a savepoint of its own, so that a rule the database refuses to compute
/// (PostgreSQL then aborts the transaction) leaves the connection usable for the next.
async fn check(
    conn: &mut AnyConnection,
    name: &'static str,
    violations_sql: &str,
) -> Result<Check, sqlx::Error> {
    let mut scope = sqlx::Connection::begin(&mut *conn).await?;
    let outcome = count_and_describe(&mut scope, violations_sql).await;
    scope.rollback().await?;
    Ok(match outcome {
        Ok((violations, examples)) => Check {
            name,
            violations,
            examples,
            error: None,
        },
        Err(error) => Check {
            name,
            violations: 0,
            examples: Vec::new(),
            error: Some(error.to_string()),
        },
    })
}

async fn count_and_describe(
    conn: &mut AnyConnection,
    violations_sql: &str,
) -> Result<(i64, Vec<String>), sqlx::Error> {
    let count_sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM ({violations_sql}) violations");
    let violations: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
        .fetch_one(&mut *conn)
        .await?;
    let mut examples = Vec::new();
    if violations > 0 {
        let sql = format!("{violations_sql} LIMIT {EXAMPLES}");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            let subject: String = row.try_get("subject")?;
            examples.push(format!("{subject}: {}", describe_detail(&row)));
        }
    }
    Ok((violations, examples))
}

/// The detail column as text, whatever type the database gave it.
fn describe_detail(row: &sqlx::any::AnyRow) -> String {
    if let Ok(number) = row.try_get::<i64, _>("detail") {
        return number.to_string();
    }
    if let Ok(text) = row.try_get::<String, _>("detail") {
        return text;
    }
    match row.try_get::<f64, _>("detail") {
        Ok(float) => float.to_string(),
        Err(_) => "?".to_owned(),
    }
}

/// What Stripe actually transferred (`stripe_transfers`, every transfer Stripe confirmed)
/// against the payouts and releases: a maintainer paid twice shows up here even when the
/// ledger balances.
const STRIPE_TRANSFER_RULES: &[Rule] = &[
    Rule {
        name: "each payout has at most one executed Stripe transfer",
        violations_sql: "SELECT payout_id AS subject, CAST(COUNT(*) AS BIGINT) AS detail
            FROM stripe_transfers
            GROUP BY payout_id
            HAVING COUNT(*) > 1",
    },
    Rule {
        name: "every Stripe transfer is of its payout's amount",
        violations_sql: "SELECT st.id AS subject, CAST(st.amount - po.amount AS BIGINT) AS detail
            FROM stripe_transfers st
            JOIN payouts po ON po.id = st.payout_id
            WHERE st.amount <> po.amount",
    },
    Rule {
        name: "every Stripe transfer paid a payout booked as paid",
        violations_sql: "SELECT st.id AS subject, CAST(st.amount AS BIGINT) AS detail
            FROM stripe_transfers st
            JOIN payouts po ON po.id = st.payout_id
            WHERE po.status <> 'paid' OR po.method <> 'stripe'",
    },
    Rule {
        name: "no project received more by Stripe than its releases less fees",
        violations_sql: "SELECT t.project_id AS subject,
                CAST(t.total - COALESCE(r.net, 0) AS BIGINT) AS detail
            FROM (SELECT project_id, SUM(amount) AS total
                  FROM stripe_transfers GROUP BY project_id) t
            LEFT JOIN (SELECT project_id, SUM(amount - fee) AS net
                       FROM releases GROUP BY project_id) r ON r.project_id = t.project_id
            WHERE t.total > COALESCE(r.net, 0)",
    },
];
