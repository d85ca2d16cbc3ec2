-- An export's status flow-back owes its profiles a full pass (issue 15):
-- set with the export's first status refresh, cleared by the pass. While
-- it is set, acknowledged contacts are recorded with profile_status noted
-- already (the pass writes every contact's status whatever that column
-- says), so a first run neither fills synced_flow_due with every contact
-- nor rewrites every synced row afterwards to note what was written. A
-- crash before the pass leaves the flag set, and the next run's flow-back
-- does the whole pass.
ALTER TABLE exports ADD COLUMN flow_pending BOOLEAN NOT NULL DEFAULT FALSE;
