-- As on SQLite: a layer is read by its primary key (source_id, customer_id)
-- only; a lookup of one customer's layers probes it once per source. The
-- index on customer_id and the foreign key to profiles cost an index write
-- and a lookup for every layer written; whoever deletes a profile deletes
-- its layers (package sqldb, deleteLayers).
DROP INDEX profile_layers_customer;
ALTER TABLE profile_layers DROP CONSTRAINT profile_layers_customer_id_fkey;
