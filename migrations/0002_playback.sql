-- Issue 3: playback renditions, storyboards, richer metadata and job progress.
ALTER TABLE attachments ADD COLUMN has_audio INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attachments ADD COLUMN audio_channels INTEGER;
ALTER TABLE attachments ADD COLUMN audio_sample_rate INTEGER;
ALTER TABLE attachments ADD COLUMN hdr INTEGER NOT NULL DEFAULT 0;
-- How /stream plays: 'original', 'remux' or 'transcode'; NULL until decided.
ALTER TABLE attachments ADD COLUMN playback TEXT;
-- The storyboard sprite's grid as JSON (interval, columns, rows, count, tile size).
ALTER TABLE attachments ADD COLUMN storyboard_layout TEXT;
UPDATE attachments SET has_audio = 1 WHERE audio_codec IS NOT NULL;
-- Fraction done (0 to 1) of a running job, reported by ffmpeg.
ALTER TABLE jobs ADD COLUMN progress REAL;
