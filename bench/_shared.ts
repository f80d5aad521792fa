// deno-lint-ignore-file no-console
/**
 * What the benchmark CLIs (bench/upload.ts, bench/stream.ts) share: child
 * processes with their logs, the scratch directory and its cleanup, the padded
 * test video, this server and its API, machine facts, statistics, markdown
 * tables and the docs/BENCHMARKS.md section writer.
 */

import { FFMPEG_QUIET } from "../lib/media/tools.ts";
import { CONFIG_ENV_NAMES } from "../lib/config/config.ts";

/** The repository root (the parent of bench/). */
export const REPO = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
/** Where `--write` records the figures. */
export const DOC_PATH = `${REPO}/docs/BENCHMARKS.md`;
/** One mebibyte. */
export const MIB = 1024 * 1024;
const READY_TIMEOUT_MS = 90_000;

// ---------------------------------------------------------------------------
// Processes

/** Short-lived children (curl, wrk, ffmpeg…) still running, stopped by the cleanup on a signal. */
const inFlight = new Set<Deno.ChildProcess>();

/** Like `new Deno.Command(...).output()`, but the child is stopped if the bench is interrupted. */
export async function output(
  command: string,
  options: Deno.CommandOptions,
): Promise<Deno.CommandOutput> {
  const child = new Deno.Command(command, options).spawn();
  inFlight.add(child);
  try {
    return await child.output();
  } finally {
    inFlight.delete(child);
  }
}

/** A finished command with its output decoded as text. */
export interface Captured {
  success: boolean;
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command` in the repository, stdin closed, and returns its exit and output whatever the code. */
export async function capture(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<Captured> {
  const out = await output(command, {
    args,
    env,
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const decoder = new TextDecoder();
  return {
    success: out.success,
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** Runs `command` in the repository and returns its stdout; throws with its stderr on failure. */
export async function run(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const out = await capture(command, args, env);
  if (!out.success) throw new Error(`${command} ${args.join(" ")} failed:\n${out.stderr}`);
  return out.stdout;
}

/** The first line a tool prints about itself, whichever stream and exit code (nginx -v, wrk -v). */
export async function versionLine(command: string, args: string[]): Promise<string> {
  try {
    const out = await capture(command, args);
    const text = `${out.stdout}\n${out.stderr}`;
    return text.split("\n").map((line) => line.trim()).find((line) => line) ?? "?";
  } catch {
    return "not found";
  }
}

/** A long-running child (a server) whose stdout and stderr go to `logPath`. */
export interface Child {
  name: string;
  process: Deno.ChildProcess;
  logPath: string;
  /** Settle when both output streams have been copied to the log. */
  pumps: Promise<void>[];
}

/** Starts `command` in the repository with its stdout and stderr copied to `logPath`. */
export async function spawn(
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  logPath: string,
): Promise<Child> {
  const process = new Deno.Command(command, {
    args,
    env,
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log = await Deno.open(logPath, { write: true, create: true, truncate: true });
  const writer = log.writable.getWriter();
  let queue = Promise.resolve();
  const pump = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    for await (const chunk of stream) queue = queue.then(() => writer.write(chunk));
  };
  const pumps = [pump(process.stdout), pump(process.stderr)];
  Promise.all(pumps).then(() => queue).then(() => writer.close()).catch(() => {});
  return { name, process, logPath, pumps };
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the child is gone and its log written. */
export async function stopChild(child: Child): Promise<void> {
  const exited = child.process.status.then(() => true);
  try {
    child.process.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((
    resolve,
  ) => (timer = setTimeout(() => resolve(false), 5000)));
  const done = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (!done) {
    try {
      child.process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.process.status;
  }
  await Promise.allSettled(child.pumps);
}

/** The last 20 lines of a child's log, for error messages. */
export async function logTail(child: Child): Promise<string> {
  const text = await Deno.readTextFile(child.logPath).catch(() => "");
  return text.split("\n").slice(-20).join("\n");
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `url` until it answers 200, failing early if the process exits. */
export async function waitReady(url: string, child: Child): Promise<void> {
  let exited = false;
  child.process.status.then(() => (exited = true));
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (exited) {
      throw new Error(`${child.name} exited before it was ready:\n${await logTail(child)}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await delay(50);
  }
  throw new Error(`${child.name} not ready after ${READY_TIMEOUT_MS} ms:\n${await logTail(child)}`);
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

