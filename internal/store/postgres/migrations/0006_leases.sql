-- Leases of Mailchimp connection slots, shared by every segsync process on
-- this database (package limiter). Each account has up to 10 slot rows; a
-- process owns a slot while expires_at is in the future and renews it by
-- heartbeat, so the slots of a process that died come free by themselves.
-- limiter_demand says how many slots each live process wants per account,
-- from which every process computes the same fair share. Times are unix
-- microseconds of the database's clock.
CREATE TABLE limiter_slots (
    account    TEXT    NOT NULL,
    slot       INTEGER NOT NULL,
    owner      TEXT    NOT NULL DEFAULT '', -- '' = free
    expires_at BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (account, slot)
);
CREATE INDEX limiter_slots_owner ON limiter_slots (owner);

CREATE TABLE limiter_demand (
    account    TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    want       INTEGER NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (account, owner)
);
