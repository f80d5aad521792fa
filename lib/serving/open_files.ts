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
 * stays readable through a cached handle for at most `ttlMs`, the same window
 * {@linkcode RecentAccess} already gives access checks, and `clear()` closes
 * everything at once after a deletion in this process.
 *
 * Callers read with a seek and a synchronous read in one turn of the event
 * loop, so two requests never interleave on one handle, and never close it.
 */
export class OpenFiles implements Disposable {
  readonly ttlMs: number;
  #entries = new Map<string, Entry>();
  #maxEntries: number;
  #now: () => number;

  constructor(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? 2000;
    this.#maxEntries = options.maxEntries ?? 64;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * The open file at `path`, opened now or a few seconds ago; the cache
   * closes it, the caller must not. Throws what `Deno.openSync` throws
   * (`NotFound` for a missing file).
   */
  get(path: string): OpenFile {
    const now = this.#now();
    this.#closeExpired(now);
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
    if (this.#entries.size > this.#maxEntries) this.#evict(this.#entries.keys().next().value!);
    return entry;
  }

  /** Closes every cached handle: after a deletion, and at shutdown. */
  clear(): void {
    for (const path of [...this.#entries.keys()]) this.#evict(path);
  }

  [Symbol.dispose](): void {
    this.clear();
  }

  /** Entries expire in insertion order, so the expired ones are at the front. */
  #closeExpired(now: number): void {
    for (const [path, entry] of this.#entries) {
      if (entry.until > now) return;
      this.#evict(path);
    }
  }

  #evict(path: string): void {
    const entry = this.#entries.get(path);
    if (!entry) return;
    this.#entries.delete(path);
    try {
      entry.file.close();
    } catch {
      // already closed
    }
  }
}
