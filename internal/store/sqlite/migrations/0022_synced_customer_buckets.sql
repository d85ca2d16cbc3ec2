-- synced_customer puts the first character of the subscriber hash before
-- the customer id (issue 15). The recorder writes contacts in hash order
-- (runs send them so), and each new row's entry went to a random place of
-- an index ordered by customer: a transaction of 20,000 acknowledgements
-- wrote nearly every page of it again, and a 1M first run spent more CPU
-- on this index than on the rest of the synced state. With the bucket
-- first, a transaction's entries fall in the one or two buckets of its
-- hashes. A lookup by customer names every bucket (syncedBuckets in
-- package sqldb, which keeps this expression): instr gives 0 for a hash
-- that does not begin with a hex digit, so no row is outside them.
DROP INDEX synced_customer;
CREATE INDEX synced_customer ON synced (export_id, instr('0123456789abcdef', substr(hash, 1, 1)), customer_id, in_audience, status);
