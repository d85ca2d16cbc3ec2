-- A pull writes its stage once and reads it once, in key order: WITHOUT
-- ROWID keeps it in one B-tree ordered by its primary key instead of a
-- rowid table plus the key's index (one B-tree write per row, not two).
-- The stage has no foreign key: it would cost a lookup of the pull for
-- every staged and every dropped row, and it would keep SQLite from
-- emptying the table at once when the last stage goes (package sqldb,
-- dropStage). Whoever ends a pull drops its stage (DeleteSource too).
CREATE TABLE pull_stage_0013 (
    pull_id     INTEGER NOT NULL,
    customer_id TEXT    NOT NULL,
    attrs       TEXT    NOT NULL,
    PRIMARY KEY (pull_id, customer_id)
) WITHOUT ROWID;
INSERT INTO pull_stage_0013 (pull_id, customer_id, attrs) SELECT pull_id, customer_id, attrs FROM pull_stage;
DROP TABLE pull_stage;
ALTER TABLE pull_stage_0013 RENAME TO pull_stage;

-- The layers keep their foreign key to profiles (an erased profile takes
-- its layers along) but not the one to sources: its check looked the source
-- up again for every layer written (a fifth of a first pull's apply), and
-- DeleteSource removes the source's layer itself before the source.
CREATE TABLE profile_layers_0013 (
    source_id   INTEGER NOT NULL,
    customer_id TEXT    NOT NULL REFERENCES profiles (customer_id) ON DELETE CASCADE,
    attrs       TEXT    NOT NULL,
    PRIMARY KEY (source_id, customer_id)
);
INSERT INTO profile_layers_0013 (source_id, customer_id, attrs) SELECT source_id, customer_id, attrs FROM profile_layers;
DROP TABLE profile_layers;
ALTER TABLE profile_layers_0013 RENAME TO profile_layers;
CREATE INDEX profile_layers_customer ON profile_layers (customer_id);
