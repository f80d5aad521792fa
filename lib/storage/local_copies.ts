/** One cached copy: its file, its size once complete, and the jobs using it now. */
interface Entry {
  path: string;
  size: number;
  users: number;
  /** Settles when the file is complete (or its fetch failed). */
  ready: Promise<void>;
  /** Forgotten while in use: removed when its last user is done. */
  dropped: boolean;
}

/**
 * Local copies of stored files for the tools that read them (`STORAGE=s3`):
 * ffmpeg and ffprobe only read local files, and an original is read by up to
 * five jobs in a row. A copy is kept in `directory` (the process's temp
 * directory) after use, and a new upload's file is kept as its copy
 * ({@linkcode adopt}), until the copies pass `maxBytes`; then the least
 * recently used ones that no job is reading are removed. Stored keys never
 * change in place, so a copy stays right for as long as it is kept. Two jobs
 * asking for the same key at once share one fetch; a failed fetch is not
 * kept.
 */
export class LocalCopies {
  readonly #directory: string;
  readonly #maxBytes: number;
  /** Least recently used first. */
  readonly #entries = new Map<string, Entry>();

  constructor(directory: string, maxBytes: number) {
    this.#directory = directory;
    this.#maxBytes = maxBytes;
  }

  /** Bytes of the complete copies kept now. */
  get bytes(): number {
    let total = 0;
    for (const entry of this.#entries.values()) total += entry.size;
    return total;
  }

  /** Takes the file `localPath` as the copy of `key` (it is moved, or removed when it cannot stay). */
  async adopt(key: string, localPath: string): Promise<void> {
    const size = (await Deno.stat(localPath)).size;
    if (size > this.#maxBytes || this.#entries.has(key)) {
      await Deno.remove(localPath);
      return;
    }
    const path = this.#newPath();
    await Deno.rename(localPath, path);
    this.#entries.set(key, { path, size, users: 0, ready: Promise.resolve(), dropped: false });
    await this.#evict();
  }

  /**
   * Runs `use` with the local copy of `key`, made by `fetch(path)` when
   * there is none (or the one kept was removed by the temp sweep).
   */
  async use<T>(
    key: string,
    fetch: (path: string) => Promise<void>,
    use: (path: string) => Promise<T>,
  ): Promise<T> {
    let entry: Entry | null = null;
    while (!entry) {
      // Checked and registered without an await in between: concurrent uses share one fetch.
      entry = this.#entries.has(key) ? await this.#kept(key) : await this.#fetched(key, fetch);
    }
    try {
      return await use(entry.path);
    } finally {
      entry.users--;
      if (entry.dropped && entry.users === 0) await Deno.remove(entry.path).catch(() => {});
      await this.#evict();
    }
  }

  /** Forgets the copy of `key` (its stored file was deleted). */
  async forget(key: string): Promise<void> {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    entry.dropped = true;
    if (entry.users === 0) await Deno.remove(entry.path).catch(() => {});
  }

  /** The kept copy of `key`, marked as used and most recent, or null. */
  async #kept(key: string): Promise<Entry | null> {
    const entry = this.#entries.get(key);
    if (!entry) return null;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    entry.users++;
    try {
      await entry.ready;
      // Used now: the sweep of stale temp files must not take it.
      const now = new Date();
      await Deno.utime(entry.path, now, now);
      return entry;
    } catch {
      entry.users--;
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
      return null;
    }
  }

  async #fetched(key: string, fetch: (path: string) => Promise<void>): Promise<Entry> {
    // Registered before the first await, so that a concurrent use of `key` waits for this fetch.
    const path = this.#newPath();
    const entry: Entry = { path, size: 0, users: 1, ready: Promise.resolve(), dropped: false };
    entry.ready = (async () => {
      await Deno.mkdir(this.#directory, { recursive: true });
      await fetch(path);
      entry.size = (await Deno.stat(path)).size;
    })();
    this.#entries.set(key, entry);
    try {
      await entry.ready;
    } catch (error) {
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
      await Deno.remove(path).catch(() => {});
      throw error;
    }
    return entry;
  }

  /** Removes the least recently used copies nobody reads until the rest fit in `maxBytes`. */
  async #evict(): Promise<void> {
    let total = this.bytes;
    for (const [key, entry] of this.#entries) {
      if (total <= this.#maxBytes) break;
      if (entry.users > 0) continue;
      this.#entries.delete(key);
      total -= entry.size;
      await Deno.remove(entry.path).catch(() => {});
    }
  }

  #newPath(): string {
    // `copy-` files are swept with the other temp files if a crash leaves one.
    return `${this.#directory}/copy-${crypto.randomUUID()}`;
  }
}
