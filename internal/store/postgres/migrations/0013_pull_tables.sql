-- A pull compares its stage with its source's layer by walking both in
-- customer id order side by side (package sqldb, compareFull): that order
-- must be byte order, as profiles.customer_id's is and as on SQLite.
ALTER TABLE pull_stage ALTER COLUMN customer_id TYPE TEXT COLLATE "C";
ALTER TABLE profile_layers ALTER COLUMN customer_id TYPE TEXT COLLATE "C";

-- The stage's foreign key cost a lookup of the pull for every staged row;
-- whoever ends a pull drops its stage (DeleteSource too), as on SQLite.
ALTER TABLE pull_stage DROP CONSTRAINT pull_stage_pull_id_fkey;
