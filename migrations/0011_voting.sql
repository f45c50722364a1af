-- Voting rounds (binding: the pool's money goes to the winners) and priority polls
-- (non-binding: they rank the wish list and move no money).
--
-- A round's candidates keep the cost frozen when the round opened (what each still needed);
-- its ballots are one per member organisation (voter = the organisation's id), changeable
-- until the close; at the close the rule runs once and the outcome is stored with the
-- SHA-256 of its inputs, so a second run of the close changes nothing. Rounds imported from a
-- Pabulib file keep the file's anonymous voters (voter = 'pb:<voter id>') and move no money.

CREATE TABLE rounds (
    id           TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    budget       BIGINT NOT NULL,             -- cents, promised from the pool while open
    ballot_type  TEXT NOT NULL,               -- approval, points, ranking
    ballot_limit BIGINT,                      -- approval: most approvals (NULL: any); points: the total
    rule         TEXT NOT NULL,               -- equal_shares, greedy
    status       TEXT NOT NULL,               -- scheduled, open, closed
    imported     BIGINT NOT NULL DEFAULT 0,   -- 1: from a .pb file, never moves money
    opens_at     BIGINT NOT NULL,
    closes_at    BIGINT NOT NULL,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    closed_at    BIGINT,
    fingerprint  TEXT,                        -- SHA-256 of the rule's input, set at the close
    outcome      TEXT,                        -- the rule's outcome as JSON, set at the close
    CHECK (budget >= 0),
    CHECK (closes_at > opens_at)
);
CREATE INDEX rounds_status ON rounds (status);

CREATE TABLE round_candidates (
    round_id     TEXT NOT NULL REFERENCES rounds (id),
    position     BIGINT NOT NULL,             -- index in the ballots
    candidate_id TEXT NOT NULL,               -- the proposal's id, or the file's project id
    proposal_id  TEXT REFERENCES proposals (id),
    title        TEXT NOT NULL,
    cost         BIGINT NOT NULL,             -- cents, frozen at the opening
    allocated    BIGINT NOT NULL DEFAULT 0,   -- cents the pool gave at the close
    PRIMARY KEY (round_id, position),
    UNIQUE (round_id, candidate_id),
    CHECK (cost >= 0)
);

CREATE TABLE round_ballots (
    id           TEXT PRIMARY KEY,
    round_id     TEXT NOT NULL REFERENCES rounds (id),
    voter        TEXT NOT NULL,               -- organisation id, or 'pb:<voter id>' when imported
    choice       TEXT NOT NULL,               -- JSON: {"approval":[..]}, {"points":[[i,p],..]}, {"ranking":[..]}
    cast_by      TEXT,                        -- the person who cast it last
    cast_at      BIGINT NOT NULL,
    UNIQUE (round_id, voter)
);

CREATE TABLE polls (
    id           TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    opens_at     BIGINT NOT NULL,
    closes_at    BIGINT NOT NULL,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    CHECK (closes_at > opens_at)
);

CREATE TABLE poll_options (
    poll_id      TEXT NOT NULL REFERENCES polls (id),
    position     BIGINT NOT NULL,
    proposal_id  TEXT NOT NULL REFERENCES proposals (id),
    title        TEXT NOT NULL,
    PRIMARY KEY (poll_id, position)
);

CREATE TABLE poll_ballots (
    id              TEXT PRIMARY KEY,
    poll_id         TEXT NOT NULL REFERENCES polls (id),
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    ranking         TEXT NOT NULL,            -- JSON list of option positions, best first
    cast_by         TEXT,
    cast_at         BIGINT NOT NULL,
    UNIQUE (poll_id, organisation_id)
);
