-- The ledger: accounts, transactions and their postings, and the audit trail.
-- Portable between SQLite and PostgreSQL: TEXT ids, BIGINT for cents, times (ms since epoch) and
-- flags. Never edit a migration that has run; add a new one.

-- One row per account. The balance is kept here and changed only together with postings, by a
-- conditional UPDATE that refuses to take a non-negative account below zero.
CREATE TABLE accounts (
    id               TEXT PRIMARY KEY,          -- 'coop:pool', 'org:<id>:wallet', ...
    kind             TEXT NOT NULL,             -- external, wallet, pool, capital, fees, escrow, payable
    may_go_negative  BIGINT NOT NULL DEFAULT 0, -- 1 only for external accounts (money outside)
    balance          BIGINT NOT NULL DEFAULT 0, -- cents
    created_at       BIGINT NOT NULL,
    -- A second line of defence behind the conditional UPDATE.
    CHECK (may_go_negative = 1 OR balance >= 0),
    CHECK (may_go_negative IN (0, 1))
);

-- One row per movement of money. Append-only: a correction is a new transaction that reverses.
CREATE TABLE ledger_transactions (
    id               TEXT PRIMARY KEY,          -- UUIDv7: sorts by creation time
    idempotency_key  TEXT NOT NULL UNIQUE,      -- the same key again moves nothing
    kind             TEXT NOT NULL,             -- top_up, shares, dues, pledge, release, ...
    memo             TEXT NOT NULL,
    actor            TEXT NOT NULL,             -- 'system', 'cli' or 'person:<id>'
    proposal_id      TEXT,                      -- set when the money concerns one proposal
    reverses_id      TEXT REFERENCES ledger_transactions (id),
    created_at       BIGINT NOT NULL
);
-- A transaction is reversed at most once.
CREATE UNIQUE INDEX ledger_transactions_reverses ON ledger_transactions (reverses_id);
CREATE INDEX ledger_transactions_proposal ON ledger_transactions (proposal_id, created_at);

-- The lines of a transaction. amount > 0 adds to the account's balance, amount < 0 takes from it;
-- the lines of one transaction sum to zero.
CREATE TABLE ledger_postings (
    transaction_id   TEXT NOT NULL REFERENCES ledger_transactions (id),
    line             BIGINT NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    amount           BIGINT NOT NULL,
    PRIMARY KEY (transaction_id, line),
    CHECK (amount <> 0)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account_id, transaction_id);

-- Who changed what, when: one row per change of state.
CREATE TABLE audit_events (
    id               TEXT PRIMARY KEY,
    actor            TEXT NOT NULL,
    action           TEXT NOT NULL,             -- 'ledger.posted', 'proposal.opened', ...
    subject          TEXT NOT NULL,             -- the id of what changed
    details          TEXT NOT NULL DEFAULT '',  -- JSON
    created_at       BIGINT NOT NULL
);
CREATE INDEX audit_events_subject ON audit_events (subject, created_at);

-- The cooperative's own accounts and the outside world. Organisations' wallets, proposals'
-- escrows and maintainers' payables are opened when those are created.
INSERT INTO accounts (id, kind, may_go_negative, balance, created_at) VALUES
    ('external:stripe',  'external', 1, 0, 0),
    ('external:bank',    'external', 1, 0, 0),
    ('external:payouts', 'external', 1, 0, 0),
    ('coop:pool',        'pool',     0, 0, 0),
    ('coop:capital',     'capital',  0, 0, 0),
    ('coop:fees',        'fees',     0, 0, 0);
