-- Recurring pledges for maintenance contracts: an organisation commits an amount per period for
-- the term (or until it stops). Each period's instalment is collected from the wallet at the
-- period's start (the first one when the pledge is made) and becomes an ordinary pledge row, so
-- the refund rules and the escrow check treat it like any other pledge. A collection the wallet
-- cannot cover lapses; the organisation may pay it later.

CREATE TABLE recurring_pledges (
    id               TEXT PRIMARY KEY,
    proposal_id      TEXT NOT NULL REFERENCES proposals (id),
    organisation_id  TEXT NOT NULL REFERENCES organisations (id),
    amount           BIGINT NOT NULL,          -- cents per period
    first_period     BIGINT NOT NULL,          -- milestone position of the first instalment
    last_period      BIGINT NOT NULL,          -- the term's last period, or where it stopped
    show_publicly    BIGINT NOT NULL DEFAULT 0,
    idempotency_key  TEXT NOT NULL UNIQUE,
    created_by       TEXT REFERENCES people (id),
    created_at       BIGINT NOT NULL,
    stopped_at       BIGINT,
    stopped_by       TEXT REFERENCES people (id),
    CHECK (amount > 0 AND first_period >= 1 AND last_period >= first_period)
);
CREATE INDEX recurring_pledges_proposal ON recurring_pledges (proposal_id);
CREATE INDEX recurring_pledges_organisation ON recurring_pledges (organisation_id);

-- One row per recurring pledge and period once its collection was tried: collected (with the
-- pledge row it made) or lapsed (the wallet was short; paying later turns it into collected).
CREATE TABLE recurring_collections (
    recurring_pledge_id TEXT NOT NULL REFERENCES recurring_pledges (id),
    period              BIGINT NOT NULL,
    status              TEXT NOT NULL,         -- collected, lapsed
    pledge_id           TEXT REFERENCES pledges (id),
    tried_at            BIGINT NOT NULL,
    collected_at        BIGINT,
    PRIMARY KEY (recurring_pledge_id, period),
    CHECK (status IN ('collected', 'lapsed')),
    CHECK ((status = 'collected') = (pledge_id IS NOT NULL))
);

ALTER TABLE pledges ADD COLUMN recurring_pledge_id TEXT REFERENCES recurring_pledges (id);
ALTER TABLE pledges ADD COLUMN period BIGINT;
