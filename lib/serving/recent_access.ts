import { LRUCache } from "lru-cache";
import type { Attachment } from "../../db/schema.ts";
import type { User } from "../auth/auth.ts";
import { OpenFiles } from "./open_files.ts";

/** Admin and non-admin tokens of one user are decided apart. */
function cacheKey(attachmentId: string, user: User): string {
  return `${attachmentId}\n${user.id}\n${user.admin ? "admin" : "member"}`;
}

/**
 * Remembers, for a couple of seconds, that a user may read an attachment. A
 * video player sends a range request every few hundred milliseconds while it
 * plays and seeks; checking the database each time costs more than serving
 * the bytes. The window is the price: a participant removed from the
 * conversation (or an attachment deleted) in another process keeps access to
 * the bytes for at most `ttlMs`. This process forgets at once.
 */
export class RecentAccess implements Disposable {
  readonly ttlMs: number;
  /** The files those requests read, kept open for the same window. */
  readonly files: OpenFiles;
  /**
   * At most `maxEntries`, the least recently used dropped first. The window
   * is checked here, not by lru-cache's TTL: the caller gives the request's
   * time, and an entry is stale from `until` on.
   */
  #entries: LRUCache<string, { attachment: Attachment; until: number }>;

  constructor(options: { ttlMs?: number; maxEntries?: number } = {}) {
    this.ttlMs = options.ttlMs ?? 2000;
    this.#entries = new LRUCache({ max: options.maxEntries ?? 10_000 });
    this.files = new OpenFiles({ ttlMs: this.ttlMs });
  }

  get(attachmentId: string, user: User, now: number): Attachment | null {
    const key = cacheKey(attachmentId, user);
    const entry = this.#entries.get(key);
    if (!entry) return null;
    if (entry.until <= now) {
      this.#entries.delete(key);
      return null;
    }
    return entry.attachment;
  }

  set(attachment: Attachment, user: User, now: number): void {
    this.#entries.set(cacheKey(attachment.id, user), { attachment, until: now + this.ttlMs });
  }

  /**
   * Forgets everything and closes the open files: after a deletion or a
   * membership change in this process.
   */
  clear(): void {
    this.#entries.clear();
    this.files.clear();
  }

  [Symbol.dispose](): void {
    this.clear();
  }
}
