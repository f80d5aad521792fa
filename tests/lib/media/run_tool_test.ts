import assert from "node:assert/strict";
import { runTool } from "../../../lib/media/run_tool.ts";

Deno.test("runTool: an aborted signal stops the tool as a timeout does", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const running = runTool("sleep", ["30"], {
    timeoutMs: 60_000,
    addressSpaceBytes: 0,
    signal: controller.signal,
  });
  controller.abort();
  const result = await running;
  assert.equal(result.signal, "SIGTERM");
  assert.equal(result.timedOut, false);
  assert.ok(performance.now() - started < 10_000);
});
