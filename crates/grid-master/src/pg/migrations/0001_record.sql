-- The job record: jobs, their attempts and output, nodes' histories and
-- tenants' use (the PostgreSQL twin of record/sqlite.rs's schema).
-- Times are ms since the Unix epoch; counters saturate at the largest BIGINT.

-- Every job, in the order it came (`seq`, the position listings page by).
CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    idem_key TEXT UNIQUE,
    tenant TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL DEFAULT 0,
    spec BYTEA NOT NULL,
    state TEXT NOT NULL,
    node TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    submitted_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    result BYTEA,
    started_ms BIGINT,
    fingerprint TEXT
);
-- Listings by state, newest first (SQLite's index on state holds the rowid too).
CREATE INDEX jobs_state ON jobs (state, seq);

-- Each run of a job on a node.
CREATE TABLE attempts (
    job_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    node TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT,
    ending TEXT,
    digest TEXT,
    verdict TEXT,
    PRIMARY KEY (job_id, number)
);

-- A job's kept output, chunk by chunk (stream 1 stdout, 2 stderr).
CREATE TABLE output (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    stream SMALLINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Nodes' histories, by name.
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    identity TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    jobs_run BIGINT NOT NULL DEFAULT 0,
    fuel_burned BIGINT NOT NULL DEFAULT 0,
    lost_jobs BIGINT NOT NULL DEFAULT 0,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    streak INTEGER NOT NULL DEFAULT 0,
    strikes INTEGER NOT NULL DEFAULT 0,
    quarantined BOOLEAN NOT NULL DEFAULT false,
    credit BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX nodes_last_seen ON nodes (last_seen_ms);

-- What each tenant has run.
CREATE TABLE tenant_use (
    name TEXT PRIMARY KEY,
    jobs_run BIGINT NOT NULL DEFAULT 0,
    fuel_burned BIGINT NOT NULL DEFAULT 0
);
