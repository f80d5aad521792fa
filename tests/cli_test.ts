import assert from "node:assert/strict";
import { fixture } from "./_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  freePort,
  uploadFile,
  waitForProcessed,
} from "./_helpers.ts";

const root = new URL("..", import.meta.url).pathname;

async function waitForHealthy(
  url: string,
  child: Deno.ChildProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.status.then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(exited ? "the server exited" : "the server did not become healthy in time");
}

/** Runs a task with `env`; its stdout and stderr as text. */
async function task(args: string[], env: Record<string, string>) {
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", ...args],
    cwd: root,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: run.code, stdout: decode(run.stdout), stderr: decode(run.stderr) };
}

Deno.test("cli: `deno task start` with DATA_DIR anywhere migrates, serves on PORT and processes an upload; `deno task token` mints a token", async () => {
  // An absolute data directory outside the project: the launcher grants exactly it.
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-cli-" });
  const port = freePort();
  const env = { PORT: String(port), DATA_DIR: dataDir, WORKER_CONCURRENCY: "1" };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "start"],
    cwd: root,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHealthy(`${base}/healthz`, child, 60_000);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();

    const token = await task(["token", "alice"], env);
    assert.equal(token.code, 0, token.stderr);
    const headers = { authorization: `Bearer ${token.stdout.trim().split("\n").pop()}` };
    const list = await fetch(`${base}/api/chat/conversations`, { headers });
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), { conversations: [], next_cursor: null });
    const post = async (path: string, payload: unknown) =>
      await (await fetch(`${base}${path}`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify(payload),
      })).json();
    const conversation = await post("/api/chat/conversations", { participant_ids: ["bob"] });
    const message = await post(`/api/chat/conversations/${conversation.id}/messages`, {});
    const form = new FormData();
    form.append("message_id", message.id);
    form.append("file", new Blob([await Deno.readFile(await fixture("short.mp4"))]), "a.mp4");
    const upload = await fetch(`${base}/api/chat/videos/upload/`, {
      method: "POST",
      headers,
      body: form,
    });
    assert.equal(upload.status, 201);
    const { id } = await upload.json();
    // Wait on the processing events: a stream ends at the final status, or after 30 s,
    // when a client reconnects.
    let events = "";
    for (let i = 0; i < 4 && !/"status":"(ready|failed)"/.test(events); i++) {
      events = await (await fetch(`${base}/api/chat/attachments/${id}/events`, { headers })).text();
    }
    assert.match(events, /"status":"ready"/);
    const secret = await Deno.stat(`${dataDir}/jwt_secret`);
    assert.equal(secret.mode! & 0o777, 0o600);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    const [stdout] = await output;
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    assert.match(stdout, /Generated a token secret/);
    assert.match(stdout, new RegExp(`listening on http://0\\.0\\.0\\.0:${port}`));
  }
});

Deno.test("cli: `deno task worker` in another process runs the jobs the API queued", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-worker-" });
  await using ctx = await createTestContext({ worker: false, dataDir });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("short.mp4")));
  assert.equal(created.status, "processing");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "worker"],
    cwd: root,
    env: { DATA_DIR: dataDir, JWT_SECRET: ctx.deps.config.jwtSecret!, WORKER_CONCURRENCY: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const done = await waitForProcessed(ctx, "alice", String(created.id), 60_000);
    assert.equal(done.status, "ready");
    assert.ok(done.thumbnail_url);
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
});

Deno.test("cli: `deno task backfill` reports, queues and (with --work) runs what a new policy asks", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-backfill-" });
  await using ctx = await createTestContext({ dataDir, env: { HLS_MIN_DURATION: "60" } });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const created = await body(await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")));
  const id = String(created.id);
  assert.equal((await waitForProcessed(ctx, "alice", id)).status, "ready");
  await ctx.worker!.stop();
  // The same data under a policy that gives the clip a ladder.
  const env = { DATA_DIR: dataDir, JWT_SECRET: ctx.deps.config.jwtSecret!, HLS_MIN_DURATION: "1" };

  const dry = await task(["backfill", "--dry-run"], env);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would queue 1 job\(s\) for 1 of 1 attachment\(s\) \(hls 1\)/);
  const run = await task(["backfill", "--work"], env);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /queued 1 job\(s\) for 1 of 1 attachment\(s\) \(hls 1\) as batch /);
  assert.match(run.stdout, /^1\/1 done, 0 failed$/m);
  const after = await body(await ctx.request("alice", `/api/chat/attachments/${id}`));
  assert.ok(after.hls_url);
  const again = await task(["backfill", "--wait"], env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /nothing to queue/);
  const bad = await task(["backfill", "--dryrun"], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown argument "--dryrun"/);
});

Deno.test("cli: `deno task fsck` reports what a crash left and `--repair` fixes it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-fsck-" });
  try {
    const env = { DATA_DIR: dataDir, JWT_SECRET: "x".repeat(40) };
    const clean = await task(["fsck"], env);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /fsck: consistent/);
    // A killed process's temp directory (no lock) and a stored file no row owns.
    await Deno.mkdir(`${dataDir}/tmp/p1-0123abcd`, { recursive: true });
    await Deno.writeTextFile(`${dataDir}/tmp/p1-0123abcd/upload-x.part`, "partial");
    const stray = "media/2026/01/15/00000000-0000-7000-8000-000000000000.mp4";
    await Deno.mkdir(`${dataDir}/media/2026/01/15`, { recursive: true });
    await Deno.writeTextFile(`${dataDir}/${stray}`, "left by a crash");
    const found = await task(["fsck"], env);
    assert.equal(found.code, 1);
    assert.match(found.stdout, /dead temp directory: tmp\/p1-0123abcd/);
    assert.match(found.stdout, new RegExp(`unowned file: ${stray}`));
    const repaired = await task(["fsck", "--repair"], env);
    assert.equal(repaired.code, 0, repaired.stderr);
    assert.match(repaired.stdout, /repaired 2 issue/);
    assert.match((await task(["fsck"], env)).stdout, /fsck: consistent/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
