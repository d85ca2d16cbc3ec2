-- Where a run's time went (store.RunTimings, JSON): plan, status refresh,
-- send, record and idle, in milliseconds summed over its attempts.
ALTER TABLE runs ADD COLUMN timings TEXT NOT NULL DEFAULT '{}';
