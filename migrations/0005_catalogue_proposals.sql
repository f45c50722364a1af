-- The project catalogue (descriptions, categories, languages, maintainers, payout details) and
-- proposals in full (feature and maintenance fields, who proposed, the maintainer's agreement,
-- text revisions after opening, the discussion).

ALTER TABLE projects ADD COLUMN description TEXT NOT NULL DEFAULT '';   -- Markdown, rendered safely
ALTER TABLE projects ADD COLUMN software_version TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN created_by TEXT;
ALTER TABLE projects ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

CREATE TABLE project_categories (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    category    TEXT NOT NULL,
    PRIMARY KEY (project_id, category)
);
CREATE INDEX project_categories_category ON project_categories (category);

CREATE TABLE project_languages (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    language    TEXT NOT NULL,                 -- programming language, as written
    PRIMARY KEY (project_id, language)
);

CREATE TABLE project_maintainers (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    person_id   TEXT NOT NULL REFERENCES people (id),
    added_at    BIGINT NOT NULL,
    PRIMARY KEY (project_id, person_id)
);
CREATE INDEX project_maintainers_person ON project_maintainers (person_id);

CREATE TABLE maintainer_invitations (
    token_hash  TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    email       TEXT NOT NULL,
    invited_by  TEXT NOT NULL REFERENCES people (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by TEXT REFERENCES people (id)
);

-- Where released money is paid out: a Stripe Connect account, or a bank account for SEPA.
-- Personal data: shown to the project's maintainers and the treasurer only.
CREATE TABLE project_payouts (
    project_id        TEXT PRIMARY KEY REFERENCES projects (id),
    method            TEXT NOT NULL,           -- stripe, sepa
    stripe_account_id TEXT,
    account_holder    TEXT,
    iban              TEXT,
    bic               TEXT,
    updated_by        TEXT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CHECK (method IN ('stripe', 'sepa'))
);

-- Feature proposals: the problem and the desired outcome.
ALTER TABLE proposals ADD COLUMN problem TEXT NOT NULL DEFAULT '';
ALTER TABLE proposals ADD COLUMN desired_outcome TEXT NOT NULL DEFAULT '';
-- Maintenance contracts: the service, the amount per period, the period and the term.
ALTER TABLE proposals ADD COLUMN security_response_hours BIGINT;
ALTER TABLE proposals ADD COLUMN releases TEXT NOT NULL DEFAULT '';
ALTER TABLE proposals ADD COLUMN support TEXT NOT NULL DEFAULT '';
ALTER TABLE proposals ADD COLUMN period_amount BIGINT;
ALTER TABLE proposals ADD COLUMN period TEXT;                  -- month, quarter
ALTER TABLE proposals ADD COLUMN term_periods BIGINT;
ALTER TABLE proposals ADD COLUMN starts_at BIGINT;
-- Who proposed: a request by an organisation's member, or an offer by a maintainer.
ALTER TABLE proposals ADD COLUMN origin TEXT NOT NULL DEFAULT 'offer';   -- request, offer
ALTER TABLE proposals ADD COLUMN proposed_by TEXT;                       -- person id
ALTER TABLE proposals ADD COLUMN organisation_id TEXT;                   -- the requesting organisation
ALTER TABLE proposals ADD COLUMN agreed_by TEXT;                         -- the maintainer who agreed
ALTER TABLE proposals ADD COLUMN agreed_at BIGINT;
ALTER TABLE proposals ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

-- Clarifications of a proposal's texts after it opened: kept, shown as its history.
CREATE TABLE proposal_revisions (
    id          TEXT PRIMARY KEY,
    proposal_id TEXT NOT NULL REFERENCES proposals (id),
    field       TEXT NOT NULL,
    old_text    TEXT NOT NULL,
    new_text    TEXT NOT NULL,
    author_id   TEXT NOT NULL REFERENCES people (id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX proposal_revisions_proposal ON proposal_revisions (proposal_id, created_at);

CREATE TABLE comments (
    id          TEXT PRIMARY KEY,
    proposal_id TEXT NOT NULL REFERENCES proposals (id),
    author_id   TEXT NOT NULL REFERENCES people (id),
    body        TEXT NOT NULL,                 -- Markdown
    created_at  BIGINT NOT NULL,
    edited_at   BIGINT,
    hidden_at   BIGINT,                        -- moderated by the board; kept, not shown
    hidden_by   TEXT
);
CREATE INDEX comments_proposal ON comments (proposal_id, created_at);
