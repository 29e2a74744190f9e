-- Resources a service registers and the grants on them (the permission engine's durable state).
CREATE TABLE resources (
    id            UUID PRIMARY KEY,
    service_name  TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    workspace_id  UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id      UUID,
    visibility    TEXT NOT NULL CHECK (visibility IN ('private', 'workspace')),
    parent_id     UUID REFERENCES resources (id) ON DELETE SET NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (service_name, resource_type, resource_id)
);
CREATE INDEX resources_workspace ON resources (workspace_id);
CREATE INDEX resources_parent ON resources (parent_id);

-- One grant per (resource, grantee); an expired grant stops counting without a write.
CREATE TABLE grants (
    resource_id  UUID NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    grantee_type TEXT NOT NULL CHECK (grantee_type IN ('user', 'group')),
    grantee_id   UUID NOT NULL,
    permission   TEXT NOT NULL CHECK (permission IN ('view', 'edit')),
    expires_at   TIMESTAMPTZ,
    granted_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (resource_id, grantee_type, grantee_id)
);
CREATE INDEX grants_grantee ON grants (grantee_id);

CREATE INDEX changelog_service ON changelog (service_name, revision);
