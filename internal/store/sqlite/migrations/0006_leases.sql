-- Leases of Mailchimp connection slots (package limiter). On SQLite one
-- process owns the database and uses the process-local limiter, so these
-- tables normally stay empty; they exist so that both dialects share the
-- migration numbering and the limiter's tests run on both. See the
-- PostgreSQL migration for the meaning of the columns.
CREATE TABLE limiter_slots (
    account    TEXT    NOT NULL,
    slot       INTEGER NOT NULL,
    owner      TEXT    NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, slot)
);
CREATE INDEX limiter_slots_owner ON limiter_slots (owner);

CREATE TABLE limiter_demand (
    account    TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    want       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (account, owner)
);
