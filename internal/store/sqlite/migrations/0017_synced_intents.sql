-- Create intents (issue 15): a contact sent for creation whose answer is not
-- recorded yet. Before, the intent was a synced row in status 'creating',
-- rewritten by the acknowledgement: two writes of the wide row and its
-- customer index per created contact, a third of a first run's CPU. Here an
-- intent is a narrow row that lives only while its batch is in flight (the
-- acknowledgement's transaction deletes it), so the table stays small and
-- in the page cache; an intent left by a crash or an unanswered call lets
-- the next run recognise the contact it created (syncer's adopt).
CREATE TABLE synced_intents (
    export_id   INTEGER NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    hash        TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    fields_hash TEXT    NOT NULL,
    PRIMARY KEY (export_id, hash)
) WITHOUT ROWID;

-- Intents written the old way become intents of the new table; their rows
-- are left as contacts not in the audience (which a run creates).
INSERT INTO synced_intents (export_id, hash, email, customer_id, fields_hash)
    SELECT export_id, hash, email, customer_id, fields_hash FROM synced WHERE status = 'creating';
UPDATE synced SET status = '' WHERE status = 'creating';
