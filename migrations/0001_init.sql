-- OffChat Media: initial schema. Times are Unix epoch milliseconds.
CREATE TABLE conversations (
  id TEXT PRIMARY KEY,
  title TEXT,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE conversation_participants (
  conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'member',
  joined_at INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_user_idx ON conversation_participants(user_id);

CREATE TABLE messages (
  id TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  sender_id TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE INDEX messages_conversation_created_idx ON messages(conversation_id, created_at);

CREATE TABLE attachments (
  id TEXT PRIMARY KEY,
  message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  uploader_id TEXT NOT NULL,
  file_name TEXT NOT NULL,
  file_type TEXT NOT NULL DEFAULT 'video',
  mime_type TEXT NOT NULL,
  file_size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  storage_key TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'processing' CHECK (status IN ('processing', 'ready', 'failed')),
  error TEXT,
  duration REAL,
  width INTEGER,
  height INTEGER,
  rotation INTEGER NOT NULL DEFAULT 0,
  bitrate INTEGER,
  codec TEXT,
  audio_codec TEXT,
  fps REAL,
  pix_fmt TEXT,
  color_space TEXT,
  container TEXT NOT NULL,
  thumbnail_key TEXT,
  playback_key TEXT,
  storyboard_key TEXT,
  uploaded_at INTEGER NOT NULL,
  processed_at INTEGER,
  deleted_at INTEGER
);
CREATE INDEX attachments_message_idx ON attachments(message_id);
CREATE INDEX attachments_file_type_idx ON attachments(file_type);
CREATE INDEX attachments_uploaded_at_idx ON attachments(uploaded_at);
CREATE INDEX attachments_status_idx ON attachments(status);

CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  attachment_id TEXT NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
  status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 3,
  run_after INTEGER NOT NULL,
  locked_by TEXT,
  locked_until INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_claim_idx ON jobs(status, run_after);
CREATE INDEX jobs_attachment_idx ON jobs(attachment_id);

CREATE TABLE activity_log (
  id TEXT PRIMARY KEY,
  at INTEGER NOT NULL,
  actor_id TEXT NOT NULL,
  action TEXT NOT NULL,
  conversation_id TEXT,
  attachment_id TEXT,
  ip TEXT,
  user_agent TEXT,
  detail TEXT
);
CREATE INDEX activity_at_idx ON activity_log(at);
CREATE INDEX activity_actor_idx ON activity_log(actor_id, at);
CREATE INDEX activity_attachment_idx ON activity_log(attachment_id);
