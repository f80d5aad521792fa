// deno-lint-ignore-file no-console
/**
 * What bench/stream.ts and bench/upload.ts share: the command line, a scratch
 * directory whose servers are stopped on every way out, this server started
 * as `deno task start` runs it, the padded test video, a multipart upload by
 * curl, statistics and plain-text tables.
 */

import { parseArgs } from "node:util";
import { CONFIG_ENV_NAMES, parseConfig } from "../lib/config/config.ts";
import { denoRunArgs } from "../lib/config/permissions.ts";
import { ffmpeg, ffprobeJson } from "../tests/_fixtures.ts";
import { freePort } from "../tests/_helpers.ts";

export { freePort };

/** The repository root (the parent of bench/). */
export const REPO = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
/** One mebibyte. */
export const MIB = 1024 * 1024;

/**
 * Reads the command line: `--json`, `--keep` (leave the scratch directory)
 * and one `--name value` per key of `defaults`: where the default is a
 * number, a whole number >= 1 (>= 0 where the default is 0).
 */
export function readOptions<T extends Record<string, number | string>>(
  defaults: T,
  /** Number options that may be 0 besides those whose default is 0. */
  zeroAllowed: (keyof T)[] = [],
): T & { json: boolean; keep: boolean } {
  const { values } = parseArgs({
    // `deno task bench:x -- --json` passes the `--` on.
    args: Deno.args.filter((arg) => arg !== "--"),
    options: {
      json: { type: "boolean" },
      keep: { type: "boolean" },
      ...Object.fromEntries(Object.keys(defaults).map((key) => [key, { type: "string" }])),
    },
  });
  const options: Record<string, unknown> = { json: !!values.json, keep: !!values.keep };
  for (const [key, fallback] of Object.entries(defaults)) {
    const value = (values as Record<string, unknown>)[key] as string | undefined;
    options[key] = value ?? fallback;
    if (value !== undefined && typeof fallback === "number") {
      options[key] = Number(value);
      const min = fallback === 0 || zeroAllowed.includes(key) ? 0 : 1;
      if (!Number.isInteger(options[key]) || Number(value) < min) {
        throw new Error(`--${key} takes a whole number >= ${min}, not "${value}"`);
      }
    }
  }
  return options as T & { json: boolean; keep: boolean };
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

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------
// Processes

/** Runs `command` in the repository to its end; its exit and output as text. */
export async function run(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ success: boolean; stdout: string; stderr: string }> {
  const out = await new Deno.Command(command, { args, env, cwd: REPO, stdin: "null" }).output();
  const text = new TextDecoder();
  return { success: out.success, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Like `run`, but returns stdout and throws with stderr when the command fails. */
export async function check(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const out = await run(command, args, env);
  if (!out.success) throw new Error(`${command} ${args.join(" ")} failed:\n${out.stderr}`);
  return out.stdout;
}

/** A long-running child (a server), its stdout and stderr in `logPath`. */
export interface Child {
  name: string;
  process: Deno.ChildProcess;
  logPath: string;
}

/** The temporary directory of one run, and the children that the cleanup stops. */
export interface Scratch {
  tmp: string;
  children: Child[];
}

/** Starts `command` in the repository with its output in `<tmp>/<name>.log`; the cleanup stops it. */
export async function spawn(
  scratch: Scratch,
  name: string,
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Child> {
  const logPath = `${scratch.tmp}/${name.replace(/\W+/g, "-")}.log`;
  const process = new Deno.Command(command, {
    args,
    env,
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  for (const stream of [process.stdout, process.stderr]) {
    const log = await Deno.open(logPath, { append: true, create: true });
    stream.pipeTo(log.writable).catch(() => {});
  }
  const child = { name, process, logPath };
  scratch.children.push(child);
  return child;
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the child is gone. */
async function stop(child: Child): Promise<void> {
  const kill = (signal: Deno.Signal): void => {
    try {
      child.process.kill(signal);
    } catch {
      // Already gone.
    }
  };
  kill("SIGTERM");
  const timer = setTimeout(() => kill("SIGKILL"), 5000);
  await child.process.status;
  clearTimeout(timer);
}

/** Stops every child started so far (when the next part of a bench does not need them). */
export async function stopAll(scratch: Scratch): Promise<void> {
  await Promise.all(scratch.children.splice(0).map(stop));
}

/**
 * Runs `body` with a fresh temporary directory, then stops the children and
 * removes the directory (kept with `keep`), also on SIGINT or SIGTERM, after
 * which the process exits 130.
 */
export async function withScratch<T>(
  keep: boolean,
  body: (scratch: Scratch) => Promise<T>,
): Promise<T> {
  const scratch: Scratch = {
    tmp: await Deno.makeTempDir({ prefix: "offchat-bench-" }),
    children: [],
  };
  let cleaning: Promise<void> | undefined;
  // Memoized: a signal and the failing main path may both ask.
  const cleanup = (): Promise<void> =>
    cleaning ??= stopAll(scratch).then(async () => {
      if (keep) console.error(`kept ${scratch.tmp}`);
      else await Deno.remove(scratch.tmp, { recursive: true }).catch(() => {});
    });
  const onSignal = (): void => {
    console.error("interrupted; stopping the servers");
    cleanup().finally(() => Deno.exit(130));
  };
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  try {
    return await body(scratch);
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    await cleanup();
  }
}

/** Polls `url` until it answers 200; fails when `child` exits first or after 90 s. */
export async function waitReady(url: string, child: Child): Promise<void> {
  let exited = false;
  child.process.status.then(() => (exited = true));
  const deadline = Date.now() + 90_000;
  while (!exited && Date.now() < deadline) {
    const status = await fetch(url, { signal: AbortSignal.timeout(2000) })
      .then(async (response) => (await response.body?.cancel(), response.status))
      .catch(() => 0);
    if (status === 200) return;
    await delay(50);
  }
  const log = await Deno.readTextFile(child.logPath).catch(() => "");
  throw new Error(
    `${child.name} ${exited ? "exited" : "not ready after 90 s"}:\n` +
      log.split("\n").slice(-20).join("\n"),
  );
}

// ---------------------------------------------------------------------------
// This server

/** This server, started by `startServer`. */
export interface Server {
  child: Child;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Its environment, also right for `main.ts token`. */
  env: Record<string, string>;
}

/** How `startServer` differs from its defaults. */
export interface ServerOptions {
  /** The log's and the messages' name; default "server". */
  name?: string;
  /** DATA_DIR; default `<tmp>/<name>-data`. */
  dataDir?: string;
  /** JWT_SECRET (which also signs media URLs); default a fresh one. */
  secret?: string;
  /** PUBLIC_URL set to the server's own address; default unset. */
  publicUrl?: boolean;
  /** More environment (ACCEL_REDIRECT_PREFIX, WORKER_CONCURRENCY), set last. */
  env?: Record<string, string>;
}

/**
 * Starts `main.ts serve` with the flags `deno task start` gives it (measured
 * as deployed), every setting blank but the ones given so the defaults apply,
 * no job workers and MAX_UPLOAD_BYTES of at least twice `fileBytes`. Does not
 * wait for it.
 */
export async function startServer(
  scratch: Scratch,
  fileBytes: number,
  options: ServerOptions = {},
): Promise<Server> {
  const name = options.name ?? "server";
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    // Blank (= unset) whatever the caller's shell may have set, e.g. DATABASE_URL.
    ...Object.fromEntries(CONFIG_ENV_NAMES.map((key) => [key, ""])),
    DATA_DIR: options.dataDir ?? `${scratch.tmp}/${name}-data`,
    PORT: String(port),
    HOST: "127.0.0.1",
    PUBLIC_URL: options.publicUrl ? url : "",
    JWT_SECRET: options.secret ?? crypto.randomUUID() + crypto.randomUUID(),
    WORKER_CONCURRENCY: "0",
    MAX_UPLOAD_BYTES: String(Math.max(200 * MIB, 2 * fileBytes)),
    NO_COLOR: "1",
    ...options.env,
  };
  // As `deno task start` runs it: the same runtime and permission flags.
  const args = denoRunArgs(parseConfig(env), "serve");
  const child = await spawn(scratch, name, Deno.execPath(), args, env);
  return { child, url, env };
}

/** A user's token and conversation on a server. */
export interface Session {
  url: string;
  token: string;
  conversationId: string;
}

/** POSTs `body` as JSON with the session's token; the JSON answer, or throws unless 2xx. */
export async function postJson(
  session: Pick<Session, "url" | "token">,
  path: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(session.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${session.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${json.detail}`);
  return json;
}

/** Mints a token for "alice" with `main.ts token` and creates a conversation. */
export async function signIn(server: Server): Promise<Session> {
  const args = ["run", "--allow-all", "main.ts", "token", "alice"];
  const token = (await check(Deno.execPath(), args, server.env)).trim();
  const conversation = await postJson({ url: server.url, token }, "/api/chat/conversations", {
    participant_ids: [],
  });
  return { url: server.url, token, conversationId: String(conversation.id) };
}

/** Posts a message in the session's conversation (videos are attached to one); its id. */
export async function newMessage(session: Session): Promise<string> {
  const path = `/api/chat/conversations/${session.conversationId}/messages`;
  return String((await postJson(session, path, { body: "benchmark" })).id);
}

// ---------------------------------------------------------------------------
// The video and the upload

/** The padded video of a run. */
export interface Video {
  path: string;
  bytes: number;
  sha256: string;
}

/**
 * Makes 4 s of 640×360 H.264 (lavfi `testsrc2`, `+faststart`) padded with one
 * ISO-BMFF `free` box of random bytes to exactly `bytes`: a valid MP4 that
 * ffprobe reads, mostly payload.
 */
export async function makeVideo(path: string, bytes: number): Promise<Video> {
  console.error(`making a ${bytes / MIB} MiB video`);
  const h264 = "-c:v libx264 -preset ultrafast -pix_fmt yuv420p -movflags +faststart -f mp4 -y";
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=640x360:rate=25:duration=4",
    ...h264.split(" "),
    path,
  ]);
  const box = bytes - (await Deno.stat(path)).size;
  if (box < 8 || box > 0xffff_ffff) throw new Error(`Cannot pad the video to ${bytes} bytes`);
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, box);
  header.set(new TextEncoder().encode("free"), 4);
  // Random rather than zero so nothing on the way can shortcut the payload.
  const random = new Uint8Array(MIB);
  for (let i = 0; i < MIB; i += 65536) crypto.getRandomValues(random.subarray(i, i + 65536));
  function* padding(): Generator<Uint8Array> {
    yield header;
    for (let left = box - 8; left > 0; left -= MIB) yield random.subarray(0, Math.min(left, MIB));
  }
  await Deno.writeFile(path, ReadableStream.from(padding()), { append: true });
  const streams = (await ffprobeJson(path)).streams as { codec_name?: string }[] | undefined;
  if (!streams?.some((stream) => stream.codec_name === "h264")) {
    throw new Error("ffprobe finds no H.264 stream in the padded video");
  }
  const sha256 = (await check("sha256sum", [path])).split(" ")[0]!;
  return { path, bytes, sha256 };
}

/** One multipart upload by curl: its times and the server's 201 answer. */
export interface CurlUpload {
  /** Wall time of the curl process, in milliseconds. */
  wallMs: number;
  /** curl's own `time_total`, in milliseconds. */
  curlMs: number;
  answer: Record<string, unknown>;
}

/**
 * Uploads the video with `curl -F` (the `fields` first, `Expect:` cleared) to
 * `url`; throws unless the answer is 201 with the file's size and SHA-256.
 */
export async function curlUpload(
  url: string,
  video: Video,
  fields: Record<string, string>,
  headers: string[] = [],
): Promise<CurlUpload> {
  const answerPath = `${video.path}.answer.json`;
  const args = ["-sS", "-o", answerPath, "-w", "%{http_code} %{time_total}", "-H", "Expect:"];
  for (const header of headers) args.push("-H", header);
  for (const [name, value] of Object.entries(fields)) args.push("-F", `${name}=${value}`);
  args.push("-F", `file=@${video.path};type=video/mp4`, url);
  const started = performance.now();
  const out = await run("curl", args);
  const wallMs = performance.now() - started;
  const [status, total] = out.stdout.split(" ");
  const text = await Deno.readTextFile(answerPath).catch(() => "");
  if (!out.success || status !== "201") {
    throw new Error(`Upload to ${url} answered ${status}: ${out.stderr}${text.slice(0, 500)}`);
  }
  const answer = JSON.parse(text);
  if (answer.file_size !== video.bytes || answer.sha256 !== video.sha256) {
    throw new Error(`${url} saw ${answer.file_size} bytes, sha256 ${answer.sha256}`);
  }
  return { wallMs, curlMs: Number(total) * 1000, answer };
}

// ---------------------------------------------------------------------------
// Figures and tables

/** The median (of the middle two for an even count), minimum and maximum of some runs. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The median, minimum and maximum of `values` (at least one). */
export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

/** `a[i] / b[i]` for each run: a per-round (per-pair) ratio. */
export function ratios(a: number[], b: number[]): number[] {
  return a.map((value, i) => value / b[i]!);
}

/** A table row: `label`, then each column's median as `format` writes it. */
export function medianRow(
  label: string,
  columns: number[][],
  format: (value: number) => string,
): string[] {
  return [label, ...columns.map((runs) => format(spread(runs).median))];
}

/** "<label>, median" and "<label>, min – max" rows, one column per list of runs. */
export function spreadRows(
  label: string,
  columns: number[][],
  format: (value: number) => string,
): string[][] {
  const spreads = columns.map(spread);
  return [
    [`${label}, median`, ...spreads.map((s) => format(s.median))],
    [`${label}, min – max`, ...spreads.map((s) => `${format(s.min)} – ${format(s.max)}`)],
  ];
}

/** "0.50× met": the median of per-round ratios against a target it must reach (or not exceed). */
export function verdict(values: number[], target: number, atMost = false): string {
  const median = spread(values).median;
  const met = (value: number): boolean => atMost ? value <= target : value >= target;
  // A third decimal when two would round onto the other side of the target (0.248 is not 0.25).
  const shown = median.toFixed(met(Number(median.toFixed(2))) === met(median) ? 2 : 3);
  return `${shown}× ${met(median) ? "met" : "not met"}`;
}

/** "0.50× (0.49–0.73×)": median, then min–max */
export function ratioText(values: number[]): string {
  const s = spread(values);
  return `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)}×)`;
}

/** "70 ms" or "2.95 s" */
export function time(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** "29.4 MiB" */
export function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

/** `bytes` in `ms`, as whole MiB/s. */
export function throughput(bytes: number, ms: number): string {
  return `${(bytes / MIB / (ms / 1000)).toFixed(0)} MiB/s`;
}

/** A plain-text table under `title`: the first column left-aligned, the others right-aligned. */
export function table(title: string, header: string[], rows: string[][]): string {
  const widths = header.map((_, i) =>
    Math.max(...[header, ...rows].map((row) => (row[i] ?? "").length))
  );
  const line = (row: string[]): string =>
    widths.map((width, i) => i ? (row[i] ?? "").padStart(width) : (row[i] ?? "").padEnd(width))
      .join("  ").trimEnd();
  const rule = widths.map((width) => "-".repeat(width)).join("  ");
  return [title, "", line(header), rule, ...rows.map(line)].join("\n");
}

/**
 * The same table as Markdown, ready for docs/BENCHMARKS.md: `title` as a
 * heading, the first `left` columns (labels) left-aligned, the others right-aligned.
 */
export function markdownTable(
  title: string,
  header: string[],
  rows: string[][],
  left = 1,
): string {
  const cell = (text: string | undefined): string => (text ?? "").replaceAll("|", "\\|");
  const widths = header.map((_, i) =>
    Math.max(3, ...[header, ...rows].map((row) => cell(row[i]).length))
  );
  const line = (row: string[]): string =>
    `| ${
      widths.map((width, i) => i < left ? cell(row[i]).padEnd(width) : cell(row[i]).padStart(width))
        .join(" | ")
    } |`;
  const rule = widths.map((width, i) => i < left ? "-".repeat(width) : `${"-".repeat(width - 1)}:`);
  return [`### ${title}`, "", line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)].join(
    "\n",
  );
}

/** The 1-minute load average, which shows other work competing for the CPUs. */
export async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ")[0]!;
}

/** The CPUs, the load average before (`loadBefore`) and now, and each tool's first line of `-v`. */
export async function machine(
  loadBefore: string,
  tools: [string, ...string[]][],
): Promise<Record<string, string>> {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1];
  const facts: Record<string, string> = {
    cpus: `${navigator.hardwareConcurrency} × ${cpu ?? "?"}`,
    load: `${loadBefore} before, ${await loadAverage()} after (1 min)`,
    deno: Deno.version.deno,
  };
  for (const [command, ...args] of tools) {
    const out = await run(command, args).catch(() => ({ stdout: "not found", stderr: "" }));
    const first = `${out.stdout}\n${out.stderr}`.split("\n").find((line) => line.trim());
    facts[command] = (first ?? "?").replace(/ (\(|Copyright).*$/, "");
  }
  return facts;
}

/** Prints the tables and the machine to stdout, or with `--json` the raw `figures` as JSON. */
export function report(
  json: boolean,
  tables: string[],
  figures: Record<string, unknown>,
): void {
  if (json) console.log(JSON.stringify(figures, null, 2));
  else {
    const host = figures.machine as Record<string, string>;
    const facts = Object.entries(host).map(([name, value]) => `${name}: ${value}`);
    console.log(`${tables.join("\n\n")}\n\n${facts.join("\n")}`);
  }
}
