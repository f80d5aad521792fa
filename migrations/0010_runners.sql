-- Issue 14: remote runners. A runner registers with a registration token an admin made and
-- gets a runner token of its own; both are stored as SHA-256 hashes (they are 256-bit random
-- values, so a fast hash is enough), never as themselves.
-- A runner's job is the job whose locked_by is 'runner-' || runners.id: the lease of the jobs
-- table is the one record of who holds a job, for local workers and runners alike.
CREATE TABLE runner_registration_tokens (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);

CREATE TABLE runners (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  -- JSON array of the job kinds it said it can do.
  kinds TEXT NOT NULL,
  registration_token_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX runners_created_idx ON runners (created_at);
