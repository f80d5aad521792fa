import assert from "node:assert/strict";
import {
  limitedCommand,
  runTool,
  withToolPriority,
  withToolSignal,
} from "../../../lib/media/run_tool.ts";

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

Deno.test("runTool: the job's signal, from the async context, stops every run inside it", async () => {
  const controller = new AbortController();
  let started!: () => void;
  const spawned = new Promise<void>((resolve) => (started = resolve));
  const runs = withToolSignal(controller.signal, async () => {
    const first = runTool("sleep", ["30"], { timeoutMs: 60_000, addressSpaceBytes: 0 });
    started();
    const result = await first;
    // A run that starts after the abort is stopped at once too.
    const later = await runTool("sleep", ["30"], { timeoutMs: 60_000, addressSpaceBytes: 0 });
    return [result, later];
  });
  await spawned;
  controller.abort();
  const [first, later] = await runs;
  assert.equal(first!.signal, "SIGTERM");
  assert.equal(later!.signal, "SIGTERM");
  // Outside the context, a run is not tied to it.
  const outside = await runTool("true", [], { timeoutMs: 10_000, addressSpaceBytes: 0 });
  assert.equal(outside.code, 0);
});

/** The scheduling policy (field 41) and nice value (field 19) of the process `runTool` started. */
async function schedulingOf(options: Parameters<typeof runTool>[2]) {
  const result = await runTool("cat", ["/proc/self/stat"], options);
  assert.equal(result.code, 0, result.stderr);
  // The command name (field 2) is in parentheses; the fields after it are plain.
  const fields = result.stdout.slice(result.stdout.lastIndexOf(")") + 2).split(" ");
  return { nice: Number(fields[19 - 3]), policy: Number(fields[41 - 3]) };
}

Deno.test({
  name: "runTool: a job's priority lowers the tool's CPU priority, under the memory limit",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const base = { timeoutMs: 10_000, addressSpaceBytes: 300 * 1024 * 1024 };
    // SCHED_OTHER is 0, SCHED_IDLE 5.
    assert.deepEqual(await schedulingOf(base), { nice: 0, policy: 0 });
    assert.deepEqual(await schedulingOf({ ...base, priority: "idle" }), { nice: 0, policy: 5 });
    assert.deepEqual(await schedulingOf({ ...base, priority: "nice" }), { nice: 19, policy: 0 });
    // From the async context (the worker's), unless the run sets its own.
    const inJob = await withToolPriority("idle", () => schedulingOf(base));
    assert.equal(inJob.policy, 5);
    const own = await withToolPriority("idle", () => schedulingOf({ ...base, priority: "normal" }));
    assert.equal(own.policy, 0);
    // The chain: setpriv first (the parent-death signal), then the priority, then prlimit.
    assert.deepEqual(limitedCommand("ffmpeg", ["-version"], 1024, "idle").args, [
      "--pdeathsig",
      "KILL",
      "--",
      "chrt",
      "--idle",
      "0",
      "prlimit",
      "--as=1024",
      "--core=0",
      "--",
      "ffmpeg",
      "-version",
    ]);
    const limits = await runTool("cat", ["/proc/self/limits"], { ...base, priority: "idle" });
    assert.match(limits.stdout, new RegExp(`Max address space\\s+${300 * 1024 * 1024}`));
  },
});
