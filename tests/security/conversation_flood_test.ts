/**
 * Point 7 of the threat model, against conversations: one account created
 * 580 conversations, each adding a victim and 255 others, and the victim's
 * conversation list became an 11 MB answer that took seconds. Conversation
 * and participant lists now come a page at a time, a conversation embeds a
 * bounded preview of its participants, a conversation holds at most
 * `MAX_PARTICIPANTS`, and one user creates at most
 * `MAX_CONVERSATIONS_PER_HOUR` conversations and adds at most
 * `MAX_PARTICIPANT_ADDS_PER_HOUR` participants an hour, counted in the
 * database.
 */
import assert from "node:assert/strict";
import { body, countRows, createTestContext, postJson, type TestContext } from "../_helpers.ts";
import { assertProblem } from "./_world.ts";

interface ConversationJson {
  id: string;
  participants: { user_id: string; role: string }[];
  participant_count: number;
}
interface ConversationPage {
  conversations: ConversationJson[];
  next_cursor: string | null;
}
interface ParticipantPage {
  participants: { user_id: string; role: string }[];
  next_cursor: string | null;
}

/** A clock the test moves by hand. */
function manualClock(start: number): { now: () => Date; advance(ms: number): void } {
  let at = start;
  return {
    now: () => new Date(at),
    advance(ms) {
      at += ms;
    },
  };
}

/** `count` user ids, `prefix-000` and on. */
function users(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);
}

async function create(ctx: TestContext, user: string, others: string[]): Promise<Response> {
  return await postJson(ctx, user, "/api/chat/conversations", { participant_ids: others });
}

async function createOk(ctx: TestContext, user: string, others: string[]): Promise<string> {
  const response = await create(ctx, user, others);
  assert.equal(response.status, 201);
  return (await body<{ id: string }>(response)).id;
}

async function add(ctx: TestContext, user: string, id: string, who: string): Promise<Response> {
  return await postJson(ctx, user, `/api/chat/conversations/${id}/participants`, { user_id: who });
}

Deno.test("conversation flood: 300 conversations come in bounded pages, each exactly once, newest first", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_CONVERSATIONS_PER_HOUR: "0", RATE_LIMIT_PER_MINUTE: "0" },
  });
  // The attack: one account puts the victim in 300 full conversations.
  const crowd = users("crowd", 98);
  const created: string[] = [];
  for (let i = 0; i < 300; i++) created.push(await createOk(ctx, "mallory", ["victim", ...crowd]));
  const newestFirst = created.toReversed();

  const walk = async (limit: number | null): Promise<string[]> => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const params = new URLSearchParams();
      if (limit !== null) params.set("limit", String(limit));
      if (cursor !== null) params.set("before", cursor);
      const response = await ctx.request("victim", `/api/chat/conversations?${params}`);
      assert.equal(response.status, 200);
      const text = await response.text();
      const page = JSON.parse(text) as ConversationPage;
      assert.ok(
        page.conversations.length <= (limit ?? 20),
        `a page of ${page.conversations.length} conversations`,
      );
      // Each conversation embeds 20 of its 100 participants, so even a page of 50 stays
      // small (the whole list was 2.5 MB here, and 11 MB in the attack).
      assert.ok(text.length < 128 * 1024, `a page of ${text.length} bytes`);
      for (const conversation of page.conversations) {
        assert.equal(conversation.participant_count, 100);
        assert.equal(conversation.participants.length, 20);
      }
      assert.ok(page.next_cursor === null || page.conversations.length > 0);
      seen.push(...page.conversations.map((c) => c.id));
      cursor = page.next_cursor;
    } while (cursor !== null);
    return seen;
  };
  assert.deepEqual(await walk(null), newestFirst, "default pages of 20");
  assert.deepEqual(await walk(50), newestFirst, "the largest pages, 50");
  assert.deepEqual(await walk(7), newestFirst, "pages that do not divide 300");

  // The cursor does not move when conversations are made while paging.
  const first = await body<ConversationPage>(
    await ctx.request("victim", "/api/chat/conversations?limit=50"),
  );
  await createOk(ctx, "mallory", ["victim"]);
  const second = await body<ConversationPage>(
    await ctx.request("victim", `/api/chat/conversations?limit=50&before=${first.next_cursor}`),
  );
  assert.deepEqual(
    [...first.conversations, ...second.conversations].map((c) => c.id),
    newestFirst.slice(0, 100),
  );

  for (const limit of ["0", "51", "x"]) {
    const refused = await ctx.request("victim", `/api/chat/conversations?limit=${limit}`);
    const problem = await assertProblem(refused, `limit=${limit}`, [400]);
    assert.match(String(problem.detail), /limit/);
  }
  const badCursor = await ctx.request("victim", "/api/chat/conversations?before=../1");
  await assertProblem(badCursor, "before=../1", [400]);
});

