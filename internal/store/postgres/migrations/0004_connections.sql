-- Connections to Mailchimp accounts, their pending OAuth handshakes, and the
-- audit log. The credential is sealed with AES-256-GCM before it gets here;
-- the database never sees it in the clear. Times are unix microseconds (UTC).
CREATE TABLE connections (
    id                 BIGSERIAL PRIMARY KEY,
    display_name       TEXT    NOT NULL,
    type               TEXT    NOT NULL DEFAULT 'mailchimp',
    auth_method        TEXT    NOT NULL CHECK (auth_method IN ('api_key', 'oauth')),
    allow_contributors BOOLEAN NOT NULL DEFAULT FALSE,
    credential         BYTEA   NOT NULL,
    api_base_url       TEXT    NOT NULL DEFAULT '',
    account_id         TEXT    NOT NULL DEFAULT '',
    account_name       TEXT    NOT NULL DEFAULT '',
    dc                 TEXT    NOT NULL DEFAULT '',
    export_user_id     BIGINT  REFERENCES users (id) ON DELETE SET NULL,
    consent_by         BIGINT  REFERENCES users (id) ON DELETE SET NULL,
    consent_by_email   TEXT    NOT NULL,
    consent_at         BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    last_tested_at     BIGINT,
    last_test_error    TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE oauth_states (
    state_hash         TEXT    PRIMARY KEY,
    user_id            BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    display_name       TEXT    NOT NULL,
    allow_contributors BOOLEAN NOT NULL DEFAULT FALSE,
    consent_at         BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL
);

CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_id    BIGINT, -- no foreign key: the log outlives its actors
    actor_email TEXT   NOT NULL DEFAULT '',
    action      TEXT   NOT NULL,
    object_type TEXT   NOT NULL,
    object_id   TEXT   NOT NULL DEFAULT '',
    detail      JSONB  NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_object ON audit_events (object_type, object_id);
