import { dirname } from "node:path";

/** What {@linkcode Storage.stat} knows of a stored file. */
export interface StoredFile {
  size: number;
  mtime: Date | null;
}

/**
 * Where media files live: the data directory ({@linkcode DiskStorage}) or an
 * S3 bucket (`S3Storage`, lib/storage/s3_storage.ts). Keys are relative paths
 * like `media/2026/01/15/<id>.mp4`. Files are made locally (uploads, ffmpeg
 * outputs) in {@linkcode tempDir} and then handed over; ffmpeg and ffprobe
 * only ever read local files ({@linkcode withLocalCopy}), never a URL.
 */
export interface Storage {
  readonly kind: "disk" | "s3";
  /** Moves a finished local file under `key`; the local file is gone afterwards. */
  putFile(localPath: string, key: string): Promise<void>;
  /**
   * Moves a finished local directory of files (an adaptive-streaming ladder)
   * under `key`; its files are then `<key>/<name>`. The directory is gone afterwards.
   */
  putDirectory(localDir: string, key: string): Promise<void>;
  /**
   * Runs `use` with a local path of the file `key` (disk: the file itself;
   * S3: a copy in this process's temp directory, removed when `use` settles).
   * A missing key throws `Deno.errors.NotFound`.
   */
  withLocalCopy<T>(key: string, use: (path: string) => Promise<T>): Promise<T>;
  /** The file `key` (or, for a directory's key, that it exists), or null. */
  stat(key: string): Promise<StoredFile | null>;
  /** Removes `key` (a file, or a directory and its files); a missing one is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Every stored key below the top-level directories `tops`, as
   * `<top>/YYYY/MM/DD/<name>` (a directory's key once, not its files).
   */
  keys(tops: readonly string[]): Promise<string[]>;
  /**
   * A local directory for temporary files: this process's own
   * (`DATA_DIR/tmp/<owner>/`, see process_temp_dir.ts).
   */
  tempDir(): string;
  /** Checks that the storage can be written. */
  check(): Promise<void>;
  /** Releases connections (nothing for disk). */
  close(): void;
}

const KEY_PATTERN = /^[a-z]+\/\d{4}\/\d{2}\/\d{2}\/[0-9a-f-]{36}(\.[a-z0-9]{2,5})?$/;
/** A file in a stored directory: a plain name, no path, no leading dot. */
const MEMBER_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

/** `key`, refused unless it is a storage key: no key can leave the data directory or prefix. */
export function checkedKey(key: string): string {
  if (!KEY_PATTERN.test(key)) throw new Error(`Invalid storage key "${key}"`);
  return key;
}

/** The key of the file `name` in the directory stored under `key`, both checked. */
export function memberKey(key: string, name: string): string {
  if (!MEMBER_PATTERN.test(name) || name.includes("..")) {
    throw new Error(`Invalid file name "${name}"`);
  }
  return `${checkedKey(key)}/${name}`;
}

/**
 * Builds a date-sharded storage key such as `media/2026/01/15/<id>.mp4` (a
 * directory's key has no extension).
 *
 * @example
 * ```ts
 * storageKey("media", { at: new Date("2026-01-15"), id, extension: "mp4" });
 * ```
 */
export function storageKey(
  prefix: string,
  file: { at: Date; id: string; extension?: string },
): string {
  const { at, id, extension } = file;
  const y = at.getUTCFullYear().toString().padStart(4, "0");
  const m = (at.getUTCMonth() + 1).toString().padStart(2, "0");
  const d = at.getUTCDate().toString().padStart(2, "0");
  return `${prefix}/${y}/${m}/${d}/${id}${extension ? `.${extension}` : ""}`;
}

/** A file's key, or a stored directory's member key (`<key>/<name>`), checked. */
export function checkedFileKey(key: string): string {
  if (KEY_PATTERN.test(key)) return key;
  const slash = key.lastIndexOf("/");
  return memberKey(key.slice(0, slash), key.slice(slash + 1));
}

/** Files under a data directory. Keys are validated so none can leave it. */
export class DiskStorage implements Storage {
  readonly kind = "disk";
  readonly root: string;
  readonly #tempDir: string;
  /**
   * `options.tempDir`: this process's temporary directory
   * (`claimProcessTempDir`); `<root>/tmp` without one.
   */
  constructor(root: string, options: { tempDir?: string } = {}) {
    this.root = root.replace(/\/+$/, "");
    this.#tempDir = options.tempDir ?? `${this.root}/tmp`;
  }
  /** The file of `key` (or of a stored directory's member key) in the data directory. */
  localPath(key: string): string {
    return `${this.root}/${checkedFileKey(key)}`;
  }
  /** The file `name` of the directory stored under `key`. */
  memberPath(key: string, name: string): string {
    return `${this.root}/${memberKey(key, name)}`;
  }
  async withLocalCopy<T>(key: string, use: (path: string) => Promise<T>): Promise<T> {
    return await use(this.localPath(key));
  }
  async putDirectory(localDir: string, key: string): Promise<void> {
    const target = this.localPath(key);
    await Deno.mkdir(dirname(target), { recursive: true });
    for await (const entry of Deno.readDir(localDir)) {
      if (entry.isFile) await Deno.chmod(`${localDir}/${entry.name}`, 0o600);
    }
    await Deno.chmod(localDir, 0o700);
    await Deno.rename(localDir, target);
  }
  async putFile(localPath: string, key: string): Promise<void> {
    const target = this.localPath(key);
    await Deno.mkdir(dirname(target), { recursive: true });
    // Stored files are the service's alone, whoever wrote the temp file.
    await Deno.chmod(localPath, 0o600);
    await Deno.rename(localPath, target);
  }
  async stat(key: string): Promise<{ size: number; mtime: Date | null } | null> {
    try {
      const info = await Deno.stat(this.localPath(key));
      return { size: info.size, mtime: info.mtime };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
  }
  async delete(key: string): Promise<void> {
    await Deno.remove(this.localPath(key), { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  async keys(tops: readonly string[]): Promise<string[]> {
    const keys: string[] = [];
    const list = async (path: string) =>
      await Array.fromAsync(Deno.readDir(path)).catch((error) => {
        if (error instanceof Deno.errors.NotFound) return [];
        throw error;
      });
    for (const top of tops) {
      for (const year of await list(`${this.root}/${top}`)) {
        for (const month of await list(`${this.root}/${top}/${year.name}`)) {
          for (const day of await list(`${this.root}/${top}/${year.name}/${month.name}`)) {
            const dir = `${top}/${year.name}/${month.name}/${day.name}`;
            for (const file of await list(`${this.root}/${dir}`)) keys.push(`${dir}/${file.name}`);
          }
        }
      }
    }
    return keys;
  }
  tempDir(): string {
    return this.#tempDir;
  }
  close(): void {}
  async check(): Promise<void> {
    await Deno.mkdir(this.tempDir(), { recursive: true });
    const probe = `${this.tempDir()}/.ready-${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "ok");
    await Deno.remove(probe);
  }
}
