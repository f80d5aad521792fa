import { eq } from "drizzle-orm";
import { type Attachment, attachments, type Job, jobs } from "../../db/schema.ts";
import type { AppDeps } from "../deps.ts";
import { checkRendition, makeRendition } from "../media/rendition.ts";
import type { PlaybackMeta } from "../media/rendition.ts";
import { containerNamed } from "../media/containers.ts";
import { makeStoryboard } from "../media/storyboard.ts";
import { makeStrippedCopy } from "../media/strip.ts";
import { makeCandidates, makePoster, type PosterSource, THUMBNAIL_FILE } from "../media/poster.ts";
import { checkLadder, makeLadder, planLadder } from "../media/hls.ts";
import { memberKey, storageKey } from "../storage/storage.ts";
import { ApiError } from "../core/errors.ts";
import { extractSubtitleStream, probeSubtitleStreams } from "../media/subtitle_streams.ts";
import {
  languageTag,
  subtitleObjectsOf,
  SUBTITLES_PREFIX,
  subtitlesColumn,
  type SubtitleTrack,
  subtitleTracksOf,
  trackLabel,
} from "../chat/subtitles.ts";
import { toWebVtt } from "../media/subtitle_text.ts";
import { playbackPlanOf, wantsLadderOf } from "./output_policy.ts";
import { isPlayable } from "./progress.ts";
import { enqueueWebhook } from "../webhooks/events.ts";

/** What a job needs of the service (also what lib/runners/runner_jobs.ts stores a runner's output with). */
export type ProcessingDeps = Pick<AppDeps, "db" | "storage" | "media" | "config">;

/** What a running job can tell its worker. */
export interface JobContext {
  /** How far the job is, 0 to 1 (throttled by the worker). */
  progress(fraction: number): void;
  /** Aborted when the worker gives the job back (shutdown): its long ffmpeg runs stop. */
  signal?: AbortSignal;
}

/** The job's attachment unless it was deleted; throws when its original is missing. */
export async function loadLive(deps: ProcessingDeps, id: string): Promise<Attachment | null> {
  const [attachment] = await deps.db.select().from(attachments).where(eq(attachments.id, id));
  if (!attachment || attachment.deletedAt !== null) return null;
  if (!(await deps.storage.stat(attachment.storageKey))) {
    throw new Error("The stored video file is missing");
  }
  return attachment;
}

type DerivedKey =
  | "posterKey"
  | "thumbnailKey"
  | "strippedKey"
  | "playbackKey"
  | "hlsKey"
  | "storyboardKey";

/** Where {@linkcode produce} finds an output and records it, and how it is made. */
export interface ProduceOptions {
  /** The temp file `make` writes. */
  temp: string;
  /** The storage key the output is moved to. */
  key: string;
  /** The attachment column that points at the output. */
  column: DerivedKey;
  /** Writes `temp`; returns the attachment columns to set. */
  make: () => Promise<Partial<Attachment>>;
  /** `temp` is a directory of files (a ladder), stored and removed as one. */
  directory?: boolean;
}

/**
 * Runs `make` to write an output into a temp file, moves it to a key named
 * after the job (so each generation has its own key and ETag) and records
 * it with the columns `make` returns, in one write transaction that reads
 * the key it replaces. The replaced file is removed afterwards. The new
 * file is removed instead when the attachment was deleted meanwhile, or when
 * this job was dropped by a reprocess (a newer generation owns the column).
 */
export async function produce(
  deps: ProcessingDeps,
  job: Job,
  output: ProduceOptions,
): Promise<void> {
  const { make, directory = false, ...files } = output;
  await Deno.mkdir(deps.storage.tempDir(), { recursive: true });
  try {
    const update = await make();
    if (directory) await deps.storage.putDirectory(files.temp, files.key);
    else await deps.storage.putFile(files.temp, files.key);
    const outcome = await deps.db.transaction(async (tx) => {
      const [current] = await tx.select().from(attachments)
        .where(eq(attachments.id, job.attachmentId));
      const [live] = await tx.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, job.id));
      if (!current || current.deletedAt !== null || !live) return { keep: false, replaced: null };
      const [after] = await tx.update(attachments).set(update)
        .where(eq(attachments.id, job.attachmentId)).returning();
      if (after) await announcePlayable(tx, deps, current, after);
      return { keep: true, replaced: current[files.column] };
    }); // libSQL's default transaction is a write one (BEGIN IMMEDIATE)
    if (!outcome.keep) await deps.storage.delete(files.key);
    if (outcome.replaced && outcome.replaced !== files.key) {
      await deps.storage.delete(outcome.replaced);
    }
  } finally {
    await Deno.remove(files.temp, { recursive: directory }).catch(() => {});
  }
}