// ---------------------------------------------------------------------------
// The run: scratch directory, cleanup, exit

/** The temporary directory of one run and the servers started in it. */
export interface Scratch {
  tmp: string;
  /** Stopped by the cleanup; push every long-running child here. */
  children: Child[];
}

/**
 * Runs `body` with a fresh temporary directory, then stops the children and
 * in-flight commands and removes the directory (kept with `keep`), also on
 * SIGINT/SIGTERM, after which the process exits 130.
 */
export async function withScratch<T>(
  prefix: string,
  keep: boolean,
  body: (scratch: Scratch) => Promise<T>,
): Promise<T> {
  const tmp = await Deno.makeTempDir({ prefix });
  const children: Child[] = [];
  let cleaning: Promise<void> | null = null;
  // Memoized: a signal and the failing main path may both ask, and both wait for the end.
  const cleanup = (): Promise<void> =>
    cleaning ??= (async (): Promise<void> => {
      for (const child of inFlight) {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
      }
      await Promise.allSettled(children.map(stopChild));
      if (keep) console.error(`kept ${tmp}`);
      else await Deno.remove(tmp, { recursive: true }).catch(() => {});
    })();
  const onSignal = (): void => {
    console.error("interrupted; stopping the servers");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    return await body({ tmp, children });
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await cleanup();
  }
}

/** Runs a bench's `main`, printing an error's message (no stack) and exiting 1 on failure. */
export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(1);
  }
}

/** The options every bench takes: `--write` (update docs/BENCHMARKS.md), `--keep` (the temporary directory). */
export interface CommonOptions {
  write: boolean;
  keep: boolean;
}

/**
 * Walks the command line: `--write`, `--keep` and `--` are handled here, any
 * other argument by `flag`, which reads its value with `value()` and answers
 * false for an argument it does not know.
 */
export function parseArgs(
  args: string[],
  options: CommonOptions,
  flag: (arg: string, value: () => string | undefined) => boolean,
): void {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--write") options.write = true;
    else if (arg === "--keep") options.keep = true;
    else if (arg === "--") continue;
    else if (!flag(arg, () => args[++i])) throw new Error(`Unknown argument "${arg}"`);
  }
}

