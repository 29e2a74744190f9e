-- Users, workspaces and memberships: the identity a token carries.
CREATE TABLE users (
    id          BLOB PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL DEFAULT '',
    avatar_url  TEXT NOT NULL DEFAULT '',
    is_active   INTEGER NOT NULL DEFAULT 1,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE workspaces (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE memberships (
    workspace_id BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE groups (
    id           BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE group_members (
    group_id   BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- Service apps: backends calling with x-service-key. Keys are stored only as SHA-256 hashes.
CREATE TABLE service_apps (
    id                        BLOB PRIMARY KEY,
    name                      TEXT NOT NULL,
    service_name              TEXT NOT NULL UNIQUE,
    key_hash                  BLOB NOT NULL UNIQUE,
    key_prefix                TEXT NOT NULL,
    previous_key_hash         BLOB UNIQUE,
    previous_key_expires_at   TEXT,
    allowed_origins           TEXT NOT NULL DEFAULT '[]',
    is_active                 INTEGER NOT NULL DEFAULT 1,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL,
    key_rotated_at            TEXT,
    last_used_at              TEXT
);

-- Sessions: one refresh-token family per sign-in (the `sid` claim).
CREATE TABLE sessions (
    id             BLOB PRIMARY KEY,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id   BLOB REFERENCES workspaces (id) ON DELETE SET NULL,
    client_app_id  BLOB,
    provider       TEXT NOT NULL DEFAULT '',
    amr            TEXT NOT NULL DEFAULT '',
    user_agent     TEXT NOT NULL DEFAULT '',
    client_address TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    last_used_at   TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);

-- Refresh tokens, by SHA-256 hash. A token is single use: `rotated_at` is set atomically by the
-- refresh that consumes it.
CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    session_id  BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    rotated_at  TEXT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- The revocation log (the truth every verifier follows); `revision` orders it.
CREATE TABLE revocations (
    revision    INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  BLOB,
    jti         TEXT,
    user_id     BLOB NOT NULL,
    reason      TEXT NOT NULL,
    revoked_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- Security audit trail.
CREATE TABLE audit_events (
    id             BLOB PRIMARY KEY,
    occurred_at    TEXT NOT NULL,
    action         TEXT NOT NULL,
    actor_user_id  BLOB,
    actor_service  TEXT,
    target_type    TEXT,
    target_id      TEXT,
    workspace_id   BLOB,
    client_address TEXT,
    request_id     TEXT,
    outcome        TEXT NOT NULL DEFAULT 'success',
    details        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events (occurred_at DESC);
CREATE INDEX audit_events_action ON audit_events (action, occurred_at DESC);
