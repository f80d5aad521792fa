/**
 * One temporary directory per process under `DATA_DIR/tmp`, so that what a
 * killed process was writing (an upload's `.part`, a job's output) can be
 * removed at once, and never what a live process — this one or another
 * sharing the data directory — is still writing.
 *
 * A process owns `tmp/<owner>/` while it holds an exclusive `flock` on
 * `tmp/<owner>.lock`. The kernel drops the lock when the process dies,
 * however it dies (SIGKILL, a crash, the OOM killer), so "the lock can be
 * taken" means "its owner is gone", with no pid to compare (pids are reused
 * and differ between containers sharing a volume) and no clock (a freshness
 * rule would wait minutes for a crashed upload, or delete a slow live one).
 *
 * @module
 */

/** A process's own temporary directory; release it at exit. */
export interface ProcessTempDir {
  /** `tmp/<owner>`: every temporary file of this process goes here. */
  readonly path: string;
  /** `p<pid>-<random>`: names this process (its worker id is `worker-<owner>`). */
  readonly owner: string;
  /** Removes the directory and its lock (a graceful exit). */
  release(): void;
}

const LOCK_SUFFIX = ".lock";
/** Owner names: `p<pid>-<random>`, readable in `ls` and unique across restarts. */
const OWNER_PATTERN = /^p\d+-[0-9a-f]{8}$/;

/**
 * Creates this process's temporary directory under `tempRoot`, holding its
 * lock for as long as the process lives.
 *
 * The lock file is created, locked, then checked to still be the file at
 * its path: a sweep in another process may have taken the lock in between
 * (the file was briefly unlocked) and removed it, and then this try starts
 * again under a new name. The directory is made only after that, so a
 * directory without a lock file never belongs to a live process.
 */
export async function claimProcessTempDir(tempRoot: string): Promise<ProcessTempDir> {
  await Deno.mkdir(tempRoot, { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    const owner = `p${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    const lockPath = `${tempRoot}/${owner}${LOCK_SUFFIX}`;
    const lock = await Deno.open(lockPath, { write: true, createNew: true, mode: 0o600 });
    if (!(await lock.tryLock(true))) {
      lock.close();
      continue;
    }
    const held = await lock.stat();
    const atPath = await Deno.stat(lockPath).catch(() => null);
    if (!atPath || atPath.ino !== held.ino || atPath.dev !== held.dev) {
      lock.close();
      continue;
    }
    const path = `${tempRoot}/${owner}`;
    await Deno.mkdir(path, { mode: 0o700 });
    let released = false;
    return {
      path,
      owner,
      release(): void {
        if (released) return;
        released = true;
        releaseSync(lock, { path, lockPath });
      },
    };
  }
  throw new Error(`Cannot create a temporary directory in "${tempRoot}"`);
}

/**
 * Removes a directory and its lock, then lets the lock go. Synchronous: it
 * runs at exit, from `close()` functions that are.
 */
function releaseSync(lock: Deno.FsFile, files: { path: string; lockPath: string }): void {
  try {
    Deno.removeSync(files.path, { recursive: true });
    Deno.removeSync(files.lockPath);
  } catch {
    // a sweep of the next start removes what is left
  } finally {
    lock.close();
  }
}

/** Options for {@linkcode sweepDeadOwners}. */
export interface SweepDeadOwnersOptions {
  /**
   * Called for each file of a dead owner before its directory is removed;
   * it may move the file somewhere else (an upload that a crash left between
   * its row and its final place). Errors are the caller's to report: the
   * directory is then left for the next sweep.
   */
  adopt?: (path: string, name: string) => Promise<void>;
  /**
   * Called with the owner name of each process seen dead by its lock, before
   * its lock goes (the one moment its death is known for certain): its jobs
   * can be put back in the queue at once instead of after their lease.
   */
  onDeadOwner?: (owner: string) => Promise<void>;
}

/**
 * Removes the temporary directories of processes that are gone: those whose
 * lock can be taken, and directories without a lock. Returns how many.
 */
export async function sweepDeadOwners(
  tempRoot: string,
  options: SweepDeadOwnersOptions = {},
): Promise<number> {
  const entries = await Array.fromAsync(Deno.readDir(tempRoot)).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  });
  const names = new Set(entries.map((entry) => entry.name));
  let removed = 0;
  for (const entry of entries) {
    const lockName = entry.name.endsWith(LOCK_SUFFIX) ? entry.name : null;
    const owner = lockName ? lockName.slice(0, -LOCK_SUFFIX.length) : entry.name;
    if (!OWNER_PATTERN.test(owner)) continue;
    if (!lockName && entry.isDirectory && names.has(`${owner}${LOCK_SUFFIX}`)) continue;
    const directory = `${tempRoot}/${owner}`;
    if (!lockName) {
      // A directory whose lock file is gone: its owner exited or was swept.
      if (await removeOwned(directory, options)) removed++;
      continue;
    }
    const lock = await Deno.open(`${tempRoot}/${lockName}`, { write: true }).catch(() => null);
    if (!lock) continue;
    try {
      if (!(await lock.tryLock(true))) continue; // alive
      await options.onDeadOwner?.(owner);
      if (await removeOwned(directory, options)) removed++;
      await Deno.remove(`${tempRoot}/${lockName}`).catch(() => {});
    } finally {
      lock.close();
    }
  }
  return removed;
}

/**
 * The temp directories under `tempRoot` whose process is gone (their lock
 * can be taken, or is missing), without removing anything: what `fsck`
 * reports.
 */
export async function findDeadOwners(tempRoot: string): Promise<string[]> {
  const dead: string[] = [];
  const entries = await Array.fromAsync(Deno.readDir(tempRoot)).catch(() => []);
  const names = new Set(entries.map((entry) => entry.name));
  for (const entry of entries) {
    if (!entry.isDirectory || !OWNER_PATTERN.test(entry.name)) continue;
    if (!names.has(`${entry.name}${LOCK_SUFFIX}`)) {
      dead.push(entry.name);
      continue;
    }
    const lock = await Deno.open(`${tempRoot}/${entry.name}${LOCK_SUFFIX}`, { write: true })
      .catch(() => null);
    if (!lock) continue;
    try {
      if (await lock.tryLock(true)) dead.push(entry.name);
    } finally {
      lock.close();
    }
  }
  return dead;
}

/** Hands a dead owner's files to `adopt`, then removes its directory. */
async function removeOwned(directory: string, options: SweepDeadOwnersOptions): Promise<boolean> {
  try {
    if (options.adopt) {
      for await (const entry of Deno.readDir(directory)) {
        if (entry.isFile) await options.adopt(`${directory}/${entry.name}`, entry.name);
      }
    }
    await Deno.remove(directory, { recursive: true });
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
