-- As on SQLite: while no source but uploads has a layer, each profile is
-- its uploads layer plus its reserved attributes, and the layer is not
-- stored a second time (package sqldb, uploadsInProfiles).
ALTER TABLE sources ADD COLUMN layer_in_profiles BOOLEAN NOT NULL DEFAULT false;
UPDATE sources SET layer_in_profiles = true
WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM profile_layers WHERE source_id <> 1);
DELETE FROM profile_layers WHERE source_id = 1 AND (SELECT layer_in_profiles FROM sources WHERE id = 1);

-- A layer is read by its primary key (source_id, customer_id) only; a
-- lookup of one customer's layers probes it once per source. The index on
-- customer_id and the foreign key to profiles cost an index write and a
-- lookup for every layer written; whoever deletes a profile deletes its
-- layers (package sqldb, deleteLayers).
DROP INDEX profile_layers_customer;
ALTER TABLE profile_layers DROP CONSTRAINT profile_layers_customer_id_fkey;

-- A pull's rows are staged outside the store, in a scratch file of the
-- worker's own (package source/stage): staging writes nothing here.
DROP TABLE pull_stage;
