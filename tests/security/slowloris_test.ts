/**
 * Slowloris: many connections that each send part of a request head and then
 * nothing, to hold the server's connections forever. The server that main.ts
 * runs (`serve` in lib/serving/server.ts) must close each of them once its request head
 * is overdue, close keep-alive connections left idle as long, and still answer
 * everyone else, without cutting a request in flight.
 */
import assert from "node:assert/strict";
import { serve } from "../../lib/serving/server.ts";
import { createTestContext } from "../_helpers.ts";

const HEADER_TIMEOUT_MS = 500;
/** Far above the timeout: a connection still open by then was never going to be closed. */
const DEADLINE_MS = 20_000;
const ATTACKERS = 50;

/** Resolves once the server closes (or resets) the connection, reading and dropping what it sends. */
async function closedByServer(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return text;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
}

/** Waits for `promise`, or fails once DEADLINE_MS have passed. */
async function beforeDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: still waiting after ${DEADLINE_MS} ms`)),
      DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function assertHealthy(port: number, label: string): Promise<void> {
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200, `/healthz ${label}`);
  await health.body?.cancel();
}

Deno.test("slowloris: partial request heads and idle connections are closed, the rest is served", async () => {
  await using ctx = await createTestContext({ worker: false });
  // A request to /held is answered only when the test says so: a request in flight, longer
  // than the timeout.
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  await using server = serve(
    { hostname: "127.0.0.1", port: 0, headerTimeoutMs: HEADER_TIMEOUT_MS },
    async (request, info) => {
      if (new URL(request.url).pathname !== "/held") return await ctx.app.fetch(request, info);
      await released;
      return new Response("held ".repeat(1000));
    },
  );
  assert.ok(server.headerTimeout, "this Deno lets the server enforce the header timeout");
  const port = server.addr.port;
  const enc = new TextEncoder();
  const conns: Deno.Conn[] = [];
  try {
    const held = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(held);
    await held.write(enc.encode("GET /held HTTP/1.1\r\nHost: x\r\n\r\n"));
    const heldAnswer = closedByServer(held);

    const attackers = await Promise.all(Array.from({ length: ATTACKERS }, async (_, i) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      // Half a request line, or a request line and half the headers.
      await conn.write(
        enc.encode(i % 2 ? "GET /healthz HT" : "GET /healthz HTTP/1.1\r\nHost: x\r\nX-"),
      );
      return conn;
    }));
    // A keep-alive connection that made one request and then says nothing more.
    const idle = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(idle);
    await idle.write(enc.encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    const idleAnswer = closedByServer(idle);

    await assertHealthy(port, "during the attack");
    const leftovers = await beforeDeadline(
      Promise.all(attackers.map(closedByServer)),
      "the partial request heads",
    );
    for (const text of leftovers) assert.ok(!text.includes(" 200 "), "nothing was served to them");
    const idleText = await beforeDeadline(idleAnswer, "the idle keep-alive connection");
    assert.match(idleText, /^HTTP\/1\.1 200 /, "the idle connection got its answer first");

    // The timeout has passed many times over for the held request: it is still in flight.
    release();
    const heldText = await beforeDeadline(heldAnswer, "the held request");
    assert.match(heldText, /^HTTP\/1\.1 200 /);
    assert.ok(heldText.endsWith("held ".repeat(1000)), "the held request was answered in full");

    await assertHealthy(port, "after the attack");
  } finally {
    // Whatever failed, let the server shut down: nothing may stay in flight.
    release();
    for (const conn of conns) conn.close();
  }
});

Deno.test("slowloris: shutting down lets a request in flight finish", async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let arrived = () => {};
  const inFlight = new Promise<void>((resolve) => arrived = resolve);
  const server = serve(
    { hostname: "127.0.0.1", port: 0, headerTimeoutMs: 60_000 },
    async () => {
      arrived();
      await released;
      return new Response("done");
    },
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const answer = closedByServer(conn);
    await inFlight;
    const stopped = server.shutdown();
    release();
    await beforeDeadline(stopped, "shutdown");
    const text = await beforeDeadline(answer, "the answer");
    assert.match(text, /^HTTP\/1\.1 200 [\s\S]*\r\n\r\ndone$/);
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
      "no new connections after shutdown",
    );
  } finally {
    conn.close();
  }
});
