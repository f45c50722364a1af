-- Background jobs: what to do, when, and who is doing it. A worker claims a due job with a
-- conditional UPDATE, so two instances never run the same job at once; a failed job is tried
-- again later (attempts, last_error) and stays visible to admins.

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,              -- proposal.expire, proposal.deadline_reminder, ...
    payload       TEXT NOT NULL,              -- JSON
    unique_key    TEXT UNIQUE,                -- the same job is scheduled once
    run_at        BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    locked_by     TEXT,
    locked_until  BIGINT,
    done_at       BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (done_at, run_at);
