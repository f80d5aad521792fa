/**
 * What the service hands a remote runner to do for one job, and how the
 * runner does it: with the same lib/media functions a local worker calls
 * (makeThumbnail, makeStrippedCopy, makeRendition, makeLadder,
 * makeStoryboard), so a runner's ffmpeg runs get the same flags, limits,
 * timeouts and children (runTool). The service decides everything about
 * the output (the rendition plan, the ladder's rungs, the policy); the
 * runner only supplies its own file paths and its own MediaTools.
 *
 * This module imports no database or HTTP code: the runner process loads it.
 *
 * @module
 */
import type { RenditionPolicy } from "../config/config.ts";
import { containerNamed } from "../media/containers.ts";
import { type LadderSource, makeLadder, type Rung } from "../media/hls.ts";
import { makeRendition, type RenditionSource } from "../media/rendition.ts";
import { makeStoryboard } from "../media/storyboard.ts";
import { makeStrippedCopy } from "../media/strip.ts";
import { makeThumbnail } from "../media/thumbnail.ts";
import type { MediaTools } from "../media/tools.ts";

/** The name of the one output file of every kind but `hls` (whose outputs are the ladder's files). */
export const SINGLE_OUTPUT = "output";

/** One job's work, as the service describes it to a runner. */
export type RunnerTask =
  | { kind: "thumbnail"; demuxer: string; duration: number | null }
  | { kind: "strip"; container: string }
  | {
    kind: "rendition";
    plan: "remux" | "transcode";
    source: Omit<RenditionSource, "path">;
    duration: number | null;
    policy: RenditionPolicy;
  }
  | { kind: "hls"; source: Omit<LadderSource, "path">; rungs: Rung[]; maxFps: number }
  | { kind: "storyboard"; demuxer: string; duration: number; width: number; height: number };

/** Where a runner's task reads and writes, and what it reports. */
export interface TaskFiles {
  /** The original, downloaded. */
  inputPath: string;
  /** An empty directory the outputs are written to. */
  outDir: string;
  onProgress: (fraction: number) => void;
  signal?: AbortSignal;
}

/** An output file a task wrote: the name it is posted under, and where it is. */
export interface TaskOutput {
  name: string;
  path: string;
}

/**
 * Runs a task's ffmpeg with `tools` and returns the files it wrote under
 * `files.outDir`: one named {@linkcode SINGLE_OUTPUT} for every kind but
 * `hls`, the ladder's files for `hls`.
 */
export async function makeTaskOutput(
  tools: MediaTools,
  task: RunnerTask,
  files: TaskFiles,
): Promise<TaskOutput[]> {
  const { inputPath: path, outDir, onProgress, signal } = files;
  const single = `${outDir}/${SINGLE_OUTPUT}`;
  switch (task.kind) {
    case "thumbnail":
      await makeThumbnail(tools, { path, demuxer: task.demuxer, duration: task.duration }, single);
      return [{ name: SINGLE_OUTPUT, path: single }];
    case "strip": {
      const container = containerNamed(task.container);
      await makeStrippedCopy(tools, { path, demuxer: container.demuxer, container }, single);
      return [{ name: SINGLE_OUTPUT, path: single }];
    }
    case "rendition":
      await makeRendition(tools, { ...task.source, path }, {
        plan: task.plan,
        outPath: single,
        policy: task.policy,
        duration: task.duration,
        onProgress,
        signal,
      });
      return [{ name: SINGLE_OUTPUT, path: single }];
    case "hls": {
      const ladderDir = `${outDir}/ladder`;
      await makeLadder(tools, { ...task.source, path }, {
        rungs: task.rungs,
        outDir: ladderDir,
        maxFps: task.maxFps,
        onProgress,
        signal,
      });
      const made: TaskOutput[] = [];
      for await (const entry of Deno.readDir(ladderDir)) {
        if (entry.isFile) made.push({ name: entry.name, path: `${ladderDir}/${entry.name}` });
      }
      return made.sort((a, b) => a.name.localeCompare(b.name));
    }
    case "storyboard":
      await makeStoryboard(tools, {
        path,
        demuxer: task.demuxer,
        duration: task.duration,
        width: task.width,
        height: task.height,
      }, single);
      return [{ name: SINGLE_OUTPUT, path: single }];
  }
}
