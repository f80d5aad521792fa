/**
 * Remote runners as the service knows them: registration tokens an admin
 * makes, runners that registered with one, their bearer tokens, revocation.
 * Tokens are 256-bit random values shown once and kept only as SHA-256
 * hashes: a leaked database names no usable token, and a fast hash is
 * enough for values nobody can guess.
 *
 * @module
 */
import { and, desc, eq, gt, isNull, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { jobs, type Runner, runnerRegistrationTokens, runners } from "../../db/schema.ts";
import { ApiError } from "../core/errors.ts";
import { encodeBase64Url } from "../core/encoding.ts";
import { sha256Hex } from "../core/hash.ts";
import { newId } from "../core/ids.ts";
import { expireLeasesOf, type JobKind, PROCESSING_JOBS } from "../processing/jobs.ts";

/** The job kinds a runner may do: every kind of processing. */
export const RUNNER_KINDS: readonly JobKind[] = PROCESSING_JOBS;

/** The `locked_by` of the jobs a runner holds: its lease owner name in the `jobs` table. */
export function runnerWorkerId(runnerId: string): string {
  return `runner-${runnerId}`;
}

/** A new token: a prefix saying what it is, then 32 random bytes. */
function newToken(prefix: string): string {
  return `${prefix}_${encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)))}`;
}

function hashToken(token: string): string {
  return sha256Hex(new TextEncoder().encode(token));
}

function unauthorized(): ApiError {
  return new ApiError("unauthorized", "Invalid or revoked runner token", {
    "www-authenticate": 'Bearer realm="offchat-runners"',
  });
}

/** A registration token as made: the token itself is in no other place. */
export interface NewRegistrationToken {
  id: string;
  token: string;
  expiresAt: number;
}

/** Makes a registration token good for `ttlMs`; any number of runners may register with it. */
export async function createRegistrationToken(
  db: Database,
  options: { createdBy: string; ttlMs: number; now: Date },
): Promise<NewRegistrationToken> {
  const token = newToken("ocreg");
  const id = newId();
  const t = options.now.getTime();
  const expiresAt = t + options.ttlMs;
  await db.insert(runnerRegistrationTokens).values({
    id,
    tokenHash: hashToken(token),
    createdBy: options.createdBy,
    createdAt: t,
    expiresAt,
  });
  return { id, token, expiresAt };
}

/** A runner as registered, with its token (shown once). */
export interface RegisteredRunner {
  runner: Runner;
  token: string;
}

/** Registers a runner with a live registration token; 401 for any other token. */
export async function registerRunner(
  db: Database,
  registration: { registrationToken: string; name: string; kinds: readonly JobKind[]; now: Date },
): Promise<RegisteredRunner> {
  const t = registration.now.getTime();
  const [issued] = await db.select({ id: runnerRegistrationTokens.id })
    .from(runnerRegistrationTokens)
    .where(and(
      eq(runnerRegistrationTokens.tokenHash, hashToken(registration.registrationToken)),
      gt(runnerRegistrationTokens.expiresAt, t),
    ));
  if (!issued) {
    throw new ApiError("unauthorized", "Invalid or expired registration token", {
      "www-authenticate": 'Bearer realm="offchat-runners"',
    });
  }
  const token = newToken("ocrun");
  const runner: Runner = {
    id: newId(),
    name: registration.name,
    tokenHash: hashToken(token),
    kinds: JSON.stringify([...new Set(registration.kinds)]),
    registrationTokenId: issued.id,
    createdAt: t,
    lastSeenAt: t,
    revokedAt: null,
  };
  await db.insert(runners).values(runner);
  return { runner, token };
}

/** How often a runner's `last_seen_at` is written at most: every request would be a write. */
const LAST_SEEN_GRANULARITY_MS = 1000;

/**
 * The runner a bearer token names, and a note that it was seen now; the same
 * 401 for an unknown token and a revoked runner's.
 */
export async function authenticateRunner(
  db: Database,
  token: string | null,
  now: Date,
): Promise<Runner> {
  if (!token) throw unauthorized();
  const [runner] = await db.select().from(runners)
    .where(and(eq(runners.tokenHash, hashToken(token)), isNull(runners.revokedAt)));
  if (!runner) throw unauthorized();
  const t = now.getTime();
  if (t - runner.lastSeenAt >= LAST_SEEN_GRANULARITY_MS) {
    await db.update(runners).set({ lastSeenAt: t }).where(eq(runners.id, runner.id));
    runner.lastSeenAt = t;
  }
  return runner;
}

/** The kinds a runner registered for. */
export function kindsOf(runner: Pick<Runner, "kinds">): JobKind[] {
  const kinds = JSON.parse(runner.kinds) as unknown;
  return Array.isArray(kinds) ? RUNNER_KINDS.filter((kind) => kinds.includes(kind)) : [];
}

/** A runner as the admin list shows it, with the job it holds, if any. */
export interface RunnerListing {
  runner: Runner;
  job: { id: string; kind: string; attachmentId: string; progress: number | null } | null;
}

/** Every runner, newest first, each with the job whose lease it holds. */
export async function listRunners(db: Database, options: { limit: number }): Promise<
  RunnerListing[]
> {
  const rows = await db.select().from(runners).orderBy(desc(runners.createdAt))
    .limit(options.limit);
  if (rows.length === 0) return [];
  const held = await db.select({
    id: jobs.id,
    kind: jobs.kind,
    attachmentId: jobs.attachmentId,
    progress: jobs.progress,
    lockedBy: jobs.lockedBy,
  }).from(jobs).where(and(eq(jobs.status, "running"), sql`${jobs.lockedBy} LIKE 'runner-%'`));
  return rows.map((runner) => {
    const job = held.find((j) => j.lockedBy === runnerWorkerId(runner.id));
    return {
      runner,
      job: job
        ? { id: job.id, kind: job.kind, attachmentId: job.attachmentId, progress: job.progress }
        : null,
    };
  });
}

/**
 * Revokes a runner: its token gets 401 from now on, and the jobs it holds go
 * back to the queue at once (their leases end, as a dead worker's do, so the
 * attempt counts). False when there is no such runner; revoking twice is
 * harmless.
 */
export async function revokeRunner(db: Database, id: string, now: Date): Promise<boolean> {
  const [runner] = await db.select({ id: runners.id, revokedAt: runners.revokedAt })
    .from(runners).where(eq(runners.id, id));
  if (!runner) return false;
  if (runner.revokedAt === null) {
    await db.update(runners).set({ revokedAt: now.getTime() }).where(eq(runners.id, id));
  }
  await expireLeasesOf(db, runnerWorkerId(id), now);
  return true;
}
