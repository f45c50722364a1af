-- The cooperative's members, the project catalogue, proposals with milestones, and pledges.
-- The foundation keeps these to the columns the demo and the home page need; the issues for
-- membership, catalogue and pledges extend them with new migrations.

CREATE TABLE organisations (
    id               TEXT PRIMARY KEY,
    slug             TEXT NOT NULL UNIQUE,
    legal_name       TEXT NOT NULL,
    kind             TEXT NOT NULL,             -- association, foundation, charity, municipality, public_body, company
    street           TEXT NOT NULL DEFAULT '',
    postcode         TEXT NOT NULL DEFAULT '',
    city             TEXT NOT NULL DEFAULT '',
    country          TEXT NOT NULL DEFAULT 'DE',
    website          TEXT NOT NULL DEFAULT '',
    leitweg_id       TEXT,                      -- public bodies: address for XRechnung e-invoices
    created_at       BIGINT NOT NULL
);

-- Entries and exits of cooperative members, with their dates (the member list keeps history).
CREATE TABLE memberships (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations (id),
    member_number    BIGINT NOT NULL UNIQUE,
    shares           BIGINT NOT NULL DEFAULT 0, -- number of shares subscribed
    joined_at        BIGINT NOT NULL,
    left_at          BIGINT,
    CHECK (shares >= 0)
);
CREATE INDEX memberships_organisation ON memberships (organisation_id);

CREATE TABLE projects (
    id               TEXT PRIMARY KEY,
    slug             TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    summary          TEXT NOT NULL,
    repository_url   TEXT NOT NULL,
    homepage_url     TEXT NOT NULL DEFAULT '',
    licence          TEXT NOT NULL,             -- SPDX id, OSI-approved
    created_at       BIGINT NOT NULL
);

CREATE TABLE proposals (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects (id),
    kind             TEXT NOT NULL,             -- feature, maintenance
    title            TEXT NOT NULL,
    summary          TEXT NOT NULL,
    status           TEXT NOT NULL,             -- draft, open, funded, in_progress, completed, expired, cancelled
    funding_goal     BIGINT NOT NULL,           -- cents: the sum of the milestones
    funding_deadline BIGINT,                    -- ms; set when it opens for funding
    created_at       BIGINT NOT NULL,
    CHECK (funding_goal >= 0)
);
CREATE INDEX proposals_project ON proposals (project_id);
CREATE INDEX proposals_status ON proposals (status);

CREATE TABLE milestones (
    id                  TEXT PRIMARY KEY,
    proposal_id         TEXT NOT NULL REFERENCES proposals (id),
    position            BIGINT NOT NULL,
    title               TEXT NOT NULL,
    acceptance_criteria TEXT NOT NULL,
    amount              BIGINT NOT NULL,
    due_at              BIGINT NOT NULL,
    status              TEXT NOT NULL,          -- planned, submitted, accepted, rejected, released
    UNIQUE (proposal_id, position),
    CHECK (amount > 0)
);

-- Money an organisation (or the pool, by vote) committed to a proposal. Each pledge keeps what
-- it committed, what was released to the maintainer and what went back, so that
-- escrow balance = sum of (committed - released - refunded) over the proposal's pledges.
CREATE TABLE pledges (
    id               TEXT PRIMARY KEY,
    proposal_id      TEXT NOT NULL REFERENCES proposals (id),
    organisation_id  TEXT REFERENCES organisations (id), -- NULL for the pool
    source_account   TEXT NOT NULL REFERENCES accounts (id),
    committed        BIGINT NOT NULL,
    released         BIGINT NOT NULL DEFAULT 0,
    refunded         BIGINT NOT NULL DEFAULT 0,
    show_publicly    BIGINT NOT NULL DEFAULT 0,
    transaction_id   TEXT NOT NULL REFERENCES ledger_transactions (id),
    created_at       BIGINT NOT NULL,
    CHECK (committed > 0 AND released >= 0 AND refunded >= 0 AND released + refunded <= committed)
);
CREATE INDEX pledges_proposal ON pledges (proposal_id);
