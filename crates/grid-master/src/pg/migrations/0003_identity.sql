-- One grid, one identity: the CA, the token key, the admin token, and
-- every token and tenant, shared by the masters of one database.

-- Secrets made once by the first master on the database and read by every
-- other: `token-key` (the key of the tokens' keyed hash), `ca-cert` and
-- `ca-key` (the grid's CA, PEM), `admin-token` (the admin token's text).
CREATE TABLE grid_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The token registry (the PostgreSQL twin of auth/records.rs's schema):
-- only a keyed hash of each secret is kept.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    owner TEXT,
    hash BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL DEFAULT 0,
    expires_ms BIGINT,
    uses_left BIGINT,
    revoked BOOLEAN NOT NULL DEFAULT false,
    joined_by TEXT
);

CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    max_running BIGINT,
    max_queued BIGINT,
    fuel_per_hour BIGINT,
    fuel_burst BIGINT,
    max_job_fuel BIGINT,
    max_job_memory BIGINT,
    max_job_timeout_ms BIGINT
);
