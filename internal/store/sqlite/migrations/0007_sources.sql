-- Data sources (SPEC section 11): their definitions, the attributes each
-- source holds per profile (profiles.attrs is their merge, see
-- docs/sources.md), pulls (the pulls table is the durable pull queue, like
-- runs), the staging table a pull streams into before it is applied in one
-- transaction, and system refreshes. Times are unix microseconds.
CREATE TABLE sources (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL, -- postgres mysql http, or push for uploads
    key_column       TEXT    NOT NULL DEFAULT '',
    mode             TEXT    NOT NULL DEFAULT 'full',
    cursor_column    TEXT    NOT NULL DEFAULT '',
    schedule         TEXT    NOT NULL DEFAULT 'refresh',
    rename           TEXT    NOT NULL DEFAULT '{}', -- JSON object column -> attribute
    exclude          TEXT    NOT NULL DEFAULT '[]', -- JSON array of columns
    priority         INTEGER NOT NULL DEFAULT 0,
    min_ratio        REAL    NOT NULL DEFAULT 0.5,
    query            TEXT    NOT NULL DEFAULT '',
    url              TEXT    NOT NULL DEFAULT '',
    format           TEXT    NOT NULL DEFAULT '',
    dsn_sealed       TEXT    NOT NULL DEFAULT '', -- vault-sealed, base64
    headers_sealed   TEXT    NOT NULL DEFAULT '', -- vault-sealed JSON object, base64
    header_names     TEXT    NOT NULL DEFAULT '[]',
    high_water       TEXT    NOT NULL DEFAULT '', -- incremental: the last applied mark
    last_full_rows   INTEGER NOT NULL DEFAULT -1, -- rows of the last successful full pull
    last_scheduled_at INTEGER NOT NULL DEFAULT 0,
    created_by       TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- Pushed imports are the source "uploads".
INSERT INTO sources (name, kind, priority, schedule, created_at, updated_at)
VALUES ('uploads', 'push', 0, 'off', 0, 0);

-- What each source holds per profile: a canonical attrjson object.
CREATE TABLE source_rows (
    source_id   INTEGER NOT NULL,
    customer_id TEXT    NOT NULL,
    attrs       TEXT    NOT NULL,
    PRIMARY KEY (source_id, customer_id)
);
CREATE INDEX source_rows_customer ON source_rows (customer_id);
-- Existing profiles came from imports.
INSERT INTO source_rows (source_id, customer_id, attrs)
SELECT (SELECT id FROM sources WHERE name = 'uploads'), customer_id, attrs FROM profiles;

CREATE TABLE refreshes (
    id           INTEGER PRIMARY KEY,
    status       TEXT    NOT NULL, -- running succeeded partially_succeeded failed
    stage        TEXT    NOT NULL, -- pulls, exports, done
    trigger_kind TEXT    NOT NULL,
    requested_by TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL DEFAULT 0,
    scheduled_for INTEGER -- the cron refresh's due time: it fires once across processes
);
CREATE UNIQUE INDEX refreshes_scheduled ON refreshes (scheduled_for);
CREATE INDEX refreshes_stage ON refreshes (stage, id);
CREATE TABLE refresh_pulls (
    refresh_id INTEGER NOT NULL REFERENCES refreshes (id) ON DELETE CASCADE,
    pull_id    INTEGER NOT NULL,
    PRIMARY KEY (refresh_id, pull_id)
);
CREATE TABLE refresh_runs (
    refresh_id INTEGER NOT NULL REFERENCES refreshes (id) ON DELETE CASCADE,
    run_id     INTEGER NOT NULL,
    PRIMARY KEY (refresh_id, run_id)
);

CREATE TABLE pulls (
    id               INTEGER PRIMARY KEY,
    source_id        INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    status           TEXT    NOT NULL, -- queued running succeeded partially_succeeded failed cancelled
    trigger_kind     TEXT    NOT NULL, -- manual schedule refresh
    allow_shrink     INTEGER NOT NULL DEFAULT 0,
    requested_by     TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL DEFAULT 0,
    finished_at      INTEGER NOT NULL DEFAULT 0,
    counts           TEXT    NOT NULL DEFAULT '{}',
    errors           TEXT    NOT NULL DEFAULT '[]',
    error            TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_token      TEXT    NOT NULL DEFAULT '',
    lease_until      INTEGER NOT NULL DEFAULT 0, -- database clock
    attempts         INTEGER NOT NULL DEFAULT 0
);
-- Single flight: one queued or running pull per source.
CREATE UNIQUE INDEX pulls_one_active ON pulls (source_id) WHERE status IN ('queued', 'running');
CREATE INDEX pulls_source ON pulls (source_id, id);
CREATE INDEX pulls_status ON pulls (status, id);

-- Rows of a pull in progress; attrs NULL marks a rejected row whose key is
-- kept (a full pull does not remove that profile over a bad value).
CREATE TABLE pull_rows (
    pull_id     INTEGER NOT NULL,
    customer_id TEXT    NOT NULL,
    attrs       TEXT,
    PRIMARY KEY (pull_id, customer_id)
);
