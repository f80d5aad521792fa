/**
 * The real server as a child process, for fault tests: started as the
 * launcher starts it (`deno run <the flags lib/config/permissions.ts derives>
 * main.ts serve`) on an ephemeral port and a data directory of the test's,
 * so that a test can SIGKILL or SIGTERM it at any point and start it again
 * on the same directory. Also: what the test needs to look at afterwards —
 * the media tools still running for a data directory, a process's open file
 * descriptors, the SHA-256 of a stored file.
 *
 * @module
 */
import { parseConfig } from "../../lib/config/config.ts";
import { denoRunArgs, launchEnv } from "../../lib/config/permissions.ts";
import { createAuth } from "../../lib/auth/auth.ts";
import { freePort, TEST_SECRET } from "../_helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** A service process of a test: `main.ts serve` or `main.ts worker`. */
export interface ServiceProcess {
  pid: number;
  dataDir: string;
  /** The configuration it was started with (DATA_DIR, DATABASE_URL, …). */
  env: Record<string, string>;
  /** Resolves when the process has exited. */
  status: Promise<Deno.CommandStatus>;
  /** Everything it printed so far (stdout and stderr, interleaved by arrival). */
  output(): string;
  /** Resolves when a line of its output matches `pattern` (already printed or later). */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal (no error when it has exited). */
  kill(signal: Deno.Signal): void;
  /** SIGKILLs it if still running and waits for the exit. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A server process of a test. */
export interface ServerProcess extends ServiceProcess {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Headers with a Bearer token for `user`. */
  auth(user: string): Promise<Record<string, string>>;
}

/** A worker process of a test (`main.ts worker`: jobs only, no HTTP). */
export interface WorkerProcess extends ServiceProcess {
  /** Its worker id, as in the `locked_by` column of the jobs it holds. */
  workerId: string;
}

/** Options for {@linkcode startServer} and {@linkcode startWorkerProcess}. */
export interface StartServerOptions {
  /** More environment (WORKER_CONCURRENCY, SHUTDOWN_GRACE_MS, …). */
  env?: Record<string, string>;
  /** How long to wait for it to start; a first start compiles the whole program. */
  timeoutMs?: number;
  /** The port to listen on (say, one another server shares with REUSE_PORT=1); default a free one. */
  port?: number;
}

/**
 * Starts `main.ts COMMAND` on `dataDir` with the permissions the launcher
 * would give it, and resolves once a line of its output matches `ready`.
 */
async function startService(
  command: "serve" | "worker",
  env: Record<string, string>,
  options: { ready: RegExp; timeoutMs?: number },
): Promise<ServiceProcess & { readyLine: string }> {
  const config = parseConfig(env);
  const child = new Deno.Command(Deno.execPath(), {
    args: denoRunArgs(config, command),
    cwd: ROOT,
    clearEnv: true,
    env: {
      ...env,
      ...launchEnv(config),
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const watchers = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      for (const watcher of [...watchers]) watcher();
    }
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status.then(async (s) => {
    await pumped;
    for (const watcher of [...watchers]) watcher();
    return s;
  });
  let exited = false;
  status.then(() => (exited = true));

  function waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(check);
        reject(new Error(`no output matching ${pattern} within ${timeoutMs} ms:\n${text}`));
      }, timeoutMs);
      function check(): void {
        const match = text.split("\n").find((line) => pattern.test(line));
        if (match !== undefined || exited) {
          watchers.delete(check);
          clearTimeout(timer);
          if (match !== undefined) resolve(match);
          else {reject(
              new Error(`the ${command} process exited before printing ${pattern}:\n${text}`),
            );}
        }
      }
      watchers.add(check);
      check();
    });
  }

  const kill = (signal: Deno.Signal): void => {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  let readyLine: string;
  try {
    // A port another process took first fails the start at once, not after the timeout.
    const timeoutMs = options.timeoutMs ?? 60_000;
    const taken = waitForOutput(/AddrInUse/, timeoutMs).then((line) => {
      throw new Error(`the port is taken: ${line}`);
    });
    taken.catch(() => {});
    readyLine = await Promise.race([waitForOutput(options.ready, timeoutMs), taken]);
  } catch (error) {
    kill("SIGKILL");
    await status;
    throw error;
  }
  return {
    pid: child.pid,
    dataDir: env.DATA_DIR!,
    env,
    status,
    output: () => text,
    waitForOutput,
    kill,
    readyLine,
    async [Symbol.asyncDispose]() {
      kill("SIGKILL");
      await status;
    },
  };
}

/** The environment of a test's service on `dataDir` listening on `port`. */
function serviceEnv(dataDir: string, port: number, more: Record<string, string> = {}) {
  return {
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: "127.0.0.1",
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    JWT_SECRET: TEST_SECRET,
    // Idle keep-alive connections of the test's fetch close within a second, so that
    // the server's file descriptors can be compared with those it had at start.
    HEADER_TIMEOUT_MS: "1000",
    ...more,
  };
}

/**
 * Starts `main.ts serve` on `dataDir` with the permissions the launcher would
 * give it, and resolves once it listens.
 */