Deno.test("conversation flood: MAX_CONVERSATIONS_PER_HOUR answers 429 with Retry-After, counted in the database", async () => {
  const clock = manualClock(Date.UTC(2030, 0, 1));
  const env = { MAX_CONVERSATIONS_PER_HOUR: "3", RATE_LIMIT_PER_MINUTE: "0" };
  await using one = await createTestContext({ worker: false, env, clock: clock.now });
  // A second process on the same database: the count must hold across both.
  await using two = await createTestContext({
    worker: false,
    env,
    clock: clock.now,
    dataDir: one.dataDir,
  });
  await createOk(one, "mallory", ["victim"]);
  clock.advance(10_000);
  await createOk(two, "mallory", ["victim"]);
  clock.advance(10_000);
  await createOk(one, "mallory", ["victim"]);
  clock.advance(10_000);
  const rowsBefore = await countRows(one, "conversations");
  const activityBefore = await countRows(one, "activity_log");
  for (const ctx of [one, two]) {
    const refused = await create(ctx, "mallory", ["victim"]);
    assert.equal(refused.status, 429);
    // The first creation leaves the hour 3600 - 30 seconds from now.
    assert.equal(refused.headers.get("retry-after"), "3570");
    const problem = await assertProblem(refused, "fourth creation", [429]);
    assert.equal(problem.code, "too_many_requests");
    assert.match(String(problem.detail), /3 conversations/);
  }
  assert.equal(await countRows(one, "conversations"), rowsBefore, "nothing was created");
  assert.equal(await countRows(one, "activity_log"), activityBefore, "nothing was logged");
  // Another user has their own allowance.
  await createOk(two, "bob", ["victim"]);
  // When the first creation leaves the hour, one more fits, and no more.
  clock.advance(3_600_000 - 30_000);
  await createOk(two, "mallory", ["victim"]);
  const again = await create(one, "mallory", ["victim"]);
  assert.equal(again.status, 429);
  assert.equal(again.headers.get("retry-after"), "10");
  await again.body?.cancel();
});

Deno.test("conversation flood: MAX_PARTICIPANTS refuses the creation and the add that would pass it", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_PARTICIPANTS: "5", RATE_LIMIT_PER_MINUTE: "0" },
  });
  const before = await countRows(ctx, "conversations");
  const tooBig = await create(ctx, "mallory", users("crowd", 5));
  const problem = await assertProblem(tooBig, "six participants", [400]);
  assert.match(String(problem.detail), /participant_ids.*at most 5 participants/);
  assert.equal(await countRows(ctx, "conversations"), before, "nothing was created");
  // The creator counts, repeats and the creator's own id do not.
  const full = await createOk(ctx, "mallory", [...users("crowd", 4), "crowd-000", "mallory"]);

  const refused = await add(ctx, "mallory", full, "victim");
  const conflict = await assertProblem(refused, "sixth participant", [409]);
  assert.equal(conflict.code, "conflict");
  assert.match(String(conflict.detail), /5/);
  // Adding someone already in changes nothing, full or not.
  const again = await add(ctx, "mallory", full, "crowd-001");
  assert.equal(again.status, 201);
  assert.equal((await body<ConversationJson>(again)).participant_count, 5);

  // Concurrent adds: the count and the insert share one write transaction.
  const room = await createOk(ctx, "mallory", ["crowd-000", "crowd-001"]);
  const statuses = await Promise.all(
    users("rush", 6).map(async (who) => {
      const response = await add(ctx, "mallory", room, who);
      await response.body?.cancel();
      return response.status;
    }),
  );
  assert.deepEqual(statuses.toSorted(), [201, 201, 409, 409, 409, 409]);
  const got = await body<ConversationJson>(
    await ctx.request("mallory", `/api/chat/conversations/${room}`),
  );
  assert.equal(got.participant_count, 5);
});

