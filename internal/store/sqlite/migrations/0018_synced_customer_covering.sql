-- synced_customer also holds each contact's in_audience and status (issue
-- 15): the status flow-back of a first run looks up the contact of every
-- profile, in the profiles' order, and the index alone now answers it. It
-- read the synced row itself before, a random page of a table larger than
-- the page cache for every profile (7.6 s of 18 s over 1M profiles). A
-- row's entry moves only when its customer, presence or status changes,
-- which acknowledgements avoid naming when they stay (syncedUpsertQuery).
DROP INDEX synced_customer;
CREATE INDEX synced_customer ON synced (export_id, customer_id, in_audience, status);
