-- Most jobs carry no idempotency key: the key's unique index holds only
-- the keys there are, so a keyless job's insert and its updates leave it
-- alone (a NULL has no entry to keep up).
ALTER TABLE jobs DROP CONSTRAINT jobs_idem_key_key;
CREATE UNIQUE INDEX jobs_idem_key ON jobs (idem_key) WHERE idem_key IS NOT NULL;