/**
 * Queues `attachment.playable` (in the caller's transaction) when a write
 * made the attachment playable by its receivers for the first time while it
 * is still processing: the moment the events stream's `playable` event
 * turns true for them ("" is no uploader: the uploader may play sooner).
 */
async function announcePlayable(
  tx: Pick<ProcessingDeps["db"], "insert">,
  deps: ProcessingDeps,
  before: Attachment,
  after: Attachment,
): Promise<void> {
  if (after.status !== "processing" || after.deletedAt !== null) return;
  if (isPlayable(before, "") || !isPlayable(after, "")) return;
  await enqueueWebhook(tx, deps.config.webhook, "attachment.playable", after, new Date());
}

/**
 * Where a job's output goes: its storage key (named after the job, so each
 * generation has its own file and ETag, dated by the upload) and its temp
 * file while it is made.
 */
export function outputOf(
  deps: ProcessingDeps,
  job: Job,
  output: { attachment: Attachment; prefix: string; extension?: string },
): { key: string; temp: string } {
  const { attachment, prefix, extension } = output;
  return {
    key: storageKey(prefix, { at: new Date(attachment.uploadedAt), id: job.id, extension }),
    temp: `${deps.storage.tempDir()}/${job.id}.${extension ?? prefix}`,
  };
}

/**
 * The thumbnail job: the candidate frames, and the poster and thumbnail of
 * the default candidate with its ThumbHash, in one directory per generation
 * (`posterKey`); `thumbnailKey` names its thumbnail.
 */
async function thumbnailJob(deps: ProcessingDeps, job: Job): Promise<void> {
  const attachment = await loadLive(deps, job.attachmentId);
  if (!attachment) return;
  const { key, temp } = outputOf(deps, job, { attachment, prefix: "posters" });
  await produce(deps, job, {
    temp,
    key,
    column: "posterKey",
    directory: true,
    make: () =>
      deps.storage.withLocalCopy(attachment.storageKey, async (path) => {
        await Deno.mkdir(temp, { recursive: true });
        const source = posterSourceOf(attachment, path);
        const { times, chosen } = await makeCandidates(deps.media, source, temp);
        const poster = await makePoster(deps.media, source, { at: times[chosen]!, outDir: temp });
        return {
          posterKey: key,
          thumbnailKey: memberKey(key, THUMBNAIL_FILE),
          posterCandidates: JSON.stringify(times),
          posterTime: poster.time,
          thumbhash: poster.thumbhash,
        };
      }),
  });
}

/** What the poster functions need of an attachment whose original is the local file `path`. */
export function posterSourceOf(attachment: Attachment, path: string): PosterSource {
  return {
    path,
    demuxer: containerNamed(attachment.container).demuxer,
    duration: attachment.duration,
    width: attachment.width,
    height: attachment.height,
  };
}

/**
 * What the rendition and the ladder need to know of an attachment's video,
 * as probed at upload: its demuxer, size (2×2 when unknown), audio, frame
 * rate and HDR. A local job and a runner's task describe it alike.
 */
export function videoOf(attachment: Attachment) {
  return {
    demuxer: containerNamed(attachment.container).demuxer,
    width: attachment.width ?? 2,
    height: attachment.height ?? 2,
    hasAudio: attachment.hasAudio,
    fps: attachment.fps,
    hdr: attachment.hdr,
  };
}

async function renditionJob(deps: ProcessingDeps, job: Job, context: JobContext): Promise<void> {
  const attachment = await loadLive(deps, job.attachmentId);
  if (!attachment) return;
  await deps.storage.withLocalCopy(
    attachment.storageKey,
    (sourcePath) => renditionFrom(deps, job, context, { attachment, sourcePath }),
  );
}

/** The rendition job once its original is a local file (`sourcePath`). */
async function renditionFrom(
  deps: ProcessingDeps,
  job: Job,
  context: JobContext,
  input: { attachment: Attachment; sourcePath: string },
): Promise<void> {
  const { attachment, sourcePath } = input;
  const policy = deps.config.renditionPolicy;
  const plan = await playbackPlanOf(attachment, { sourcePath, policy });
  if (plan === "original") {
    await deps.db.transaction(async (tx) => {
      const [before] = await tx.select().from(attachments).where(eq(attachments.id, attachment.id));
      const [after] = await tx.update(attachments)
        .set({ playback: "original", playbackKey: null, playbackMeta: null })
        .where(eq(attachments.id, attachment.id))
        .returning();
      if (before && after) await announcePlayable(tx, deps, before, after);
    });
    if (attachment.playbackKey) await deps.storage.delete(attachment.playbackKey);
    return;
  }
  const source = { path: sourcePath, ...videoOf(attachment) };
  const { key, temp } = outputOf(deps, job, { attachment, prefix: "renditions", extension: "mp4" });
  await produce(deps, job, {
    temp,
    key,
    column: "playbackKey",
    make: async () => {
      await makeRendition(deps.media, source, {
        plan,
        outPath: temp,
        policy,
        duration: attachment.duration,
        onProgress: (f) => context.progress(f),
        signal: context.signal,
      });
      const meta: PlaybackMeta = await checkRendition(deps.media, temp);
      return { playback: plan, playbackKey: key, playbackMeta: JSON.stringify(meta) };
    },
  });
}

