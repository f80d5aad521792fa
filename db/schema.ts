/**
 * Table shapes, the single source for queries and response types. The SQL in
 * `migrations/` creates these tables; a change here needs a new migration.
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const conversations = sqliteTable("conversations", {
  id: text("id").primaryKey(),
  title: text("title"),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
}, (t) => [index("conversations_creator_idx").on(t.createdBy, t.createdAt)]);

export const conversationParticipants = sqliteTable("conversation_participants", {
  conversationId: text("conversation_id").notNull().references(() => conversations.id),
  userId: text("user_id").notNull(),
  role: text("role").notNull().default("member"),
  joinedAt: integer("joined_at").notNull(),
}, (t) => [
  primaryKey({ columns: [t.conversationId, t.userId] }),
  index("participants_user_conversation_idx").on(t.userId, t.conversationId),
]);

export const messages = sqliteTable("messages", {
  id: text("id").primaryKey(),
  conversationId: text("conversation_id").notNull().references(() => conversations.id),
  senderId: text("sender_id").notNull(),
  body: text("body").notNull().default(""),
  createdAt: integer("created_at").notNull(),
}, (t) => [index("messages_conversation_created_idx").on(t.conversationId, t.createdAt)]);

export const attachments = sqliteTable("attachments", {
  id: text("id").primaryKey(),
  messageId: text("message_id").notNull().references(() => messages.id),
  conversationId: text("conversation_id").notNull().references(() => conversations.id),
  uploaderId: text("uploader_id").notNull(),
  fileName: text("file_name").notNull(),
  fileType: text("file_type").notNull().default("video"),
  mimeType: text("mime_type").notNull(),
  fileSize: integer("file_size").notNull(),
  sha256: text("sha256").notNull(),
  storageKey: text("storage_key").notNull(),
  status: text("status", { enum: ["processing", "ready", "failed"] }).notNull().default(
    "processing",
  ),
  error: text("error"),
  duration: real("duration"),
  width: integer("width"),
  height: integer("height"),
  rotation: integer("rotation").notNull().default(0),
  bitrate: integer("bitrate"),
  codec: text("codec"),
  audioCodec: text("audio_codec"),
  fps: real("fps"),
  pixFmt: text("pix_fmt"),
  colorSpace: text("color_space"),
  hdr: integer("hdr", { mode: "boolean" }).notNull().default(false),
  hasAudio: integer("has_audio", { mode: "boolean" }).notNull().default(false),
  audioChannels: integer("audio_channels"),
  audioSampleRate: integer("audio_sample_rate"),
  container: text("container").notNull(),
  playback: text("playback", { enum: ["original", "remux", "transcode"] }),
  storyboardLayout: text("storyboard_layout"),
  thumbnailKey: text("thumbnail_key"),
  /**
   * The directory of the poster's generation: `poster.jpg` (large),
   * `thumbnail.jpg` (which `thumbnailKey` then names) and `candidate-N.jpg`.
   */
  posterKey: text("poster_key"),
  /** JSON: the candidate frames' times, in seconds, by index. */
  posterCandidates: text("poster_candidates"),
  /** Seconds: where the poster was taken. */
  posterTime: real("poster_time"),
  /** The poster's ThumbHash placeholder, base64. */
  thumbhash: text("thumbhash"),
  /** The original without its metadata, which every download and original stream serves. */
  strippedKey: text("stripped_key"),
  playbackKey: text("playback_key"),
  storyboardKey: text("storyboard_key"),
  /** The directory of the adaptive ladder: HLS playlists, DASH manifest, CMAF segments. */
  hlsKey: text("hls_key"),
  /** JSON: the ladder's rungs as made (`MadeLadder`). */
  hlsLadder: text("hls_ladder"),
  /** JSON: the progressive rendition as made (`PlaybackMeta`). */
  playbackMeta: text("playback_meta"),
  /** JSON: the subtitle tracks (`SubtitleTrack[]`, lib/chat/subtitles.ts); NULL when none. */
  subtitles: text("subtitles"),
  /** Image subtitle streams the extraction skipped; NULL until the `subtitles` job ran. */
  subtitlesSkipped: integer("subtitles_skipped"),
  uploadedAt: integer("uploaded_at").notNull(),
  processedAt: integer("processed_at"),
  deletedAt: integer("deleted_at"),
  /** When a deleted attachment's files were removed (NULL until then: the sweep finishes it). */
  filesRemovedAt: integer("files_removed_at"),
}, (t) => [
  index("attachments_message_idx").on(t.messageId),
  index("attachments_file_type_idx").on(t.fileType),
  index("attachments_uploaded_at_idx").on(t.uploadedAt),
  index("attachments_status_idx").on(t.status),
  index("attachments_unfinished_deletions_idx").on(t.deletedAt)
    .where(sql`deleted_at IS NOT NULL AND files_removed_at IS NULL`),
]);

