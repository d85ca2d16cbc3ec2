-- Fencing of runs (docs/engine.md, "Fencing"): every claim of a run writes a
-- fresh random token; heartbeats, acknowledgement records, rejections and
-- the finish are conditional on it and on lease_until being later than the
-- database's clock.
ALTER TABLE runs ADD COLUMN lease_token TEXT NOT NULL DEFAULT '';