/** Parses a command-line count: a whole number of at least `min`. */
export function wholeNumber(flag: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} takes a whole number >= ${min}`);
  return n;
}

// ---------------------------------------------------------------------------
// The test video

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** A short H.264 MP4, then a `free` box padding it to exactly `bytes`. */
export async function makeVideo(path: string, bytes: number): Promise<void> {
  const base = `${path}.base.mp4`;
  await run("ffmpeg", [
    ...FFMPEG_QUIET,
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=640x360:rate=25:duration=4",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    "-movflags",
    "+faststart",
    "-f",
    "mp4",
    base,
  ]);
  const baseSize = (await Deno.stat(base)).size;
  const boxSize = bytes - baseSize;
  if (boxSize < 8 || boxSize > 0xffff_ffff) {
    throw new Error(`Cannot pad a ${baseSize}-byte video to ${bytes} bytes with one box`);
  }
  await Deno.rename(base, path);
  using file = await Deno.open(path, { append: true });
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, boxSize);
  header.set(new TextEncoder().encode("free"), 4);
  await writeAll(file, header);
  // Random rather than zero so nothing on the way can shortcut the payload.
  const chunk = new Uint8Array(MIB);
  for (let i = 0; i < chunk.length; i += 65536) {
    crypto.getRandomValues(chunk.subarray(i, i + 65536));
  }
  let left = boxSize - 8;
  while (left > 0) {
    const part = chunk.subarray(0, Math.min(left, chunk.length));
    await writeAll(file, part);
    left -= part.length;
  }
}

/** The file's SHA-256 in hex (by `sha256sum`). */
export async function sha256File(path: string): Promise<string> {
  const out = await run("sha256sum", [path]);
  return out.split(" ")[0] ?? "";
}

/** One stream as ffprobe reports it. */
export interface ProbeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
}

/** The streams and duration (seconds) ffprobe finds in `path`. */
export async function probe(path: string): Promise<{ streams: ProbeStream[]; duration: number }> {
  const json = await run("ffprobe", [
    "-v",
    "error",
    "-show_entries",
    "stream=codec_type,codec_name,width,height:format=duration",
    "-of",
    "json",
    path,
  ]);
  const parsed = JSON.parse(json) as { streams?: ProbeStream[]; format?: { duration?: string } };
  return { streams: parsed.streams ?? [], duration: Number(parsed.format?.duration) };
}

/** How the docs name the codecs ffprobe reports. */
const CODEC_NAMES: Record<string, string> = {
  h264: "H.264",
  mpeg4: "MPEG-4 Part 2",
  mp3: "MP3",
  aac: "AAC",
};

/** "4.0 s of H.264 at 640×360[ with AAC audio][ in MP4]", as the docs describe a file. */
export function describe(streams: ProbeStream[], duration: number, container?: string): string {
  const video = streams.find((s) => s.codec_type === "video");
  const audio = streams.find((s) => s.codec_type === "audio");
  const name = (codec: string | undefined): string => CODEC_NAMES[codec ?? ""] ?? codec ?? "?";
  return `${duration.toFixed(1)} s of ${
    name(video?.codec_name)
  } at ${video?.width}×${video?.height}` +
    `${audio ? ` with ${name(audio.codec_name)} audio` : ""}${container ? ` in ${container}` : ""}`;
}

/**
 * Makes the padded video at `path` (see `makeVideo`), checks that ffprobe
 * finds its H.264 stream, and returns its description and SHA-256.
 */
export async function prepareVideo(
  tmp: string,
  path: string,
  bytes: number,
  container?: string,
): Promise<{ info: string; sha256: string }> {
  console.error(`making a ${bytes / MIB} MiB video in ${tmp}`);
  await makeVideo(path, bytes);
  const probed = await probe(path);
  if (!probed.streams.some((s) => s.codec_name === "h264")) {
    throw new Error(`ffprobe found no H.264 stream in the padded file: ${JSON.stringify(probed)}`);
  }
  const info = describe(probed.streams, probed.duration, container);
  const sha256 = await sha256File(path);
  console.error(`video: ${info}; sha256 ${sha256}`);
  return { info, sha256 };
}

// ---------------------------------------------------------------------------
// This server and its API

/** This server, started by `startServer`. */
export interface Server {
  child: Child;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Its environment, also right for `main.ts token`. */
  env: Record<string, string>;
}

/** The MAX_UPLOAD_BYTES both servers get for a `fileBytes` upload. */
export function uploadLimit(fileBytes: number): string {
  return String(Math.max(200 * MIB, 2 * fileBytes));
}

/** How `startServer` differs from its defaults. */
export interface ServerOptions {
  /** PUBLIC_URL: the server's own address (`true`), another (a proxy in front), or unset. */
  publicUrl: boolean | string;
  /** DATA_DIR (storage and the database file); default `<tmp>/server-data`. */
  dataDir?: string;
  /**
   * JWT_SECRET, which also signs the media URLs; default a fresh random one.
   * Two servers on one DATA_DIR with one secret accept each other's tokens.
   */
  secret?: string;
  /** More environment (e.g. ACCEL_REDIRECT_PREFIX), set after everything else. */
  env?: Record<string, string>;
  /** The child's name in messages, and its log `<tmp>/<name>.log`; default "server". */
  name?: string;
}

/**
 * Starts `main.ts serve` with the V8 flags of `deno task start` (measured as
 * deployed), in-process storage and database under `tmp`, no job workers, and
 * every other setting blank so the defaults apply. Does not wait for it.
 */
export async function startServer(
  scratch: Scratch,
  fileBytes: number,
  options: ServerOptions,
): Promise<Server> {
  const tasks = JSON.parse(await Deno.readTextFile(`${REPO}/deno.json`)).tasks;
  const v8Flags = (tasks.start.command as string).split(" ")
    .filter((arg) => arg.startsWith("--v8-flags="));
  const name = options.name ?? "server";
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const secret = options.secret ?? Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const publicUrl = options.publicUrl === true ? url : options.publicUrl || "";
  const env: Record<string, string> = {
    // Blank (= unset) whatever the caller's shell may have set, e.g. DATABASE_URL.
    ...Object.fromEntries(CONFIG_ENV_NAMES.map((key) => [key, ""])),
    DATA_DIR: options.dataDir ?? `${scratch.tmp}/server-data`,
    PORT: String(port),
    HOST: "127.0.0.1",
    PUBLIC_URL: publicUrl,
    JWT_SECRET: secret,
    WORKER_CONCURRENCY: "0",
    MAX_UPLOAD_BYTES: uploadLimit(fileBytes),
    NO_COLOR: "1",
    ...options.env,
  };
  const child = await spawn(
    name,
    Deno.execPath(),
    [
      "run",
      ...v8Flags,
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "--allow-run",
      "main.ts",
      "serve",
    ],
    env,
    `${scratch.tmp}/${name}.log`,
  );
  scratch.children.push(child);
  return { child, url, env };
}

/** POSTs `body` as JSON with the bearer token; returns the JSON answer, throws unless 2xx. */
export async function apiJson(
  url: string,
  token: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json() as Record<string, unknown>;
  if (!response.ok) {
    throw new Error(`POST ${url} answered ${response.status}: ${JSON.stringify(json)}`);
  }
  return json;
}

/** A user's token and conversation on this server, ready for uploads. */
export interface ApiSession {
  serverUrl: string;
  token: string;
  conversationId: string;
  uploadUrl: string;
  /** curl `-H` values: the bearer token. */
  headers: string[];
}

/** Mints a token for "alice" (`main.ts token`) and creates a conversation. */
export async function apiSession(server: Server): Promise<ApiSession> {
  const token = (await run(Deno.execPath(), [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "main.ts",
    "token",
    "alice",
  ], server.env)).trim();
  const conversation = await apiJson(`${server.url}/api/chat/conversations`, token, {
    participant_ids: [],
  });
  return {
    serverUrl: server.url,
    token,
    conversationId: String(conversation.id),
    uploadUrl: `${server.url}/api/chat/videos/upload/`,
    headers: [`Authorization: Bearer ${token}`],
  };
}

/** Posts a message to the session's conversation; returns its id. */
export async function postMessage(session: ApiSession, body: string): Promise<string> {
  const message = await apiJson(
    `${session.serverUrl}/api/chat/conversations/${session.conversationId}/messages`,
    session.token,
    { body },
  );
  return String(message.id);
}

/** One `curl -F` upload: how it went and how long it took. */
export interface CurlUpload {
  success: boolean;
  /** curl's exit code. */
  exitCode: number;
  /** The HTTP status, as text. */
  status: string;
  /** Wall time of the curl process, in milliseconds. */
  wallMs: number;
  /** curl's own `time_total`, in milliseconds. */
  curlMs: number;
  stderr: string;
}

/**
 * Uploads `videoPath` as the multipart `file` part after `fields` (with
 * `Expect:` cleared), the answer written to `responsePath`; timed as the wall
 * time of the curl process. Check it with `uploadAnswer`.
 */
export async function curlUpload(
  url: string,
  videoPath: string,
  responsePath: string,
  headers: string[],
  fields: Record<string, string>,
): Promise<CurlUpload> {
  const args = ["-sS", "-o", responsePath, "-w", "%{http_code} %{time_total}", "-H", "Expect:"];
  for (const header of headers) args.push("-H", header);
  for (const [name, value] of Object.entries(fields)) args.push("-F", `${name}=${value}`);
  args.push("-F", `file=@${videoPath};type=video/mp4`, url);
  const started = performance.now();
  const out = await capture("curl", args);
  const wallMs = performance.now() - started;
  const [status, total] = out.stdout.trim().split(" ");
  return {
    success: out.success,
    exitCode: out.code,
    status: status ?? "?",
    wallMs,
    curlMs: Number(total) * 1000,
    stderr: out.stderr,
  };
}

/**
 * The 201 JSON answer of an upload, checked to report the file's size and
 * SHA-256; throws with curl's error and the answer otherwise.
 */
export async function uploadAnswer(
  name: string,
  upload: CurlUpload,
  responsePath: string,
  expectedSize: number,
  expectedSha256: string,
): Promise<Record<string, unknown>> {
  const text = await Deno.readTextFile(responsePath).catch(() => "");
  if (!upload.success || upload.status !== "201") {
    throw new Error(
      `${name}: upload answered ${upload.status} (curl ${upload.exitCode}): ${upload.stderr}${
        text.slice(0, 500)
      }`,
    );
  }
  const answer = JSON.parse(text) as Record<string, unknown>;
  if (answer.file_size !== expectedSize || answer.sha256 !== expectedSha256) {
    throw new Error(
      `${name}: the server saw ${answer.file_size} bytes, sha256 ${answer.sha256}; ` +
        `sent ${expectedSize} bytes, sha256 ${expectedSha256}`,
    );
  }
  return answer;
}

// ---------------------------------------------------------------------------
// The machine

/** A file under /proc, or "" (Deno only reads /proc under --allow-all, so through cat). */
export function readProc(path: string): Promise<string> {
  return run("cat", [path]).catch(() => "");
}

/** What the docs say about the machine; each bench adds its own tools. */
export interface Machine {
  cpus: string;
  memory: string;
  kernel: string;
  deno: string;
  ffmpeg: string;
  curl: string;
}

/** CPUs, memory, kernel, and the Deno, ffmpeg and curl versions. */
export async function machineInfo(): Promise<Machine> {
  const total = /^MemTotal:\s+(\d+) kB/m.exec(await readProc("/proc/meminfo"));
  const model = /^model name\s*:\s*(.+)$/m.exec(await readProc("/proc/cpuinfo"))?.[1]?.trim();
  const nproc = await versionLine("nproc", []);
  return {
    cpus: model ? `${nproc} × ${model}` : nproc,
    memory: total ? `${(Number(total[1]) / 1024 / 1024).toFixed(1)} GiB` : "?",
    kernel: await versionLine("uname", ["-sr"]),
    deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
    ffmpeg: (await versionLine("ffmpeg", ["-version"])).replace(/ Copyright.*$/, ""),
    curl: (await versionLine("curl", ["--version"])).split(" ").slice(0, 2).join(" "),
  };
}

/** The 1-minute load average, which shows other work competing for the CPUs. */
export async function loadAverage(): Promise<string> {
  return (await readProc("/proc/loadavg")).split(" ")[0] || "?";
}

/** The one-line machine summary printed after the tables; `tools` are the bench's own versions. */
export function machineSummary(host: Machine, tools: string[]): string {
  return `Machine: ${host.cpus}; ${host.memory} RAM; ${host.kernel}; Deno ${host.deno}; ` +
    tools.join("; ");
}

/** The docs' "Machine:" list; `tools` follow Deno on the last line. */
export function machineMarkdown(host: Machine, tools: string[]): string {
  return `- CPU: ${host.cpus} (\`nproc\`)
- Memory: ${host.memory} (MemTotal in \`/proc/meminfo\`)
- Kernel: ${host.kernel}
- Deno ${[host.deno, ...tools].join(", ")}`;
}

