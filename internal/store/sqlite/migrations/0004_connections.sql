-- Connections to Mailchimp accounts, their pending OAuth handshakes, and the
-- audit log. The credential is sealed with AES-256-GCM before it gets here;
-- the database never sees it in the clear. Times are unix microseconds (UTC).
CREATE TABLE connections (
    id                 INTEGER PRIMARY KEY,
    display_name       TEXT    NOT NULL,
    type               TEXT    NOT NULL DEFAULT 'mailchimp',
    auth_method        TEXT    NOT NULL CHECK (auth_method IN ('api_key', 'oauth')),
    allow_contributors BOOLEAN NOT NULL DEFAULT FALSE,
    credential         BLOB    NOT NULL,
    api_base_url       TEXT    NOT NULL DEFAULT '',
    account_id         TEXT    NOT NULL DEFAULT '',
    account_name       TEXT    NOT NULL DEFAULT '',
    dc                 TEXT    NOT NULL DEFAULT '',
    export_user_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    consent_by         INTEGER REFERENCES users (id) ON DELETE SET NULL,
    consent_by_email   TEXT    NOT NULL,
    consent_at         INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    last_tested_at     INTEGER,
    last_test_error    TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE oauth_states (
    state_hash         TEXT    PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    display_name       TEXT    NOT NULL,
    allow_contributors BOOLEAN NOT NULL DEFAULT FALSE,
    consent_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_id    INTEGER, -- no foreign key: the log outlives its actors
    actor_email TEXT    NOT NULL DEFAULT '',
    action      TEXT    NOT NULL,
    object_type TEXT    NOT NULL,
    object_id   TEXT    NOT NULL DEFAULT '',
    detail      TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_object ON audit_events (object_type, object_id);
