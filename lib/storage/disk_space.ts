import { statfs } from "node:fs/promises";
import { ApiError } from "../core/errors.ts";

/**
 * Bytes an unprivileged process may still write on the filesystem holding
 * `path` (`f_bavail`: the blocks reserved for root do not count, the service
 * cannot use them). Deno has no `statfs` of its own; `node:fs`'s is the
 * system call itself, where running `df` would start a process per upload.
 */
export async function freeBytes(path: string): Promise<number> {
  const info = await statfs(path);
  return info.bavail * info.bsize;
}

/**
 * Whether `error` says the disk is full: `ENOSPC` from a write (Deno's own
 * files and `node:fs` streams both carry the code), `EDQUOT` from a quota,
 * or `SQLITE_FULL` from the database on the same filesystem.
 */
export function isOutOfSpace(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL") return true;
  const message = (error as { message?: unknown }).message;
  return typeof message === "string" && /No space left on device|SQLITE_FULL/.test(message);
}

/** The answer to an upload the disk has no room for: 507, try again later. */
export function insufficientStorage(): ApiError {
  return new ApiError(
    "insufficient_storage",
    "The server is out of storage space; try again later",
    // The rest of the body is not read, so the connection cannot carry another request.
    { "retry-after": "60", connection: "close" },
  );
}

/**
 * Refuses a new upload up front (507) while the filesystem of `dir` has less
 * than `minFreeBytes` free; 0 turns the check off.
 */
export async function assertFreeSpace(dir: string, minFreeBytes: number): Promise<void> {
  if (minFreeBytes <= 0) return;
  if (await freeBytes(dir) < minFreeBytes) throw insufficientStorage();
}
