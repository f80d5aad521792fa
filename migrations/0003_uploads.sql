-- Issue 4: resumable (tus) uploads in progress. The bytes live under
-- DATA_DIR/tus/<id>; a row says whose they are and when they expire.
CREATE TABLE uploads (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  message_id TEXT NOT NULL REFERENCES messages(id),
  file_name TEXT NOT NULL,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX uploads_user_idx ON uploads(user_id);
CREATE INDEX uploads_expires_idx ON uploads(expires_at);
