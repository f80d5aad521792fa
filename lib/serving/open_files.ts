import { LRUCache } from "lru-cache";

/** An open file with the size and modification time it had when opened. */
export interface OpenFile {
  file: Deno.FsFile;
  size: number;
  mtime: Date | null;
}

interface Entry extends OpenFile {
  until: number;
}

/**
 * Keeps recently served files open for a couple of seconds, as nginx's
 * `open_file_cache` does. A player asks for the same file in small ranges
 * several times a second, and opening, stat-ing and closing it each time
 * costs more than reading the range. Stored files never change in place (a
 * new rendition gets a new key), so a cached size stays right; a deleted file
 * stays readable through a cached handle for at most about twice `ttlMs` (a
 * timer closes handles whose time is up, requests or not), about the window
 * {@linkcode RecentAccess} already gives access checks, and `clear()` closes
 * everything at once after a deletion in this process.
 *
 * At most `maxEntries` handles are open, the least recently used closed
 * first. Callers read with a seek and a synchronous read in one turn of the
 * event loop, so two requests never interleave on one handle, and never close
 * it.
 */
export class OpenFiles implements Disposable {
  readonly ttlMs: number;
  #entries: LRUCache<string, Entry>;
  /** The earliest `until` of the cached handles: no handle expires before it. */
  #nextExpiry = Infinity;
  /** Closes the expired handles when no request comes to do it (an unref'd timer). */
  #sweep: ReturnType<typeof setTimeout> | undefined;
  #now: () => number;

  constructor(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? 2000;
    this.#now = options.now ?? (() => performance.now());
    this.#entries = new LRUCache<string, Entry>({
      max: options.maxEntries ?? 64,
      // Whatever drops an entry (expiry, eviction, clear) closes its handle.
      dispose: (entry) => {
        try {
          entry.file.close();
        } catch {
          // already closed
        }
      },
    });
  }

  /**
   * The open file at `path`, opened now or a few seconds ago; the cache
   * closes it, the caller must not. Throws what `Deno.openSync` throws
   * (`NotFound` for a missing file).
   */
  get(path: string): OpenFile {
    const now = this.#now();
    if (now >= this.#nextExpiry) this.#closeExpired(now);
    const cached = this.#entries.get(path);
    if (cached) return cached;
    // Synchronous: open and fstat are metadata calls that cost far less than
    // the thread-pool round trip of their async forms.
    const file = Deno.openSync(path, { read: true });
    let stat: Deno.FileInfo;
    try {
      stat = file.statSync();
    } catch (error) {
      file.close();
      throw error;
    }
    const entry = { file, size: stat.size, mtime: stat.mtime, until: now + this.ttlMs };
    this.#entries.set(path, entry);
    this.#nextExpiry = Math.min(this.#nextExpiry, entry.until);
    this.#scheduleSweep();
    return entry;
  }

  /** Closes every cached handle: after a deletion, and at shutdown. */
  clear(): void {
    this.#entries.clear();
    this.#nextExpiry = Infinity;
    clearTimeout(this.#sweep);
    this.#sweep = undefined;
  }

  [Symbol.dispose](): void {
    this.clear();
  }

  /**
   * Closes the expired handles. Only when one may have expired: a hit
   * otherwise costs one lookup, not a walk over the cache.
   */
  #closeExpired(now: number): void {
    const expired: string[] = [];
    let next = Infinity;
    this.#entries.forEach((entry, path) => {
      if (entry.until <= now) expired.push(path);
      else next = Math.min(next, entry.until);
    });
    for (const path of expired) this.#entries.delete(path);
    this.#nextExpiry = next;
  }

  /**
   * Closes the handles once their time is up even when no request comes
   * after them: a file deleted meanwhile (by another process) then gives its
   * space back, and an idle server holds no handle. One timer at a time, for
   * the whole cache; it does not keep the process alive.
   */
  #scheduleSweep(): void {
    if (this.#sweep !== undefined) return;
    const delay = Math.max(this.ttlMs, this.#nextExpiry - this.#now());
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.#closeExpired(this.#now());
      if (this.#entries.size > 0) this.#scheduleSweep();
    }, delay);
    Deno.unrefTimer(this.#sweep);
  }
}
