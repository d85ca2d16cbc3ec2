-- A pull compares its stage with its source's layer by walking both in
-- customer id order side by side (package sqldb, compareFull): that order
-- must be byte order, as profiles.customer_id's is and as on SQLite.
ALTER TABLE pull_stage ALTER COLUMN customer_id TYPE TEXT COLLATE "C";
ALTER TABLE profile_layers ALTER COLUMN customer_id TYPE TEXT COLLATE "C";

-- As on SQLite: the stage's foreign key cost a lookup of the pull for every
-- staged row (whoever ends a pull drops its stage, DeleteSource too), and
-- the layers' key to sources a lookup of the source for every layer written
-- (DeleteSource removes the source's layer itself before the source).
ALTER TABLE pull_stage DROP CONSTRAINT pull_stage_pull_id_fkey;
ALTER TABLE profile_layers DROP CONSTRAINT profile_layers_source_id_fkey;
