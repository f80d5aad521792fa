/**
 * The remote runner: a process with neither the database nor the data
 * directory, which does processing jobs over HTTP. Each slot asks the
 * service for a job of its kinds, accepts it, downloads the original
 * from the signed input URL into its work directory, runs the task with
 * the same lib/media code a local worker runs (lib/runners/tasks.ts),
 * reports progress (which also renews its lease, at a quarter of
 * `lease_ms`), posts each output file and completes the job, or reports
 * the error. A 409 on any report means the job is no longer its own (it
 * stalled, was revoked, or the job was reprocessed): the run is dropped.
 *
 * @module
 */
import { Naps } from "../core/naps.ts";
import { getLogger } from "@logtape/logtape";
import { observeToolRuns, type ToolRun, withToolPriority } from "../media/run_tool.ts";
import type { MediaTools } from "../media/tools.ts";
import { literalMessage } from "../observability/logging.ts";
import { toolOutcome } from "../processing/tool_outcome.ts";
import type { JobKind } from "../processing/jobs.ts";
import { makeTaskOutput, type RunnerTask } from "./tasks.ts";

/** Where the runner keeps its token, in its work directory (mode 0600). */
export const TOKEN_FILE = "runner-token";

/** Options for {@linkcode startRunner}. */
export interface RunnerOptions {
  apiUrl: string;
  token: string;
  workDir: string;
  kinds: readonly JobKind[];
  concurrency: number;
  tools: MediaTools;
  /** How long an idle slot waits before it asks again. */
  pollMs?: number;
  /** Called with errors a slot survived (the service unreachable); defaults to silence. */
  onError?: (error: unknown) => void;
}

/** A running runner. */
export interface RemoteRunner {
  /** Stops asking for jobs and waits for the running ones to end. */
  stop(): Promise<void>;
  /** Resolves when the service answered 401: the token is unknown or was revoked. */
  readonly revoked: Promise<void>;
}

/** The service's answer to an accept. */
interface Accepted {
  job: { id: string; kind: string; attachment_id: string; attempt: number };
  task: RunnerTask | null;
  input_url: string | null;
  lease_ms: number;
}

/** Thrown when the service no longer gives this runner the run (409) or the token (401). */
class RunLost extends Error {}

/**
 * Registers with a registration token and keeps the runner token in the
 * work directory, unless one is there already (a restart); returns it.
 */
