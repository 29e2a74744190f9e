-- Client apps: browser front ends that sign users in (exact redirect URIs).
CREATE TABLE client_apps (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    services      TEXT NOT NULL DEFAULT '[]',
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_client_app ON sessions (client_app_id);
