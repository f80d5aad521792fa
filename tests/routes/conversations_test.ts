import assert from "node:assert/strict";
import { body, createTestContext, LOOPBACK, postJson } from "../_helpers.ts";

Deno.test("conversations: create, list, get; the creator is the owner", async () => {
  await using ctx = await createTestContext({ worker: false });
  const created = await postJson(ctx, "alice", "/api/chat/conversations", {
    title: "Trip",
    participant_ids: ["bob", "carol", "bob", "alice"],
  });
  assert.equal(created.status, 201);
  const conversation = await body<
    { id: string; participants: { user_id: string; role: string }[] }
  >(
    created,
  );
  assert.deepEqual(
    conversation.participants.map((p) => [p.user_id, p.role]).sort(),
    [["alice", "owner"], ["bob", "member"], ["carol", "member"]],
  );
  const list = await body<
    { conversations: { id: string; participant_count: number }[]; next_cursor: string | null }
  >(
    await ctx.request("bob", "/api/chat/conversations/"),
  );
  assert.deepEqual(list.conversations.map((c) => [c.id, c.participant_count]), [
    [conversation.id, 3],
  ]);
  assert.equal(list.next_cursor, null);
  const none = await body<{ conversations: unknown[] }>(
    await ctx.request("mallory", "/api/chat/conversations"),
  );
  assert.deepEqual(none.conversations, []);
  const got = await ctx.request("carol", `/api/chat/conversations/${conversation.id}`);
  assert.equal(got.status, 200);
  assert.equal((await body(got)).title, "Trip");
});

