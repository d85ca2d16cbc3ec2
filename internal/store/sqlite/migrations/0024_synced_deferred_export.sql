-- Every multi-row write of the synced state kept a statement journal on
-- SQLite (issue 15): a copy of each page the statement changed, so that it
-- could undo its own rows alone, about 1 s of CPU in a first export of 1M
-- contacts. SQLite keeps one for a statement that may stop half way with
-- ABORT, and two things in this table made every insert such a statement:
-- the immediate foreign key to exports, and the function calls (instr,
-- substr) in synced_customer's bucket (migration 0022; a function in an
-- index may fail). The key is now checked at commit (DEFERRABLE INITIALLY
-- DEFERRED): a transaction naming an export that is gone still fails, and
-- deleting an export still deletes its rows. The bucket is the same value
-- of the hash's first hex digit, written with comparisons (package sqldb,
-- syncedBucket, writes the same expression for the lookups that seek it).
-- New contacts are inserted with INSERT OR FAIL (package sqldb,
-- buildUpsertQuery), which then needs no journal. SQLite cannot change a
-- constraint in place: the table is written anew, in key order, with the
-- same columns.
CREATE TABLE synced_0024 (
    export_id      INTEGER NOT NULL REFERENCES exports (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    hash           TEXT    NOT NULL,
    email          TEXT    NOT NULL,
    customer_id    TEXT    NOT NULL,
    in_audience    INTEGER NOT NULL DEFAULT 0,
    in_export      INTEGER NOT NULL DEFAULT 0,
    fields_hash    TEXT    NOT NULL DEFAULT '',
    tags           INTEGER NOT NULL DEFAULT 0,
    created_by_us  INTEGER NOT NULL DEFAULT 0,
    archived_by_us INTEGER NOT NULL DEFAULT 0,
    status         TEXT    NOT NULL DEFAULT '',
    rejected_hash  TEXT    NOT NULL DEFAULT '',
    profile_status TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (export_id, hash)
);
INSERT INTO synced_0024 (export_id, hash, email, customer_id, in_audience, in_export, fields_hash, tags,
    created_by_us, archived_by_us, status, rejected_hash, profile_status)
SELECT export_id, hash, email, customer_id, in_audience, in_export, fields_hash, tags,
    created_by_us, archived_by_us, status, rejected_hash, profile_status
FROM synced ORDER BY export_id, hash;
DROP TABLE synced;
ALTER TABLE synced_0024 RENAME TO synced;
CREATE INDEX synced_customer ON synced (export_id,
    CASE WHEN hash < '1' THEN 0 WHEN hash < '2' THEN 1 WHEN hash < '3' THEN 2 WHEN hash < '4' THEN 3 WHEN hash < '5' THEN 4 WHEN hash < '6' THEN 5 WHEN hash < '7' THEN 6 WHEN hash < '8' THEN 7
    WHEN hash < '9' THEN 8 WHEN hash < 'a' THEN 9 WHEN hash < 'b' THEN 10 WHEN hash < 'c' THEN 11 WHEN hash < 'd' THEN 12 WHEN hash < 'e' THEN 13 WHEN hash < 'f' THEN 14 ELSE 15 END,
    customer_id, in_audience, status);
CREATE INDEX synced_other_status ON synced (export_id) WHERE in_audience AND status <> 'subscribed';
CREATE INDEX synced_flow_due ON synced (export_id, hash) WHERE customer_id <> '' AND status <> 'creating'
    AND ((in_audience AND status <> '') OR (NOT in_audience AND profile_status <> ''))
    AND CASE WHEN in_audience THEN status ELSE 'deleted' END <> profile_status;
