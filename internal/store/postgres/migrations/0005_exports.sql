-- Exports, their runs (which double as the durable run queue, see
-- docs/engine.md), per-run rejections, and the synced state the engine
-- diffs against. Times are unix microseconds (0 = not yet).
CREATE TABLE exports (
    id                          BIGSERIAL PRIMARY KEY,
    name                        TEXT    NOT NULL,
    -- connection_id is deliberately nullable and carries no foreign key:
    -- NULL means the export was detached from its connection (DELETE
    -- /connections/{id}?detach=true); a detached export keeps its
    -- configuration but never runs until it is given a connection again.
    connection_id               BIGINT,
    audience_id                 TEXT    NOT NULL,
    segment_ids                 TEXT    NOT NULL, -- JSON array of segment ids
    mapping                     TEXT    NOT NULL, -- JSON object, see store.Mapping
    status_if_new               TEXT    NOT NULL,
    on_leave                    TEXT    NOT NULL,
    tag_prefix                  TEXT    NOT NULL DEFAULT '',
    create_missing_merge_fields BOOLEAN NOT NULL DEFAULT FALSE,
    schedule                    TEXT    NOT NULL,
    created_by                  TEXT    NOT NULL DEFAULT '',
    created_at                  BIGINT  NOT NULL,
    updated_at                  BIGINT  NOT NULL,
    -- statuses in synced are known as of this time (start of the last
    -- members listing); the next run lists members changed since then.
    status_as_of                BIGINT  NOT NULL DEFAULT 0,
    last_scheduled_at           BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX exports_connection ON exports (connection_id);

CREATE TABLE runs (
    id               BIGSERIAL PRIMARY KEY,
    export_id        BIGINT  NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    status           TEXT    NOT NULL, -- queued running succeeded partially_succeeded failed cancelled
    trigger_kind     TEXT    NOT NULL, -- manual schedule refresh
    dry_run          BOOLEAN NOT NULL DEFAULT FALSE,
    requested_by     TEXT    NOT NULL DEFAULT '',
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT  NOT NULL DEFAULT 0,
    finished_at      BIGINT  NOT NULL DEFAULT 0,
    done             BIGINT  NOT NULL DEFAULT 0,
    total            BIGINT  NOT NULL DEFAULT 0,
    counts           TEXT    NOT NULL DEFAULT '{}',
    sample           TEXT    NOT NULL DEFAULT '{}',
    error            TEXT    NOT NULL DEFAULT '',
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_until      BIGINT  NOT NULL DEFAULT 0,
    attempts         BIGINT  NOT NULL DEFAULT 0
);
-- Single flight: at most one queued run (per kind) and one running run per export.
CREATE UNIQUE INDEX runs_one_queued ON runs (export_id, dry_run) WHERE status = 'queued';
CREATE UNIQUE INDEX runs_one_running ON runs (export_id) WHERE status = 'running';
CREATE INDEX runs_export ON runs (export_id, id);
CREATE INDEX runs_status ON runs (status, id);

CREATE TABLE run_rejections (
    id          BIGSERIAL PRIMARY KEY,
    run_id      BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    kind        TEXT    NOT NULL -- permanent or transient
);
CREATE INDEX run_rejections_run ON run_rejections (run_id, id);

-- The managed tags of an export, each given one bit of synced.tags.
CREATE TABLE export_tags (
    export_id BIGINT  NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    bit       BIGINT  NOT NULL,
    name      TEXT    NOT NULL,
    PRIMARY KEY (export_id, bit),
    UNIQUE (export_id, name)
);

-- What Mailchimp acknowledged, per export and contact (subscriber hash).
CREATE TABLE synced (
    export_id      BIGINT  NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    hash           TEXT COLLATE "C" NOT NULL,
    email          TEXT    NOT NULL,
    customer_id    TEXT    NOT NULL,
    in_audience    BOOLEAN NOT NULL DEFAULT FALSE, -- created or adopted by this export
    in_export      BOOLEAN NOT NULL DEFAULT FALSE, -- member of the export's segments when last synced
    fields_hash    TEXT    NOT NULL DEFAULT '',
    tags           BIGINT  NOT NULL DEFAULT 0, -- bit set over export_tags
    created_by_us  BOOLEAN NOT NULL DEFAULT FALSE,
    archived_by_us BOOLEAN NOT NULL DEFAULT FALSE,
    status         TEXT    NOT NULL DEFAULT '',
    rejected_hash  TEXT    NOT NULL DEFAULT '', -- fields_hash a permanent rejection applies to
    PRIMARY KEY (export_id, hash)
);
