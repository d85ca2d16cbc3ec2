-- Profiles: one row per customer, attributes as one JSON object whose values
-- are JSON strings, numbers and booleans; dates are strings in ISO-8601 form
-- (YYYY-MM-DD, optionally with a time). Segment rules read attrs directly.
CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    customer_id TEXT    NOT NULL UNIQUE,
    attrs       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL -- unix microseconds of the last change
);
