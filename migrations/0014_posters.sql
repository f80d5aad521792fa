-- Posters: the thumbnail job keeps candidate frames and a large poster in one
-- directory per generation (poster_key: poster.jpg, thumbnail.jpg,
-- candidate-N.jpg); thumbnail_key then names that directory's thumbnail.jpg.
-- poster_candidates is a JSON array of the candidates' times in seconds,
-- poster_time the time the poster was taken at, thumbhash its placeholder
-- (base64). Rows of before keep a plain thumbnail file and NULLs here.
ALTER TABLE attachments ADD COLUMN poster_key TEXT;
ALTER TABLE attachments ADD COLUMN poster_candidates TEXT;
ALTER TABLE attachments ADD COLUMN poster_time REAL;
ALTER TABLE attachments ADD COLUMN thumbhash TEXT;
