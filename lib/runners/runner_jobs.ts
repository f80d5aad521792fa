/**
 * The service's side of remote runners: hands out jobs by lease, takes
 * progress and outputs, and checks every output exactly as a local
 * worker's is checked before it is stored (the same check functions:
 * ffprobe under the allowlists and limits, checkRendition, checkLadder)
 * and recorded (produce(), lib/processing/processing.ts).
 *
 * A runner's lease is the `jobs` table's: its jobs have `locked_by =
 * runner-<id>` and a lease of `RUNNER_STALL_MS`, which each progress report
 * renews. A runner that stops reporting loses the job as a crashed worker
 * does (JobQueue.claim takes expired leases), and every later request for
 * that run gets 409: each one names the job and its attempt, the claim's
 * generation, as JobQueue's writes do.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { eq, sql } from "drizzle-orm";
import { type Attachment, type Job, jobs, type Runner, runners } from "../../db/schema.ts";
import type { AppDeps } from "../deps.ts";
import { ApiError } from "../core/errors.ts";
import { containerNamed } from "../media/containers.ts";
import { checkLadder, LADDER_FILE, planLadder } from "../media/hls.ts";
import { probeVideo } from "../media/probe.ts";
import { checkRendition } from "../media/rendition.ts";
import { planStoryboard } from "../media/storyboard.ts";
import { literalMessage } from "../observability/logging.ts";
import { JobQueue, nextRunnable } from "../processing/jobs.ts";
import { playbackPlanOf, wantsLadderOf } from "../processing/output_policy.ts";
import {
  loadLive,
  outputOf,
  produce,
  type ProduceOptions,
  runJob,
  videoOf,
} from "../processing/processing.ts";
import { redactPaths } from "../processing/worker.ts";
import { insufficientStorage, isOutOfSpace } from "../storage/disk_space.ts";
import { S3Storage } from "../storage/s3_storage.ts";
import { DiskStorage } from "../storage/storage.ts";
import { kindsOf, runnerWorkerId } from "./registry.ts";
import { type RunnerTask, SINGLE_OUTPUT } from "./tasks.ts";

/** What the runner routes need of the service. */
export type RunnerDeps = Pick<
  AppDeps,
  "db" | "storage" | "media" | "config" | "clock" | "metrics" | "auth"
>;

/** How long the signed URL of a job's input is good for: the runner fetches it at once. */
export const INPUT_URL_TTL_MS = 5 * 60_000;
/** The most files a runner may post for one job (a ladder of a six-hour video has fewer). */
export const MAX_OUTPUT_FILES = 20_000;
/** A thumbnail or storyboard sprite larger than this is not one. */
const MAX_IMAGE_BYTES = 16 * 1024 * 1024;

/** The jobs table as seen by one runner: its lease owner name, its stall timeout. */
function queueOf(deps: RunnerDeps, runner: Runner): JobQueue {
  return new JobQueue({
    db: deps.db,
    workerId: runnerWorkerId(runner.id),
    leaseMs: deps.config.runnerStallMs,
    clock: deps.clock,
    webhook: deps.config.webhook,
  });
}

/**
 * Where posted outputs wait for their check: under DATA_DIR rather than in
 * one process's temp directory, so that whichever API process of the host
 * takes a runner's next request (REUSE_PORT spreads them) finds them.
 */
function outputsRoot(deps: Pick<RunnerDeps, "config">): string {
  return `${deps.config.dataDir}/runner-outputs`;
}

/** Where a job attempt's posted outputs wait for their check. */
function outputDir(deps: RunnerDeps, job: Pick<Job, "id" | "attempts">): string {
  return `${outputsRoot(deps)}/${job.id}-${job.attempts}`;
}

