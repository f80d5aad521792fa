import { sql } from "drizzle-orm";
import { parseConfig } from "../lib/config/config.ts";
import type { Clock } from "../lib/core/clock.ts";
import type { AppDeps } from "../lib/deps.ts";
import { openDeps } from "../lib/open_deps.ts";
import { startWorker, type Worker } from "../lib/processing/worker.ts";
import { createApp } from "../routes/app.ts";
import { DiskStorage } from "../lib/storage/storage.ts";

/**
 * The third argument of `app.request` for a client on this host (what the
 * server passes as `remoteAddr`): `/metrics` answers only those while
 * METRICS_TOKEN is unset.
 */
export const LOOPBACK = { remoteAddr: { hostname: "127.0.0.1" } } as const;

/** A 32+ byte secret for tests. */
export const TEST_SECRET = "test-secret-test-secret-test-secret-0123456789";

/** An app on a temp data dir and a temp libSQL file, with a fast worker. */
export interface TestContext {
  app: ReturnType<typeof createApp>;
  deps: AppDeps;
  dataDir: string;
  worker: Worker | null;
  token(user: string, options?: { admin?: boolean }): Promise<string>;
  /** `app.request` with a Bearer token for `user` (or none when user is null). */
  request(user: string | null, path: string, init?: RequestInit): Promise<Response>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Builds a test context; dispose it with `await using`. */
export async function createTestContext(
  options: { env?: Record<string, string>; worker?: boolean; dataDir?: string; clock?: Clock } = {},
): Promise<TestContext> {
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "offchat-test-" });
  const config = parseConfig({
    DATA_DIR: dataDir,
    JWT_SECRET: TEST_SECRET,
    PUBLIC_URL: "http://offchat.test",
    ...options.env,
  });
  const opened = await openDeps(config, options.clock);
  const worker = options.worker === false
    ? null
    : startWorker(opened.deps, { concurrency: 1, pollMs: 50 });
  if (worker) opened.attachWorker(worker);
  const app = createApp(opened.deps, {
    onUnexpectedError: (error) => {
      throw error;
    },
  });
  const token = (user: string, o: { admin?: boolean } = {}) =>
    opened.deps.auth.signUserToken(user, { admin: o.admin });
  return {
    app,
    deps: opened.deps,
    dataDir,
    worker,
    token,
    async request(user, path, init = {}) {
      const headers = new Headers(init.headers);
      if (user !== null) headers.set("authorization", `Bearer ${await token(user)}`);
      return await app.request(path, { ...init, headers });
    },
    async [Symbol.asyncDispose]() {
      await worker?.stop();
      opened.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** The data-directory file of a stored key (the context's storage must be the disk). */
export function diskPath(ctx: Pick<TestContext, "deps">, key: string): string {
  if (!(ctx.deps.storage instanceof DiskStorage)) throw new Error("Not on disk storage");
  return ctx.deps.storage.localPath(key);
}

/** JSON body of a response, asserting nothing about its status. */
export async function body<T = Record<string, unknown>>(response: Response): Promise<T> {
  return await response.json() as T;
}

/** POSTs JSON as `user`. */
export async function postJson(
  ctx: TestContext,
  user: string,
  path: string,
  payload: unknown,
): Promise<Response> {
  return await ctx.request(user, path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
}

/** A conversation of `owner` with `others`, and one message from `owner` in it. */
export async function conversationWithMessage(
  ctx: TestContext,
  owner: string,
  others: string[] = [],
): Promise<{ conversationId: string; messageId: string }> {
  const conversation = await body<{ id: string }>(
    await postJson(ctx, owner, "/api/chat/conversations", { participant_ids: others }),
  );
  const message = await body<{ id: string }>(
    await postJson(ctx, owner, `/api/chat/conversations/${conversation.id}/messages`, {
      body: "a video",
    }),
  );
  return { conversationId: conversation.id, messageId: message.id };
}

/** Uploads a file as multipart, `message_id` first as clients are told to. */
export async function uploadFile(
  ctx: TestContext,
  user: string,
  messageId: string,
  path: string,
  fileName = path.split("/").pop()!,
): Promise<Response> {
  const form = new FormData();
  form.append("message_id", messageId);
  form.append("file", new Blob([await Deno.readFile(path)]), fileName);
  return await ctx.request(user, "/api/chat/videos/upload/", { method: "POST", body: form });
}

/** Polls the attachment until its status leaves `processing` (or the deadline passes). */
export async function waitForProcessed(
  ctx: TestContext,
  user: string,
  attachmentId: string,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const json = await body(await ctx.request(user, `/api/chat/attachments/${attachmentId}`));
    if (json.status !== "processing" || Date.now() > deadline) return json;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Every file below a directory, relative paths; not the lock files of the
 * processes' temp directories (`tmp/<owner>.lock`), which live as long as
 * their process, the test's own included.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(path: string, prefix: string): Promise<void> {
    for await (const entry of Deno.readDir(path)) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory) await walk(`${path}/${entry.name}`, rel);
      else if (!/^(?:tmp\/)?p\d+-[0-9a-f]{8}\.lock$/.test(rel)) found.push(rel);
    }
  }
  await walk(dir, "");
  return found.sort();
}

/** Path of a request relative to the public URL the tests configure. */
export function localPath(url: string): string {
  return url.replace("http://offchat.test", "");
}

/** Rows in a table (tables are named by the test, never by input). */
export async function countRows(ctx: TestContext, table: string): Promise<number> {
  const rows = await ctx.deps.db.all<{ n: number }>(sql.raw(`SELECT COUNT(*) AS n FROM ${table}`));
  return Number(rows[0]!.n);
}

/** A TCP port nothing listens on right now, for a server started in another process. */
export function freePort(): number {
  // Below Linux's ephemeral range (32768 and up by default): the kernel never gives these to
  // a client's connection, nor to another `port: 0` bind of a test running in parallel, in
  // the moment between this check and the child process binding the port. Two random
  // picks in parallel still meet now and then: startServer retries on that.
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error("No free port between 20000 and 32000");
}