// ---------------------------------------------------------------------------
// Figures

/** Median, minimum and maximum of some runs. */
export interface Stats {
  median: number;
  min: number;
  max: number;
}

/** Median (mean of the middle two for an even count), minimum and maximum of `values`. */
export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/**
 * Runs `first` then `second`, `runs` times (A, B, A, B…), and returns each
 * side's results in order; `onPair` sees each pair as it completes.
 */
export async function alternate<A, B>(
  runs: number,
  first: (run: number) => Promise<A>,
  second: (run: number) => Promise<B>,
  onPair?: (run: number, a: A, b: B) => void,
): Promise<[A[], B[]]> {
  const as: A[] = [];
  const bs: B[] = [];
  for (let i = 0; i < runs; i++) {
    const a = await first(i);
    const b = await second(i);
    as.push(a);
    bs.push(b);
    onPair?.(i, a, b);
  }
  return [as, bs];
}

/** "median 1.00× (min 0.90×, max 1.10×)" */
export function ratioText(s: Stats): string {
  return `median ${s.median.toFixed(2)}× (min ${s.min.toFixed(2)}×, max ${s.max.toFixed(2)}×)`;
}

/** `bytes` moved in `ms` milliseconds, as whole MiB/s. */
export function throughput(bytes: number, ms: number): string {
  return `${(bytes / MIB / (ms / 1000)).toFixed(0)} MiB/s`;
}

