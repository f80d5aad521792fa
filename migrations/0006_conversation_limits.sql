-- Issue 10: conversation lists come a page at a time, and creations and adds
-- are counted per user and hour.
-- A user's conversations, newest first (ids are UUIDv7, so by id), read as a
-- range of this index; it starts with user_id, so it replaces the old one.
CREATE INDEX participants_user_conversation_idx
  ON conversation_participants(user_id, conversation_id);
DROP INDEX participants_user_idx;
-- The conversations one user created in the last hour (MAX_CONVERSATIONS_PER_HOUR).
CREATE INDEX conversations_creator_idx ON conversations(created_by, created_at);
-- The participants one user added in the last hour (MAX_PARTICIPANT_ADDS_PER_HOUR).
CREATE INDEX activity_actor_action_idx ON activity_log(actor_id, action, at);