async function storyboardJob(deps: ProcessingDeps, job: Job): Promise<void> {
  const attachment = await loadLive(deps, job.attachmentId);
  if (!attachment) return;
  const { key, temp } = outputOf(deps, job, {
    attachment,
    prefix: "storyboards",
    extension: "jpg",
  });
  await produce(deps, job, {
    temp,
    key,
    column: "storyboardKey",
    make: () =>
      deps.storage.withLocalCopy(attachment.storageKey, async (path) => {
        const layout = await makeStoryboard(deps.media, {
          path,
          demuxer: containerNamed(attachment.container).demuxer,
          duration: attachment.duration ?? 0,
          width: attachment.width ?? 2,
          height: attachment.height ?? 2,
        }, temp);
        return { storyboardKey: key, storyboardLayout: JSON.stringify(layout) };
      }),
  });
}

/**
 * The copy of the original that receivers download (and play, when the
 * original plays as it is): the same packets, without the metadata. With
 * STRIP_METADATA off there is none, and the original is served.
 */
async function stripJob(deps: ProcessingDeps, job: Job): Promise<void> {
  if (!deps.config.stripMetadata) return;
  const attachment = await loadLive(deps, job.attachmentId);
  if (!attachment) return;
  const container = containerNamed(attachment.container);
  const { key, temp } = outputOf(deps, job, {
    attachment,
    prefix: "stripped",
    extension: container.extensions[0],
  });
  await produce(deps, job, {
    temp,
    key,
    column: "strippedKey",
    make: () =>
      deps.storage.withLocalCopy(attachment.storageKey, async (path) => {
        await makeStrippedCopy(deps.media, { path, demuxer: container.demuxer, container }, temp);
        return { strippedKey: key };
      }),
  });
}

/**
 * The adaptive ladder (HLS and DASH over the same CMAF segments) of a video
 * that lasts long enough (`HLS_MIN_DURATION`), all rungs from one ffmpeg run,
 * checked file by file before it is recorded. A video the policy no longer
 * gives a ladder (HLS turned off, say) loses the one it had.
 */
async function hlsJob(deps: ProcessingDeps, job: Job, context: JobContext): Promise<void> {
  const attachment = await loadLive(deps, job.attachmentId);
  if (!attachment) return;
  if (!wantsLadderOf(attachment, deps.config.hlsPolicy)) {
    await deps.db.update(attachments).set({ hlsKey: null, hlsLadder: null })
      .where(eq(attachments.id, attachment.id));
    if (attachment.hlsKey) await deps.storage.delete(attachment.hlsKey);
    return;
  }
  await deps.storage.withLocalCopy(
    attachment.storageKey,
    (path) => ladderFrom(deps, job, context, { attachment, path }),
  );
}

/** The ladder job once its original is a local file (`path`). */
async function ladderFrom(
  deps: ProcessingDeps,
  job: Job,
  context: JobContext,
  input: { attachment: Attachment & { width: number; height: number }; path: string },
): Promise<void> {
  const { attachment, path } = input;
  const source = {
    path,
    ...videoOf(attachment),
    bitrate: attachment.bitrate,
    duration: attachment.duration,
  };
  const policy = deps.config.renditionPolicy;
  const rungs = planLadder(source, policy);
  const { key, temp } = outputOf(deps, job, { attachment, prefix: "hls" });
  await produce(deps, job, {
    temp,
    key,
    column: "hlsKey",
    directory: true,
    make: async () => {
      await makeLadder(deps.media, source, {
        rungs,
        outDir: temp,
        maxFps: policy.maxFps,
        onProgress: (f) => context.progress(f),
        signal: context.signal,
      });
      const ladder = await checkLadder(deps.media, {
        outDir: temp,
        rungs,
        hasAudio: attachment.hasAudio,
        duration: attachment.duration,
      });
      return { hlsKey: key, hlsLadder: JSON.stringify(ladder) };
    },
  });
}

