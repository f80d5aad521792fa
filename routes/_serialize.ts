import type { Activity, Attachment, Conversation, Message } from "../db/schema.ts";
import type {
  ActivityJson,
  AttachmentJson,
  ConversationJson,
  MessageJson,
  ParticipantJson,
  RenditionJson,
  SubtitleJson,
} from "./_schemas.ts";
import { subtitleTracksOf } from "../lib/chat/subtitles.ts";
import { DASH_MANIFEST, type MadeLadder, MASTER_PLAYLIST } from "../lib/media/hls.ts";
import type { PlaybackMeta } from "../lib/media/rendition.ts";
import { isPlayable } from "../lib/processing/progress.ts";
import { posterCandidatesOf } from "../lib/chat/poster.ts";
import type { Auth, MediaPurpose, User } from "../lib/auth/auth.ts";

const iso = (ms: number | null): string | null => ms === null ? null : new Date(ms).toISOString();

/** `M:SS`, or `H:MM:SS` from one hour. */
export function formatDuration(seconds: number | null): string | null {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return null;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = (total % 60).toString().padStart(2, "0");
  return h > 0 ? `${h}:${m.toString().padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function parsed<T>(json: string | null): T | null {
  if (!json) return null;
  try {
    return JSON.parse(json) as T;
  } catch {
    return null;
  }
}

/** The Attachment JSON's `renditions`: the progressive rendition, then the ladder's rungs. */
export function renditionsOf(attachment: Attachment): RenditionJson[] {
  const list: RenditionJson[] = [];
  const progressive = attachment.playbackKey ? parsed<PlaybackMeta>(attachment.playbackMeta) : null;
  if (progressive) list.push({ kind: "progressive", ...progressive });
  const ladder = attachment.hlsKey ? parsed<MadeLadder>(attachment.hlsLadder) : null;
  for (const rung of ladder?.rungs ?? []) {
    list.push({
      kind: "hls",
      width: rung.width,
      height: rung.height,
      bitrate: Math.round(rung.bandwidth / 1000),
      codec: rung.codecs,
      bytes: rung.bytes,
    });
  }
  return list;
}

/** What the serializers need to build signed media URLs. */
export interface UrlContext {
  auth: Auth;
  user: User;
  publicUrl: string;
}

/** The Attachment JSON of the contract, with signed media URLs for `user`. */
export async function serializeAttachment(
  attachment: Attachment,
  context: UrlContext,
): Promise<AttachmentJson> {
  const base = `${context.publicUrl}/api/chat/videos/${attachment.id}`;
  const signed = async (path: string, purpose: MediaPurpose): Promise<string> =>
    `${base}${path}${path.includes("?") ? "&" : "?"}token=${await context.auth.signMediaToken(
      context.user,
      { attachmentId: attachment.id, purpose },
    )}`;
  const ready = attachment.status !== "failed";
  const hlsToken = attachment.hlsKey
    ? await context.auth.signMediaToken(context.user, {
      attachmentId: attachment.id,
      purpose: "hls",
    })
    : null;
  // One token opens the thumbnail, the poster and the candidates (query parameters).
  const thumbnailUrl = attachment.thumbnailKey ? await signed("/thumbnail", "thumbnail") : null;
  return {
    id: attachment.id,
    message_id: attachment.messageId,
    conversation_id: attachment.conversationId,
    uploader_id: attachment.uploaderId,
    file_name: attachment.fileName,
    file_type: attachment.fileType,
    mime_type: attachment.mimeType,
    file_size: attachment.fileSize,
    file_size_mb: Math.round(attachment.fileSize / 1024 / 1024 * 100) / 100,
    sha256: attachment.sha256,
    status: attachment.status,
    error: attachment.error,
    duration: attachment.duration,
    duration_formatted: formatDuration(attachment.duration),
    width: attachment.width,
    height: attachment.height,
    rotation: attachment.rotation,
    video_dimensions: attachment.width !== null && attachment.height !== null
      ? [attachment.width, attachment.height] as [number, number]
      : null,
    bitrate: attachment.bitrate,
    codec: attachment.codec,
    audio_codec: attachment.audioCodec,
    fps: attachment.fps,
    pix_fmt: attachment.pixFmt,
    color_space: attachment.colorSpace,
    hdr: attachment.hdr,
    has_audio: attachment.hasAudio,
    audio_channels: attachment.audioChannels,
    audio_sample_rate: attachment.audioSampleRate,
    container: attachment.container,
    playback: attachment.playback,
    url: await signed("/download/", "download"),
    // The exact uploaded bytes, metadata and all: for the one who uploaded them.
    original_url: attachment.uploaderId === context.user.id
      ? await signed("/download/?original=1", "download")
      : null,
    stream_url: ready ? await signed("/stream", "stream") : null,
    playable: isPlayable(attachment, context.user.id),
    hls_url: hlsToken ? `${base}/hls/${hlsToken}/${MASTER_PLAYLIST}` : null,
    dash_url: hlsToken ? `${base}/hls/${hlsToken}/${DASH_MANIFEST}` : null,
    renditions: renditionsOf(attachment),
    thumbnail_url: thumbnailUrl,
    poster_url: attachment.thumbnailKey
      ? `${thumbnailUrl}${attachment.posterKey ? "&size=poster" : ""}`
      : null,
    poster_time: attachment.posterTime,
    poster_candidates: attachment.posterKey && thumbnailUrl
      ? posterCandidatesOf(attachment).map((time, index) => ({
        index,
        time,
        url: `${thumbnailUrl}&candidate=${index}`,
      }))
      : [],
    thumbhash: attachment.thumbhash,
    storyboard_url: attachment.storyboardKey ? await signed("/storyboard.vtt", "storyboard") : null,
    subtitles: await serializeSubtitles(attachment, context),
    subtitles_skipped: attachment.subtitlesSkipped,
    events_url:
      `${context.publicUrl}/api/chat/attachments/${attachment.id}/events?token=${await context
        .auth.signMediaToken(context.user, { attachmentId: attachment.id, purpose: "events" })}`,
    uploaded_at: iso(attachment.uploadedAt),
    processed_at: iso(attachment.processedAt),
  };
}

/** An attachment's subtitle tracks, each with a URL signed for `subtitles`. */
export async function serializeSubtitles(
  attachment: Attachment,
  context: UrlContext,
): Promise<SubtitleJson[]> {
  const tracks = subtitleTracksOf(attachment);
  if (tracks.length === 0) return [];
  const token = await context.auth.signMediaToken(context.user, {
    attachmentId: attachment.id,
    purpose: "subtitles",
  });
  const base = `${context.publicUrl}/api/chat/videos/${attachment.id}/subtitles`;
  return tracks.map((track) => ({
    id: track.id,
    language: track.language,
    label: track.label,
    source: track.source,
    url: `${base}/${track.id}.vtt?token=${token}`,
  }));
}

/** A conversation with the participants it embeds and their total count. */
export function serializeConversation(
  conversation: Conversation,
  preview: { participants: { userId: string; role: string; joinedAt: number }[]; count: number },
): ConversationJson {
  return {
    id: conversation.id,
    title: conversation.title,
    created_by: conversation.createdBy,
    created_at: iso(conversation.createdAt),
    participants: preview.participants.map(serializeParticipant),
    participant_count: preview.count,
  };
}

/** One participant. */
export function serializeParticipant(
  participant: { userId: string; role: string; joinedAt: number },
): ParticipantJson {
  return {
    user_id: participant.userId,
    role: participant.role,
    joined_at: iso(participant.joinedAt),
  };
}

/** A message with its attachments (already serialized). */
export function serializeMessage(
  message: Message,
  attachmentJson: AttachmentJson[],
): MessageJson {
  return {
    id: message.id,
    conversation_id: message.conversationId,
    sender_id: message.senderId,
    body: message.body,
    created_at: iso(message.createdAt),
    attachments: attachmentJson,
  };
}

/** One activity log row. */
export function serializeActivity(activity: Activity): ActivityJson {
  let detail: unknown = null;
  try {
    detail = activity.detail ? JSON.parse(activity.detail) : null;
  } catch {
    detail = activity.detail;
  }
  return {
    id: activity.id,
    at: iso(activity.at),
    actor_id: activity.actorId,
    action: activity.action,
    conversation_id: activity.conversationId,
    attachment_id: activity.attachmentId,
    ip: activity.ip,
    user_agent: activity.userAgent,
    detail,
  };
}
