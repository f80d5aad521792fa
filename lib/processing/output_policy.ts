/**
 * What the current policy asks of an attachment's outputs, in one place for
 * the jobs that make them (`processing.ts`) and for the backfill that finds
 * attachments made under another policy (`backfill.ts`).
 *
 * @module
 */
import type { HlsPolicy, RenditionPolicy } from "../config/config.ts";
import type { Attachment } from "../../db/schema.ts";
import { containerNamed } from "../media/containers.ts";
import { hasMoovFirst } from "../media/faststart.ts";
import { wantsLadder } from "../media/hls.ts";
import { planPlayback, type PlaybackPlan } from "../media/playback.ts";
import { renditionLongSide } from "../media/rendition.ts";
import type { PlaybackMeta } from "../media/rendition.ts";

/**
 * The playback plan of an attachment under `policy`. An MP4/MOV original's
 * head is read (from `sourcePath`) to see whether its `moov` box comes first.
 */
export async function playbackPlanOf(
  attachment: Attachment,
  options: { sourcePath: string; policy: RenditionPolicy },
): Promise<PlaybackPlan> {
  const { sourcePath, policy } = options;
  const isoFamily = containerNamed(attachment.container).demuxer === "mov";
  return planPlayback({
    codec: attachment.codec ?? "",
    pixFmt: attachment.pixFmt,
    audioCodec: attachment.audioCodec,
    hdr: attachment.hdr,
    width: attachment.width,
    height: attachment.height,
    fps: attachment.fps,
    bitrate: attachment.bitrate,
  }, {
    container: attachment.container,
    moovFirst: isoFamily && await hasMoovFirst(sourcePath),
    policy,
  });
}

/**
 * Whether an attachment's recorded rendition is larger than `policy` allows
 * (it was transcoded under a larger `RENDITION_MAX_HEIGHT`). A rendition's
 * sides are rounded to even numbers, so one pixel over is within it. Bitrate
 * and frame rate are not compared: an encoder's output may overshoot its
 * target a little, and that must not make every backfill redo it.
 */
export function renditionOverPolicy(
  attachment: Pick<Attachment, "playback" | "playbackMeta">,
  policy: Pick<RenditionPolicy, "maxHeight">,
): boolean {
  if (attachment.playback !== "transcode" || !attachment.playbackMeta) return false;
  const meta = JSON.parse(attachment.playbackMeta) as PlaybackMeta;
  if (!meta.width || !meta.height) return false;
  return Math.min(meta.width, meta.height) > policy.maxHeight + 1 ||
    Math.max(meta.width, meta.height) > renditionLongSide(policy) + 1;
}

/** Whether `policy` gives an attachment an adaptive ladder (its size must be known). */
export function wantsLadderOf<
  A extends Pick<Attachment, "duration" | "bitrate" | "width" | "height">,
>(
  attachment: A,
  policy: HlsPolicy,
): attachment is A & { width: number; height: number } {
  return wantsLadder(attachment, policy) && !!attachment.width && !!attachment.height;
}
