-- Users, workspaces and memberships: the identity a token carries.
CREATE TABLE users (
    id          UUID PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL DEFAULT '',
    avatar_url  TEXT NOT NULL DEFAULT '',
    is_active   BOOLEAN NOT NULL DEFAULT TRUE,
    is_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE workspaces (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE groups (
    id           UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE group_members (
    group_id   UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- Service apps: backends calling with x-service-key. Keys are stored only as SHA-256 hashes.
CREATE TABLE service_apps (
    id                        UUID PRIMARY KEY,
    name                      TEXT NOT NULL,
    service_name              TEXT NOT NULL UNIQUE,
    key_hash                  BYTEA NOT NULL UNIQUE,
    key_prefix                TEXT NOT NULL,
    previous_key_hash         BYTEA UNIQUE,
    previous_key_expires_at   TIMESTAMPTZ,
    allowed_origins           TEXT NOT NULL DEFAULT '[]',
    is_active                 BOOLEAN NOT NULL DEFAULT TRUE,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL,
    key_rotated_at            TIMESTAMPTZ,
    last_used_at              TIMESTAMPTZ
);

-- Sessions: one refresh-token family per sign-in (the `sid` claim).
CREATE TABLE sessions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id   UUID REFERENCES workspaces (id) ON DELETE SET NULL,
    client_app_id  UUID,
    provider       TEXT NOT NULL DEFAULT '',
    amr            TEXT NOT NULL DEFAULT '',
    user_agent     TEXT NOT NULL DEFAULT '',
    client_address TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);

-- Refresh tokens, by SHA-256 hash. A token is single use: `rotated_at` is set atomically by the
-- refresh that consumes it.
CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- The revocation log (the truth every verifier follows); `revision` orders it.
CREATE TABLE revocations (
    revision    BIGSERIAL PRIMARY KEY,
    session_id  UUID,
    jti         TEXT,
    user_id     UUID NOT NULL,
    reason      TEXT NOT NULL,
    revoked_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Security audit trail.
CREATE TABLE audit_events (
    id             UUID PRIMARY KEY,
    occurred_at    TIMESTAMPTZ NOT NULL,
    action         TEXT NOT NULL,
    actor_user_id  UUID,
    actor_service  TEXT,
    target_type    TEXT,
    target_id      TEXT,
    workspace_id   UUID,
    client_address TEXT,
    request_id     TEXT,
    outcome        TEXT NOT NULL DEFAULT 'success',
    details        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events (occurred_at DESC);
CREATE INDEX audit_events_action ON audit_events (action, occurred_at DESC);
