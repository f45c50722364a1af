-- Limits on actions that anybody can repeat to flood the platform or someone's mailbox:
-- registrations, password-reset requests and invitations (issue #20, item 6). One row per
-- action taken, counted per subject (a network address, a recipient's address, a person)
-- within the last hour. The check and the insert run in one write transaction, serialised per
-- subject, so parallel requests cannot all pass the check. Rows older than a day are purged.
CREATE TABLE action_limits (
    id       TEXT PRIMARY KEY,
    action   TEXT NOT NULL,     -- registration, password_reset, invitation, mail_to
    subject  TEXT NOT NULL,     -- 'address:<ip>', 'email:<address>', 'person:<id>'
    at       BIGINT NOT NULL    -- the injected clock's milliseconds
);
CREATE INDEX action_limits_subject ON action_limits (action, subject, at);
