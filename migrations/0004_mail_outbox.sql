-- Outgoing mail: the outbox.
-- A change that causes a mail (a sign-up, an invitation, a released milestone) inserts a row here
-- in its own database transaction, so the mail exists exactly when the change does: a rolled back
-- change sends nothing, a committed one cannot lose its mail. A background loop sends the due
-- rows and records the outcome; a failed send is retried later, never dropped.
-- Portable between SQLite and PostgreSQL: TEXT ids, BIGINT for times (ms since epoch) and
-- counters. Never edit a migration that has run; add a new one.

CREATE TABLE mail_outbox (
    id               TEXT PRIMARY KEY,          -- UUIDv7; also the mail's Message-ID (<id@sender's domain>)
    recipient        TEXT NOT NULL,             -- one address, checked when the row is written
    locale           TEXT NOT NULL,             -- 'de' or 'en': the language the texts are in
    kind             TEXT NOT NULL,             -- what caused it: 'verify_email', 'invitation', ...
    -- Rendered when the row is written, so a later change of the catalogues or templates does not
    -- change a mail that is already on its way.
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,             -- the text/plain part
    body_html        TEXT NOT NULL,             -- the text/html part
    status           TEXT NOT NULL DEFAULT 'pending', -- pending, sent, failed
    attempts         BIGINT NOT NULL DEFAULT 0, -- sends tried so far
    next_attempt_at  BIGINT NOT NULL,           -- ms; a pending row is due from then on
    last_error       TEXT,                      -- why the last send failed (never credentials)
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT,                    -- ms; set when the transport accepted it
    -- While a sender works on a row it holds it until this time (ms): another instance takes a
    -- pending row only when this is NULL or past, so two instances never send the same row at
    -- once, and a sender that died lets go of it after a minute.
    claimed_until    BIGINT,
    -- 'failed' rows are kept for operators to see; nothing deletes rows from the outbox.
    CHECK (status IN ('pending', 'sent', 'failed')),
    CHECK (attempts >= 0),
    CHECK (locale IN ('de', 'en'))
);

-- The delivery loop asks for "pending and due, oldest first".
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
