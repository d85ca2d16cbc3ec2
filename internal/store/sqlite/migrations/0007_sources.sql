-- Data sources (SPEC section 11): definitions, their pulls (a durable job
-- queue like runs), the rows a pull stages before it is applied in one
-- transaction, each source's layer of attributes per profile, and system
-- refreshes. Times are unix microseconds (0 = not yet).
CREATE TABLE sources (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    kind              TEXT    NOT NULL, -- upload postgres mysql http
    key_column        TEXT    NOT NULL DEFAULT '',
    mode              TEXT    NOT NULL DEFAULT 'full', -- full incremental
    cursor_column     TEXT    NOT NULL DEFAULT '',
    schedule          TEXT    NOT NULL DEFAULT 'refresh',
    priority          INTEGER NOT NULL DEFAULT 100,
    min_ratio         REAL    NOT NULL DEFAULT 0.5,
    config            TEXT    NOT NULL DEFAULT '{}', -- kind-specific, no secrets (JSON)
    secret            BLOB,                          -- vault-sealed JSON: dsn, header values
    created_by        TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    high_water        TEXT    NOT NULL DEFAULT '', -- incremental: the connector's mark
    last_full_rows    INTEGER NOT NULL DEFAULT -1, -- rows of the last successful full pull
    last_scheduled_at INTEGER NOT NULL DEFAULT 0
);
-- Pushed imports are the source "uploads" (id 1), priority 0.
INSERT INTO sources (id, name, kind, schedule, priority, created_at, updated_at)
VALUES (1, 'uploads', 'upload', 'off', 0, 0, 0);

CREATE TABLE refreshes (
    id           INTEGER PRIMARY KEY,
    status       TEXT    NOT NULL, -- pulling running succeeded failed
    trigger_kind TEXT    NOT NULL, -- manual schedule
    requested_by TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL DEFAULT 0,
    run_ids      TEXT    NOT NULL DEFAULT '[]',
    error        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX refreshes_status ON refreshes (status, id);

CREATE TABLE pulls (
    id               INTEGER PRIMARY KEY,
    source_id        INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    refresh_id       INTEGER REFERENCES refreshes (id) ON DELETE SET NULL,
    status           TEXT    NOT NULL, -- queued running succeeded partially_succeeded failed cancelled
    trigger_kind     TEXT    NOT NULL,
    allow_shrink     INTEGER NOT NULL DEFAULT 0,
    requested_by     TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL DEFAULT 0,
    finished_at      INTEGER NOT NULL DEFAULT 0,
    counts           TEXT    NOT NULL DEFAULT '{}',
    errors           TEXT    NOT NULL DEFAULT '[]',
    error            TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_token      TEXT    NOT NULL DEFAULT '',
    lease_until      INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX pulls_one_queued ON pulls (source_id) WHERE status = 'queued';
CREATE UNIQUE INDEX pulls_one_running ON pulls (source_id) WHERE status = 'running';
CREATE INDEX pulls_source ON pulls (source_id, id);
CREATE INDEX pulls_status ON pulls (status, id);
CREATE INDEX pulls_refresh ON pulls (refresh_id);

-- Rows a running pull has read, kept until it is applied or abandoned.
CREATE TABLE pull_stage (
    pull_id     INTEGER NOT NULL REFERENCES pulls (id) ON DELETE CASCADE,
    customer_id TEXT    NOT NULL,
    attrs       TEXT    NOT NULL,
    PRIMARY KEY (pull_id, customer_id)
);

-- What each source says about each profile; profiles.attrs is their merge
-- by priority (plus the reserved mailchimp.* attributes).
CREATE TABLE profile_layers (
    source_id   INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    customer_id TEXT    NOT NULL REFERENCES profiles (customer_id) ON DELETE CASCADE,
    attrs       TEXT    NOT NULL,
    PRIMARY KEY (source_id, customer_id)
);
CREATE INDEX profile_layers_customer ON profile_layers (customer_id);
INSERT INTO profile_layers (source_id, customer_id, attrs) SELECT 1, customer_id, attrs FROM profiles;

-- Named scheduler state shared by processes (the system refresh's last firing).
CREATE TABLE scheduler_state (
    name    TEXT    PRIMARY KEY,
    last_at INTEGER NOT NULL
);
