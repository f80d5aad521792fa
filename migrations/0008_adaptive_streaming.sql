-- Issue 12: adaptive streaming and the outputs an attachment lists.
-- hls_key: the directory of the HLS/DASH ladder (playlists, manifest, CMAF segments).
-- hls_ladder: JSON, its rungs as made ({ width, height, bandwidth, codecs, bytes }) and totals.
-- playback_meta: JSON, the progressive rendition as made ({ width, height, bitrate, codec, bytes }).
ALTER TABLE attachments ADD COLUMN hls_key TEXT;
ALTER TABLE attachments ADD COLUMN hls_ladder TEXT;
ALTER TABLE attachments ADD COLUMN playback_meta TEXT;

-- Jobs queued by one backfill run share its id, so the run's progress can be counted.
ALTER TABLE jobs ADD COLUMN batch_id TEXT;
CREATE INDEX jobs_batch_idx ON jobs (batch_id) WHERE batch_id IS NOT NULL;
