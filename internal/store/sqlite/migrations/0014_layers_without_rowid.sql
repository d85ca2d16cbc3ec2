-- While no source but uploads has a layer, each profile is its uploads
-- layer plus its reserved attributes: the layer is not stored a second
-- time (package sqldb, uploadsInProfiles). The first other source to write
-- a layer stores it (storeUploadsLayer) and clears the flag.
ALTER TABLE sources ADD COLUMN layer_in_profiles INTEGER NOT NULL DEFAULT 0;
UPDATE sources SET layer_in_profiles = 1
WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM profile_layers WHERE source_id <> 1);

-- A layer is written once per profile per source, and read by its primary
-- key: (source_id, customer_id), in key order by a pull's comparison, or a
-- page of customer ids per source by the merger. WITHOUT ROWID keeps each
-- layer in that one B-tree, instead of a rowid table, its key's index, an
-- index on customer_id and a foreign-key probe of profiles (one B-tree
-- write per layer instead of three, and no lookup). Whoever deletes a
-- profile deletes its layers (package sqldb, deleteLayers); a lookup of
-- one customer's layers probes the key once per source, and there are few.
CREATE TABLE profile_layers_0014 (
    source_id   INTEGER NOT NULL,
    customer_id TEXT    NOT NULL,
    attrs       TEXT    NOT NULL,
    PRIMARY KEY (source_id, customer_id)
) WITHOUT ROWID;
INSERT INTO profile_layers_0014 (source_id, customer_id, attrs) SELECT source_id, customer_id, attrs FROM profile_layers
WHERE source_id <> 1 OR NOT (SELECT layer_in_profiles FROM sources WHERE id = 1);
DROP TABLE profile_layers;
ALTER TABLE profile_layers_0014 RENAME TO profile_layers;

-- A pull's rows are staged outside the store, in a scratch file of the
-- worker's own (package source/stage): staging writes nothing here.
DROP TABLE pull_stage;
