-- Stripe hardening (issue #20, items 17, 21, 22 and 24).

-- When the current Stripe transfer attempt of a payout was ordered, as long as its outcome is
-- not known: set (in its own transaction) before Stripe is called; cleared when Stripe's answer
-- is definite (the transfer is confirmed, or refused with a 4xx) or when asking Stripe showed
-- that no transfer exists. While it is set the transfer may be under way or may have happened,
-- so the payout cannot be returned (its money would become available and be paid again).
ALTER TABLE payouts ADD COLUMN transfer_started_at BIGINT;

-- Every transfer Stripe confirmed: by answering the create request, or found by asking Stripe
-- for the payout's transfer group after an answer was lost. Kept whatever the payout's state,
-- so a transfer for a payout that is no longer under way is never lost: `allmende verify` and
-- the treasurer's page show each payout with more than one transfer, an amount that differs
-- from the payout's, a transfer for a payout that is not paid, and a project paid more than
-- its releases less fees.
CREATE TABLE stripe_transfers (
    id               TEXT PRIMARY KEY,          -- Stripe's tr_...
    payout_id        TEXT NOT NULL REFERENCES payouts (id),
    project_id       TEXT NOT NULL REFERENCES projects (id),
    amount           BIGINT NOT NULL,           -- cents, as Stripe reported it
    destination      TEXT NOT NULL,
    idempotency_key  TEXT,                      -- NULL when found by asking Stripe
    found_by         TEXT NOT NULL,             -- create, lookup
    recorded_at      BIGINT NOT NULL,
    CHECK (found_by IN ('create', 'lookup'))
);
CREATE INDEX stripe_transfers_payout ON stripe_transfers (payout_id);
CREATE INDEX stripe_transfers_project ON stripe_transfers (project_id);

-- A refund or dispute that Stripe reported before the payment it refers to was completed:
-- Stripe sends each event until it gets a 2xx and then never again, so the event is parked
-- here (and answered 200) and applied when the payment's completion arrives.
CREATE TABLE stripe_parked_events (
    event_id        TEXT PRIMARY KEY,
    payment_intent  TEXT NOT NULL,
    kind            TEXT NOT NULL,              -- refunded (amount = refunded so far), disputed
    amount          BIGINT NOT NULL,
    event_created   BIGINT NOT NULL,            -- Stripe's time of the event, Unix seconds
    received_at     BIGINT NOT NULL,
    payment_id      TEXT,                       -- set when applied
    applied_at      BIGINT,
    CHECK (kind IN ('refunded', 'disputed'))
);
CREATE INDEX stripe_parked_events_intent ON stripe_parked_events (payment_intent, applied_at);

-- One row per payment intent that a refund, dispute or completion touched: the events of one
-- intent lock it first, so a completion and a refund handled at the same moment on PostgreSQL
-- run one after the other and the second sees what the first did (a refund parked by one is
-- applied by the other). SQLite's write lock serialises them anyway.
CREATE TABLE stripe_intent_locks (
    payment_intent  TEXT PRIMARY KEY
);
