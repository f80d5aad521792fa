/**
 * The trust boundary of remote runners, in process: what a runner posts is
 * checked as a local worker's output is before anything is stored, a run
 * the runner no longer holds is refused, and a revoked token gets 401.
 * (The runner as a separate process: tests/scale/runner_test.ts.)
 */
import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { jobs } from "../../db/schema.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  listFiles,
  localPath,
  postJson,
  type TestContext,
  uploadFile,
} from "../_helpers.ts";

const post = (payload: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(payload),
});

/** A request as the admin `root`. */
async function asAdmin(ctx: TestContext, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${await ctx.token("root", { admin: true })}`);
  return await ctx.app.request(path, { ...init, headers });
}

/** A registered runner's token, through the admin and registration routes. */
async function registeredRunner(ctx: TestContext, kinds: string[]): Promise<string> {
  const made = await body<{ token: string }>(
    await asAdmin(ctx, "/api/admin/runner-registration-tokens", post({})),
  );
  const registered = await ctx.app.request("/api/runners/register", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ registration_token: made.token, name: "r1", kinds }),
  });
  assert.equal(registered.status, 201);
  return (await body<{ token: string }>(registered)).token;
}

function asRunner(ctx: TestContext, token: string) {
  return (path: string, init: RequestInit = {}) =>
    ctx.app.request(`/api/runners${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
    });
}

Deno.test("runners: outputs are checked before they are stored; lost runs get 409, revoked tokens 401", async () => {
  await using ctx = await createTestContext({ worker: false });
  // Registration is an admin's: a user cannot make a registration token.
  const refused = await postJson(ctx, "alice", "/api/admin/runner-registration-tokens", {});
  assert.equal(refused.status, 403);
  await refused.body?.cancel();
  const token = await registeredRunner(ctx, ["thumbnail"]);
  const runner = asRunner(ctx, token);

  const { messageId } = await conversationWithMessage(ctx, "alice");
  const uploaded = await body(await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")));
  const original = await Deno.readFile(await fixture("h264.mp4"));

  // Only the kinds it registered for.
  const offered = await body<{ job: { id: string; kind: string } }>(
    await runner("/jobs/request", post({})),
  );
  assert.equal(offered.job.kind, "thumbnail");
  const accepted = await body<{
    job: { id: string; attempt: number };
    task: { kind: string };
    input_url: string;
    lease_ms: number;
  }>(await runner(`/jobs/${offered.job.id}/accept`, post({})));
  assert.equal(accepted.task.kind, "thumbnail");
  assert.equal(accepted.lease_ms, ctx.deps.config.runnerStallMs);
  // Taken: a second accept is refused.
  const again = await runner(`/jobs/${offered.job.id}/accept`, post({}));
  assert.equal(again.status, 409);
  await again.body?.cancel();

  // The input by its signed URL, byte for byte; the URL is for this job and no other.
  const input = await ctx.app.request(localPath(accepted.input_url));
  assert.equal(input.status, 200);
  assert.deepEqual(new Uint8Array(await input.arrayBuffer()), original);
  const forged = await ctx.app.request(
    localPath(accepted.input_url).replace(offered.job.id, String(uploaded.id)),
  );
  assert.equal(forged.status, 401);
  await forged.body?.cancel();

  // A name a thumbnail job does not have is refused before a byte is written.
  const path = `/jobs/${offered.job.id}/outputs`;
  const q = `?attempt=${accepted.job.attempt}`;
  for (const name of ["master.m3u8", "..%2F..%2Fjwt_secret", "output.jpg"]) {
    const response = await runner(`${path}/${name}${q}`, { method: "PUT", body: "x" });
    assert.equal(response.status, 400, name);
    await response.body?.cancel();
  }
  // Progress renews the lease and reaches the job row (the SSE stream reads it).
  const progress = await runner(
    `/jobs/${offered.job.id}/progress`,
    post({ attempt: accepted.job.attempt, progress: 0.5 }),
  );
  assert.equal(progress.status, 204);
  const [row] = await ctx.deps.db.select().from(jobs).where(eq(jobs.id, offered.job.id));
  assert.equal(row?.progress, 0.5);

  // Not a JPEG: the check fails the run (retried later), nothing is stored.
  const put = await runner(`${path}/output${q}`, { method: "PUT", body: "<html>not a jpeg" });
  assert.equal(put.status, 204);
  await put.body?.cancel();
  const filesBefore = (await listFiles(ctx.dataDir)).filter((f) => f.startsWith("thumbnails/"));
  const completed = await runner(
    `/jobs/${offered.job.id}/complete`,
    post({ attempt: accepted.job.attempt }),
  );
  assert.equal(completed.status, 422);
  assert.match((await body<{ detail: string }>(completed)).detail, /not a JPEG/);
  const [failed] = await ctx.deps.db.select().from(jobs).where(eq(jobs.id, offered.job.id));
  assert.equal(failed?.status, "queued");
  assert.match(failed?.lastError ?? "", /failed its check/);
  const after = await listFiles(ctx.dataDir);
  assert.deepEqual(after.filter((f) => f.startsWith("thumbnails/")), filesBefore);
  assert.deepEqual(after.filter((f) => /runner-/.test(f)), [], "the posted output is removed");

  // That run is over: reports on it are refused.
  const stale = await runner(
    `/jobs/${offered.job.id}/progress`,
    post({ attempt: accepted.job.attempt }),
  );
  assert.equal(stale.status, 409);
  await stale.body?.cancel();

  // Revoked: 401 from then on, and the runner is listed as revoked.
  const listed = await body<{ items: { id: string }[] }>(
    await asAdmin(ctx, "/api/admin/runners"),
  );
  const revoke = await asAdmin(ctx, `/api/admin/runners/${listed.items[0]!.id}`, {
    method: "DELETE",
  });
  assert.equal(revoke.status, 204);
  const gone = await runner("/jobs/request", post({}));
  assert.equal(gone.status, 401);
  await gone.body?.cancel();
});
