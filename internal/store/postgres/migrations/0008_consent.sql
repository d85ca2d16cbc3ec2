-- Consent both ways (SPEC section 12).
--
-- synced.profile_status is the Mailchimp status last written to the
-- profile's reserved attribute mailchimp.<audience>.status ('' = never):
-- after each run, the rows whose status differs are written in one
-- statement, so the flow-back costs nothing when nothing changed.
ALTER TABLE synced ADD COLUMN profile_status TEXT NOT NULL DEFAULT '';
-- The flow-back rewrites profiles in their storage order and looks up each
-- one's contact here (walking the contacts in hash order rewrote profile
-- pages at random); erasures find a person's contacts by customer_id.
CREATE INDEX synced_customer ON synced (export_id, customer_id);

-- Right-to-erasure requests: a durable job queue. A worker claims a pending
-- request with a lease and a fresh token (fencing: only the holder of the
-- latest token may record results); an expired lease is claimed again
-- (resume after a crash); failures are retried at next_at with backoff.
CREATE TABLE erasures (
    id           BIGSERIAL PRIMARY KEY,
    customer_id  TEXT    NOT NULL,
    status       TEXT    NOT NULL, -- pending running succeeded
    requested_by TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT  NOT NULL DEFAULT 0,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    next_at      BIGINT  NOT NULL DEFAULT 0,
    lease_owner  TEXT    NOT NULL DEFAULT '',
    lease_until  BIGINT  NOT NULL DEFAULT 0,
    token        BIGINT  NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX erasures_status ON erasures (status, next_at);

-- One row per contact to delete permanently: audience of a connection and
-- the address, which is blanked once the contact is deleted (or was not
-- found): afterwards segsync keeps no trace of the address.
CREATE TABLE erasure_targets (
    erasure_id    BIGINT  NOT NULL REFERENCES erasures (id) ON DELETE CASCADE,
    seq           BIGINT  NOT NULL,
    connection_id BIGINT  NOT NULL,
    audience_id   TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    result        TEXT    NOT NULL DEFAULT '', -- '' (to do) deleted not_found failed
    error         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (erasure_id, seq)
);

-- The secret of an export's Mailchimp webhook URL (/hooks/mailchimp/<id>.<secret>),
-- made on first use; '' = none yet.
ALTER TABLE exports ADD COLUMN webhook_secret TEXT NOT NULL DEFAULT '';
