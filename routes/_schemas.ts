/**
 * The request and response shapes of the HTTP contract. The same zod schemas
 * validate requests (through @hono/zod-validator) and describe the API in the
 * generated OpenAPI document.
 */
import { z } from "@hono/zod-openapi";
import { findUnsafeCharacter, type UnsafeTextOptions } from "../lib/core/unsafe_text.ts";

const isoTime = z.string().openapi({ example: "2025-01-15T10:30:00.000Z" });
const userId = z.string().regex(
  /^[\w.@:+-]{1,128}$/,
  "must be a user id of 1-128 letters, digits or ._@:+-",
);
/**
 * Free text that is stored and shown to others: refused (400, naming the
 * field and the character) when it holds a control, invisible or
 * bidirectional-override character; the rule is `lib/core/unsafe_text.ts`'s.
 * Checked before any trimming, so nothing is silently removed.
 */
function safeText(options: UnsafeTextOptions = {}) {
  return z.string().superRefine((value, ctx) => {
    const found = findUnsafeCharacter(value, options);
    if (found) {
      ctx.addIssue({
        code: "custom",
        message:
          `must not contain control, invisible or bidirectional-override characters (found "${found}")`,
      });
    }
  });
}

export const idSchema = z.string().uuid().openapi({
  example: "01936b2e-6f3a-7cc4-9d5e-2f0c1a9b8e77",
});

export const ProblemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string().openapi({ example: "not_found" }),
}).openapi("Problem");

export const ParticipantSchema = z.object({
  user_id: z.string(),
  role: z.string(),
  joined_at: isoTime.nullable(),
}).openapi("Participant");

export const ConversationSchema = z.object({
  id: z.string(),
  title: z.string().nullable(),
  created_by: z.string(),
  created_at: isoTime.nullable(),
  participants: z.array(ParticipantSchema).openapi({
    description: "The first participants to join, oldest first, at most 20; the whole list is " +
      "paged by `GET /api/chat/conversations/{id}/participants`",
  }),
  participant_count: z.number().int(),
}).openapi("Conversation");

export const RenditionSchema = z.object({
  kind: z.enum(["progressive", "hls"]),
  width: z.number().int().nullable(),
  height: z.number().int().nullable(),
  bitrate: z.number().int().nullable().openapi({
    description: "kbit/s: the progressive file's overall bitrate, a rung's BANDWIDTH",
  }),
  codec: z.string().openapi({
    description: "RFC 6381 CODECS for a rung, the codec name otherwise",
  }),
  bytes: z.number().int(),
}).openapi("Rendition");

/** One subtitle track of an attachment. */
export const SubtitleSchema = z.object({
  id: z.string(),
  language: z.string().openapi({ description: "BCP 47 tag (`und` when unknown)" }),
  label: z.string(),
  source: z.enum(["embedded", "sidecar"]),
  url: z.string().openapi({ description: "Signed WebVTT URL (`text/vtt`)" }),
}).openapi("Subtitle");

export const AttachmentSchema = z.object({
  id: z.string(),
  message_id: z.string(),
  conversation_id: z.string(),
  uploader_id: z.string(),
  file_name: z.string(),
  file_type: z.string(),
  mime_type: z.string(),
  file_size: z.number().int(),
  file_size_mb: z.number(),
  sha256: z.string(),
  status: z.enum(["processing", "ready", "failed"]),
  error: z.string().nullable(),
  duration: z.number().nullable(),
  duration_formatted: z.string().nullable(),
  width: z.number().int().nullable(),
  height: z.number().int().nullable(),
  rotation: z.number().int(),
  video_dimensions: z.tuple([z.number().int(), z.number().int()]).nullable(),
  bitrate: z.number().int().nullable().openapi({ description: "kbit/s" }),
  codec: z.string().nullable(),
  audio_codec: z.string().nullable(),
  fps: z.number().nullable(),
  pix_fmt: z.string().nullable(),
  color_space: z.string().nullable(),
  hdr: z.boolean(),
  has_audio: z.boolean(),
  audio_channels: z.number().int().nullable(),
  audio_sample_rate: z.number().int().nullable(),
  container: z.string(),
  playback: z.enum(["original", "remux", "transcode"]).nullable().openapi({
    description: "What /stream serves: the original, a remuxed faststart MP4, or an H.264/AAC " +
      "rendition; null until decided",
  }),
  url: z.string().openapi({
    description: "Signed download URL of the original without its metadata (location, device, " +
      "software, dates, chapters), unless STRIP_METADATA=0",
  }),
  original_url: z.string().nullable().openapi({
    description: "For the uploader only (null for everyone else): signed download URL of the " +
      "exact uploaded bytes, whose SHA-256 is `sha256`",
  }),
  stream_url: z.string().nullable(),
  playable: z.boolean().openapi({
    description: "Whether `stream_url` (or `hls_url`) plays for this caller now: true as soon " +
      "as the first playable output exists, which may be while `status` is still `processing`",
  }),
  hls_url: z.string().nullable().openapi({
    description:
      "Signed HLS master playlist of the adaptive ladder (fMP4/CMAF), or null when the " +
      "video has none (shorter than HLS_MIN_DURATION, HLS off, or not made yet). The token is " +
      "in the path, so the playlists' relative URIs need no header",
  }),
  dash_url: z.string().nullable().openapi({
    description: "Signed DASH manifest over the same segments as `hls_url`, or null",
  }),
  renditions: z.array(RenditionSchema).openapi({
    description: "Every output made for playback, one entry each: the progressive rendition " +
      "(`progressive`) and each rung of the adaptive ladder (`hls`)",
  }),
  thumbnail_url: z.string().nullable().openapi({
    description: "Signed 320 px JPEG of the poster frame; add `&time=S` for the frame at S " +
      "seconds (rounded down to the storyboard interval; rate-limited renders)",
  }),
  poster_url: z.string().nullable().openapi({
    description: "Signed large poster (at most 1280 px on the long side), for the player",
  }),
  poster_time: z.number().nullable().openapi({ description: "Seconds: where the poster is from" }),
  poster_candidates: z.array(z.object({
    index: z.number().int(),
    time: z.number(),
    url: z.string(),
  })).openapi({
    description: "Frames the uploader may choose as poster (`PUT /attachments/{id}/poster`)",
  }),
  thumbhash: z.string().nullable().openapi({
    description: "ThumbHash (base64) of the poster: a placeholder to paint before it loads",
  }),
  storyboard_url: z.string().nullable().openapi({ description: "Signed WebVTT storyboard URL" }),
  subtitles: z.array(SubtitleSchema).openapi({
    description: "Subtitle tracks: extracted from the upload, or added by its uploader",
  }),
  subtitles_skipped: z.number().int().nullable().openapi({
    description: "Image subtitle streams (PGS, DVB) not extracted; null until extraction ran",
  }),
  events_url: z.string().openapi({ description: "Signed Server-Sent Events URL" }),
  uploaded_at: isoTime.nullable(),
  processed_at: isoTime.nullable(),
}).openapi("Attachment");

