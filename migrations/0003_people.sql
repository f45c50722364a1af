-- People, sessions, organisations' people and roles, cooperative membership applications, the
-- obligations (shares, dues) of members, and the organisation an audit event concerns.

CREATE TABLE people (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    email               TEXT NOT NULL UNIQUE,      -- stored trimmed and lower-cased
    password_hash       TEXT NOT NULL,             -- argon2id PHC string
    locale              TEXT NOT NULL DEFAULT 'de',-- the language of mails to this person
    email_verified_at   BIGINT,
    password_changed_at BIGINT NOT NULL,
    created_at          BIGINT NOT NULL
);

-- Platform roles (cooperative staff), granted by an admin.
CREATE TABLE platform_roles (
    person_id   TEXT NOT NULL REFERENCES people (id),
    role        TEXT NOT NULL,                     -- board, treasurer, admin
    granted_by  TEXT NOT NULL,                     -- actor: 'cli' or 'person:<id>'
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (person_id, role),
    CHECK (role IN ('board', 'treasurer', 'admin'))
);

-- Sessions: the cookie holds a random 256-bit token; only its SHA-256 is stored. A session
-- without a person is a visitor's (it carries the CSRF token of the login and register forms).
CREATE TABLE sessions (
    token_hash              TEXT PRIMARY KEY,
    person_id               TEXT REFERENCES people (id),
    csrf_token              TEXT NOT NULL,
    acting_organisation_id  TEXT,                  -- which organisation the person acts for
    created_at              BIGINT NOT NULL,
    last_seen_at            BIGINT NOT NULL,
    expires_at              BIGINT NOT NULL        -- absolute end, whatever the activity
);
CREATE INDEX sessions_person ON sessions (person_id);

-- Single-use tokens sent by mail: email verification, password reset. Only the hash is stored.
CREATE TABLE person_tokens (
    token_hash  TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES people (id),
    purpose     TEXT NOT NULL,                     -- verify_email, reset_password
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX person_tokens_person ON person_tokens (person_id, purpose);

-- Login attempts, for limiting guessing per account and per address.
CREATE TABLE login_attempts (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    address     TEXT NOT NULL,
    succeeded   BIGINT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX login_attempts_email ON login_attempts (email, at);
CREATE INDEX login_attempts_address ON login_attempts (address, at);

ALTER TABLE organisations ADD COLUMN representative TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN contact_name TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN contact_email TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN created_by TEXT;

-- Who acts for an organisation, and how.
CREATE TABLE organisation_people (
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    person_id       TEXT NOT NULL REFERENCES people (id),
    role            TEXT NOT NULL,                 -- admin, member
    added_at        BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, person_id),
    CHECK (role IN ('admin', 'member'))
);
CREATE INDEX organisation_people_person ON organisation_people (person_id);

CREATE TABLE invitations (
    token_hash      TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    email           TEXT NOT NULL,
    role            TEXT NOT NULL,
    invited_by      TEXT NOT NULL REFERENCES people (id),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    accepted_at     BIGINT,
    accepted_by     TEXT REFERENCES people (id),
    CHECK (role IN ('admin', 'member'))
);
CREATE INDEX invitations_organisation ON invitations (organisation_id);

-- Applications for membership in the cooperative. A rejected application is deleted (its
-- personal data with it); the audit trail keeps that it happened.
CREATE TABLE membership_applications (
    id                   TEXT PRIMARY KEY,
    organisation_id      TEXT NOT NULL REFERENCES organisations (id),
    shares               BIGINT NOT NULL,
    statutes_version     TEXT NOT NULL,            -- SHA-256 of the statutes text accepted
    statutes_accepted_at BIGINT NOT NULL,
    applied_by           TEXT NOT NULL REFERENCES people (id),
    note                 TEXT NOT NULL DEFAULT '',
    created_at           BIGINT NOT NULL,
    CHECK (shares > 0)
);
CREATE UNIQUE INDEX membership_applications_organisation ON membership_applications (organisation_id);

ALTER TABLE memberships ADD COLUMN exit_notice_at BIGINT;
ALTER TABLE memberships ADD COLUMN statutes_version TEXT;
ALTER TABLE memberships ADD COLUMN admitted_by TEXT;

-- What a member owes the cooperative: its shares (once) and its dues (per year). Paying them
-- comes with the money-in feature; `paid` grows as payments are booked.
CREATE TABLE member_obligations (
    id              TEXT PRIMARY KEY,
    membership_id   TEXT NOT NULL REFERENCES memberships (id),
    kind            TEXT NOT NULL,                 -- shares, dues
    year            BIGINT NOT NULL,               -- the dues' year; the admission year for shares
    amount          BIGINT NOT NULL,
    paid            BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    UNIQUE (membership_id, kind, year),
    CHECK (kind IN ('shares', 'dues')),
    CHECK (amount > 0 AND paid >= 0)
);

ALTER TABLE audit_events ADD COLUMN organisation_id TEXT;
CREATE INDEX audit_events_organisation ON audit_events (organisation_id, created_at);
