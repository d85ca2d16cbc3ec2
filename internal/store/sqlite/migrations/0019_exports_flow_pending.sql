-- An export's status flow-back owes its profiles a full pass (issue 15):
-- 1 from the export's first status refresh, 2 once the pass has begun, 0
-- when it is done. While it is 1, acknowledged contacts are recorded with
-- profile_status noted already (the pass writes every contact's status
-- whatever that column says), so a first run neither fills synced_flow_due
-- with every contact nor rewrites every synced row afterwards to note what
-- was written. A crash before the pass ends leaves it owed, and the next
-- run's flow-back does the whole pass.
ALTER TABLE exports ADD COLUMN flow_pending INTEGER NOT NULL DEFAULT 0;
