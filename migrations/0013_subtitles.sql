-- Subtitle tracks of an attachment (lib/chat/subtitles.ts): a JSON array of
-- { id, language, label, source, key }, the tracks extracted from the upload
-- ("embedded") and those its uploader added ("sidecar"). NULL: none.
ALTER TABLE attachments ADD COLUMN subtitles TEXT;
-- How many image subtitle streams (PGS, DVB...) the extraction skipped; NULL
-- until the `subtitles` job has run on the attachment.
ALTER TABLE attachments ADD COLUMN subtitles_skipped INTEGER;
