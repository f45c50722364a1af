//! `allmende verify`: the money invariants of DESIGN.md, checked against the whole database.
//!
//! Each check reads with plain SQL, independent of the code that writes, so that a bug there
//! (or a hand-edited row) shows up here.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// How many offending rows a check lists; the count is always complete.
const EXAMPLES: i64 = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// How many rows break the rule (0 = passed).
    pub violations: i64,
    /// Up to [`EXAMPLES`] of them, described.
    pub examples: Vec<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.violations == 0
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
            if check.passed() {
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

/// Runs every check and reports each with its result.
pub async fn run(conn: &mut AnyConnection) -> Result<Report, sqlx::Error> {
    let mut checks = Vec::with_capacity(RULES.len());
    for rule in RULES {
        let count_sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM ({}) violations",
            rule.violations_sql
        );
        let violations: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
            .fetch_one(&mut *conn)
            .await?;
        let mut examples = Vec::new();
        if violations > 0 {
            let sql = format!("{} LIMIT {EXAMPLES}", rule.violations_sql);
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await?
            {
                let subject: String = row.get("subject");
                let detail: i64 = row.get("detail");
                examples.push(format!("{subject}: {detail}"));
            }
        }
        checks.push(Check {
            name: rule.name,
            violations,
            examples,
        });
    }
    checks.extend(stripe_transfer_checks(conn).await?);
    Ok(Report { checks })
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

/// The checks of [`STRIPE_TRANSFER_RULES`], run like the others.
async fn stripe_transfer_checks(conn: &mut AnyConnection) -> Result<Vec<Check>, sqlx::Error> {
    let mut checks = Vec::with_capacity(STRIPE_TRANSFER_RULES.len());
    for rule in STRIPE_TRANSFER_RULES {
        let count_sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM ({}) violations",
            rule.violations_sql
        );
        let violations: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
            .fetch_one(&mut *conn)
            .await?;
        let mut examples = Vec::new();
        if violations > 0 {
            let sql = format!("{} LIMIT {EXAMPLES}", rule.violations_sql);
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await?
            {
                let subject: String = row.get("subject");
                let detail: i64 = row.get("detail");
                examples.push(format!("{subject}: {detail}"));
            }
        }
        checks.push(Check {
            name: rule.name,
            violations,
            examples,
        });
    }
    Ok(checks)
}
