-- Money in: payments of organisations (wallet top-ups, shares, dues) by Stripe Checkout or bank
-- transfer, the Stripe events seen, imported bank statements with their entries, and
-- shortfalls when money that was paid is taken back (refund, chargeback) after it was spent.

CREATE TABLE payments (
    id                     TEXT PRIMARY KEY,
    organisation_id        TEXT NOT NULL REFERENCES organisations (id),
    purpose                TEXT NOT NULL,          -- top_up, shares, dues
    obligation_id          TEXT REFERENCES member_obligations (id),
    method                 TEXT NOT NULL,          -- bank_transfer, stripe
    amount                 BIGINT NOT NULL,        -- cents asked for
    received               BIGINT NOT NULL DEFAULT 0, -- cents booked so far
    -- pending (waiting for money), processing (Stripe: a SEPA debit not yet cleared),
    -- partly_paid, paid, failed, cancelled
    status                 TEXT NOT NULL,
    reference              TEXT NOT NULL UNIQUE,   -- for the bank transfer's purpose line
    stripe_session_id      TEXT UNIQUE,
    stripe_payment_intent  TEXT,
    refunded               BIGINT NOT NULL DEFAULT 0, -- cents taken back by refunds and disputes
    created_by             TEXT,
    created_at             BIGINT NOT NULL,
    paid_at                BIGINT,
    CHECK (amount > 0 AND received >= 0 AND refunded >= 0),
    CHECK (purpose IN ('top_up', 'shares', 'dues')),
    CHECK (method IN ('bank_transfer', 'stripe'))
);
CREATE INDEX payments_organisation ON payments (organisation_id, created_at);
CREATE INDEX payments_status ON payments (status);
CREATE INDEX payments_intent ON payments (stripe_payment_intent);

-- Every booking of money received for a payment (one payment may arrive in parts), so a
-- receipt can list them and a double confirmation can be recognised by its key.
CREATE TABLE payment_receipts (
    id              TEXT PRIMARY KEY,
    payment_id      TEXT NOT NULL REFERENCES payments (id),
    amount          BIGINT NOT NULL,
    source          TEXT NOT NULL,                -- stripe, treasurer, bank_statement
    source_ref      TEXT NOT NULL,                -- event id, form key, bank entry ref
    transaction_id  TEXT NOT NULL REFERENCES ledger_transactions (id),
    created_at      BIGINT NOT NULL,
    UNIQUE (source, source_ref),
    CHECK (amount > 0)
);
CREATE INDEX payment_receipts_payment ON payment_receipts (payment_id);

-- Stripe events already processed: a replayed or duplicated event does nothing more.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    payment_id   TEXT,
    received_at  BIGINT NOT NULL
);

CREATE TABLE bank_statements (
    id             TEXT PRIMARY KEY,
    statement_ref  TEXT NOT NULL UNIQUE,          -- the statement's own id (and account)
    imported_by    TEXT NOT NULL,
    imported_at    BIGINT NOT NULL,
    entries        BIGINT NOT NULL,
    matched        BIGINT NOT NULL
);

-- Credit entries of imported statements: matched to a payment, or waiting for the treasurer.
CREATE TABLE bank_entries (
    entry_ref     TEXT PRIMARY KEY,               -- the bank's reference: importing twice books once
    statement_id  TEXT NOT NULL REFERENCES bank_statements (id),
    amount        BIGINT NOT NULL,
    booking_date  TEXT,
    remittance    TEXT NOT NULL,
    debtor_name   TEXT,
    debtor_iban   TEXT,
    payment_id    TEXT REFERENCES payments (id),
    status        TEXT NOT NULL,                  -- matched, unmatched, resolved
    created_at    BIGINT NOT NULL
);
CREATE INDEX bank_entries_status ON bank_entries (status);

-- Money taken back by Stripe (refund, dispute) that the credited account no longer held: the
-- organisation owes it. Shown to the treasurer and the board until settled.
CREATE TABLE payment_shortfalls (
    id            TEXT PRIMARY KEY,
    payment_id    TEXT NOT NULL REFERENCES payments (id),
    amount        BIGINT NOT NULL,
    reason        TEXT NOT NULL,                  -- refund, dispute
    created_at    BIGINT NOT NULL,
    settled_at    BIGINT,
    CHECK (amount > 0)
);