Deno.test("conversation flood: MAX_PARTICIPANT_ADDS_PER_HOUR bounds adds to existing conversations; the added can leave", async () => {
  const clock = manualClock(Date.UTC(2030, 0, 1));
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_PARTICIPANT_ADDS_PER_HOUR: "3", RATE_LIMIT_PER_MINUTE: "0" },
    clock: clock.now,
  });
  const a = await createOk(ctx, "mallory", []);
  const b = await createOk(ctx, "mallory", []);
  for (const [id, who] of [[a, "victim"], [b, "victim"], [a, "carol"]] as const) {
    const added = await add(ctx, "mallory", id, who);
    assert.equal(added.status, 201);
    await added.body?.cancel();
    clock.advance(1000);
  }
  // Re-adding someone already in is no add.
  const noop = await add(ctx, "mallory", a, "victim");
  assert.equal(noop.status, 201);
  await noop.body?.cancel();
  const refused = await add(ctx, "mallory", b, "carol");
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "3597");
  const problem = await assertProblem(refused, "fourth add", [429]);
  assert.match(String(problem.detail), /3 participants/);
  // Every add is in the activity log, under the one who made it.
  const adds = await body<{ items: { actor_id: string; detail: { user_id: string } }[] }>(
    await ctx.app.request("/api/admin/activity?action=participant.add", {
      headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
    }),
  );
  assert.deepEqual(
    adds.items.map((row) => [row.actor_id, row.detail.user_id]).sort(),
    [["mallory", "carol"], ["mallory", "victim"], ["mallory", "victim"]],
  );
  // The victim leaves both conversations and no longer sees them.
  for (const id of [a, b]) {
    const left = await ctx.request("victim", `/api/chat/conversations/${id}/participants/victim`, {
      method: "DELETE",
    });
    assert.equal(left.status, 204);
  }
  const list = await body<ConversationPage>(await ctx.request("victim", "/api/chat/conversations"));
  assert.deepEqual(list.conversations, []);
  // After the hour, mallory may add again.
  clock.advance(3_600_000);
  const later = await add(ctx, "mallory", b, "carol");
  assert.equal(later.status, 201);
  await later.body?.cancel();
});

Deno.test("conversation flood: participants are paged by user id, and a conversation embeds the first 20", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { RATE_LIMIT_PER_MINUTE: "0" },
  });
  const crowd = users("crowd", 44);
  const id = await createOk(ctx, "mallory", crowd.toReversed());
  const everyone = [...crowd, "mallory"].sort();
  const seen: string[] = [];
  const sizes: number[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? "limit=20" : `limit=20&after=${cursor}`;
    const response = await ctx.request(
      "crowd-007",
      `/api/chat/conversations/${id}/participants?${query}`,
    );
    assert.equal(response.status, 200);
    const page = await body<ParticipantPage>(response);
    sizes.push(page.participants.length);
    seen.push(...page.participants.map((p) => p.user_id));
    cursor = page.next_cursor;
  } while (cursor !== null);
  assert.deepEqual(sizes, [20, 20, 5]);
  assert.deepEqual(seen, everyone);

  const conversation = await body<ConversationJson>(
    await ctx.request("crowd-007", `/api/chat/conversations/${id}`),
  );
  assert.equal(conversation.participant_count, 45);
  assert.deepEqual(conversation.participants.map((p) => p.user_id), everyone.slice(0, 20));
  const defaults = await body<ParticipantPage>(
    await ctx.request("crowd-007", `/api/chat/conversations/${id}/participants`),
  );
  assert.equal(defaults.participants.length, 45);
  assert.equal(defaults.next_cursor, null);

  const stranger = await ctx.request("victim", `/api/chat/conversations/${id}/participants`);
  assert.equal((await assertProblem(stranger, "stranger", [404])).code, "not_found");
  const badLimit = await ctx.request(
    "mallory",
    `/api/chat/conversations/${id}/participants?limit=201`,
  );
  await assertProblem(badLimit, "limit=201", [400]);
});
