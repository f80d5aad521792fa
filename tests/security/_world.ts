/**
 * The observers the hostile-input tests use: a loopback TCP listener that
 * counts connections, a named pipe that notices being opened, a `/healthz`
 * poller, and the "nothing was left behind" check.
 */
import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import { body, countRows, diskPath, listFiles, type TestContext } from "../_helpers.ts";

/** A TCP listener on 127.0.0.1 that counts the connections it accepts. */
export interface Listener extends AsyncDisposable {
  url: string;
  connections(): number;
}

/** Opens a {@linkcode Listener}; dispose it with `await using`. */
export function openListener(): Listener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let count = 0;
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        count++;
        conn.close();
      }
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    connections: () => count,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
    },
  };
}

/**
 * A named pipe: opening it for writing completes only once something opens
 * it for reading, so `opened()` tells whether any process tried to read it.
 */
export interface Tripwire extends AsyncDisposable {
  path: string;
  opened(): boolean;
}

/** Makes a {@linkcode Tripwire} in `dir`. */
export async function openTripwire(dir: string): Promise<Tripwire> {
  const path = `${dir}/tripwire-${crypto.randomUUID()}.mp4`;
  const made = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(made.success, "mkfifo");
  let opened = false;
  let disposed = false;
  const writer = Deno.open(path, { write: true }).then((file) => {
    opened = true;
    return file;
  });
  return {
    path,
    opened: () => opened,
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      // Release the pending open by being its reader ourselves.
      const reader = opened ? null : await Deno.open(path, { read: true });
      (await writer).close();
      reader?.close();
    },
  };
}

/** Polls `/healthz` every 50 ms until stopped; reports failures and the slowest answer. */
export function pollHealth(
  baseUrl: string,
): { stop(): Promise<{ polls: number; failures: number; slowestMs: number }> } {
  let running = true;
  let polls = 0;
  let failures = 0;
  let slowestMs = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        const response = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
        await response.body?.cancel();
        if (response.status !== 200) failures++;
      } catch {
        failures++;
      }
      slowestMs = Math.max(slowestMs, performance.now() - started);
      polls++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { polls, failures, slowestMs };
    },
  };
}

/** The files and rows that exist now, to compare with after hostile uploads. */
export interface Snapshot {
  files: string[];
  attachments: number;
  jobs: number;
  uploads: number;
}

/** Records the data directory's files (database files aside) and the row counts. */
export async function snapshot(ctx: TestContext): Promise<Snapshot> {
  const files = (await listFiles(ctx.dataDir)).filter((f) => !/^offchat\.db|^jwt_secret$/.test(f));
  return {
    files,
    attachments: await countRows(ctx, "attachments"),
    jobs: await countRows(ctx, "jobs"),
    uploads: await countRows(ctx, "activity_log WHERE action = 'video.upload'"),
  };
}

/** Asserts that no file and no row appeared since `before`. */
export async function assertNothingLeft(
  ctx: TestContext,
  before: Snapshot,
  label = "",
): Promise<void> {
  assert.deepEqual(await snapshot(ctx), before, `something was left behind ${label}`);
}

/** Asserts a problem+json 4xx response and returns its body. */
export async function assertProblem(
  response: Response,
  label: string,
  statuses: number[] = [],
): Promise<Record<string, unknown>> {
  assert.ok(
    response.status >= 400 && response.status < 500,
    `${label}: expected a 4xx, got ${response.status}`,
  );
  if (statuses.length) {
    assert.ok(statuses.includes(response.status), `${label}: ${response.status}`);
  }
  assert.equal(response.headers.get("content-type"), "application/problem+json", label);
  const problem = await body(response);
  assert.equal(problem.status, response.status, label);
  assert.equal(typeof problem.code, "string", label);
  return problem;
}

/** Uploads raw bytes under a file name, `message_id` first. */
export async function uploadBytes(
  ctx: TestContext,
  user: string,
  messageId: string,
  bytes: Uint8Array,
  fileName: string,
  baseUrl?: string,
): Promise<Response> {
  const form = new FormData();
  form.append("message_id", messageId);
  form.append("file", new Blob([bytes as Uint8Array<ArrayBuffer>]), fileName);
  const init = {
    method: "POST",
    body: form,
    headers: { authorization: `Bearer ${await ctx.token(user)}` },
  };
  return baseUrl
    ? await fetch(`${baseUrl}/api/chat/videos/upload/`, init)
    : await ctx.app.request("/api/chat/videos/upload/", init);
}

/** The storage path of an attachment's original. */
export async function storedPath(ctx: TestContext, attachmentId: string): Promise<string> {
  const rows = await ctx.deps.db.all<{ storage_key: string }>(
    sql`SELECT storage_key FROM attachments WHERE id = ${attachmentId}`,
  );
  return diskPath(ctx, rows[0]!.storage_key);
}