/** The output directories, as `{ name, jobId, attempt }` (none when the root does not exist). */
async function outputDirs(
  deps: Pick<RunnerDeps, "config">,
): Promise<{ name: string; jobId: string; attempt: number }[]> {
  const found: { name: string; jobId: string; attempt: number }[] = [];
  try {
    for await (const entry of Deno.readDir(outputsRoot(deps))) {
      const match = /^(.+)-(\d+)$/.exec(entry.name);
      if (entry.isDirectory && match) {
        found.push({ name: entry.name, jobId: match[1]!, attempt: Number(match[2]) });
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found;
}

/** Removes what earlier attempts of a job left of their posted outputs. */
async function removeOutputDirs(deps: RunnerDeps, jobId: string): Promise<void> {
  for (const dir of await outputDirs(deps)) {
    if (dir.jobId === jobId) {
      await Deno.remove(`${outputsRoot(deps)}/${dir.name}`, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Removes posted outputs that no runner will complete: those of a job that
 * is no longer running that attempt for a runner (it stalled and went back,
 * another worker finished it, the attachment was deleted), once they have
 * not changed for `graceMs`. Run by the sweep of `main.ts serve`; returns
 * how many directories it removed.
 */
export async function sweepRunnerOutputs(
  deps: Pick<RunnerDeps, "config" | "db" | "clock">,
  graceMs: number,
): Promise<number> {
  let removed = 0;
  const now = deps.clock().getTime();
  for (const dir of await outputDirs(deps)) {
    const path = `${outputsRoot(deps)}/${dir.name}`;
    const changed = (await Deno.stat(path).catch(() => null))?.mtime?.getTime() ?? 0;
    if (now - changed < graceMs) continue;
    const [job] = await deps.db.select().from(jobs).where(eq(jobs.id, dir.jobId));
    const held = job?.status === "running" && job.attempts === dir.attempt &&
      (job.lockedBy ?? "").startsWith("runner-");
    if (held) continue;
    await Deno.remove(path, { recursive: true }).catch(() => {});
    removed++;
  }
  return removed;
}

/** The kinds a request may ask for: those it names that the runner registered for. */
function allowedKinds(runner: Runner, asked: readonly string[] | undefined): string[] {
  const registered = kindsOf(runner);
  return asked ? registered.filter((kind) => asked.includes(kind)) : registered;
}

/** The next job a runner could accept, without taking it; null when there is none. */
export async function requestJob(
  deps: RunnerDeps,
  runner: Runner,
  kinds?: readonly string[],
): Promise<{ id: string; kind: string } | null> {
  const t = deps.clock().getTime();
  await queueOf(deps, runner).failAbandoned();
  const rows = await deps.db.all<{ id: string; kind: string }>(
    sql`SELECT id, kind FROM jobs WHERE id = (${
      nextRunnable(t, { kinds: allowedKinds(runner, kinds) })
    })`,
  );
  const row = rows[0];
  return row ? { id: String(row.id), kind: String(row.kind) } : null;
}

/** What a runner gets when it accepts a job. */
export interface AcceptedJob {
  job: Job;
  /** Null when the job needed no ffmpeg run and is already done: ask for another. */
  task: RunnerTask | null;
}

/** How a job run ended, as the job log line and metrics say it. */
interface RunnerJobEnd {
  job: Job;
  runner: Runner;
  outcome: "done" | "retry" | "failed";
  ms: number;
  error?: string;
}

/** One log line (category `offchat.job`, as the worker's) and the job metrics, for a runner's run. */
function reportEnd(deps: RunnerDeps, end: RunnerJobEnd): void {
  const { job, runner, outcome, ms, error } = end;
  deps.metrics.observeJob({ kind: job.kind, outcome, ms });
  getLogger(["offchat", "job"])
    [outcome === "done" ? "info" : outcome === "retry" ? "warn" : "error"](
      literalMessage(`job ${job.kind} ${outcome}`),
      {
        jobId: job.id,
        kind: job.kind,
        attachmentId: job.attachmentId,
        attempt: job.attempts,
        outcome,
        ms,
        error,
        runnerId: runner.id,
        runnerName: runner.name,
      },
    );
}

/**
 * What a job asks of ffmpeg, decided here as a local worker's run decides
 * it (lib/processing/processing.ts); null when it needs no ffmpeg run (its
 * attachment was deleted, the original plays as it is, no ladder is
 * wanted, stripping is off) or is done here: the `subtitles` job, whose
 * runs read only the subtitle streams and write a few small files per
 * track, is settled by this process like the others that need no runner.
 */
async function taskOf(deps: RunnerDeps, job: Job, attachment: Attachment): Promise<
  RunnerTask | null
> {
  const policy = deps.config.renditionPolicy;
  const display = videoOf(attachment);
  const { demuxer } = display;
  switch (job.kind) {
    case "thumbnail":
      return { kind: "thumbnail", demuxer, duration: attachment.duration };
    case "strip":
      return deps.config.stripMetadata ? { kind: "strip", container: attachment.container } : null;
    case "rendition": {
      const plan = await deps.storage.withLocalCopy(
        attachment.storageKey,
        (sourcePath) => playbackPlanOf(attachment, { sourcePath, policy }),
      );
      if (plan === "original") return null;
      return { kind: "rendition", plan, source: display, duration: attachment.duration, policy };
    }
    case "hls": {
      if (!wantsLadderOf(attachment, deps.config.hlsPolicy)) return null;
      const source = {
        ...display,
        bitrate: attachment.bitrate,
        duration: attachment.duration,
      };
      return { kind: "hls", source, rungs: planLadder(source, policy), maxFps: policy.maxFps };
    }
    case "storyboard":
      return {
        kind: "storyboard",
        demuxer,
        duration: attachment.duration ?? 0,
        width: attachment.width ?? 2,
        height: attachment.height ?? 2,
      };
    case "subtitles":
      return null;
    default:
      throw new Error(`Unknown job kind "${job.kind}"`);
  }
}

/**
 * Finishes here a job that needs no ffmpeg run: the local code path, which
 * runs none for it (processing.ts), then the job is done.
 */
async function settleHere(deps: RunnerDeps, job: Job, runner: Runner): Promise<void> {
  const started = performance.now();
  await runJob(deps, job, { progress: () => {} });
  await queueOf(deps, runner).complete(job);
  reportEnd(deps, { job, runner, outcome: "done", ms: Math.round(performance.now() - started) });
}

/**
 * Takes a job for a runner by lease (409 when another worker or runner got
 * it first, or it is not of the runner's kinds) and describes its work.
 */
export async function acceptJob(
  deps: RunnerDeps,
  runner: Runner,
  jobId: string,
): Promise<AcceptedJob> {
  const queue = queueOf(deps, runner);
  const job = await queue.claim({ id: jobId, kinds: kindsOf(runner) });
  if (!job) throw new ApiError("conflict", "The job is no longer available");
  await removeOutputDirs(deps, job.id);
  try {
    const attachment = await loadLive(deps, job.attachmentId);
    const task = attachment ? await taskOf(deps, job, attachment) : null;
    if (!task) await settleHere(deps, job, runner);
    return { job, task };
  } catch (error) {
    const reason = redactPaths(error instanceof Error ? error.message : String(error));
    const outcome = await queue.fail(job, reason);
    reportEnd(deps, { job, runner, outcome, ms: 0, error: reason });
    return { job, task: null };
  }
}

/** The run of `jobId` that `runner` holds at `attempt`; 409 when it lost it. */
async function heldJob(
  deps: RunnerDeps,
  runner: Runner,
  run: { jobId: string; attempt: number },
): Promise<Job> {
  const [job] = await deps.db.select().from(jobs).where(eq(jobs.id, run.jobId));
  if (
    !job || job.status !== "running" || job.lockedBy !== runnerWorkerId(runner.id) ||
    job.attempts !== run.attempt
  ) {
    throw new ApiError(
      "conflict",
      "This runner no longer holds the job (it stalled, was revoked, or the job was reprocessed)",
    );
  }
  return job;
}

/** Renews a runner's lease on its job and records its progress (0 to 1) when given. */
export async function reportProgress(
  deps: RunnerDeps,
  runner: Runner,
  run: { jobId: string; attempt: number; progress?: number },
): Promise<void> {
  const job = await heldJob(deps, runner, run);
  const queue = queueOf(deps, runner);
  if (!(await queue.extend(job))) {
    throw new ApiError("conflict", "This runner no longer holds the job");
  }
  if (run.progress !== undefined) await queue.progress(job, run.progress);
}

/** Signs the URL a runner reads a job's original from (purpose `runner-input`, short-lived). */
export async function inputUrl(deps: RunnerDeps, runner: Runner, job: Job): Promise<string> {
  const token = await deps.auth.signMediaToken(
    { id: runnerWorkerId(runner.id), admin: false },
    {
      attachmentId: `${job.id}.${job.attempts}`,
      purpose: "runner-input",
      notAfter: Date.now() + INPUT_URL_TTL_MS,
    },
  );
  return `${deps.config.publicUrl}/api/runners/jobs/${job.id}/input?attempt=${job.attempts}&token=${token}`;
}

/**
 * Opens a job's original for the runner whose signed URL this is, while it
 * still holds the run the URL was made for (401 for a bad token, 409 for a
 * lost run).
 */
export async function openInput(
  deps: RunnerDeps,
  request: { jobId: string; attempt: number; token: string },
): Promise<{ body: ReadableStream<Uint8Array>; size: number }> {
  const access = await deps.auth.verifyMediaToken(request.token, {
    attachmentId: `${request.jobId}.${request.attempt}`,
    purpose: "runner-input",
  });
  // A revoked runner's URL dies with its token, even before another worker takes the job.
  const [runner] = await deps.db.select({ revokedAt: runners.revokedAt }).from(runners)
    .where(eq(runners.id, access.user.id.replace(/^runner-/, "")));
  if (!runner || runner.revokedAt !== null) {
    throw new ApiError("unauthorized", "Invalid or revoked runner token");
  }
  const [job] = await deps.db.select().from(jobs).where(eq(jobs.id, request.jobId));
  if (
    !job || job.status !== "running" || job.lockedBy !== access.user.id ||
    job.attempts !== request.attempt
  ) {
    throw new ApiError("conflict", "This runner no longer holds the job");
  }
  const attachment = await loadLive(deps, job.attachmentId);
  if (!attachment) throw new ApiError("gone", "The attachment was deleted");
  // Streamed from where the original is: the file on disk, or the object in the bucket.
  const { storage } = deps;
  if (storage instanceof S3Storage) {
    const stored = await storage.head(attachment.storageKey);
    if (!stored) throw new ApiError("gone", "The original is missing");
    const { body } = await storage.openRead(attachment.storageKey);
    return { body, size: stored.size };
  }
  if (!(storage instanceof DiskStorage)) throw new Error("an unknown storage backend");
  const file = await Deno.open(storage.localPath(attachment.storageKey), { read: true });
  return { body: file.readable, size: (await file.stat()).size };
}

/** The most bytes a job's posted outputs may take together: four times an upload, and some. */
function outputBudget(deps: RunnerDeps): number {
  return 4 * deps.config.maxUploadBytes + 64 * 1024 * 1024;
}

async function directoryUsage(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const entry of Deno.readDir(dir)) {
    files++;
    if (entry.isFile) bytes += (await Deno.stat(`${dir}/${entry.name}`)).size;
  }
  return { files, bytes };
}

/**
 * Streams one posted output file to the job attempt's directory, counting
 * bytes against the job's budget (413 past it, the partial file removed).
 * Names are checked before a byte is written: {@linkcode SINGLE_OUTPUT} for
 * every kind but `hls`, a ladder file's shape (LADDER_FILE) for `hls`.
 */
export async function receiveOutput(
  deps: RunnerDeps,
  runner: Runner,
  upload: { jobId: string; attempt: number; name: string; body: ReadableStream<Uint8Array> | null },
): Promise<void> {
  const job = await heldJob(deps, runner, upload);
  const allowed = job.kind === "hls"
    ? LADDER_FILE.test(upload.name)
    : upload.name === SINGLE_OUTPUT;
  if (!allowed) {
    throw new ApiError(
      "invalid_request",
      `A ${job.kind} job has no output "${upload.name.slice(0, 80)}"`,
    );
  }
  if (!upload.body) throw new ApiError("invalid_request", "The output has no body");
  const dir = outputDir(deps, job);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const usage = await directoryUsage(dir);
  if (usage.files >= MAX_OUTPUT_FILES) {
    throw new ApiError("payload_too_large", `More than ${MAX_OUTPUT_FILES} output files`);
  }
  const path = `${dir}/${upload.name}`;
  let left = outputBudget(deps) - usage.bytes;
  const file = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o600 });
  let complete = false;
  try {
    for await (const chunk of upload.body) {
      left -= chunk.byteLength;
      if (left < 0) {
        throw new ApiError("payload_too_large", "The job's outputs are larger than allowed");
      }
      let written = 0;
      while (written < chunk.byteLength) written += await file.write(chunk.subarray(written));
    }
    complete = true;
  } finally {
    file.close();
    if (!complete) await Deno.remove(path).catch(() => {});
  }
}

/** A JPEG of at most {@linkcode MAX_IMAGE_BYTES}: its start and end markers are there. */
async function checkJpeg(path: string): Promise<void> {
  const size = (await Deno.stat(path)).size;
  if (size < 4 || size > MAX_IMAGE_BYTES) throw new Error(`The image has ${size} bytes`);
  const file = await Deno.open(path, { read: true });
  try {
    const head = new Uint8Array(3);
    const tail = new Uint8Array(2);
    await file.read(head);
    await file.seek(-2, Deno.SeekMode.End);
    await file.read(tail);
    if (head[0] !== 0xff || head[1] !== 0xd8 || head[2] !== 0xff) {
      throw new Error("The image is not a JPEG");
    }
    if (tail[0] !== 0xff || tail[1] !== 0xd9) throw new Error("The JPEG is truncated");
  } finally {
    file.close();
  }
}

/**
 * Checks a runner's posted output and stores it as a local worker's output
 * is stored (produce(): a key named after the job, one write transaction,
 * the replaced output removed). The task is decided again here from the
 * attachment and the policy, never taken from the runner.
 */
async function storeOutput(deps: RunnerDeps, job: Job, dir: string): Promise<void> {
  const attachment = await loadLive(deps, job.attachmentId);
  const task = attachment ? await taskOf(deps, job, attachment) : null;
  if (!attachment || !task) return void await runJob(deps, job, { progress: () => {} });
  const single = `${dir}/${SINGLE_OUTPUT}`;
  const store = (output: Omit<ProduceOptions, "key">, key: string) =>
    produce(deps, job, { ...output, key });
  switch (task.kind) {
    case "thumbnail": {
      const { key } = outputOf(deps, job, { attachment, prefix: "thumbnails", extension: "jpg" });
      return await store({
        temp: single,
        column: "thumbnailKey",
        make: async () => {
          await checkJpeg(single);
          // A runner makes the single thumbnail only: a poster generation made before (by a
          // local job) no longer stands for this one; `fsck --repair` removes its directory.
          return {
            thumbnailKey: key,
            posterKey: null,
            posterCandidates: null,
            posterTime: null,
            thumbhash: null,
          };
        },
      }, key);
    }
    case "strip": {
      const container = containerNamed(attachment.container);
      const { key } = outputOf(deps, job, {
        attachment,
        prefix: "stripped",
        extension: container.extensions[0],
      });
      return await store({
        temp: single,
        column: "strippedKey",
        make: async () => {
          // Read as an upload is read; a stream copy keeps the original's video codec.
          const copy = await probeVideo(deps.media, single, { container });
          if (copy.codec !== attachment.codec) {
            throw new Error(
              `The stripped copy has codec "${copy.codec}", not "${attachment.codec}"`,
            );
          }
          return { strippedKey: key };
        },
      }, key);
    }
    case "rendition": {
      const { key } = outputOf(deps, job, { attachment, prefix: "renditions", extension: "mp4" });
      return await store({
        temp: single,
        column: "playbackKey",
        make: async () => {
          const meta = await checkRendition(deps.media, single);
          return { playback: task.plan, playbackKey: key, playbackMeta: JSON.stringify(meta) };
        },
      }, key);
    }
    case "hls": {
      const { key } = outputOf(deps, job, { attachment, prefix: "hls" });
      return await store({
        temp: dir,
        column: "hlsKey",
        directory: true,
        make: async () => {
          const ladder = await checkLadder(deps.media, {
            outDir: dir,
            rungs: task.rungs,
            hasAudio: attachment.hasAudio,
            duration: attachment.duration,
          });
          return { hlsKey: key, hlsLadder: JSON.stringify(ladder) };
        },
      }, key);
    }
    case "storyboard": {
      const { key } = outputOf(deps, job, { attachment, prefix: "storyboards", extension: "jpg" });
      return await store({
        temp: single,
        column: "storyboardKey",
        make: async () => {
          await checkJpeg(single);
          // The layout the service plans, not one the runner says it made.
          const layout = planStoryboard(task);
          return { storyboardKey: key, storyboardLayout: JSON.stringify(layout) };
        },
      }, key);
    }
  }
}

/**
 * Checks and stores a runner's outputs and marks the job done. An output
 * that fails its check fails the run as a local one would (retried while
 * attempts remain) and answers 422. The lease is renewed while the check
 * runs, so a slow ffprobe does not look like a stalled runner.
 */
export async function completeJob(
  deps: RunnerDeps,
  runner: Runner,
  run: { jobId: string; attempt: number; ms: number },
): Promise<void> {
  const job = await heldJob(deps, runner, run);
  const queue = queueOf(deps, runner);
  const dir = outputDir(deps, job);
  const renew = setInterval(
    () => queue.extend(job).catch(() => {}),
    Math.max(250, deps.config.runnerStallMs / 4),
  );
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await storeOutput(deps, job, dir);
  } catch (error) {
    clearInterval(renew);
    const reason = redactPaths(error instanceof Error ? error.message : String(error));
    if (isOutOfSpace(error)) {
      // The service's disk, not the runner's output: the job waits for space, its attempt given back.
      await queue.postpone(job, { reason, delayMs: deps.config.diskFullRetryMs });
      reportEnd(deps, { job, runner, outcome: "retry", ms: run.ms, error: reason });
      throw insufficientStorage();
    }
    const outcome = await queue.fail(job, `The runner's output failed its check: ${reason}`);
    reportEnd(deps, { job, runner, outcome, ms: run.ms, error: reason });
    throw new ApiError("invalid_video", `The output failed its check: ${reason}`);
  } finally {
    clearInterval(renew);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  await queue.complete(job);
  reportEnd(deps, { job, runner, outcome: "done", ms: run.ms });
}

/** Records a runner's failed run: retried while attempts remain, as a local one. */
export async function failJob(
  deps: RunnerDeps,
  runner: Runner,
  run: { jobId: string; attempt: number; ms: number; error: string },
): Promise<"retry" | "failed"> {
  const job = await heldJob(deps, runner, run);
  const reason = redactPaths(run.error);
  const outcome = await queueOf(deps, runner).fail(job, reason);
  await removeOutputDirs(deps, job.id);
  reportEnd(deps, { job, runner, outcome, ms: run.ms, error: reason });
  return outcome;
}
