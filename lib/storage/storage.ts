import { dirname } from "node:path";

/** Where media files live. Keys are relative paths like `media/2026/01/15/<id>.mp4`. */
export interface Storage {
  /** Moves a finished local file (on the same filesystem) under `key`. */
  putFile(localPath: string, key: string): Promise<void>;
  /**
   * Moves a finished local directory of files (an adaptive-streaming ladder)
   * under `key`; its files are then read as `memberPath(key, name)`.
   */
  putDirectory(localDir: string, key: string): Promise<void>;
  /** A local path ffmpeg can read for `key`. */
  localPath(key: string): string;
  /** The local path of the file `name` in the directory stored under `key`. */
  memberPath(key: string, name: string): string;
  stat(key: string): Promise<{ size: number; mtime: Date | null } | null>;
  /** Removes `key` (a file, or a directory and its files); a missing one is not an error. */
  delete(key: string): Promise<void>;
  /**
   * A directory for temporary files on the same filesystem as the stored
   * files: this process's own (`tmp/<owner>/`, see process_temp_dir.ts).
   */
  tempDir(): string;
  /** Checks that the storage can be written. */
  check(): Promise<void>;
}

const KEY_PATTERN = /^[a-z]+\/\d{4}\/\d{2}\/\d{2}\/[0-9a-f-]{36}(\.[a-z0-9]{2,5})?$/;
/** A file in a stored directory: a plain name, no path, no leading dot. */
const MEMBER_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

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

/** Files under a data directory. Keys are validated so none can leave it. */
export class DiskStorage implements Storage {
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
  localPath(key: string): string {
    if (!KEY_PATTERN.test(key)) throw new Error(`Invalid storage key "${key}"`);
    return `${this.root}/${key}`;
  }
  memberPath(key: string, name: string): string {
    if (!MEMBER_PATTERN.test(name) || name.includes("..")) {
      throw new Error(`Invalid file name "${name}"`);
    }
    return `${this.localPath(key)}/${name}`;
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
  tempDir(): string {
    return this.#tempDir;
  }
  async check(): Promise<void> {
    await Deno.mkdir(this.tempDir(), { recursive: true });
    const probe = `${this.tempDir()}/.ready-${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "ok");
    await Deno.remove(probe);
  }
}
