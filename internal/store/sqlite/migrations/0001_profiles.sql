-- Profiles: one row per customer, attributes as one JSON object whose values
-- are JSON strings, numbers and booleans; dates are strings in ISO-8601 form
-- (YYYY-MM-DD, optionally with a time). Segment rules read attrs directly.
CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    customer_id TEXT    NOT NULL UNIQUE,
    attrs       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL -- unix microseconds of the last change
);

-- The attribute catalogue: how many profiles hold each attribute name with
-- each value type, kept up to date by every write to profiles so listing it
-- never scans them.
CREATE TABLE profile_attributes (
    name          TEXT   NOT NULL,
    type          TEXT   NOT NULL,
    profile_count BIGINT NOT NULL,
    PRIMARY KEY (name, type)
);
