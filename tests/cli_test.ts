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

Deno.test("cli: `deno task start` migrates and serves on PORT; `deno task token` mints a token", async () => {
  // The start task may write only ./data, so the test's data dir lives there.
  const dataDir = `./data/test-cli-${crypto.randomUUID()}`;
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
  try {
    await waitForHealthy(`http://127.0.0.1:${port}/healthz`, child, 60_000);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();

    const token = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "token", "alice"],
      cwd: root,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(token.code, 0, new TextDecoder().decode(token.stderr));
    const jwt = new TextDecoder().decode(token.stdout).trim().split("\n").pop()!;
    const list = await fetch(`http://127.0.0.1:${port}/api/chat/conversations`, {
      headers: { authorization: `Bearer ${jwt}` },
    });
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), { conversations: [], next_cursor: null });
    const secret = await Deno.stat(`${root}/${dataDir}/jwt_secret`);
    assert.equal(secret.mode! & 0o777, 0o600);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    const [stdout] = await output;
    await Deno.remove(`${root}/${dataDir}`, { recursive: true }).catch(() => {});
    assert.match(stdout, /Generated a token secret/);
    assert.match(stdout, new RegExp(`listening on http://0\\.0\\.0\\.0:${port}`));
  }
});

Deno.test("cli: `deno task worker` in another process runs the jobs the API queued", async () => {
  const dataDir = `./data/test-worker-${crypto.randomUUID()}`;
  await Deno.mkdir(`${root}/${dataDir}`, { recursive: true });
  await using ctx = await createTestContext({ worker: false, dataDir: `${root}/${dataDir}` });
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
