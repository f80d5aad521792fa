-- Issue 14: the lock of a resumable (tus) upload, shared by every process on the database.
-- A row is a lease: `holder` (one acquisition's random name) holds the upload until
-- `expires_at` (epoch ms), renewed while its request runs and deleted when it ends; a
-- process that dies leaves a row that any other may take once it has expired.
-- `release_requested` = 1 asks the holder to end its request (a client resumed elsewhere).
CREATE TABLE upload_locks (
  upload_id TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  release_requested INTEGER NOT NULL DEFAULT 0
);
