-- Issue 12: what receivers get is a copy of the original without its metadata
-- (location, device, software, dates, chapters), made by the "strip" job.
ALTER TABLE attachments ADD COLUMN stripped_key TEXT;

-- Attachments uploaded before this have no copy yet: queue a strip job for each
-- live one that did not fail, so that receivers can download it again. The id is
-- a random UUID (version 4 bits): job ids only need to be unique and file-name safe.
INSERT INTO jobs (id, kind, attachment_id, status, attempts, max_attempts, run_after,
                  created_at, updated_at)
SELECT lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a' ||
             substr(h, 18, 3) || '-' || substr(h, 21, 12)),
       'strip', id, 'queued', 0, 3, now, now, now
FROM (SELECT id, hex(randomblob(16)) AS h, CAST(strftime('%s', 'now') AS INTEGER) * 1000 AS now
      FROM attachments WHERE deleted_at IS NULL AND status <> 'failed');
