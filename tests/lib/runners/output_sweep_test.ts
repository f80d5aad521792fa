import assert from "node:assert/strict";
import { sweepRunnerOutputs } from "../../../lib/runners/runner_jobs.ts";
import { createTestContext } from "../../_helpers.ts";

Deno.test("runner outputs: the sweep removes those no runner will complete, once untouched for the grace", async () => {
  await using ctx = await createTestContext({ worker: false });
  const root = `${ctx.dataDir}/runner-outputs`;
  const abandoned = `${root}/${crypto.randomUUID()}-1`;
  const fresh = `${root}/${crypto.randomUUID()}-2`;
  for (const dir of [abandoned, fresh]) {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/thumbnail.jpg`, "posted");
  }
  const hourAgo = new Date(Date.now() - 3600_000);
  await Deno.utime(abandoned, hourAgo, hourAgo);

  assert.equal(await sweepRunnerOutputs(ctx.deps, 10 * 60_000), 1);
  assert.equal(await Deno.stat(abandoned).catch(() => null), null, "the abandoned one is gone");
  assert.ok((await Deno.stat(`${fresh}/thumbnail.jpg`)).isFile, "a recent one is left");
  assert.equal(await sweepRunnerOutputs(ctx.deps, 0), 1, "its grace over, it goes too");
  assert.equal(await sweepRunnerOutputs(ctx.deps, 0), 0);
});
