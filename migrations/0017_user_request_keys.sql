-- Request keys chosen by clients (the hidden `key` of the pledge, withdrawal and recurring
-- pledge forms) used to be stored as sent, in the same unique columns as the platform's own
-- keys. One organisation's key could therefore answer for another's request ("booked", nothing
-- booked), and a pledge keyed `round:<id>:0` took the unique key a voting round's close needs
-- for the pool's pledge, so the close failed until it gave up.
--
-- From now on a client's key is stored only inside its own namespace,
-- `user:<organisation>:<proposal>:<kind>:<key>` (kind: pledge, recurring, withdrawal), which no
-- key of the platform ever starts with. This migration moves the keys stored so far into that
-- namespace, so that a key planted before the upgrade cannot block a round either. Pledges of
-- the pool (no organisation) and collected instalments (no key) keep theirs. The ledger's
-- transactions are not touched (the ledger is append-only); their old keys cannot meet a
-- platform key, and new ones are namespaced the same way.

UPDATE pledges
SET idempotency_key = 'user:' || organisation_id || ':' || proposal_id || ':pledge:' || idempotency_key
WHERE idempotency_key IS NOT NULL
  AND organisation_id IS NOT NULL
  AND recurring_pledge_id IS NULL;

UPDATE recurring_pledges
SET idempotency_key = 'user:' || organisation_id || ':' || proposal_id || ':recurring:' || idempotency_key;
