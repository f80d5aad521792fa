import assert from "node:assert/strict";
import { Semaphore } from "../../../lib/core/semaphore.ts";

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
