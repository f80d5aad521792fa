import { AsyncLocalStorage } from "node:async_hooks";

/** Limits for one ffmpeg/ffprobe run. */
export interface RunToolOptions {
  timeoutMs: number;
  /** Bytes of stdout kept; the rest is drained and dropped. */
  maxStdoutBytes?: number;
  /** Bytes of stderr kept (the tail matters most; a corrupt file can print hundreds of KB). */
  maxStderrBytes?: number;
  /** Called with each stdout chunk as it arrives (for `-progress`). */
  onStdout?: (chunk: Uint8Array) => void;
  /** Grace period between SIGTERM and SIGKILL. */
  killAfterMs?: number;
  /** Stops the tool as a timeout does (SIGTERM, then SIGKILL), e.g. at shutdown. */
  signal?: AbortSignal;
  /**
   * Address-space limit of the child in bytes (RLIMIT_AS, set by util-linux
   * `prlimit` before it execs the tool): `MediaTools.limits.toolMemoryBytes`,
   * from `MEDIA_MEMORY_LIMIT_MB`. 0 runs without one. Linux only. Required,
   * so that no run forgets it.
   */
  addressSpaceBytes: number;
  /**
   * The CPU priority of the child (Linux only). Unset, the priority of the
   * async context ({@linkcode withToolPriority}: a worker's job runs at
   * `JOB_PRIORITY`), else `"normal"`: an upload's probe, which a user waits
   * for, runs at the server's own priority.
   */
  priority?: ToolPriority;
}

/**
 * How a tool competes for the CPU with the server that started it:
 * `"idle"` runs it under `SCHED_IDLE` (util-linux `chrt --idle 0`), so it gets
 * only the CPU time that no ordinary process wants; `"nice"` under
 * `nice -n 19`, the lowest ordinary priority (about 1.5 % of a CPU's time
 * against a busy priority-0 thread); `"normal"` as the server itself.
 */
export type ToolPriority = "idle" | "nice" | "normal";

/** The program (util-linux) that gives a tool `SCHED_IDLE`: {@linkcode ToolPriority}. */
export const CHRT = "chrt";
/** The program (coreutils) that gives a tool the lowest ordinary priority. */
export const NICE = "nice";

/** The priority of the tool runs started inside {@linkcode withToolPriority}'s callback. */
const toolPriorities = new AsyncLocalStorage<ToolPriority>();

/**
 * Runs `fn`, starting its media tool runs (those that set no priority of
 * their own) at `priority`: the worker runs each job inside it at
 * `JOB_PRIORITY`, so that a transcode or a ladder leaves the CPU to the
 * requests the server answers.
 */
export function withToolPriority<T>(priority: ToolPriority, fn: () => Promise<T>): Promise<T> {
  return toolPriorities.run(priority, fn);
}

/** How a run ended. */
export interface RunToolResult {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  stdoutTruncated: boolean;
}

/** One finished run, as told to the observer of {@linkcode observeToolRuns}. */
export interface ToolRun {
  /** The tool as the caller named it (`MediaTools.ffmpegPath` or `ffprobePath`). */
  command: string;
  code: number;
  signal: string | null;
  timedOut: boolean;
}

/**
 * The observer of the runs started inside {@linkcode observeToolRuns}'s
 * callback. Carried by the async context rather than passed to every caller
 * of `runTool`, so that a worker learns how a job's ffmpeg ended (for its log
 * line and metrics) without each job kind handing it on; it holds nothing
 * between calls.
 */
const toolRunObservers = new AsyncLocalStorage<(run: ToolRun) => void>();

/**
 * The signal that stops every media tool run started inside a job (see
 * {@linkcode withToolSignal}), carried like the observers: a worker giving a
 * job back at shutdown stops its ffmpeg or ffprobe, whichever step the job is
 * at, without each job kind passing the signal on.
 */
const toolSignals = new AsyncLocalStorage<AbortSignal>();

/** Runs `fn`; each media tool run it starts is stopped (SIGTERM, then SIGKILL) when `signal` aborts. */
export function withToolSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return toolSignals.run(signal, fn);
}

/** Runs `fn`, telling `observer` how each media tool run that it starts ends. */
export function observeToolRuns<T>(
  observer: (run: ToolRun) => void,
  fn: () => Promise<T>,
): Promise<T> {
  return toolRunObservers.run(observer, fn);
}

/**
 * Reads a stream to its end, keeping at most `limit` bytes: the first ones
 * (stdout, whose beginning is the answer) or the last ones (stderr, whose end
 * says why a tool failed).
 */
