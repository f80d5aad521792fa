/**
 * The locks of resumable uploads as leases in the database, so that two
 * requests for one upload are serialized whichever processes they reach.
 *
 * tus asks a server to let one request at a time act on an upload, and a
 * new request to make the one holding it stop (a client that resumes after a
 * lost connection while the old, half-open `PATCH` still holds the lock).
 * `@tus/server`'s own locker keeps that in process memory, which is not
 * enough once several API processes serve one upload: two `PATCH`es in two
 * processes would both write at the same offset. Here a lock is a row of
 * `upload_locks`:
 *
 * - **acquire** is one `INSERT … ON CONFLICT DO UPDATE … WHERE expires_at <= now
 *   RETURNING`: it takes a free or expired lock, atomically, or nothing;
 * - **wait** — while another holds it, the row's `release_requested` is set
 *   (the holder then ends its request), and the insert is tried again every
 *   {@linkcode UploadLocksOptions.retryMs} until it succeeds, the caller gives
 *   up, or the timeout passes;
 * - **hold** — every {@linkcode UploadLocksOptions.pollMs} the holder reads its
 *   row: asked to release (or no longer its own), it tells its request once;
 *   past half its lease, it renews it, also after being asked, until its
 *   request has ended: two requests never write one upload at once;
 * - **release** deletes the row, if still its own.
 *
 * A process that dies holding a lock stops renewing it; the row expires
 * after {@linkcode UploadLocksOptions.leaseMs} and the next request takes it.
 * The times are the processes' own clocks, compared in the database: the
 * processes of one host (or hosts whose clocks agree to well within a lease).
 * Within a process, a waiter asks a holder of the same instance directly,
 * without waiting for its next read.
 *
 * @module
 */
import { and, eq, lte, ne } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { uploadLocks } from "../../db/schema.ts";
import type { Clock } from "../core/clock.ts";

/** Options for {@linkcode UploadLocks}. */
export interface UploadLocksOptions {
  /** How long a lock lasts without renewal: how long a dead process's lock blocks its upload. */
  leaseMs?: number;
  /** How often a holder reads its row (release requests, renewal). */
  pollMs?: number;
  /** How often a waiter tries again. */
  retryMs?: number;
}

/** Options for {@linkcode UploadLocks.acquire}. */
export interface AcquireOptions {
  /** Gives up waiting when aborted. */
  signal?: AbortSignal;
  /** Gives up after this many milliseconds. */
  timeoutMs: number;
  /** Called (once) when another request wants the lock, or the lease was lost: end this request. */
  onReleaseRequested: () => void | Promise<void>;
}

/** A lock this process holds. */
export interface HeldUploadLock {
  readonly uploadId: string;
  /** Deletes the lease (when still this holder's) and stops renewing it. */
  release(): Promise<void>;
}

/** Default lease: a resumed upload waits at most this long for a dead process's lock. */
export const UPLOAD_LOCK_LEASE_MS = 10_000;

/** The upload locks of one process, on a database that all of them share. */
export class UploadLocks {
  readonly #db: Database;
  readonly #clock: Clock;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  readonly #retryMs: number;
  /** This instance's held locks: a waiter here asks the holder at once. */
  readonly #held = new Map<string, () => void>();

  constructor(db: Database, clock: Clock, options: UploadLocksOptions = {}) {
    this.#db = db;
    this.#clock = clock;
    this.#leaseMs = options.leaseMs ?? UPLOAD_LOCK_LEASE_MS;
    this.#pollMs = options.pollMs ?? 500;
    this.#retryMs = options.retryMs ?? 100;
  }

  /**
   * Takes the lock of `uploadId`, waiting while another holds it (and asking
   * that one to release it); null when the wait timed out or was aborted.
   */
  async acquire(uploadId: string, options: AcquireOptions): Promise<HeldUploadLock | null> {
    const holder = crypto.randomUUID();
    const deadline = Date.now() + options.timeoutMs;
    let asked = false;
    while (!(await this.#take(uploadId, holder))) {
      if (options.signal?.aborted || Date.now() >= deadline) return null;
      if (!asked) {
        asked = true;
        this.#held.get(uploadId)?.();
        await this.#db.update(uploadLocks).set({ releaseRequested: 1 })
          .where(and(eq(uploadLocks.uploadId, uploadId), ne(uploadLocks.holder, holder)));
      }
      await pause(Math.min(this.#retryMs, Math.max(0, deadline - Date.now())), options.signal);
    }
    return this.#hold(uploadId, holder, options.onReleaseRequested);
  }

  /** Deletes the leases that expired (their holders died): housekeeping, not correctness. */
  async sweepExpired(): Promise<number> {
    const removed = await this.#db.delete(uploadLocks)
      .where(lte(uploadLocks.expiresAt, this.#clock().getTime()))
      .returning({ uploadId: uploadLocks.uploadId });
    return removed.length;
  }

  /** One atomic attempt: a free or expired lock becomes `holder`'s. */
  async #take(uploadId: string, holder: string): Promise<boolean> {
    const now = this.#clock().getTime();
    const taken = await this.#db.insert(uploadLocks)
      .values({ uploadId, holder, expiresAt: now + this.#leaseMs, releaseRequested: 0 })
      .onConflictDoUpdate({
        target: uploadLocks.uploadId,
        set: { holder, expiresAt: now + this.#leaseMs, releaseRequested: 0 },
        setWhere: lte(uploadLocks.expiresAt, now),
      })
      .returning({ holder: uploadLocks.holder });
    return taken.length === 1;
  }

  #hold(uploadId: string, holder: string, onRelease: () => void | Promise<void>): HeldUploadLock {
    let told = false;
    const tell = (): void => {
      if (told) return;
      told = true;
      // The request ends on its own; a failure to do so is its own to report.
      Promise.resolve().then(onRelease).catch(() => {});
    };
    this.#held.set(uploadId, tell);
    const mine = and(eq(uploadLocks.uploadId, uploadId), eq(uploadLocks.holder, holder));
    let polling: Promise<void> = Promise.resolve();
    const poll = async (): Promise<void> => {
      const [row] = await this.#db.select({
        expiresAt: uploadLocks.expiresAt,
        releaseRequested: uploadLocks.releaseRequested,
      }).from(uploadLocks).where(mine);
      if (!row) return tell();
      // Asked to release, it still renews until its request has ended: the waiter must not
      // start writing while this one may still be (only a dead holder's lease runs out).
      if (row.releaseRequested === 1) tell();
      const now = this.#clock().getTime();
      if (row.expiresAt - now < this.#leaseMs / 2) {
        await this.#db.update(uploadLocks).set({ expiresAt: now + this.#leaseMs }).where(mine);
      }
    };
    const timer = setInterval(() => {
      // A failed read or renewal is tried again at the next tick; the lease covers the gap.
      polling = polling.then(poll).catch(() => {});
    }, this.#pollMs);
    let released: Promise<void> | null = null;
    return {
      uploadId,
      release: () =>
        released ??= (async () => {
          clearInterval(timer);
          if (this.#held.get(uploadId) === tell) this.#held.delete(uploadId);
          await polling;
          await this.#db.delete(uploadLocks).where(mine);
        })(),
    };
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
