/**
 * Brings existing attachments to the current policy: attachments processed
 * before a setting changed (`STRIP_METADATA`, the compact-rendition limits,
 * `HLS`, `HLS_MIN_DURATION`), or before an output existed at all, get the
 * jobs that make what they lack, all under one `batch_id` whose progress can
 * be followed. The admin endpoint and `deno task backfill` both call
 * {@linkcode backfill}.
 *
 * @module
 */
import { and, asc, count, eq, gt, inArray, isNull, ne } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { type Attachment, attachments, jobs } from "../../db/schema.ts";
import { type ActivityContext, recordActivity } from "../chat/activity.ts";
import { newId } from "../core/ids.ts";
import type { AppDeps } from "../deps.ts";
import { enqueueJobs, type JobKind, type JobToQueue, PROCESSING_JOBS } from "./jobs.ts";
import { playbackPlanOf, renditionOverPolicy, wantsLadderOf } from "./output_policy.ts";

/** What {@linkcode backfill} uses. */
export type BackfillDeps = Pick<AppDeps, "db" | "storage" | "config" | "clock" | "jobs">;

/** Options for {@linkcode backfill}. */
export interface BackfillOptions {
  /** Report what would be queued, and write nothing. */
  dryRun?: boolean;
  /** Attachments read per query and queued per transaction (default 100). */
  pageSize?: number;
  /** Who asked: the run is logged as `admin.backfill` (a dry run is not logged). */
  actor?: ActivityContext;
}

/** Jobs by kind. */
export type JobCounts = Record<JobKind, number>;

/** What one {@linkcode backfill} run queued, or would queue on a dry run. */
export interface BackfillResult {
  /** The id the queued jobs share; null on a dry run or when nothing was queued. */
  batchId: string | null;
  dryRun: boolean;
  /** Live attachments that are not `failed`: the ones looked at. */
  scanned: number;
  /** Attachments that got at least one job. */
  attachments: number;
  jobs: JobCounts;
  /** Attachments left alone because their original is missing (their jobs could only fail). */
  missingOriginals: number;
}

/** How far a backfill's jobs are: by status, and in all. */
export interface BackfillProgress {
  batchId: string;
  total: number;
  queued: number;
  running: number;
  done: number;
  failed: number;
}

const OPEN_STATUSES = ["queued", "running"] as const;

function noJobs(): JobCounts {
  return { thumbnail: 0, strip: 0, subtitles: 0, rendition: 0, hls: 0, storyboard: 0 };
}

/** The kinds with an open (queued or running) job, per attachment. */
async function openKinds(
  db: Pick<Database, "select">,
  attachmentIds: string[],
): Promise<Map<string, Set<string>>> {
  const open = new Map<string, Set<string>>();
  if (attachmentIds.length === 0) return open;
  const rows = await db.select({ attachmentId: jobs.attachmentId, kind: jobs.kind }).from(jobs)
    .where(and(inArray(jobs.attachmentId, attachmentIds), inArray(jobs.status, OPEN_STATUSES)));
  for (const row of rows) {
    const kinds = open.get(row.attachmentId) ?? new Set();
    kinds.add(row.kind);
    open.set(row.attachmentId, kinds);
  }
  return open;
}

/** Whether an attachment's output of `kind` is missing or not what the current policy makes. */
async function outdated(
  deps: BackfillDeps,
  attachment: Attachment,
  kind: JobKind,
): Promise<boolean> {
  const { config } = deps;
  switch (kind) {
    case "thumbnail":
      return attachment.thumbnailKey === null;
    case "strip":
      return config.stripMetadata && attachment.strippedKey === null;
    case "rendition": {
      if (attachment.playback === null) return true;
      if (renditionOverPolicy(attachment, config.renditionPolicy)) return true;
      const plan = await deps.storage.withLocalCopy(
        attachment.storageKey,
        (sourcePath) => playbackPlanOf(attachment, { sourcePath, policy: config.renditionPolicy }),
      );
      return plan !== attachment.playback;
    }
    case "hls":
      // Either way round: a ladder the policy no longer wants is removed by the job.
      return wantsLadderOf(attachment, config.hlsPolicy) !== (attachment.hlsKey !== null);
    case "storyboard":
      return attachment.storyboardKey === null;
    case "subtitles":
      return attachment.subtitlesSkipped === null;
  }
}

/**
 * The jobs an attachment needs under the current policy, leaving out kinds
 * that already have an open job; `"missing"` when its original is gone.
 */
async function jobsNeeded(
  deps: BackfillDeps,
  attachment: Attachment,
  open: ReadonlySet<string>,
): Promise<JobKind[] | "missing"> {
  const kinds: JobKind[] = [];
  try {
    for (const kind of PROCESSING_JOBS) {
      if (!open.has(kind) && await outdated(deps, attachment, kind)) kinds.push(kind);
    }
  } catch (error) {
    // The rendition check reads the head of an MP4/MOV original.
    if (error instanceof Deno.errors.NotFound) return "missing";
    throw error;
  }
  if (kinds.length > 0 && !(await deps.storage.stat(attachment.storageKey))) return "missing";
  return kinds;
}

