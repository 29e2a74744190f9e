-- Revocations scoped to a workspace: tokens of user_id (or of every user when user_id is the nil
-- UUID) carrying that workspace (`wid`) and issued at or before revoked_at are revoked.
ALTER TABLE revocations ADD COLUMN workspace_id BLOB;
