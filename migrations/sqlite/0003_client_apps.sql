-- Client apps: browser front ends that sign users in (exact redirect URIs).
CREATE TABLE client_apps (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    services      TEXT NOT NULL DEFAULT '[]',
    is_active     INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX sessions_client_app ON sessions (client_app_id);
