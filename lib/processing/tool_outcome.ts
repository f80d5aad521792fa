import type { ToolRun } from "../media/run_tool.ts";
import type { ToolFailureCause } from "../observability/metrics.ts";

/** How a job's media tool ended, for its log line and metrics. */
export interface ToolOutcome {
  /** The job's last ffmpeg run, or its last ffprobe run when it ran no ffmpeg. */
  tool?: { name: "ffmpeg" | "ffprobe"; code: number; signal: string | null; timedOut: boolean };
  /** Why a failed run failed in that tool; absent when it succeeded or ran no tool. */
  cause?: ToolFailureCause;
}

/**
 * Which of a job's tool runs tells how it ended, and why it failed: the last
 * ffmpeg run (the ffprobe runs after it check its output), else the last
 * ffprobe run. A failed job whose ffmpeg exited 0 failed its output check
 * (ffmpeg can exit 0 and write nothing).
 *
 * @example
 * ```ts
 * toolOutcome([{ command: "ffmpeg", code: 0, signal: "SIGKILL", timedOut: true }], {
 *   ffmpegPath: "ffmpeg",
 *   failed: true,
 * }); // { tool: { name: "ffmpeg", … }, cause: "timeout" }
 * ```
 */
export function toolOutcome(
  runs: readonly ToolRun[],
  options: { ffmpegPath: string; failed: boolean },
): ToolOutcome {
  const run = runs.findLast((r) => r.command === options.ffmpegPath) ?? runs.at(-1);
  if (!run) return {};
  const tool = {
    name: run.command === options.ffmpegPath ? "ffmpeg" as const : "ffprobe" as const,
    code: run.code,
    signal: run.signal,
    timedOut: run.timedOut,
  };
  if (!options.failed) return { tool };
  const cause: ToolFailureCause = run.timedOut
    ? "timeout"
    : run.signal
    ? "signal"
    : run.code !== 0
    ? "exit"
    : "output";
  return { tool, cause };
}