Deno.test("conversations: a non-participant gets 404 for everything inside", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { id } = await body<{ id: string }>(
    await postJson(ctx, "alice", "/api/chat/conversations", { participant_ids: ["bob"] }),
  );
  const attempts: [string, RequestInit][] = [
    [`/api/chat/conversations/${id}`, {}],
    [`/api/chat/conversations/${id}/messages`, {}],
    [`/api/chat/conversations/${id}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ body: "hi" }),
    }],
    [`/api/chat/conversations/${id}/participants`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: "mallory" }),
    }],
    [`/api/chat/conversations/${id}/participants/bob`, { method: "DELETE" }],
  ];
  for (const [path, init] of attempts) {
    const response = await ctx.request("mallory", path, init);
    assert.equal(response.status, 404, `${init.method ?? "GET"} ${path}`);
    assert.equal((await body(response)).code, "not_found");
  }
});

Deno.test("conversations: participants are added by members, removed by owners or themselves", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { id } = await body<{ id: string }>(
    await postJson(ctx, "alice", "/api/chat/conversations", { participant_ids: ["bob"] }),
  );
  const added = await postJson(ctx, "bob", `/api/chat/conversations/${id}/participants`, {
    user_id: "carol",
  });
  assert.equal(added.status, 201);
  await added.body?.cancel();
  const ownerByMember = await postJson(ctx, "bob", `/api/chat/conversations/${id}/participants`, {
    user_id: "dave",
    role: "owner",
  });
  assert.equal(ownerByMember.status, 403);
  await ownerByMember.body?.cancel();
  const kick = await ctx.request("bob", `/api/chat/conversations/${id}/participants/carol`, {
    method: "DELETE",
  });
  assert.equal(kick.status, 403);
  assert.equal((await body(kick)).code, "forbidden");
  const byOwner = await ctx.request("alice", `/api/chat/conversations/${id}/participants/carol`, {
    method: "DELETE",
  });
  assert.equal(byOwner.status, 204);
  const leave = await ctx.request("bob", `/api/chat/conversations/${id}/participants/bob`, {
    method: "DELETE",
  });
  assert.equal(leave.status, 204);
  const gone = await ctx.request("bob", `/api/chat/conversations/${id}`);
  assert.equal(gone.status, 404);
  await gone.body?.cancel();
});

Deno.test("messages: posted, listed oldest first, paged with before/next_cursor", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { id } = await body<{ id: string }>(
    await postJson(ctx, "alice", "/api/chat/conversations", { participant_ids: ["bob"] }),
  );
  for (let i = 0; i < 5; i++) {
    const sent = await postJson(
      ctx,
      i % 2 ? "bob" : "alice",
      `/api/chat/conversations/${id}/messages`,
      {
        body: `m${i}`,
      },
    );
    assert.equal(sent.status, 201);
    await sent.body?.cancel();
  }
  type Page = { messages: { body: string; attachments: unknown[] }[]; next_cursor: string | null };
  const first = await body<Page>(
    await ctx.request("bob", `/api/chat/conversations/${id}/messages?limit=3`),
  );
  assert.deepEqual(first.messages.map((m) => m.body), ["m2", "m3", "m4"]);
  assert.deepEqual(first.messages[0]!.attachments, []);
  assert.ok(first.next_cursor);
  const second = await body<Page>(
    await ctx.request(
      "bob",
      `/api/chat/conversations/${id}/messages?limit=3&before=${first.next_cursor}`,
    ),
  );
  assert.deepEqual(second.messages.map((m) => m.body), ["m0", "m1"]);
  assert.equal(second.next_cursor, null);
});

Deno.test("validation: bad fields are 400 problems naming the field", async () => {
  await using ctx = await createTestContext({ worker: false });
  const badParticipants = await postJson(ctx, "alice", "/api/chat/conversations", {
    participant_ids: ["ok", "not ok!"],
  });
  assert.equal(badParticipants.status, 400);
  const problem = await body(badParticipants);
  assert.equal(problem.code, "invalid_request");
  assert.match(String(problem.detail), /participant_ids/);
  const badId = await ctx.request("alice", "/api/chat/conversations/not-a-uuid");
  assert.equal(badId.status, 400);
  assert.match(String((await body(badId)).detail), /id/);
  const badLimit = await ctx.request(
    "alice",
    "/api/chat/conversations/01936b2e-6f3a-7cc4-9d5e-2f0c1a9b8e77/messages?limit=0",
  );
  assert.equal(badLimit.status, 400);
  await badLimit.body?.cancel();
  const notJson = await ctx.request("alice", "/api/chat/conversations", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{",
  });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.headers.get("content-type"), "application/problem+json");
  await notJson.body?.cancel();
});

Deno.test("errors: unknown routes are problem+json 404 without internals", async () => {
  await using ctx = await createTestContext({ worker: false });
  const response = await ctx.app.request("/nope");
  assert.equal(response.status, 404);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.equal((await body(response)).code, "not_found");
});

Deno.test("health: healthz, readyz, metrics, openapi and docs", async () => {
  await using ctx = await createTestContext({ worker: false });
  assert.deepEqual(await body(await ctx.app.request("/healthz")), { status: "ok" });
  const ready = await ctx.app.request("/readyz");
  assert.equal(ready.status, 200);
  const readiness = await body<{ status: string; checks: Record<string, { ok: boolean }> }>(ready);
  assert.equal(readiness.status, "ok");
  assert.deepEqual(Object.keys(readiness.checks).sort(), [
    "database",
    "disk_space",
    "ffmpeg",
    "ffmpeg_features",
    "ffprobe",
    "storage",
  ]);
  // METRICS_TOKEN is unset: a client on this host (tests/routes/observability_test.ts has more).
  const metrics = await ctx.app.request("/metrics", {}, LOOPBACK);
  assert.match(await metrics.text(), /# TYPE offchat_attachments gauge/);
  const spec = await body<{ openapi: string; paths: Record<string, unknown> }>(
    await ctx.app.request("/openapi.json"),
  );
  assert.equal(spec.openapi, "3.1.0");
  for (
    const path of [
      "/api/chat/conversations",
      "/api/chat/conversations/{id}/messages",
      "/api/chat/videos/upload/",
      "/api/chat/videos/{id}/download",
      "/api/chat/attachments/{id}",
      "/api/admin/activity",
    ]
  ) {
    assert.ok(spec.paths[path], path);
  }
  const docs = await ctx.app.request("/docs");
  assert.equal(docs.status, 200);
  const html = await docs.text();
  assert.doesNotMatch(html, /https?:\/\//, "no CDN");
  const asset = await ctx.app.request("/docs/assets/swagger-ui-bundle.js");
  assert.equal(asset.status, 200);
  assert.ok((await asset.arrayBuffer()).byteLength > 100_000);
});
