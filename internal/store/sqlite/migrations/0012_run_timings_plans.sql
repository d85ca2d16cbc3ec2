-- Issue 15: run timings and incremental planning.
-- Where a run's time went (store.RunTimings, JSON): plan, status refresh,
-- send, record and idle, in milliseconds summed over its attempts.
ALTER TABLE runs ADD COLUMN timings TEXT NOT NULL DEFAULT '{}';

-- Incremental planning (docs/engine.md, "Incremental runs"). A run plans
-- only the profiles changed since the export's last complete run: those
-- with a later updated_at (the index finds them) and, through the deletion
-- counter, notices that profiles were deleted (the next run plans fully).
CREATE INDEX profiles_updated ON profiles (updated_at);
CREATE TABLE profile_deletions (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT  NOT NULL
);
INSERT INTO profile_deletions (id, n) VALUES (1, 0);
CREATE TRIGGER profiles_deleted AFTER DELETE ON profiles
BEGIN
    UPDATE profile_deletions SET n = n + 1 WHERE id = 1;
END;
-- What an export's last complete run planned from (store.PlanState).
CREATE TABLE export_plans (
    export_id         INTEGER NOT NULL PRIMARY KEY REFERENCES exports (id) ON DELETE CASCADE,
    fingerprint       TEXT    NOT NULL DEFAULT '',
    through           BIGINT  NOT NULL DEFAULT 0, -- profiles.updated_at (µs) up to which every change was planned
    deletions         BIGINT  NOT NULL DEFAULT 0, -- profile_deletions.n then
    full_at           BIGINT  NOT NULL DEFAULT 0, -- µs: start of the last complete full plan
    full_requested_at BIGINT  NOT NULL DEFAULT 0, -- µs: a user asked for a full re-sync
    duplicates        TEXT    NOT NULL DEFAULT '[]' -- hashes of contacts merged from several profiles (JSON)
);
