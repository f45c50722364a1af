-- Pledges made through the platform: the form's idempotency key makes a double click or a
-- retried request create one pledge; withdrawals are recorded as returned money.

ALTER TABLE pledges ADD COLUMN idempotency_key TEXT;
ALTER TABLE pledges ADD COLUMN pledged_by TEXT;
CREATE UNIQUE INDEX pledges_idempotency_key ON pledges (idempotency_key);
CREATE INDEX pledges_organisation ON pledges (organisation_id, proposal_id);
