-- Memberships, invitations, groups and custom roles (RBAC), and the authorization changelog.

ALTER TABLE memberships ADD COLUMN updated_at TEXT;

-- Group names are unique per workspace regardless of case.
CREATE UNIQUE INDEX groups_workspace_name_ci ON groups (workspace_id, LOWER(name));

-- Pending invitations of emails that have no user yet; honoured at that user's first sign-in.
CREATE TABLE invitations (
    id           BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    invited_by   BLOB,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    UNIQUE (workspace_id, email)
);
CREATE INDEX invitations_email ON invitations (email);

-- Actions a service registers (RBAC vocabulary), per service_name.
CREATE TABLE service_actions (
    service_name TEXT NOT NULL,
    action       TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (service_name, action)
);

-- Custom roles: a named set of one service's actions in a workspace.
CREATE TABLE roles (
    id           BLOB PRIMARY KEY,
    workspace_id BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    service_name TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX roles_workspace_service_name ON roles (workspace_id, service_name, LOWER(name));

CREATE TABLE role_actions (
    role_id BLOB NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    action  TEXT NOT NULL,
    PRIMARY KEY (role_id, action)
);

CREATE TABLE role_assignments (
    role_id    BLOB NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (role_id, user_id)
);
CREATE INDEX role_assignments_user ON role_assignments (user_id);

-- Every write that changes authorization appends here, in its own transaction, in revision
-- order. Consistency tokens encode a revision; the in-memory index and Watch follow this log.
CREATE TABLE changelog (
    revision     INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id BLOB,
    service_name TEXT,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL DEFAULT '{}',
    occurred_at  TEXT NOT NULL
);