export const MessageSchema = z.object({
  id: z.string(),
  conversation_id: z.string(),
  sender_id: z.string(),
  body: z.string(),
  created_at: isoTime.nullable(),
  attachments: z.array(AttachmentSchema),
}).openapi("Message");

export const ActivitySchema = z.object({
  id: z.string(),
  at: isoTime.nullable(),
  actor_id: z.string(),
  action: z.string(),
  conversation_id: z.string().nullable(),
  attachment_id: z.string().nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  detail: z.unknown(),
}).openapi("Activity");

export const CreateConversationBody = z.object({
  title: safeText().trim().max(200).optional(),
  participant_ids: z.array(userId).max(256).default([]),
}).openapi("CreateConversation");

export const AddParticipantBody = z.object({
  user_id: userId,
  role: z.enum(["member", "owner"]).default("member"),
}).openapi("AddParticipant");

export const CreateMessageBody = z.object({
  body: safeText({ multiline: true }).max(10_000).default("").openapi({
    description: "Tab, line feed and CR LF are allowed; other control, invisible and " +
      "bidirectional-override characters are refused (see SECURITY.md)",
  }),
}).openapi("CreateMessage");

/**
 * The largest request body a JSON route accepts, in bytes; uploads stream under their own
 * limits. It leaves room for the largest valid body: a message of 10,000 UTF-16 code units, each
 * of which `JSON.stringify` may write as a 6-byte `\uXXXX` escape (60,000 bytes), while 256
 * participant ids of at most 128 ASCII characters take about 34 KB.
 */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

export const IdParam = z.object({ id: idSchema.openapi({ param: { name: "id", in: "path" } }) });

export const ParticipantParam = z.object({
  id: idSchema.openapi({ param: { name: "id", in: "path" } }),
  user_id: userId.openapi({ param: { name: "user_id", in: "path" } }),
});

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  before: idSchema.optional().openapi({ description: "Cursor: return items older than this id" }),
});

export const ConversationPageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(50).default(20),
  before: idSchema.optional().openapi({
    description: "Cursor: return conversations older than this id",
  }),
});

export const ParticipantPageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  after: userId.optional().openapi({
    description: "Cursor: return participants whose user id sorts after this one",
  }),
});

export const ActivityQuery = PageQuery.extend({
  actor_id: userId.optional(),
  action: z.string().max(64).optional(),
  conversation_id: idSchema.optional(),
  attachment_id: idSchema.optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});

export const AdminAttachmentsQuery = PageQuery.extend({
  status: z.enum(["processing", "ready", "failed"]).optional(),
});

export const MediaQuery = z.object({
  token: z.string().max(4096).optional().openapi({ description: "Signed media token" }),
});

export type ConversationJson = z.infer<typeof ConversationSchema>;
export type ParticipantJson = z.infer<typeof ParticipantSchema>;
export type AttachmentJson = z.infer<typeof AttachmentSchema>;
export type SubtitleJson = z.infer<typeof SubtitleSchema>;
export type RenditionJson = z.infer<typeof RenditionSchema>;
export type MessageJson = z.infer<typeof MessageSchema>;
export type ActivityJson = z.infer<typeof ActivitySchema>;
