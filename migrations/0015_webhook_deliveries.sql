-- Issue 15: webhooks. One row per event to deliver, written in the transaction of the change it
-- announces (an outbox): a change that rolls back leaves no delivery, and a delivery waits here
-- across restarts. The row is its own small queue (claim by lease, as the jobs table): a
-- delivery is not media work, must not wait behind a long transcode, and must not be offered
-- to remote runners. No foreign key: an attachment's deliveries outlive it.
CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  attachment_id TEXT NOT NULL,
  -- The JSON body, exactly as signed and sent.
  payload TEXT NOT NULL,
  -- queued, running, delivered or failed.
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  last_error TEXT,
  -- The receiver's HTTP status on the last attempt (NULL: no answer).
  last_status INTEGER,
  next_attempt_at INTEGER NOT NULL,
  locked_by TEXT,
  locked_until INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  delivered_at INTEGER
);
CREATE INDEX webhook_deliveries_runnable_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_attachment_idx ON webhook_deliveries (attachment_id);