/** "**met**" or "**not met**", for the targets list. */
export function met(ok: boolean): string {
  return `**${ok ? "met" : "not met"}**`;
}

function tableRow(cells: string[]): string {
  return `|${cells.map((cell) => (cell ? ` ${cell} |` : " |")).join("")}`;
}

/**
 * A markdown table. Every column but the first is right-aligned; so is the
 * first with `firstColumn: "right"` (a run number). Empty cells print as `| |`.
 */
export function markdownTable(
  header: string[],
  rows: string[][],
  firstColumn: "left" | "right" = "left",
): string {
  const rule = `|${
    header.map((_, i) => (i === 0 && firstColumn === "left" ? "---|" : "---:|")).join("")
  }`;
  return [tableRow(header), rule, ...rows.map(tableRow)].join("\n");
}

// ---------------------------------------------------------------------------
// docs/BENCHMARKS.md

/**
 * Replaces (or appends) the `## …` section that `text` starts with in
 * docs/BENCHMARKS.md, then runs `deno fmt` on the file.
 */
export async function writeSection(text: string): Promise<void> {
  const heading = text.slice(0, text.indexOf("\n"));
  if (!heading.startsWith("## ")) throw new Error(`A section starts with "## ", not "${heading}"`);
  let doc = await Deno.readTextFile(DOC_PATH).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  });
  if (!doc.trim()) {
    doc =
      "# Benchmarks\n\nFigures from the scripts in `bench/`. Each section says how to rerun it.\n";
  }
  const start = doc.indexOf(`${heading}\n`);
  if (start === -1) {
    doc = `${doc.trimEnd()}\n\n${text}`;
  } else {
    const next = doc.indexOf("\n## ", start + heading.length);
    doc = `${doc.slice(0, start)}${text}${next === -1 ? "" : `\n${doc.slice(next + 1)}`}`;
  }
  await Deno.writeTextFile(DOC_PATH, doc);
  // Leave the file as `deno fmt --check` wants it (table padding).
  await run(Deno.execPath(), ["fmt", "--quiet", DOC_PATH]);
  console.error(`updated ${DOC_PATH}`);
}
