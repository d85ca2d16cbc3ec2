-- Segments: a named rule over profile attributes (package segment). The rule
-- is stored as its canonical JSON; members are computed when asked, never
-- stored. Names are unique ignoring ASCII case, since each segment becomes a
-- Mailchimp tag. Times are unix microseconds (UTC).
--
-- Rules on dates call segsync_date and segsync_instant, and member streams
-- segsync_hash: on SQLite these are Go functions registered with the driver
-- (internal/store/sqlite/functions.go), not stored in the database.
CREATE TABLE segments (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    rule        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX segments_name ON segments (lower(name));
