import assert from "node:assert/strict";
import type { ToolRun } from "../../../lib/media/run_tool.ts";
import { toolOutcome } from "../../../lib/processing/tool_outcome.ts";

const ffmpeg = (run: Partial<ToolRun> = {}): ToolRun => ({
  command: "/usr/bin/ffmpeg",
  code: 0,
  signal: null,
  timedOut: false,
  ...run,
});
const ffprobe = (run: Partial<ToolRun> = {}): ToolRun => ffmpeg({ command: "ffprobe", ...run });
const options = { ffmpegPath: "/usr/bin/ffmpeg", failed: true };

Deno.test("toolOutcome: the cause of a failed run is its last ffmpeg's ending", () => {
  const cause = (runs: ToolRun[]) => toolOutcome(runs, options).cause;
  assert.equal(cause([ffmpeg({ code: 255, signal: "SIGTERM", timedOut: true })]), "timeout");
  assert.equal(cause([ffmpeg({ code: 137, signal: "SIGKILL" })]), "signal");
  assert.equal(cause([ffmpeg({ code: 1 })]), "exit");
  // ffmpeg exited 0, then the output check (an ffprobe of its output) refused it.
  assert.equal(cause([ffmpeg(), ffprobe({ code: 1 })]), "output");
  assert.equal(cause([ffmpeg()]), "output");
  // Only ffprobe ran (strip lists the streams first).
  assert.deepEqual(toolOutcome([ffprobe({ code: 1 })], options), {
    tool: { name: "ffprobe", code: 1, signal: null, timedOut: false },
    cause: "exit",
  });
  // No tool ran (the stored file was missing): no tool failure.
  assert.deepEqual(toolOutcome([], options), {});
  // A run that succeeded has no cause, only how its ffmpeg ended.
  assert.deepEqual(toolOutcome([ffmpeg(), ffprobe()], { ...options, failed: false }), {
    tool: { name: "ffmpeg", code: 0, signal: null, timedOut: false },
  });
});
