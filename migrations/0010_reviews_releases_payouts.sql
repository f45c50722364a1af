-- Milestone delivery and review, disputes, releases and payouts.

-- A maintainer's submission of a milestone; each one opens a review window. A rejected
-- milestone is submitted again (round 2, 3, ...); the second rejection opens a dispute.
CREATE TABLE milestone_submissions (
    id              TEXT PRIMARY KEY,
    milestone_id    TEXT NOT NULL REFERENCES milestones (id),
    round           BIGINT NOT NULL,
    summary         TEXT NOT NULL,
    evidence        TEXT NOT NULL,            -- links, one per line
    notes           TEXT NOT NULL DEFAULT '',
    -- A maintenance period's report.
    security_fixes  TEXT NOT NULL DEFAULT '',
    releases        TEXT NOT NULL DEFAULT '',
    issues_handled  TEXT NOT NULL DEFAULT '',
    hours_spent     BIGINT,
    submitted_by    TEXT NOT NULL REFERENCES people (id),
    submitted_at    BIGINT NOT NULL,
    review_ends_at  BIGINT NOT NULL,
    outcome         TEXT,                     -- accepted, accepted_by_silence, rejected
    decided_at      BIGINT,
    UNIQUE (milestone_id, round)
);

-- One decision per backer (an organisation, or the pool decided by the board) and submission;
-- it can be changed until the submission is decided.
CREATE TABLE milestone_reviews (
    submission_id   TEXT NOT NULL REFERENCES milestone_submissions (id),
    reviewer        TEXT NOT NULL,            -- organisation id, or 'pool'
    decision        TEXT NOT NULL,            -- accept, reject
    reason          TEXT NOT NULL DEFAULT '',
    decided_by      TEXT NOT NULL REFERENCES people (id),
    decided_at      BIGINT NOT NULL,
    PRIMARY KEY (submission_id, reviewer),
    CHECK (decision IN ('accept', 'reject'))
);

-- Opened by a milestone's second rejection; the board decides.
CREATE TABLE disputes (
    id              TEXT PRIMARY KEY,
    milestone_id    TEXT NOT NULL REFERENCES milestones (id),
    opened_at       BIGINT NOT NULL,
    decision        TEXT,                     -- accept, accept_partly, request_changes, cancel
    amount          BIGINT,                   -- accept_partly: what is released
    rest            TEXT,                     -- accept_partly: keep (in escrow) or refund
    reason          TEXT NOT NULL DEFAULT '',
    decided_by      TEXT REFERENCES people (id),
    decided_at      BIGINT
);
CREATE INDEX disputes_milestone ON disputes (milestone_id);

-- A milestone's release: escrow → the project's payable (less the fee) and the fee → coop:fees,
-- with the fee that applied. Unique per milestone: a milestone is released once.
CREATE TABLE releases (
    id               TEXT PRIMARY KEY,
    milestone_id     TEXT NOT NULL UNIQUE REFERENCES milestones (id),
    proposal_id      TEXT NOT NULL REFERENCES proposals (id),
    project_id       TEXT NOT NULL REFERENCES projects (id),
    amount           BIGINT NOT NULL,         -- out of escrow
    fee              BIGINT NOT NULL,
    fee_basis_points BIGINT NOT NULL,
    transaction_id   TEXT REFERENCES ledger_transactions (id),
    released_at      BIGINT NOT NULL,
    CHECK (amount >= 0 AND fee >= 0 AND fee <= amount)
);
CREATE INDEX releases_project ON releases (project_id);

-- Which pledges a release consumed (pro rata): backers see what their money paid for.
CREATE TABLE release_pledges (
    release_id  TEXT NOT NULL REFERENCES releases (id),
    pledge_id   TEXT NOT NULL REFERENCES pledges (id),
    amount      BIGINT NOT NULL,
    PRIMARY KEY (release_id, pledge_id)
);

-- Paying a project's payable balance out: by SEPA credit transfer (exported in a pain.001 file,
-- then marked paid) or by Stripe Connect transfer. The ledger moves payable → external:payouts
-- when the money has left (marked paid, or Stripe confirmed).
CREATE TABLE payouts (
    id                 TEXT PRIMARY KEY,
    project_id         TEXT NOT NULL REFERENCES projects (id),
    amount             BIGINT NOT NULL,
    method             TEXT NOT NULL,         -- sepa, stripe
    status             TEXT NOT NULL,         -- pending, exported, paid, failed, returned
    account_holder     TEXT,
    iban               TEXT,
    bic                TEXT,
    stripe_account_id  TEXT,
    stripe_transfer_id TEXT,
    attempts           BIGINT NOT NULL DEFAULT 0,
    failure            TEXT,
    export_id          TEXT,
    transaction_id     TEXT REFERENCES ledger_transactions (id),
    created_by         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    paid_at            BIGINT,
    CHECK (amount > 0),
    CHECK (method IN ('sepa', 'stripe')),
    CHECK (status IN ('pending', 'exported', 'paid', 'failed', 'returned'))
);
CREATE INDEX payouts_project ON payouts (project_id, status);

-- A pain.001 file as it was downloaded, so it can be fetched again unchanged.
CREATE TABLE payout_exports (
    id          TEXT PRIMARY KEY,
    message_id  TEXT NOT NULL UNIQUE,
    xml         TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
