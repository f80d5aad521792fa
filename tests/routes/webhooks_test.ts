/**
 * Webhooks: every event reaches a real loopback receiver, signed per Standard
 * Webhooks; a delivery answered 500 three times succeeds on a retry; and
 * private, link-local and metadata targets are refused, tested with literal
 * addresses and an injected resolver, so no address but loopback is touched.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { eq } from "drizzle-orm";
import { jobs } from "../../db/schema.ts";
import { parseConfig } from "../../lib/config/config.ts";
import { permissionFlags } from "../../lib/config/permissions.ts";
import { JobQueue } from "../../lib/processing/jobs.ts";
import {
  checkTarget,
  classifyAddress,
  RefusedTarget,
  type Resolver,
} from "../../lib/webhooks/addresses.ts";
import { sendDelivery, startWebhookSender } from "../../lib/webhooks/deliveries.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  TEST_SECRET,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";
import { fixture } from "../_fixtures.ts";

const SECRET = `whsec_${btoa("0123456789abcdef0123456789abcdef")}`;

/** A resolver that answers from a table and never touches the network. */
function resolverOf(table: Record<string, string[]>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  return Object.assign(async (host: string) => {
    asked.push(host);
    return await Promise.resolve(table[host] ?? []);
  }, { asked });
}

