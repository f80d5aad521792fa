-- A finished resumable upload is remembered until it expires, with the
-- attachment it made, so a client whose last request's answer was lost can
-- still learn that the upload completed (HEAD answers with the full offset).
ALTER TABLE uploads ADD COLUMN attachment_id TEXT;
