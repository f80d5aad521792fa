import { Naps } from "../core/naps.ts";
import { getLogger } from "@logtape/logtape";
import type { AppDeps } from "../deps.ts";
import {
  observeToolRuns,
  type ToolRun,
  withToolPriority,
  withToolSignal,
} from "../media/run_tool.ts";
import { literalMessage } from "../observability/logging.ts";
import type { JobSignal } from "./job_signal.ts";
import type { Job } from "../../db/schema.ts";
import { JobQueue } from "./jobs.ts";
import { runJob } from "./processing.ts";
import { isOutOfSpace } from "../storage/disk_space.ts";

/** How long a job that found the disk full waits before it runs again (its attempt given back). */
export const DISK_FULL_RETRY_MS = 60_000;
import { type ToolOutcome, toolOutcome } from "./tool_outcome.ts";

/**
 * Replaces file paths in a failure reason: it is shown to participants, and
 * ffmpeg's messages name the files it read.
 */
export function redactPaths(text: string): string {
  return text.replace(/(?:file:)?\.{0,2}\/(?:[^\s'":/]+\/)+[^\s'":]*/g, "<file>");
}

/**
 * How long a claimed job is a worker's before another may take it over.
 * Short, so that a job whose process was killed runs again within about 20
 * seconds of it; a live worker keeps its jobs with a heartbeat every
 * {@linkcode HEARTBEAT_MS}, four chances per lease.
 */
export const LEASE_MS = 20_000;
/** How often a running job's lease is extended. */
export const HEARTBEAT_MS = 5_000;

/** Options for {@linkcode startWorker}. */
export interface WorkerOptions {
  concurrency: number;
  /** How long a claimed job is ours before another worker may take it over. */
  leaseMs?: number;
  /** How often an idle slot looks for work queued by other processes. */
  pollMs?: number;
  /** How long a job that found the disk full waits (default {@linkcode DISK_FULL_RETRY_MS}). */
  diskFullRetryMs?: number;
  workerId?: string;
  /** Called with errors the loop survived (a database hiccup); defaults to silence. */
  onError?: (error: unknown) => void;
  /**
   * Called when a run ends: what ran, how it ended and how long it took. The
   * worker itself logs it (category `offchat.job`) and counts it in `deps.metrics`.
   */
  onJobEnd?: (report: JobReport) => void;
}

/** How one run of a job ended; `tool` and `cause` say how its ffmpeg (or ffprobe) ended. */
export interface JobReport extends ToolOutcome {
  jobId: string;
  kind: string;
  attachmentId: string;
  attempt: number;
  /** `retry`: it failed and is queued again; `failed`: it failed for good. */
  outcome: "done" | "retry" | "failed";
  ms: number;
  /** The failure reason (paths redacted). */
  error?: string;
}

/** A running worker pool. */
export interface Worker extends JobSignal {
  readonly id: string;
  /**
   * Stops claiming and waits for running jobs to finish; with `release`, puts
   * them back in the queue at once instead (not counted as an attempt) and
   * does not wait: the process is about to exit, which stops their tools
   * (`runTool`'s parent-death signal), and another worker may take them.
   */
  stop(options?: { release?: boolean }): Promise<void>;
}

/** Starts `concurrency` loops that claim and run jobs until stopped. */
export function startWorker(
  deps: Pick<AppDeps, "config" | "db" | "storage" | "media" | "clock" | "metrics">,
  options: WorkerOptions,
): Worker {
  const log = getLogger(["offchat", "job"]);
  const leaseMs = options.leaseMs ?? LEASE_MS;
  const pollMs = options.pollMs ?? 1000;
  const diskFullRetryMs = options.diskFullRetryMs ?? DISK_FULL_RETRY_MS;
  const id = options.workerId ?? `worker-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const queue = new JobQueue({
    db: deps.db,
    workerId: id,
    leaseMs,
    clock: deps.clock,
    webhook: deps.config.webhook,
  });
  let stopping = false;
  const naps = new Naps();
  /** Running jobs and how to stop their heartbeat. */
  const running = new Map<Job, () => void>();

  async function runOne(): Promise<boolean> {
    const job = await queue.claim();
    if (!job) return false;
    const heartbeat = setInterval(() => {
      queue.extend(job).catch(options.onError);
    }, Math.max(100, Math.min(HEARTBEAT_MS, leaseMs / 4)));
    const abort = new AbortController();
    running.set(job, () => {
      clearInterval(heartbeat);
      abort.abort();
    });
    let reported = -1;
    let lastReport = 0;
    const progress = (fraction: number): void => {
      // At most every 250 ms and only forward: the database is not a log.
      const now = Date.now();
      if (fraction <= reported || (now - lastReport < 250 && fraction < 1)) return;
      reported = fraction;
      lastReport = now;
      queue.progress(job, fraction).catch(options.onError);
    };
    const started = performance.now();
    const runs: ToolRun[] = [];
    const report = (outcome: JobReport["outcome"], error?: string): void => {
      const ended: JobReport = {
        jobId: job.id,
        kind: job.kind,
        attachmentId: job.attachmentId,
        attempt: job.attempts,
        outcome,
        ms: Math.round(performance.now() - started),
        error,
        ...toolOutcome(runs, { ffmpegPath: deps.media.ffmpegPath, failed: outcome !== "done" }),
      };
      deps.metrics.observeJob(ended);
      // One line per run: done is news, a retry a warning, a final failure an error.
      log[outcome === "done" ? "info" : outcome === "retry" ? "warn" : "error"](
        literalMessage(`job ${ended.kind} ${outcome}`),
        { ...ended },
      );
      options.onJobEnd?.(ended);
    };
    try {
      await observeToolRuns(
        (run) => runs.push(run),
        // Below the requests this process answers (JOB_PRIORITY, lib/media/run_tool.ts).
        // Every tool run of the job stops when it is given back (shutdown), whatever its step.
        () =>
          withToolPriority(
            deps.media.jobPriority,
            () =>
              withToolSignal(
                abort.signal,
                () => runJob(deps, job, { progress, signal: abort.signal }),
              ),
          ),
      );
      await queue.complete(job);
      report("done");
    } catch (error) {
      // Given back at shutdown (stop with release): not a failure, nothing to record.
      if (abort.signal.aborted) return true;
      const reason = redactPaths(error instanceof Error ? error.message : String(error));
      if (isOutOfSpace(error)) {
        // produce() has removed its partial output; the job waits for space, not for a fix.
        await queue.postpone(job, { reason, delayMs: diskFullRetryMs });
        report("retry", reason);
      } else report(await queue.fail(job, reason), reason);
    } finally {
      clearInterval(heartbeat);
      running.delete(job);
    }
    return true;
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      let worked = false;
      try {
        worked = await runOne();
      } catch (error) {
        options.onError?.(error);
      }
      if (!worked && !stopping) await naps.nap(pollMs);
    }
  }

  const loops = Array.from({ length: options.concurrency }, () => loop());
  return {
    id,
    notify(): void {
      naps.wakeAll();
    },
    async stop(stopOptions: { release?: boolean } = {}): Promise<void> {
      stopping = true;
      naps.wakeAll();
      if (!stopOptions.release) return void await Promise.all(loops);
      await Promise.all([...running].map(async ([job, stopHeartbeat]) => {
        stopHeartbeat();
        await queue.release(job).catch(options.onError);
      }));
    },
  };
}