Deno.test("the address classifier knows private, link-local, metadata and mapped forms", () => {
  const cases: [string, string][] = [
    ["8.8.8.8", "public"],
    ["2606:4700::1111", "public"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", "public"],
    ["192.168.1.1", "private"],
    ["127.0.0.1", "loopback"],
    ["127.8.9.10", "loopback"],
    ["::1", "loopback"],
    ["169.254.169.254", "metadata"],
    ["169.254.1.1", "link-local"],
    ["fe80::1", "link-local"],
    ["fd00:ec2::254", "metadata"],
    ["fc00::5", "private"],
    ["fd12:3456::1", "private"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.255", "cgnat"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["ff02::1", "multicast"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "metadata"],
    ["::ffff:7f00:1", "loopback"],
    ["[::ffff:192.168.0.1]", "private"],
    ["64:ff9b::a9fe:a9fe", "metadata"],
    ["255.255.255.255", "reserved"],
  ];
  for (const [address, kind] of cases) {
    assert.deepStrictEqual(classifyAddress(address), kind, address);
  }
  assert.throws(() => classifyAddress("example.com"));
});

Deno.test("targets that resolve to private, link-local or metadata addresses are refused", async () => {
  const resolve = resolverOf({
    "hooks.example": ["93.184.216.34", "10.0.0.7"],
    "meta.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:192.168.1.10"],
    "ok.example": ["93.184.216.34", "2606:2800:220:1::1"],
    "internal.example": ["10.0.0.8"],
  });
  const refuse = (url: string, allowHosts: string[] = []) =>
    assert.rejects(() => checkTarget(new URL(url), { allowHosts }, resolve), RefusedTarget);
  // Any one refused address refuses the target: the connection may use any of them.
  await refuse("https://hooks.example/in");
  await refuse("https://meta.example/in");
  await refuse("https://meta.example/in", ["meta.example"]); // metadata: never
  await refuse("https://mapped.example/in");
  await refuse("https://internal.example/in");
  await refuse("https://nothing.example/in"); // no address at all
  await refuse("http://10.0.0.1/in");
  await refuse("http://[fe80::1]/in");
  await refuse("http://[::ffff:a9fe:a9fe]/in", ["other.example"]);
  assert.deepStrictEqual(
    await checkTarget(new URL("https://ok.example/"), { allowHosts: [] }, resolve),
    ["93.184.216.34", "2606:2800:220:1::1"],
  );
  assert.deepStrictEqual(
    await checkTarget(new URL("https://internal.example/"), {
      allowHosts: ["internal.example"],
    }, resolve),
    ["10.0.0.8"],
  );
  // Loopback URLs are not looked up.
  assert.deepStrictEqual(
    await checkTarget(new URL("http://127.0.0.1:9/"), { allowHosts: [] }, resolve),
    [
      "127.0.0.1",
    ],
  );
  assert(!resolve.asked.includes("127.0.0.1"));

  // A delivery to a name resolving to a private address is refused before any connection.
  const refused = await sendDelivery({ id: "msg_1", payload: "{}" }, {
    webhook: { url: "https://internal.example/hook", secret: SECRET, allowHosts: [] },
    resolve,
    clock: () => new Date(),
  });
  assert.deepStrictEqual(refused.ok, false);
  assert.deepStrictEqual(refused.refused, true);
  assert(refused.error?.includes("10.0.0.8"));
});

Deno.test("WEBHOOK_URL is https:, or http: to loopback or an allowed host; its host is granted", () => {
  const base = { JWT_SECRET: TEST_SECRET, WEBHOOK_SECRET: SECRET };
  assert.throws(() => parseConfig({ ...base, WEBHOOK_URL: "http://hooks.example/in" }));
  assert.throws(() => parseConfig({ ...base, WEBHOOK_URL: "ftp://hooks.example/in" }));
  assert.throws(() => parseConfig({ WEBHOOK_URL: "https://127.0.0.1/in" }));
  assert.throws(() => parseConfig({ ...base, WEBHOOK_URL: "https://u:p@127.0.0.1/in" }));
  assert.throws(() => parseConfig({ ...base, WEBHOOK_URL: "https://hooks.example/in" }));
  assert.throws(() =>
    parseConfig({ ...base, WEBHOOK_SECRET: "plain", WEBHOOK_URL: "https://127.0.0.1/" })
  );
  const named = parseConfig({
    ...base,
    WEBHOOK_URL: "http://hooks.internal:8080/in",
    WEBHOOK_ALLOW_HOSTS: "hooks.internal",
    WEBHOOK_NAMESERVER: "10.0.0.53",
  });
  const net = (command: "serve" | "worker" | "migrate") =>
    permissionFlags(named, command).find((flag) => flag.startsWith("--allow-net")) ?? "";
  assert(net("serve").includes("hooks.internal:8080") && net("serve").includes("10.0.0.53:53"));
  assert(net("worker").includes("hooks.internal:8080"));
  assert(!net("migrate").includes("hooks.internal"));
  assert.deepStrictEqual(
    parseConfig({ ...base, WEBHOOK_URL: "http://[::1]:9/in" }).webhook?.allowHosts,
    [],
  );
});

Deno.test("every event reaches a loopback receiver signed, and a delivery answered 500 three times succeeds on a retry", async () => {
  // The receiver verifies each request with the standardwebhooks package; the first delivery it
  // sees is answered 500 three times, then 200; every other one 200 at once.
  const verifier = new Webhook(SECRET);
  const received: { id: string; type: string; attachment: Record<string, unknown> }[] = [];
  const attemptsById = new Map<string, number>();
  let first: string | null = null;
  let badSignatures = 0;
  const changed = new EventTarget();
  await using receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const text = await req.text();
      let payload: { type: string; data: { attachment: Record<string, unknown> } };
      try {
        payload = verifier.verify(text, Object.fromEntries(req.headers)) as typeof payload;
      } catch {
        badSignatures++;
        return new Response("bad signature", { status: 400 });
      }
      const id = req.headers.get("webhook-id")!;
      first ??= id;
      const n = (attemptsById.get(id) ?? 0) + 1;
      attemptsById.set(id, n);
      if (id === first && n <= 3) return new Response("not now", { status: 500 });
      received.push({ id, type: payload.type, attachment: payload.data.attachment });
      changed.dispatchEvent(new Event("change"));
      return new Response(null, { status: 204 });
    },
  );
  const waitForEvent = (type: string, count = 1) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (received.filter((r) => r.type === type).length >= count) done(resolve);
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no ${type}`))), 10_000);
      const done = (end: () => void) => {
        clearTimeout(timer);
        changed.removeEventListener("change", check);
        end();
      };
      changed.addEventListener("change", check);
      check();
    });

  await using ctx = await createTestContext({
    env: {
      WEBHOOK_URL: `http://127.0.0.1:${receiver.addr.port}/hooks`,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_RETRY_BASE_MS: "20",
      WEBHOOK_MAX_ATTEMPTS: "5",
      HLS: "0",
    },
  });
  const sender = startWebhookSender(ctx.deps, { pollMs: 20 })!;
  try {
    const admin = { authorization: `Bearer ${await ctx.token("root", { admin: true })}` };
    // ready and playable: a real upload processed by the real worker.
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const uploaded = await body<{ id: string }>(
      await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")),
    );
    assert.deepStrictEqual((await waitForProcessed(ctx, "alice", uploaded.id)).status, "ready");
    await waitForEvent("attachment.playable");
    await waitForEvent("attachment.ready");
    const ready = received.find((r) => r.type === "attachment.ready")!;
    assert.deepStrictEqual(ready.attachment.id, uploaded.id);
    assert.deepStrictEqual(ready.attachment.message_id, messageId);
    assert.deepStrictEqual(ready.attachment.status, "ready");
    assert(!JSON.stringify(received).includes("http"), "no URLs in a payload");

    // failed: the attachment reprocessed, its job failed on every attempt through the job queue.
    await ctx.worker!.stop();
    const again = await ctx.app.request(`/api/admin/attachments/${uploaded.id}/reprocess`, {
      method: "POST",
      headers: admin,
    });
    assert.deepStrictEqual(again.status, 202);
    let now = Date.now();
    const queue = new JobQueue({
      db: ctx.deps.db,
      workerId: "test",
      leaseMs: 60_000,
      clock: () => new Date(now),
      webhook: ctx.deps.config.webhook,
    });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const job = await queue.claim();
      assert(job);
      assert.deepStrictEqual(
        await queue.fail(job, "broken on purpose"),
        attempt < 3 ? "retry" : "failed",
      );
      await ctx.deps.db.update(jobs).set({ runAfter: 0 }).where(eq(jobs.id, job.id));
      now += 1000;
    }
    await waitForEvent("attachment.failed");
    const failed = received.find((r) => r.type === "attachment.failed")!;
    assert.deepStrictEqual(failed.attachment.error, "broken on purpose");

    // deleted
    const deleted = await ctx.request("alice", `/api/chat/attachments/${uploaded.id}`, {
      method: "DELETE",
    });
    assert.deepStrictEqual(deleted.status, 204);
    await waitForEvent("attachment.deleted");
    assert.deepStrictEqual(
      received.find((r) => r.type === "attachment.deleted")!.attachment.deleted,
      true,
    );

    // The admin list: the first delivery took four attempts, and is delivered.
    // The receiver has answered; the sender records the answer just after.
    let list: { items: Record<string, unknown>[] };
    const deadline = Date.now() + 5000;
    while (true) {
      list = await body(
        await ctx.app.request("/api/admin/webhooks/deliveries", { headers: admin }),
      );
      if (list.items.every((item) => item.status === "delivered") || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const byId = new Map(list.items.map((item) => [item.id, item]));
    assert.deepStrictEqual(byId.get(first!)?.attempts, 4);
    assert.deepStrictEqual(byId.get(first!)?.status, "delivered");
    assert.deepStrictEqual(attemptsById.get(first!), 4);
    assert.deepStrictEqual(
      new Set(list.items.map((item) => item.event)),
      new Set([
        "attachment.playable",
        "attachment.ready",
        "attachment.failed",
        "attachment.deleted",
      ]),
    );
    assert(list.items.every((item) => item.status === "delivered"));
    assert.deepStrictEqual(badSignatures, 0);

    // Resend: the same webhook-id arrives again.
    const resend = await ctx.app.request(`/api/admin/webhooks/deliveries/${ready.id}/resend`, {
      method: "POST",
      headers: admin,
    });
    assert.deepStrictEqual(resend.status, 202);
    await waitForEvent("attachment.ready", 2);
    assert.deepStrictEqual(received.filter((r) => r.id === ready.id).length, 2);
    const missing = await ctx.app.request(
      `/api/admin/webhooks/deliveries/${crypto.randomUUID()}/resend`,
      {
        method: "POST",
        headers: admin,
      },
    );
    assert.deepStrictEqual(missing.status, 404);
    const metrics = await ctx.deps.metrics.text();
    assert(
      metrics.includes(
        'offchat_webhook_deliveries_total{event="attachment.ready",outcome="delivered"}',
      ),
    );
    assert(metrics.includes("offchat_webhook_deliveries{"));
  } finally {
    await sender.stop();
  }
});
