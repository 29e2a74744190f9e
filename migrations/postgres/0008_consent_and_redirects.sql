-- Joining a workspace takes the invitee's consent: invitations are made for existing users too,
-- by email or by user id, and stay pending until the invitee accepts or declines them.
ALTER TABLE invitations ADD COLUMN user_id UUID REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX invitations_user ON invitations (user_id);
CREATE INDEX invitations_expiry ON invitations (expires_at);

-- Whether the user's email was vouched for (an identity provider trusted with it, an operator,
-- an import): only then do invitations made to that email reach the user.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Exact redirect URIs of client apps, indexed for the login's lookup.
CREATE TABLE client_app_redirects (
    redirect_uri TEXT NOT NULL,
    app_id       UUID NOT NULL REFERENCES client_apps (id) ON DELETE CASCADE,
    PRIMARY KEY (redirect_uri, app_id)
);
INSERT INTO client_app_redirects (redirect_uri, app_id)
    SELECT DISTINCT j.value, c.id FROM client_apps c, json_array_elements_text(c.redirect_uris::json) j
    ON CONFLICT DO NOTHING;
