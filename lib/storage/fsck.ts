/**
 * `deno task fsck`: the database and the data directory checked against each
 * other. Two kinds of inconsistency, the two a crash or a lost disk could
 * leave: a live attachment whose row names a file that is not there, and a
 * stored file (or a dead process's temp directory) that no row owns.
 * `repair` fixes both.
 *
 * @module
 */
import { and, eq, inArray, isNull } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { type Attachment, attachments, jobs } from "../../db/schema.ts";
import type { Clock } from "../core/clock.ts";
import { enqueueJobs, type JobKind } from "../processing/jobs.ts";
import type { Storage } from "./storage.ts";
import { findDeadOwners, sweepDeadOwners } from "./process_temp_dir.ts";
import { subtitleObjectsOf } from "../chat/subtitles.ts";

/** The columns that name a stored file, and the job that makes each derived one. */
const FILE_COLUMNS = [
  { column: "storageKey", kind: null },
  { column: "thumbnailKey", kind: "thumbnail" },
  { column: "posterKey", kind: "thumbnail" },
  { column: "strippedKey", kind: "strip" },
  { column: "playbackKey", kind: "rendition" },
  { column: "hlsKey", kind: "hls" },
  { column: "storyboardKey", kind: "storyboard" },
] as const satisfies readonly { column: keyof Attachment; kind: JobKind | null }[];

/** The top-level directories of stored files (see docs/ARCHITECTURE.md). */
const STORED_DIRECTORIES = [
  "media",
  "thumbnails",
  "posters",
  "stripped",
  "renditions",
  "hls",
  "storyboards",
  "subtitles",
] as const;

/** One inconsistency. */
export type FsckIssue =
  | {
    /** A live attachment's row names a file that is not there. */
    type: "missing_file";
    attachmentId: string;
    column: typeof FILE_COLUMNS[number]["column"];
    key: string;
  }
  | {
    /** A stored file (or ladder directory) that no live attachment names. */
    type: "unowned_file";
    key: string;
  }
  | {
    /** The temp directory of a process that is gone. */
    type: "dead_temp_dir";
    name: string;
  };

/** What {@linkcode fsck} uses. */
export interface FsckDeps {
  db: Database;
  storage: Storage;
  clock: Clock;
  /** The data directory (stored files are walked below it). */
  dataDir: string;
}

/** Options for {@linkcode fsck}. */
export interface FsckOptions {
  /**
   * Fix what is found: a missing original makes its attachment deleted (it
   * can never play; its other files go too); a missing derived file is
   * cleared and its job queued again; unowned files and dead processes'
   * temp directories are removed.
   */
  repair?: boolean;
  /** Given each dead temp directory's files first (an interrupted upload to finish). */
  adopt?: (path: string, name: string) => Promise<void>;
}

/** What {@linkcode fsck} found (and, with `repair`, fixed). */
export interface FsckReport {
  issues: FsckIssue[];
  repaired: boolean;
}

/**
 * Checks every live attachment's files and every stored file. A derived file
 * named after a job that is still queued or running is not unowned: its job
 * records it (or overwrites it) when it ends.
 */
export async function fsck(deps: FsckDeps, options: FsckOptions = {}): Promise<FsckReport> {
  const issues: FsckIssue[] = [];
  const root = deps.dataDir.replace(/\/+$/, "");

  for (const name of await findDeadOwners(`${root}/tmp`)) {
    issues.push({ type: "dead_temp_dir", name });
  }
  if (options.repair) await sweepDeadOwners(`${root}/tmp`, { adopt: options.adopt });

  const live = await deps.db.select().from(attachments).where(isNull(attachments.deletedAt));
  const owned = new Set<string>();
  for (const attachment of live) {
    for (const { column } of FILE_COLUMNS) {
      const key = attachment[column];
      if (!key) continue;
      owned.add(key);
      if (!(await deps.storage.stat(key))) {
        issues.push({ type: "missing_file", attachmentId: attachment.id, column, key });
      }
    }
    // Subtitle files (a JSON column, not one key each): owned; a lost one is not repaired.
    for (const key of subtitleObjectsOf(attachment)) owned.add(key);
  }
  const open = await deps.db.select({ id: jobs.id }).from(jobs)
    .where(inArray(jobs.status, ["queued", "running"]));
  const openJobs = new Set(open.map((job) => job.id));
  for (const key of await deps.storage.keys(STORED_DIRECTORIES)) {
    if (owned.has(key)) continue;
    const name = key.slice(key.lastIndexOf("/") + 1).replace(/\..*$/, "");
    if (openJobs.has(name)) continue;
    issues.push({ type: "unowned_file", key });
  }

  if (options.repair) await repair(deps, issues);
  return { issues, repaired: options.repair === true };
}

async function repair(deps: FsckDeps, issues: readonly FsckIssue[]): Promise<void> {
  const t = deps.clock();
  const lostOriginals = new Set(
    issues.flatMap((issue) =>
      issue.type === "missing_file" && issue.column === "storageKey" ? [issue.attachmentId] : []
    ),
  );
  for (const issue of issues) {
    if (issue.type === "unowned_file") await deps.storage.delete(issue.key);
    if (issue.type !== "missing_file" || lostOriginals.has(issue.attachmentId)) continue;
    const { kind } = FILE_COLUMNS.find((c) => c.column === issue.column)!;
    await deps.db.transaction(async (tx) => {
      await tx.update(attachments).set({ [issue.column]: null })
        .where(eq(attachments.id, issue.attachmentId));
      const queued = await tx.select({ id: jobs.id }).from(jobs).where(and(
        eq(jobs.attachmentId, issue.attachmentId),
        eq(jobs.kind, kind!),
        inArray(jobs.status, ["queued", "running"]),
      ));
      if (queued.length === 0) {
        await enqueueJobs(tx, [{ attachmentId: issue.attachmentId, kind: kind! }], { now: t });
      }
    });
  }
  for (const id of lostOriginals) {
    const [attachment] = await deps.db.update(attachments)
      .set({ deletedAt: t.getTime(), status: "failed", error: "The stored video file is missing" })
      .where(eq(attachments.id, id))
      .returning();
    await deps.db.delete(jobs).where(eq(jobs.attachmentId, id));
    for (const { column } of FILE_COLUMNS) {
      const key = attachment?.[column];
      if (key) await deps.storage.delete(key);
    }
  }
}
