import { count, isNull, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { type Attachment, attachments } from "../../db/schema.ts";
import type { Config } from "../config/config.ts";
import type { Storage } from "./storage.ts";
import { S3Storage } from "./s3_storage.ts";

/** Bytes and files below one top-level directory of the data directory. */
export interface DirectoryUsage {
  name: string;
  bytes: number;
  files: number;
}

/** Bytes and files of one kind of stored data. */
export interface KindUsage {
  bytes: number;
  files: number;
}

/** What the bytes under the data directory are, in the order the admin view lists them. */
export const STORAGE_KINDS = [
  "originals",
  "stripped_copies",
  "compact_renditions",
  "hls",
  "thumbnails",
  "storyboards",
  "subtitles",
  "temp",
  "database",
  "other",
] as const;

/** One of {@linkcode STORAGE_KINDS}. */
export type StorageKind = typeof STORAGE_KINDS[number];

/** The kind of every top-level directory the service writes (see docs/ARCHITECTURE.md). */
const KIND_OF_DIRECTORY: Readonly<Record<string, StorageKind>> = {
  media: "originals",
  stripped: "stripped_copies",
  // Remuxed copies live here too: whatever plays in place of the original.
  renditions: "compact_renditions",
  hls: "hls",
  thumbnails: "thumbnails",
  // Posters, their thumbnails and the candidate frames: one directory per generation.
  posters: "thumbnails",
  storyboards: "storyboards",
  subtitles: "subtitles",
  // Uploads in progress (multipart and resumable) and job scratch files.
  tmp: "temp",
  tus: "temp",
};

/** What the admin view shows as "storage used". */
export interface StorageUsage {
  /** Live (not deleted) attachments: their originals as recorded at upload, by status. */
  attachments: {
    count: number;
    original_bytes: number;
    by_status: Record<Attachment["status"], { count: number; original_bytes: number }>;
  };
  /**
   * What is on disk under the data directory: by top-level directory
   * (database files included), and the same bytes by what they are.
   */
  disk: PlaceUsage;
  /**
   * With `STORAGE=s3`, the objects of the bucket, by top-level prefix
   * (`media`, …, `tus`) and by the same kinds; null on disk storage.
   */
  bucket: (PlaceUsage & { name: string }) | null;
}

/** Bytes and files of one place (the data directory, the bucket) by directory and by kind. */
export interface PlaceUsage {
  total_bytes: number;
  files: number;
  directories: DirectoryUsage[];
  by_kind: Record<StorageKind, KindUsage>;
}

/** The prefixes of the bucket, each of the kind its directory has on disk. */
const BUCKET_PREFIXES = [
  "media",
  "stripped",
  "renditions",
  "hls",
  "thumbnails",
  "posters",
  "storyboards",
  "subtitles",
  "tus",
] as const;

function emptyKinds(): Record<StorageKind, KindUsage> {
  return Object.fromEntries(
    STORAGE_KINDS.map((kind) => [kind, { bytes: 0, files: 0 }]),
  ) as Record<StorageKind, KindUsage>;
}

/** The bucket's objects by prefix and kind (one listing of each prefix). */
async function bucketUsage(storage: S3Storage): Promise<PlaceUsage & { name: string }> {
  const byKind = emptyKinds();
  const directories: DirectoryUsage[] = [];
  for (const prefix of BUCKET_PREFIXES) {
    const usage = await storage.usage(prefix);
    directories.push({ name: prefix, ...usage });
    const kind = KIND_OF_DIRECTORY[prefix]!;
    byKind[kind].bytes += usage.bytes;
    byKind[kind].files += usage.files;
  }
  directories.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  return {
    name: storage.bucket,
    total_bytes: directories.reduce((sum, d) => sum + d.bytes, 0),
    files: directories.reduce((sum, d) => sum + d.files, 0),
    directories,
    by_kind: byKind,
  };
}

/** A directory as written, without a leading `./` or trailing slashes. */
function plainDirectory(path: string): string {
  return path.replace(/^(?:\.\/)+/, "").replace(/(?<=.)\/+$/, "") || ".";
}

/**
 * The name of the database file when it lies directly in the data directory
 * (the default), so that it and its `-wal`/`-shm` files count as `database`.
 * Paths are compared as written: resolving them would need the working
 * directory, which the service may not read.
 */
function databaseFileIn(config: Pick<Config, "dataDir" | "databaseUrl">): string | null {
  if (!config.databaseUrl.startsWith("file:")) return null;
  const path = config.databaseUrl.slice("file:".length).replace(/\?.*$/, "");
  const slash = path.lastIndexOf("/");
  const directory = slash < 0 ? "." : path.slice(0, slash) || "/";
  return plainDirectory(directory) === plainDirectory(config.dataDir)
    ? path.slice(slash + 1)
    : null;
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
 * storyboards, temp files, the database), by top-level directory and by
 * kind. Files directly in `dataDir` are grouped under `.`; there the
 * database's files are `database` and the rest (the secret) `other`, as is
 * any directory the service does not write. A database outside `dataDir`
 * (or on a server) is not counted. With `STORAGE=s3` (`storage` an
 * `S3Storage`), the bucket's objects too, listed on each call.
 */
export async function storageUsage(
  db: Database,
  config: Pick<Config, "dataDir" | "databaseUrl">,
  storage?: Storage,
): Promise<StorageUsage> {
  const { dataDir } = config;
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

  const byKind = emptyKinds();
  const add = (kind: StorageKind, usage: KindUsage): void => {
    byKind[kind].bytes += usage.bytes;
    byKind[kind].files += usage.files;
  };
  const database = databaseFileIn(config);
  const directories: DirectoryUsage[] = [];
  const top: DirectoryUsage = { name: ".", bytes: 0, files: 0 };
  for await (const entry of Deno.readDir(dataDir)) {
    const path = `${dataDir}/${entry.name}`;
    if (entry.isDirectory) {
      const usage = await walk(path);
      directories.push({ name: entry.name, ...usage });
      add(
        Object.hasOwn(KIND_OF_DIRECTORY, entry.name) ? KIND_OF_DIRECTORY[entry.name]! : "other",
        usage,
      );
    } else if (entry.isFile) {
      const info = await Deno.lstat(path).catch(() => null);
      if (info) {
        top.bytes += info.size;
        top.files += 1;
        const isDatabase = database !== null &&
          (entry.name === database || entry.name.startsWith(`${database}-`));
        add(isDatabase ? "database" : "other", { bytes: info.size, files: 1 });
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
      by_kind: byKind,
    },
    bucket: storage instanceof S3Storage ? await bucketUsage(storage) : null,
  };
}