async function collect(
  stream: ReadableStream<Uint8Array>,
  options: { limit: number; keep: "head" | "tail"; onChunk?: (chunk: Uint8Array) => void },
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const { limit, keep, onChunk } = options;
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of stream) {
    onChunk?.(chunk);
    if (keep === "head") {
      if (size >= limit) {
        truncated = true;
        continue;
      }
      const part = chunk.subarray(0, limit - size);
      if (part.length < chunk.length) truncated = true;
      chunks.push(part);
      size += part.length;
    } else {
      chunks.push(chunk);
      size += chunk.length;
      while (size - (chunks[0]?.length ?? 0) >= limit && chunks.length > 1) {
        size -= chunks.shift()!.length;
        truncated = true;
      }
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return { bytes: keep === "tail" ? bytes.subarray(Math.max(0, size - limit)) : bytes, truncated };
}

/** The program that applies {@linkcode RunToolOptions.addressSpaceBytes}. */
export const PRLIMIT = "prlimit";

/**
 * The program (util-linux, like `prlimit`) that gives every tool a
 * parent-death signal: when the process that started it dies — SIGKILL, a
 * crash, an OOM kill — the kernel sends the tool SIGKILL, so no ffmpeg keeps
 * running, orphaned, after its server. The signal is tied to the thread that
 * spawned the child; Deno spawns from the JavaScript thread (a synchronous
 * op), which lives as long as the process. tests/faults/crash_test.ts
 * SIGKILLs a server running an ffmpeg and checks the ffmpeg is gone.
 */
export const SETPRIV = "setpriv";
/**
 * The environment of every media tool: nothing of the server's. A fixed
 * `PATH` lets `prlimit` find the tool by name. glibc keeps up to eight malloc
 * arenas per core, each reserving 64 MiB of address space; two keep the
 * address space close to what the tool really uses, so one limit fits
 * machines of any core count.
 */
export const TOOL_ENV: Readonly<Record<string, string>> = {
  LC_ALL: "C",
  PATH: "/usr/local/bin:/usr/bin:/bin",
  MALLOC_ARENA_MAX: "2",
};

/**
 * The program and arguments that run `command` under the limits, on Linux:
 * through `setpriv --pdeathsig KILL --` (the tool dies with this process),
 * then `chrt --idle 0` or `nice -n 19` for a lower CPU priority
 * ({@linkcode ToolPriority}; nothing for `"normal"`), then
 * `prlimit --as=… --core=0 --` when an address-space limit is set (no core
 * file of a crashed tool, which would hold an upload's decoded data). Each of
 * them execs the next, so the tool keeps the pid Deno spawned, and what one
 * sets (the parent-death signal, the scheduling policy, the limits) survives
 * the next exec. Deno spawns only `setpriv`: the others need no `--allow-run`.
 */
export function limitedCommand(
  command: string,
  args: string[],
  addressSpaceBytes: number,
  priority: ToolPriority = "normal",
): { program: string; args: string[] } {
  if (Deno.build.os !== "linux") return { program: command, args };
  const lower = priority === "idle"
    ? [CHRT, "--idle", "0"]
    : priority === "nice"
    ? [NICE, "-n", "19"]
    : [];
  const limit = addressSpaceBytes > 0
    ? [PRLIMIT, `--as=${addressSpaceBytes}`, "--core=0", "--"]
    : [];
  return {
    program: SETPRIV,
    args: ["--pdeathsig", "KILL", "--", ...lower, ...limit, command, ...args],
  };
}

/**
 * Runs a media tool with an argument array (never a shell), no stdin, an empty
 * environment, death with this process, a CPU priority, an optional address-space limit, a timeout that sends SIGTERM
 * and then SIGKILL, and bounded output.
 */
export async function runTool(
  command: string,
  args: string[],
  options: RunToolOptions,
): Promise<RunToolResult> {
  const priority = options.priority ?? toolPriorities.getStore() ?? "normal";
  const run = limitedCommand(command, args, options.addressSpaceBytes, priority);
  const child = new Deno.Command(run.program, {
    args: run.args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { ...TOOL_ENV },
  }).spawn();
  let timedOut = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = (): void => {
    if (killTimer !== undefined) return;
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    killTimer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, options.killAfterMs ?? 2000);
  };
  const termTimer = setTimeout(() => {
    timedOut = true;
    stop();
  }, options.timeoutMs);
  const signal = options.signal ?? toolSignals.getStore();
  signal?.addEventListener("abort", stop, { once: true });
  if (signal?.aborted) stop();
  try {
    const [out, err, status] = await Promise.all([
      collect(child.stdout, {
        limit: options.maxStdoutBytes ?? 1024 * 1024,
        keep: "head",
        onChunk: options.onStdout,
      }),
      collect(child.stderr, { limit: options.maxStderrBytes ?? 16 * 1024, keep: "tail" }),
      child.status,
    ]);
    toolRunObservers.getStore()?.({ command, code: status.code, signal: status.signal, timedOut });
    const decoder = new TextDecoder();
    return {
      code: status.code,
      signal: status.signal,
      stdout: decoder.decode(out.bytes),
      stderr: decoder.decode(err.bytes),
      timedOut,
      stdoutTruncated: out.truncated,
    };
  } finally {
    clearTimeout(termTimer);
    clearTimeout(killTimer);
    signal?.removeEventListener("abort", stop);
  }
}
