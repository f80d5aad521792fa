-- A download is logged once per user and attachment per window: before
-- writing, the insert looks for a recent row of the same (attachment_id,
-- actor_id). This index answers that; the single-column index on
-- attachment_id is a prefix of it, so it goes.
CREATE INDEX activity_attachment_actor_idx ON activity_log(attachment_id, actor_id, at);
DROP INDEX activity_attachment_idx;