export async function startServer(
  dataDir: string,
  options: StartServerOptions = {},
): Promise<ServerProcess> {
  let port = options.port ?? freePort();
  let env = serviceEnv(dataDir, port, options.env);
  let service: ServiceProcess;
  for (let attempt = 1;; attempt++) {
    try {
      service = await startService("serve", env, {
        ready: /listening on/,
        timeoutMs: options.timeoutMs,
      });
      break;
    } catch (error) {
      // Another test's server took the port first (tests run in parallel): take another.
      const taken = /AddrInUse|Address already in use/.test(String(error));
      if (!taken || options.port !== undefined || attempt >= 3) throw error;
      port = freePort();
      env = serviceEnv(dataDir, port, options.env);
    }
  }
  const auth = await createAuth(parseConfig(env), TEST_SECRET);
  return {
    ...service,
    url: `http://127.0.0.1:${port}`,
    auth: async (user) => ({ authorization: `Bearer ${await auth.signUserToken(user)}` }),
  };
}

/**
 * Starts `main.ts worker` (what `deno task worker` runs) on `dataDir` with the
 * permissions the launcher would give it, and resolves once its worker runs.
 */
export async function startWorkerProcess(
  dataDir: string,
  options: StartServerOptions = {},
): Promise<WorkerProcess> {
  const env = serviceEnv(dataDir, freePort(), options.env);
  const service = await startService("worker", env, {
    ready: /worker worker-\S+ running \d+ job slot/,
    timeoutMs: options.timeoutMs,
  });
  const workerId = /worker (worker-\S+) running/.exec(service.readyLine)?.[1];
  if (!workerId) throw new Error(`no worker id in ${service.readyLine}`);
  return { ...service, workerId };
}

/** A process seen in /proc: its pid and command line. */
export interface ProcessInfo {
  pid: number;
  cmdline: string[];
}

/**
 * The live (not zombie) processes whose command line names `dataDir`: the
 * ffmpeg and ffprobe runs of a test's server (their arguments hold the paths
 * of the files they read and write).
 */
export async function processesUsing(dataDir: string): Promise<ProcessInfo[]> {
  // Deno reads /proc itself only with --allow-all (the test task does not grant it): `ps`
  // reads it instead. Its `args` are the command line joined by spaces.
  const listed = await new Deno.Command("ps", {
    args: ["-e", "-o", "pid=,stat=,args="],
    stdout: "piped",
    stderr: "null",
  }).output();
  const found: ProcessInfo[] = [];
  for (const line of new TextDecoder().decode(listed.stdout).split("\n")) {
    const match = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const [, pidText = "", stat = "", args = ""] = match;
    const pid = Number(pidText);
    if (pid === Deno.pid || stat.startsWith("Z")) continue;
    const cmdline = args.split(" ").filter((arg) => arg !== "");
    // The server itself names its data directory only in its permission flags.
    if (cmdline.some((arg) => arg.startsWith("--allow-"))) continue;
    if (args.includes(dataDir)) found.push({ pid, cmdline });
  }
  return found;
}

/** The media tools of `dataDir` that are running: what must be gone after a fault. */
export async function toolsUsing(dataDir: string): Promise<ProcessInfo[]> {
  const tools = await processesUsing(dataDir);
  return tools.filter(({ cmdline }) =>
    cmdline.some((arg) => /(^|\/)(ffmpeg|ffprobe|prlimit|setpriv)$/.test(arg))
  );
}

/** The number of open file descriptors of a process. */
export async function fdCount(pid: number): Promise<number> {
  return (await openFiles(pid)).length;
}

/** What a process's file descriptors point at (`socket:[…]`, paths, `anon_inode:…`), sorted. */
export async function openFiles(pid: number): Promise<string[]> {
  // Deno reads /proc/<pid>/fd only with --allow-all (the test task does not grant it):
  // `find` reads the links instead.
  const listed = await new Deno.Command("find", {
    args: [`/proc/${pid}/fd`, "-mindepth", "1", "-printf", "%l\\n"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(listed.stdout).split("\n").filter((line) => line !== "")
    .sort();
}

/**
 * A process's open files once they have stayed the same for `quietMs` (sampled
 * every 100 ms): its state at rest.
 */
export async function steadyOpenFiles(pid: number, quietMs = 1500): Promise<string[]> {
  let last = await openFiles(pid);
  let since = Date.now();
  const deadline = Date.now() + 15_000;
  while (Date.now() - since < quietMs && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = await openFiles(pid);
    if (now.join("\n") !== last.join("\n")) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

/** SHA-256 of a file, hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Resolves when `condition` returns a value other than `undefined`/`false`,
 * checking every `intervalMs`; throws with `what` after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  condition: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (true) {
    const value = await condition();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

/** POSTs JSON to the server as `user`; the parsed answer. */
export async function postJson(
  server: ServerProcess,
  user: string,
  path: string,
  payload: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { ...(await server.auth(user)), "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
  return await response.json();
}

/** A conversation of `user` and one message of theirs in it, made over HTTP. */
export async function messageOf(server: ServerProcess, user: string): Promise<string> {
  const conversation = await postJson(server, user, "/api/chat/conversations", {
    participant_ids: [],
  });
  const message = await postJson(
    server,
    user,
    `/api/chat/conversations/${conversation.id}/messages`,
    { body: "a video" },
  );
  return String(message.id);
}

/** The attachment JSON as `user` sees it. */
export async function attachmentOf(
  server: ServerProcess,
  user: string,
  id: string,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.url}/api/chat/attachments/${id}`, {
    headers: await server.auth(user),
  });
  return await response.json();
}