/**
 * The upload's text subtitle streams as WebVTT, one file per track (`<n>.vtt`)
 * in one directory stored under a key named after the job (so fsck sees a
 * running job's output as its own), each read back through our own parser
 * and written again from its sanitised cues. Image streams (PGS, DVB), and a
 * text stream ffmpeg fails to convert, are counted in `subtitles_skipped`; a
 * track without a cue is left out, so subtitles never fail the video.
 * The new embedded tracks replace the old ones in one write transaction that
 * keeps the sidecar tracks; the replaced directory is removed after, or the
 * new one when the attachment was deleted or the job dropped meanwhile.
 */
async function subtitlesJob(
  deps: ProcessingDeps,
  job: Job,
  { signal }: JobContext,
): Promise<void> {
  const attachment = await loadLive(deps, job.attachmentId);
  if (!attachment) return;
  // Nothing to extract: the upload had no subtitle stream (ingest says so), or a run found none.
  const embedded = subtitleTracksOf(attachment).some((track) => track.source === "embedded");
  if (attachment.subtitlesSkipped === 0 && !embedded) return;
  const demuxer = containerNamed(attachment.container).demuxer;
  const outDir = `${deps.storage.tempDir()}/${job.id}.subtitles`;
  const dirKey = storageKey(SUBTITLES_PREFIX, { at: new Date(attachment.uploadedAt), id: job.id });
  const made: SubtitleTrack[] = [];
  let skipped = 0;
  try {
    await Deno.mkdir(outDir, { recursive: true });
    await deps.storage.withLocalCopy(attachment.storageKey, async (path) => {
      for (const stream of await probeSubtitleStreams(deps.media, { path, demuxer })) {
        if (!stream.text) {
          skipped++;
          continue;
        }
        const raw = `${outDir}/${stream.index}.ffmpeg`;
        const cues = await extractSubtitleStream(deps.media, { path, demuxer }, {
          index: stream.index,
          outPath: raw,
        }).catch((error) => {
          // Given back (shutdown): the job runs again. Otherwise a track ffmpeg cannot convert,
          // or without a cue, is left out: subtitles never fail the video.
          if (signal?.aborted) throw error;
          if (!(error instanceof ApiError)) skipped++;
          return null;
        });
        await Deno.remove(raw).catch(() => {});
        if (!cues) continue;
        await Deno.writeTextFile(`${outDir}/${stream.index}.vtt`, toWebVtt(cues));
        let language = "und";
        try {
          language = languageTag(stream.language, "und");
        } catch { /* not a BCP 47 tag: unknown */ }
        made.push({
          id: `${job.id}.${stream.index}`,
          language,
          label: trackLabel(stream.title) || language,
          source: "embedded",
          key: memberKey(dirKey, `${stream.index}.vtt`),
        });
      }
    });
    if (made.length > 0) await deps.storage.putDirectory(outDir, dirKey);
  } finally {
    await Deno.remove(outDir, { recursive: true }).catch(() => {});
  }
  const replaced = await deps.db.transaction(async (tx) => {
    const [current] = await tx.select().from(attachments)
      .where(eq(attachments.id, job.attachmentId));
    const [live] = await tx.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, job.id));
    if (!current || current.deletedAt !== null || !live) return null;
    const tracks = subtitleTracksOf(current);
    await tx.update(attachments).set({
      subtitles: subtitlesColumn([...made, ...tracks.filter((t) => t.source === "sidecar")]),
      subtitlesSkipped: skipped,
    }).where(eq(attachments.id, job.attachmentId));
    return subtitleObjectsOf({
      subtitles: subtitlesColumn(tracks.filter((t) => t.source === "embedded")),
    });
  });
  if (replaced === null) {
    if (made.length > 0) await deps.storage.delete(dirKey);
    return;
  }
  await Promise.all(
    replaced.filter((key) => key !== dirKey).map((key) => deps.storage.delete(key)),
  );
}

/** Runs one claimed job; throws to have it retried. */
export async function runJob(deps: ProcessingDeps, job: Job, context: JobContext): Promise<void> {
  switch (job.kind) {
    case "thumbnail":
      return await thumbnailJob(deps, job);
    case "strip":
      return await stripJob(deps, job);
    case "subtitles":
      return await subtitlesJob(deps, job, context);
    case "rendition":
      return await renditionJob(deps, job, context);
    case "hls":
      return await hlsJob(deps, job, context);
    case "storyboard":
      return await storyboardJob(deps, job);
    default:
      throw new Error(`Unknown job kind "${job.kind}"`);
  }
}
