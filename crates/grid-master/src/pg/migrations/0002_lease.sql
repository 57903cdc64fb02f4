-- The lease: one row; whoever holds it unexpired leads. `epoch` goes up
-- with every new holder, and every write of the leader checks it.
CREATE TABLE grid_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL DEFAULT '',
    epoch BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
    acquired_at TIMESTAMPTZ,
    renewed_at TIMESTAMPTZ
);
INSERT INTO grid_lease (id) VALUES (1);

-- Every master that started on this database, with where to reach it.
CREATE TABLE grid_masters (
    name TEXT PRIMARY KEY,
    grpc_url TEXT NOT NULL,
    http_url TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    started_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
