-- JWT signing keys. Private keys are stored only encrypted with the key-encryption key.
CREATE TABLE signing_keys (
    kid                   TEXT PRIMARY KEY,
    algorithm             TEXT NOT NULL,
    public_jwk            TEXT NOT NULL,
    private_key_encrypted BLOB NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'active', 'retired')),
    created_at            TEXT NOT NULL,
    -- pending: published, signs from activate_at; retired: published until retire_at.
    activate_at           TEXT,
    retire_at             TEXT
);

-- At most one key signs at any time, even when replicas start together.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (status) WHERE status = 'active';

-- At most one key waits to take over.
CREATE UNIQUE INDEX signing_keys_one_pending ON signing_keys (status) WHERE status = 'pending';
