-- profile_addresses: each profile's subscriber address, per attribute the
-- address is read from (issue 15). An incremental run reads the members of
-- a few thousand addresses; finding their profiles computed every
-- profile's address (about 2 s per million profiles, half a minute at ten
-- million). Runs bring the table up to date from profiles.updated_at when
-- they need it (package sqldb, addresses.go), not the profile writers: an
-- index in address order made a 1M import 4–5 times slower (measured on
-- SQLite). The index puts a bucket of 2^18 profile ids first, so that
-- filling the table in id order writes one region of it at a time; a
-- lookup names every bucket. hash holds the first 8 hex digits of the
-- subscriber hash ('' without an address): readers check each candidate's
-- full address again. A profile's rows go with it (the trigger below).
CREATE TABLE profile_address_marks (
    id        BIGSERIAL PRIMARY KEY,
    attr      TEXT   NOT NULL UNIQUE,  -- the attribute holding the address (exports' mapping.email)
    through    BIGINT NOT NULL DEFAULT -1, -- with through_id: profiles up to this (updated_at µs, id) are in; -1: not filled yet
    through_id BIGINT NOT NULL DEFAULT 0,
    fill_next BIGINT NOT NULL DEFAULT 0,  -- a fill's next profile id
    fill_end  BIGINT NOT NULL DEFAULT -1  -- the last profile id a fill covers
);
CREATE TABLE profile_addresses (
    attr       BIGINT NOT NULL, -- profile_address_marks.id
    profile_id BIGINT NOT NULL, -- profiles.id
    hash       TEXT   NOT NULL COLLATE "C",
    PRIMARY KEY (attr, profile_id)
);
CREATE INDEX profile_addresses_hash ON profile_addresses (attr, (profile_id >> 18), hash);
CREATE FUNCTION segsync_forget_profile_addresses() RETURNS trigger
LANGUAGE plpgsql AS $forget$
BEGIN
    DELETE FROM profile_addresses a USING profile_address_marks m, gone g
        WHERE a.attr = m.id AND a.profile_id = g.id;
    RETURN NULL;
END
$forget$;
CREATE TRIGGER profiles_deleted_addresses AFTER DELETE ON profiles
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION segsync_forget_profile_addresses();