export const jobs = sqliteTable("jobs", {
  id: text("id").primaryKey(),
  kind: text("kind").notNull(),
  attachmentId: text("attachment_id").notNull().references(() => attachments.id),
  status: text("status", { enum: ["queued", "running", "done", "failed"] }).notNull().default(
    "queued",
  ),
  attempts: integer("attempts").notNull().default(0),
  maxAttempts: integer("max_attempts").notNull().default(3),
  runAfter: integer("run_after").notNull(),
  lockedBy: text("locked_by"),
  lockedUntil: integer("locked_until"),
  lastError: text("last_error"),
  progress: real("progress"),
  /** The backfill run that queued this job, if one did. */
  batchId: text("batch_id"),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
}, (t) => [index("jobs_claim_idx").on(t.status, t.runAfter)]);

export const activityLog = sqliteTable("activity_log", {
  id: text("id").primaryKey(),
  at: integer("at").notNull(),
  actorId: text("actor_id").notNull(),
  action: text("action").notNull(),
  conversationId: text("conversation_id"),
  attachmentId: text("attachment_id"),
  ip: text("ip"),
  userAgent: text("user_agent"),
  detail: text("detail"),
}, (t) => [
  index("activity_at_idx").on(t.at),
  index("activity_attachment_actor_idx").on(t.attachmentId, t.actorId, t.at),
  index("activity_actor_action_idx").on(t.actorId, t.action, t.at),
]);

/** A resumable (tus) upload in progress; its bytes are under `DATA_DIR/tus/<id>`. */
export const uploads = sqliteTable("uploads", {
  id: text("id").primaryKey(),
  userId: text("user_id").notNull(),
  messageId: text("message_id").notNull().references(() => messages.id),
  fileName: text("file_name").notNull(),
  size: integer("size").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  /** Set when the upload completed: the attachment it made. */
  attachmentId: text("attachment_id"),
}, (t) => [
  index("uploads_user_idx").on(t.userId),
  index("uploads_expires_idx").on(t.expiresAt),
]);

/**
 * The lock of a resumable upload while a request acts on it, as a lease every
 * process sees (lib/uploads/upload_locks.ts). No foreign key: a lock is
 * taken before the library looks at the upload, and outlives nothing.
 */
export const uploadLocks = sqliteTable("upload_locks", {
  uploadId: text("upload_id").primaryKey(),
  /** One acquisition's random name. */
  holder: text("holder").notNull(),
  expiresAt: integer("expires_at").notNull(),
  /** 1: another request waits for this upload; the holder should end its own. */
  releaseRequested: integer("release_requested").notNull().default(0),
});

/** A token an admin made for registering runners (migration 0010); only its hash is kept. */
export const runnerRegistrationTokens = sqliteTable("runner_registration_tokens", {
  id: text("id").primaryKey(),
  tokenHash: text("token_hash").notNull().unique(),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
});

/**
 * A remote runner (lib/runners/). Its running job is the one whose
 * `locked_by` is `runner-<id>`; only the hash of its token is kept.
 */
export const runners = sqliteTable("runners", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  tokenHash: text("token_hash").notNull().unique(),
  /** JSON array of job kinds. */
  kinds: text("kinds").notNull(),
  registrationTokenId: text("registration_token_id").notNull(),
  createdAt: integer("created_at").notNull(),
  lastSeenAt: integer("last_seen_at").notNull(),
  revokedAt: integer("revoked_at"),
}, (t) => [index("runners_created_idx").on(t.createdAt)]);

/** Webhook deliveries: an outbox and its own small queue (migrations/0015, lib/webhooks/). */
export const webhookDeliveries = sqliteTable("webhook_deliveries", {
  id: text("id").primaryKey(),
  event: text("event").notNull(),
  attachmentId: text("attachment_id").notNull(),
  /** The JSON body, exactly as signed and sent. */
  payload: text("payload").notNull(),
  status: text("status", { enum: ["queued", "running", "delivered", "failed"] }).notNull(),
  attempts: integer("attempts").notNull().default(0),
  maxAttempts: integer("max_attempts").notNull(),
  lastError: text("last_error"),
  lastStatus: integer("last_status"),
  nextAttemptAt: integer("next_attempt_at").notNull(),
  lockedBy: text("locked_by"),
  lockedUntil: integer("locked_until"),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
  deliveredAt: integer("delivered_at"),
}, (t) => [
  index("webhook_deliveries_runnable_idx").on(t.status, t.nextAttemptAt),
  index("webhook_deliveries_attachment_idx").on(t.attachmentId),
]);

export type Conversation = typeof conversations.$inferSelect;
export type Message = typeof messages.$inferSelect;
export type Attachment = typeof attachments.$inferSelect;
export type NewAttachment = typeof attachments.$inferInsert;
export type Job = typeof jobs.$inferSelect;
export type Activity = typeof activityLog.$inferSelect;
export type Upload = typeof uploads.$inferSelect;
export type Runner = typeof runners.$inferSelect;
export type WebhookDelivery = typeof webhookDeliveries.$inferSelect;