export async function runnerToken(
  options: {
    apiUrl: string;
    workDir: string;
    registrationToken?: string;
    name: string;
    kinds: readonly JobKind[];
  },
): Promise<string> {
  const path = `${options.workDir}/${TOKEN_FILE}`;
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (!options.registrationToken) {
    throw new Error(
      "Set RUNNER_TOKEN, or RUNNER_REGISTRATION_TOKEN (from POST /api/admin/runner-registration-tokens) to register",
    );
  }
  const response = await fetch(`${options.apiUrl}/api/runners/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      registration_token: options.registrationToken,
      name: options.name,
      kinds: options.kinds,
    }),
  });
  const body = await response.json() as { token?: string; detail?: string };
  if (response.status !== 201 || !body.token) {
    throw new Error(`Registration failed (${response.status}): ${body.detail ?? "no token"}`);
  }
  await Deno.mkdir(options.workDir, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(path, `${body.token}\n`, { createNew: true, mode: 0o600 });
  return body.token;
}

/**
 * Removes what runs of an earlier start left in the work directory (a
 * runner killed in the middle of a job). One runner per work directory.
 */
export async function removeLeftoverRuns(workDir: string): Promise<void> {
  await Deno.remove(`${workDir}/jobs`, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** Starts `concurrency` slots that ask for jobs until stopped or revoked. */
export function startRunner(options: RunnerOptions): RemoteRunner {
  const log = getLogger(["offchat", "job"]);
  const pollMs = options.pollMs ?? 1000;
  const auth = { authorization: `Bearer ${options.token}` };
  let stopping = false;
  let markRevoked: () => void = () => {};
  const revoked = new Promise<void>((resolve) => (markRevoked = resolve));
  const naps = new Naps();

  /** A JSON request to the service; 401 stops the runner, 409 loses the run. */
  async function call(path: string, body: unknown): Promise<Response> {
    const response = await fetch(`${options.apiUrl}/api/runners${path}`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status === 401) {
      await response.body?.cancel();
      stopping = true;
      markRevoked();
      throw new RunLost("The runner token was refused (revoked?)");
    }
    if (response.status === 409) {
      await response.body?.cancel();
      throw new RunLost("The job is no longer this runner's");
    }
    return response;
  }

  async function download(url: string, path: string): Promise<void> {
    const response = await fetch(url);
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      if (response.status === 409 || response.status === 401) throw new RunLost("Input refused");
      throw new Error(`Downloading the input failed (${response.status})`);
    }
    const file = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o600 });
    await response.body.pipeTo(file.writable);
  }

  async function upload(job: Accepted["job"], name: string, path: string): Promise<void> {
    const file = await Deno.open(path, { read: true });
    const response = await fetch(
      `${options.apiUrl}/api/runners/jobs/${job.id}/outputs/${encodeURIComponent(name)}` +
        `?attempt=${job.attempt}`,
      {
        method: "PUT",
        headers: {
          ...auth,
          "content-type": "application/octet-stream",
          "content-length": String((await file.stat()).size),
        },
        body: file.readable,
      },
    );
    const text = await response.text();
    if (response.status === 409 || response.status === 401) throw new RunLost(text);
    if (response.status !== 204) {
      throw new Error(`Posting ${name} failed (${response.status}): ${text}`);
    }
  }

  async function runOne(): Promise<boolean> {
    const requested = await call("/jobs/request", { kinds: options.kinds });
    if (requested.status === 204) return false;
    const { job: offered } = await requested.json() as { job: { id: string } };
    let accepted: Accepted;
    try {
      const response = await call(`/jobs/${offered.id}/accept`, {});
      if (!response.ok) {
        throw new Error(`Accept failed (${response.status}): ${await response.text()}`);
      }
      accepted = await response.json() as Accepted;
    } catch (error) {
      // Another worker or runner took it between the request and the accept.
      if (error instanceof RunLost && !stopping) return true;
      throw error;
    }
    const { job, task, input_url: inputUrl, lease_ms: leaseMs } = accepted;
    if (!task || !inputUrl) return true;
    const started = performance.now();
    const dir = `${options.workDir}/jobs/${job.id}-${job.attempt}`;
    const abort = new AbortController();
    let fraction: number | undefined;
    const renew = async (): Promise<void> => {
      try {
        await (await call(`/jobs/${job.id}/progress`, { attempt: job.attempt, progress: fraction }))
          .body?.cancel();
      } catch (error) {
        // Lost the job: its ffmpeg stops now, not when it would have finished.
        if (error instanceof RunLost) abort.abort();
        else options.onError?.(error);
      }
    };
    const heartbeat = setInterval(renew, Math.max(100, Math.floor(leaseMs / 4)));
    const runs: ToolRun[] = [];
    const report = (outcome: string, error?: string): void => {
      const ms = Math.round(performance.now() - started);
      const failed = outcome !== "done";
      log[failed ? "warn" : "info"](literalMessage(`job ${job.kind} ${outcome}`), {
        jobId: job.id,
        kind: job.kind,
        attachmentId: job.attachment_id,
        attempt: job.attempt,
        outcome,
        ms,
        error,
        ...toolOutcome(runs, { ffmpegPath: options.tools.ffmpegPath, failed }),
      });
    };
    log.info(literalMessage(`job ${job.kind} accepted`), {
      jobId: job.id,
      kind: job.kind,
      attachmentId: job.attachment_id,
      attempt: job.attempt,
    });
    try {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.mkdir(`${dir}/out`, { recursive: true, mode: 0o700 });
      await download(inputUrl, `${dir}/input`);
      const outputs = await observeToolRuns(
        (run) => runs.push(run),
        () =>
          withToolPriority(options.tools.jobPriority, () =>
            makeTaskOutput(options.tools, task, {
              inputPath: `${dir}/input`,
              outDir: `${dir}/out`,
              onProgress: (f) => (fraction = Math.max(fraction ?? 0, Math.min(1, f))),
              signal: abort.signal,
            })),
      );
      if (abort.signal.aborted) throw new RunLost("The job is no longer this runner's");
      for (const output of outputs) await upload(job, output.name, output.path);
      const ms = Math.round(performance.now() - started);
      const completed = await call(`/jobs/${job.id}/complete`, { attempt: job.attempt, ms });
      const text = await completed.text();
      if (completed.status !== 204) {
        report("rejected", text);
        return true;
      }
      report("done");
    } catch (error) {
      if (error instanceof RunLost || abort.signal.aborted) {
        report("lost", error instanceof Error ? error.message : String(error));
        return true;
      }
      const message = error instanceof Error ? error.message : String(error);
      report("error", message);
      const ms = Math.round(performance.now() - started);
      await call(`/jobs/${job.id}/error`, {
        attempt: job.attempt,
        message: message.slice(0, 4000),
        ms,
      })
        .then((response) => response.body?.cancel())
        .catch(options.onError);
    } finally {
      clearInterval(heartbeat);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    return true;
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      let worked = false;
      try {
        worked = await runOne();
      } catch (error) {
        if (!(error instanceof RunLost)) options.onError?.(error);
      }
      if (!worked && !stopping) await naps.nap(pollMs);
    }
  }

  const loops = Promise.all(Array.from({ length: options.concurrency }, () => loop()));
  return {
    revoked,
    async stop(): Promise<void> {
      stopping = true;
      naps.wakeAll();
      await loops;
    },
  };
}
