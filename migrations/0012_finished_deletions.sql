-- When a deleted attachment's files were removed. A deletion commits its row
-- first and removes the files after; a process killed in between left files
-- that no live row owns. The sweep finishes deletions whose files_removed_at
-- is still NULL (those of before this migration included) and sets it.
ALTER TABLE attachments ADD COLUMN files_removed_at INTEGER;
CREATE INDEX attachments_unfinished_deletions_idx
  ON attachments (deleted_at) WHERE deleted_at IS NOT NULL AND files_removed_at IS NULL;
