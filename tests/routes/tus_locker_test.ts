/**
 * The tus locker on database leases (routes/_tus.ts `LeaseLocker`,
 * lib/uploads/upload_locks.ts), as two API processes see it: two lockers,
 * each on its own connection to one database file.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import { uploadLocks } from "../../db/schema.ts";
import { ApiError } from "../../lib/core/errors.ts";
import { UploadLocks } from "../../lib/uploads/upload_locks.ts";
import { LeaseLocker, TusEndpoint, type UploadCaller } from "../../routes/_tus.ts";
import { conversationWithMessage, createTestContext } from "../_helpers.ts";

const UPLOAD = "0190a000-0000-7000-8000-000000000001";
const clock = () => new Date();

/** Two "processes": two connections to one migrated database file, each with its locker. */
async function twoProcesses(options: { leaseMs?: number; timeoutMs?: number } = {}) {
  const dir = await Deno.makeTempDir({ prefix: "offchat-tus-lock-" });
  const url = `file:${dir}/offchat.db`;
  const first = await openDatabase(url);
  await migrate(first.client);
  const second = await openDatabase(url);
  const locker = (db: typeof first.db) =>
    new LeaseLocker(new UploadLocks(db, clock, { leaseMs: options.leaseMs, pollMs: 50 }), {
      timeoutMs: options.timeoutMs,
    });
  return {
    a: locker(first.db),
    b: locker(second.db),
    db: first.db,
    async [Symbol.asyncDispose]() {
      first.close();
      second.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function signal(): AbortSignal {
  return new AbortController().signal;
}

Deno.test("tus locker: a lock held in one process makes the other wait, and asks the holder to release", async () => {
  await using p = await twoProcesses();
  const held = p.a.newLock(UPLOAD);
  const asked = Promise.withResolvers<void>();
  await held.lock(signal(), () => asked.resolve());
  let acquired = false;
  const waiter = p.b.newLock(UPLOAD);
  const waiting = waiter.lock(signal(), () => {}).then(() => (acquired = true));
  // The holder is asked through the database (another process's request wants the upload).
  await asked.promise;
  assert.equal(acquired, false, "the lock was taken while held");
  await held.unlock();
  await waiting;
  assert.equal(acquired, true);
  const rows = await p.db.select().from(uploadLocks);
  assert.equal(rows.length, 1);
  await waiter.unlock();
  assert.deepEqual(await p.db.select().from(uploadLocks), []);
});

Deno.test("tus locker: two processes taking turns never hold one upload at once", async () => {
  await using p = await twoProcesses();
  let inside = 0;
  let most = 0;
  const turns = async (locker: LeaseLocker) => {
    for (let i = 0; i < 15; i++) {
      const lock = locker.newLock(UPLOAD);
      await lock.lock(signal(), () => {});
      inside++;
      most = Math.max(most, inside);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inside--;
      await lock.unlock();
    }
  };
  await Promise.all([turns(p.a), turns(p.b), turns(p.a), turns(p.b)]);
  assert.equal(most, 1);
});

Deno.test("tus locker: the lock of a process that died is taken once its lease has expired", async () => {
  await using p = await twoProcesses({ leaseMs: 400 });
  // What a killed process leaves: its row, which nobody renews or deletes.
  const diedAt = Date.now();
  await p.db.insert(uploadLocks).values({
    uploadId: UPLOAD,
    holder: "a process that died",
    expiresAt: diedAt + 400,
  });
  const lock = p.b.newLock(UPLOAD);
  await lock.lock(signal(), () => {});
  assert.ok(Date.now() - diedAt >= 400, "taken before the lease expired");
  await lock.unlock();
});

Deno.test("tus locker: a live holder that was asked to release keeps its lease until it ends", async () => {
  // Leases far shorter than the wait: only renewals keep the lock from the waiter.
  await using p = await twoProcesses({ leaseMs: 300, timeoutMs: 1200 });
  const held = p.a.newLock(UPLOAD);
  let asked = 0;
  await held.lock(signal(), () => void asked++);
  await assert.rejects(p.b.newLock(UPLOAD).lock(signal(), () => {}));
  assert.equal(asked, 1, "asked once");
  await held.unlock();
  const next = p.b.newLock(UPLOAD);
  await next.lock(signal(), () => {});
  await next.unlock();
});

Deno.test("upload locks: the sweep deletes expired leases and keeps the others", async () => {
  await using p = await twoProcesses();
  const now = Date.now();
  await p.db.insert(uploadLocks).values([
    { uploadId: UPLOAD, holder: "dead", expiresAt: now - 1 },
    { uploadId: "0190a000-0000-7000-8000-000000000002", holder: "alive", expiresAt: now + 60_000 },
  ]);
  assert.equal(await new UploadLocks(p.db, clock).sweepExpired(), 1);
  const left = await p.db.select().from(uploadLocks);
  assert.deepEqual(left.map((row) => row.holder), ["alive"]);
});

Deno.test("tus locker: a wait gives up after its timeout, or when its request ends, with a 503 to retry", async () => {
  await using p = await twoProcesses({ timeoutMs: 300 });
  const held = p.a.newLock(UPLOAD);
  await held.lock(signal(), () => {});
  const busy = (error: unknown) =>
    error instanceof ApiError && error.code === "unavailable" &&
    error.headers["retry-after"] === "5";
  await assert.rejects(p.b.newLock(UPLOAD).lock(signal(), () => {}), busy);
  const ended = new AbortController();
  const waiting = p.b.newLock(UPLOAD).lock(ended.signal, () => {});
  ended.abort();
  await assert.rejects(waiting, busy);
  await held.unlock();
});

Deno.test("tus: a PATCH whose upload another process keeps locked is 503 with Retry-After, and the upload resumes afterwards", async () => {
  await using ctx = await createTestContext({ worker: false });
  const endpoint = new TusEndpoint(ctx.deps.resumableUploads, {
    maxUploadBytes: ctx.deps.config.maxUploadBytes,
    idleTimeoutMs: 30_000,
    lockTimeoutMs: 300,
  });
  const user = { id: "alice", admin: false };
  const caller = (uploadId?: string): UploadCaller => ({
    user,
    actor: { actorId: user.id, ip: null, userAgent: null },
    urls: { auth: ctx.deps.auth, user, publicUrl: "http://offchat.test" },
    uploadId,
  });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const url = "http://offchat.test/api/chat/videos/uploads";
  const created = await endpoint.handle(
    new Request(url, {
      method: "POST",
      headers: {
        "tus-resumable": "1.0.0",
        "upload-length": "20",
        "upload-metadata": `message_id ${btoa(messageId)}`,
      },
    }),
    caller(),
  );
  assert.equal(created.status, 201);
  const id = created.headers.get("location")!.split("/").pop()!;
  const patch = () =>
    endpoint.handle(
      new Request(`${url}/${id}`, {
        method: "PATCH",
        headers: {
          "tus-resumable": "1.0.0",
          "upload-offset": "0",
          "content-type": "application/offset+octet-stream",
        },
        body: new Uint8Array(10),
      }),
      caller(id),
    );

  // Another process holds the upload (its request has not ended): this one gives up waiting.
  const other = await openDatabase(ctx.deps.config.databaseUrl);
  try {
    const held = await new UploadLocks(other.db, clock).acquire(id, {
      timeoutMs: 1000,
      onReleaseRequested: () => {},
    });
    assert.ok(held);
    await assert.rejects(patch(), (error) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, "unavailable");
      assert.equal(error.headers["retry-after"], "5");
      return true;
    });
    await held.release();
  } finally {
    other.close();
  }
  // Nothing was lost: the upload is still there and takes the bytes now.
  const resumed = await patch();
  await resumed.body?.cancel();
  assert.equal(resumed.status, 204);
  assert.equal(resumed.headers.get("upload-offset"), "10");
});
