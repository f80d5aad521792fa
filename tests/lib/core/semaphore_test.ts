import assert from "node:assert/strict";
import { QueueFull, Semaphore } from "../../../lib/core/semaphore.ts";

Deno.test("Semaphore: never more than its slots at once, all tasks run", async () => {
  const semaphore = new Semaphore(2);
  let running = 0;
  let peak = 0;
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) =>
    semaphore.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return i;
    })));
  assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
  assert.equal(peak, 2);
  await assert.rejects(() => semaphore.run(() => Promise.reject(new Error("x"))), /x/);
  assert.equal(await semaphore.run(() => Promise.resolve("free again")), "free again");
});

Deno.test("Semaphore.acquire: a bounded queue, first come first served, and an abort gives up the place", async () => {
  const semaphore = new Semaphore(1);
  const releaseFirst = await semaphore.acquire();
  const order: string[] = [];
  const second = semaphore.acquire({ maxWaiting: 2 }).then((release) => {
    order.push("second");
    return release;
  });
  const leaving = new AbortController();
  const third = semaphore.acquire({ maxWaiting: 2, signal: leaving.signal });
  await assert.rejects(() => semaphore.acquire({ maxWaiting: 2 }), QueueFull);
  assert.equal(semaphore.waiting, 2);
  leaving.abort(new Error("gone"));
  await assert.rejects(() => third, /gone/);
  assert.equal(semaphore.waiting, 1);
  const fourth = semaphore.acquire({ maxWaiting: 2 }).then((release) => {
    order.push("fourth");
    return release;
  });
  releaseFirst();
  releaseFirst(); // a second call gives nothing back twice
  (await second)();
  (await fourth)();
  assert.deepEqual(order, ["second", "fourth"]);
  assert.equal(semaphore.waiting, 0);
  await assert.rejects(() => semaphore.acquire({ signal: AbortSignal.abort(new Error("x")) }), /x/);
  // Every slot is free again: one acquire at once, without waiting.
  (await semaphore.acquire({ maxWaiting: 0 }))();
});
