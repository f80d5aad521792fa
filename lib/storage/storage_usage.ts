import { count, isNull, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { type Attachment, attachments } from "../../db/schema.ts";

/** Bytes and files below one top-level directory of the data directory. */
export interface DirectoryUsage {
  name: string;
  bytes: number;
  files: number;
}

/** What the admin view shows as "storage used". */
export interface StorageUsage {
  /** Live (not deleted) attachments: their originals as recorded at upload, by status. */
  attachments: {
    count: number;
    original_bytes: number;
    by_status: Record<Attachment["status"], { count: number; original_bytes: number }>;
  };
  /** What is on disk under the data directory, by top-level directory (database files included). */
  disk: { total_bytes: number; files: number; directories: DirectoryUsage[] };
}

/** Sums the sizes of the regular files below `path`; symbolic links are not followed. */
async function walk(path: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { bytes, files };
    throw error;
  }
  for (const entry of entries) {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory) {
      const below = await walk(child);
      bytes += below.bytes;
      files += below.files;
    } else if (entry.isFile) {
      // A file removed between readDir and stat (a finished job's temp file) counts as nothing.
      const info = await Deno.lstat(child).catch(() => null);
      if (info) {
        bytes += info.size;
        files += 1;
      }
    }
  }
  return { bytes, files };
}

/**
 * Storage used: live attachments by status from the database, and the bytes
 * actually on disk under `dataDir` (originals, thumbnails, renditions,
 * storyboards, temp files, the database), by top-level directory. Files
 * directly in `dataDir` are grouped under `.`.
 */
export async function storageUsage(db: Database, dataDir: string): Promise<StorageUsage> {
  const rows = await db.select({
    status: attachments.status,
    count: count(),
    bytes: sql<number>`coalesce(sum(${attachments.fileSize}), 0)`,
  }).from(attachments).where(isNull(attachments.deletedAt)).groupBy(attachments.status);
  const byStatus: StorageUsage["attachments"]["by_status"] = {
    processing: { count: 0, original_bytes: 0 },
    ready: { count: 0, original_bytes: 0 },
    failed: { count: 0, original_bytes: 0 },
  };
  for (const row of rows) {
    byStatus[row.status] = { count: Number(row.count), original_bytes: Number(row.bytes) };
  }
  const totals = Object.values(byStatus);

  const directories: DirectoryUsage[] = [];
  const top: DirectoryUsage = { name: ".", bytes: 0, files: 0 };
  for await (const entry of Deno.readDir(dataDir)) {
    const path = `${dataDir}/${entry.name}`;
    if (entry.isDirectory) {
      directories.push({ name: entry.name, ...(await walk(path)) });
    } else if (entry.isFile) {
      const info = await Deno.lstat(path).catch(() => null);
      if (info) {
        top.bytes += info.size;
        top.files += 1;
      }
    }
  }
  if (top.files > 0) directories.push(top);
  directories.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  return {
    attachments: {
      count: totals.reduce((sum, s) => sum + s.count, 0),
      original_bytes: totals.reduce((sum, s) => sum + s.original_bytes, 0),
      by_status: byStatus,
    },
    disk: {
      total_bytes: directories.reduce((sum, d) => sum + d.bytes, 0),
      files: directories.reduce((sum, d) => sum + d.files, 0),
      directories,
    },
  };
}