/**
 * Queues the jobs that bring live attachments (not deleted, not `failed`)
 * to the current policy, one page of attachments at a time, all under one
 * new `batch_id`:
 *
 * - `thumbnail`, `storyboard`: when the attachment has none;
 * - `strip`: with `STRIP_METADATA` on, when there is no stripped copy;
 * - `rendition`: when `playback` is unknown, when the current policy plans
 *   another one (`original`, `remux` or `transcode`), or when the rendition
 *   is larger than `RENDITION_MAX_HEIGHT` now allows;
 * - `hls`: when the policy wants a ladder and there is none, or has one it
 *   no longer wants (the job removes it).
 *
 * A kind that already has a queued or running job for the attachment is
 * never queued again: the check and the insert are in one write transaction
 * per page, so two runs at once do not queue a kind twice. The attachments'
 * statuses are left alone: a `ready` one stays `ready` while its jobs run,
 * and stays so if one of them fails (see `JobQueue.fail`). Workers claim
 * these jobs after every upload's.
 *
 * @example
 * ```ts
 * const preview = await backfill(deps, { dryRun: true });
 * const run = await backfill(deps, { actor });
 * const progress = await backfillProgress(deps.db, run.batchId!);
 * ```
 */
export async function backfill(
  deps: BackfillDeps,
  options: BackfillOptions = {},
): Promise<BackfillResult> {
  const { dryRun = false, pageSize = 100, actor } = options;
  const batchId = newId();
  const counts = noJobs();
  let scanned = 0;
  let queuedFor = 0;
  let missingOriginals = 0;
  let after = "";
  while (true) {
    // Keyset paging by id: the page is the same whether or not earlier ones got jobs.
    const page = await deps.db.select().from(attachments)
      .where(and(
        isNull(attachments.deletedAt),
        ne(attachments.status, "failed"),
        gt(attachments.id, after),
      ))
      .orderBy(asc(attachments.id))
      .limit(pageSize);
    if (page.length === 0) break;
    after = page[page.length - 1]!.id;
    scanned += page.length;

    const open = await openKinds(deps.db, page.map((a) => a.id));
    const planned: JobToQueue[] = [];
    for (const attachment of page) {
      const needed = await jobsNeeded(deps, attachment, open.get(attachment.id) ?? new Set());
      if (needed === "missing") missingOriginals++;
      else planned.push(...needed.map((kind) => ({ attachmentId: attachment.id, kind })));
    }

    // The files were read outside the transaction; what may have changed since (a
    // deletion, a reprocess, another backfill) is read again inside it.
    const queued = dryRun || planned.length === 0 ? planned : await deps.db.transaction(
      async (tx) => {
        const ids = [...new Set(planned.map((job) => job.attachmentId))];
        const live = new Set(
          (await tx.select({ id: attachments.id }).from(attachments).where(and(
            inArray(attachments.id, ids),
            isNull(attachments.deletedAt),
            ne(attachments.status, "failed"),
          ))).map((row) => row.id),
        );
        const openNow = await openKinds(tx, ids);
        const rows = planned.filter((job) =>
          live.has(job.attachmentId) && !openNow.get(job.attachmentId)?.has(job.kind)
        );
        await enqueueJobs(tx, rows, { now: deps.clock(), batchId });
        return rows;
      },
    );
    for (const job of queued) counts[job.kind]++;
    queuedFor += new Set(queued.map((job) => job.attachmentId)).size;
    if (!dryRun && queued.length > 0) deps.jobs.notify();
  }

  const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
  const result: BackfillResult = {
    batchId: dryRun || total === 0 ? null : batchId,
    dryRun,
    scanned,
    attachments: queuedFor,
    jobs: counts,
    missingOriginals,
  };
  if (!dryRun && actor) {
    await recordActivity(deps.db, {
      action: "admin.backfill",
      detail: {
        batch_id: result.batchId,
        attachments: result.attachments,
        jobs: result.jobs,
        missing_originals: result.missingOriginals,
      },
    }, { context: actor, at: deps.clock() });
  }
  return result;
}

/** How far the jobs of backfill `batchId` are; null when it queued none (or none are left). */
export async function backfillProgress(
  db: Database,
  batchId: string,
): Promise<BackfillProgress | null> {
  const rows = await db.select({ status: jobs.status, n: count() }).from(jobs)
    .where(eq(jobs.batchId, batchId))
    .groupBy(jobs.status);
  const progress: BackfillProgress = {
    batchId,
    total: 0,
    queued: 0,
    running: 0,
    done: 0,
    failed: 0,
  };
  for (const row of rows) {
    progress[row.status] = Number(row.n);
    progress.total += Number(row.n);
  }
  return progress.total === 0 ? null : progress;
}
