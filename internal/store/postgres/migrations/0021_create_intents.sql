-- Create intents by batch (issue 15): one row per group of creates noted
-- together, instead of one per contact. The row holds the intents as a JSON
-- array of [hash, email, customer_id, fields_hash]; the acknowledgement's
-- transaction that records the last outcome of its creates deletes it. A
-- row left by a crash or an unanswered call is read once at the next run's
-- start (and merged with the others left, without the intents whose outcome
-- was recorded since). Per contact, the intents were an insert, a read and
-- a delete in an index: a seventh of a first run's CPU.
CREATE TABLE create_intents (
    id        BIGSERIAL PRIMARY KEY,
    export_id BIGINT NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    intents   TEXT   NOT NULL
);
CREATE INDEX create_intents_export ON create_intents (export_id);

INSERT INTO create_intents (export_id, intents)
    SELECT export_id, json_agg(json_build_array(hash, email, customer_id, fields_hash))::text
    FROM synced_intents GROUP BY export_id;
DROP TABLE synced_intents;
