// deno-lint-ignore-file no-console
/**
 * Benchmark: one ~100 MB multipart upload, this server (A) against a minimal
 * Node `http` + busboy server (B, bench/peer_node_busboy.mjs) doing the same
 * streaming work minus ffprobe and the database.
 *
 *   deno task bench:upload                 print the table
 *   deno task bench:upload -- --write      also update docs/BENCHMARKS.md
 *
 * Options: --runs N (uploads per server, default 5), --warmup N (unmeasured
 * uploads per server first, default 0: a warm-up would hide the first upload's
 * growth, since freed memory stays in the process), --size-mib N (default
 * 100), --keep (leave the temporary directory behind).
 *
 * The video is a few seconds of H.264 from ffmpeg's lavfi `testsrc2` with
 * `+faststart`, padded with an ISO-BMFF `free` box to the target size, so it
 * stays a valid file that ffprobe reads. Uploads alternate A, B, A, B… with
 * curl; each is timed from the bench (curl's process wall time) while the
 * receiving server's VmRSS is sampled from /proc every ~10 ms.
 */

const REPO = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const DOC_PATH = `${REPO}/docs/BENCHMARKS.md`;
const SECTION_TITLE = "Upload (multipart, 100 MB)";
const COMMAND = "deno task bench:upload -- --write";
/** The V8 flags of `deno task start`, so the server is measured as it is deployed. */
const START_V8_FLAGS = (JSON.parse(await Deno.readTextFile(`${REPO}/deno.json`)).tasks.start
  .command as string).split(" ").filter((arg) => arg.startsWith("--v8-flags="));
const SERVER_PERMISSIONS = [
  ...START_V8_FLAGS,
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
];
const MIB = 1024 * 1024;
const TARGET_RSS_GROWTH_BYTES = 64 * MIB;
const TARGET_RATIO = 1.2;
const SAMPLE_INTERVAL_MS = 10;
const READY_TIMEOUT_MS = 90_000;
/** Server settings the bench does not set, passed empty so the defaults apply. */
const SERVER_ENV_BLANK = [
  "PUBLIC_URL",
  "DATABASE_URL",
  "DATABASE_AUTH_TOKEN",
  "STORAGE",
  "JWT_PUBLIC_KEY",
  "JWT_JWKS_URL",
  "JWT_ISSUER",
  "JWT_AUDIENCE",
  "JWT_ALGORITHMS",
  "PROBE_TIMEOUT_MS",
  "FFMPEG_PATH",
  "FFPROBE_PATH",
  "MEDIA_URL_TTL",
];

interface Options {
  runs: number;
  warmup: number;
  sizeMiB: number;
  write: boolean;
  keep: boolean;
}

interface Sample {
  /** Wall time of the curl process, in milliseconds. */
  wallMs: number;
  /** curl's own `time_total`, in milliseconds. */
  curlMs: number;
  rssBefore: number;
  rssPeak: number;
  /** Peak RSS from VmHWM after resetting it (null where the kernel does not allow the reset). */
  hwmPeak: number | null;
  samples: number;
}

interface Target {
  name: string;
  uploadUrl: string;
  pid: number;
  headers: string[];
  /** Makes the form fields sent before the file (for A: a fresh message each time). */
  fields: () => Promise<Record<string, string>>;
}

interface Stats {
  median: number;
  min: number;
  max: number;
}

interface Machine {
  cpus: string;
  memory: string;
  kernel: string;
  deno: string;
  node: string;
  ffmpeg: string;
  curl: string;
}

interface Child {
  name: string;
  process: Deno.ChildProcess;
  logPath: string;
  pumps: Promise<void>[];
}

function parseOptions(args: string[]): Options {
  const options: Options = { runs: 5, warmup: 0, sizeMiB: 100, write: false, keep: false };
  const number = (flag: string, value: string | undefined, min: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} takes a whole number >= ${min}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--write") options.write = true;
    else if (arg === "--keep") options.keep = true;
    else if (arg === "--runs") options.runs = number(arg, args[++i], 1);
    else if (arg === "--warmup") options.warmup = number(arg, args[++i], 0);
    else if (arg === "--size-mib") options.sizeMiB = number(arg, args[++i], 2);
    else if (arg === "--") continue;
    else throw new Error(`Unknown argument "${arg}"`);
  }
  if (options.write && options.sizeMiB !== 100) {
    throw new Error("--write records the 100 MiB figures only; drop --size-mib");
  }
  return options;
}

async function run(command: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(command, {
    args,
    env,
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!out.success) {
    throw new Error(`${command} ${args.join(" ")} failed:\n${decoder.decode(out.stderr)}`);
  }
  return decoder.decode(out.stdout);
}

async function firstLine(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args)).split("\n")[0]?.trim() ?? "?";
  } catch {
    return "not found";
  }
}

/** A short H.264 MP4, then a `free` box padding it to exactly `bytes`. */
async function makeVideo(path: string, bytes: number): Promise<void> {
  const base = `${path}.base.mp4`;
  await run("ffmpeg", [
    "-nostdin",
    "-hide_banner",
    "-v",
    "error",
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

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

async function sha256File(path: string): Promise<string> {
  const out = await run("sha256sum", [path]);
  return out.split(" ")[0] ?? "";
}

/** Checks that ffprobe reads the padded file and finds the H.264 stream. */
async function verifyVideo(path: string): Promise<string> {
  const json = await run("ffprobe", [
    "-v",
    "error",
    "-show_entries",
    "stream=codec_name,width,height:format=duration,format_name",
    "-of",
    "json",
    path,
  ]);
  const probe = JSON.parse(json) as {
    streams?: { codec_name?: string; width?: number; height?: number }[];
    format?: { duration?: string; format_name?: string };
  };
  const video = probe.streams?.find((s) => s.codec_name === "h264");
  if (!video) throw new Error(`ffprobe found no H.264 stream in the padded file: ${json}`);
  const seconds = Number(probe.format?.duration).toFixed(1);
  return `${seconds} s of H.264 at ${video.width}×${video.height}`;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function spawn(
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

async function stopChild(child: Child): Promise<void> {
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

async function logTail(child: Child): Promise<string> {
  const text = await Deno.readTextFile(child.logPath).catch(() => "");
  return text.split("\n").slice(-20).join("\n");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `url` until it answers 200, failing early if the process exits. */
async function waitReady(url: string, child: Child): Promise<void> {
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

/** One JSON line from bench/rss_sampler.mjs. */
interface SamplerAnswer {
  rss?: number;
  hwmReset?: boolean;
  peak?: number;
  samples?: number;
  hwm?: number;
  error?: string;
}

/**
 * Drives bench/rss_sampler.mjs, a node process that reads /proc/<pid>/status
 * every ~10 ms (Deno 2 only reads /proc under --allow-all).
 */
class RssSampler {
  readonly child: Child;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;

  constructor(child: Child, lines: AsyncIterator<string>) {
    this.child = child;
    this.#writer = child.process.stdin.getWriter();
    this.#lines = lines;
  }

  async #ask(command: string): Promise<SamplerAnswer> {
    await this.#writer.write(new TextEncoder().encode(`${command}\n`));
    const next = await this.#lines.next();
    if (next.done) throw new Error(`The RSS sampler exited:\n${await logTail(this.child)}`);
    const answer = JSON.parse(next.value) as SamplerAnswer;
    if (answer.error) throw new Error(`RSS sampler: ${answer.error}`);
    return answer;
  }

  /** Resets the kernel's peak for `pid`, starts sampling, returns the RSS now. */
  async start(pid: number): Promise<{ rss: number; hwmReset: boolean }> {
    const answer = await this.#ask(`start ${pid}`);
    return { rss: answer.rss ?? 0, hwmReset: answer.hwmReset === true };
  }

  async stop(): Promise<{ peak: number; samples: number; hwm: number }> {
    const answer = await this.#ask("stop");
    return { peak: answer.peak ?? 0, samples: answer.samples ?? 0, hwm: answer.hwm ?? 0 };
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }
}

async function* splitLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) !== -1) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
    }
  }
}

function startSampler(logPath: string): RssSampler {
  const process = new Deno.Command("node", {
    args: [`${REPO}/bench/rss_sampler.mjs`],
    env: { SAMPLE_INTERVAL_MS: String(SAMPLE_INTERVAL_MS) },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = (async (): Promise<void> => {
    const text = await new Response(process.stderr).text();
    await Deno.writeTextFile(logPath, text);
  })();
  const child: Child = { name: "rss sampler", process, logPath, pumps: [errors] };
  return new RssSampler(child, splitLines(process.stdout));
}

async function apiJson(
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

async function upload(
  sampler: RssSampler,
  target: Target,
  videoPath: string,
  expectedSha256: string,
  expectedSize: number,
  responsePath: string,
): Promise<Sample> {
  const fields = await target.fields();
  const args = ["-sS", "-o", responsePath, "-w", "%{http_code} %{time_total}", "-H", "Expect:"];
  for (const header of target.headers) args.push("-H", header);
  for (const [name, value] of Object.entries(fields)) args.push("-F", `${name}=${value}`);
  args.push("-F", `file=@${videoPath};type=video/mp4`, target.uploadUrl);

  // Let the previous upload's garbage and ffprobe settle before the baseline.
  await delay(300);
  const before = await sampler.start(target.pid);
  const started = performance.now();
  const out = await new Deno.Command("curl", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallMs = performance.now() - started;
  const after = await sampler.stop();

  const decoder = new TextDecoder();
  const [code, total] = decoder.decode(out.stdout).trim().split(" ");
  const responseText = await Deno.readTextFile(responsePath).catch(() => "");
  if (!out.success || code !== "201") {
    throw new Error(
      `${target.name}: upload answered ${code ?? "?"} (curl ${out.code}): ${
        decoder.decode(out.stderr)
      }${responseText.slice(0, 500)}`,
    );
  }
  const response = JSON.parse(responseText) as { file_size?: number; sha256?: string };
  if (response.file_size !== expectedSize || response.sha256 !== expectedSha256) {
    throw new Error(
      `${target.name}: the server saw ${response.file_size} bytes, sha256 ${response.sha256}; ` +
        `sent ${expectedSize} bytes, sha256 ${expectedSha256}`,
    );
  }
  return {
    wallMs,
    curlMs: Number(total) * 1000,
    rssBefore: before.rss,
    rssPeak: after.peak,
    hwmPeak: before.hwmReset ? after.hwm : null,
    samples: after.samples,
  };
}

function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

function growth(sample: Sample): number {
  return Math.max(0, sample.rssPeak - sample.rssBefore);
}

function hwmGrowth(sample: Sample): number | null {
  return sample.hwmPeak === null ? null : Math.max(0, sample.hwmPeak - sample.rssBefore);
}

interface Report {
  table: string;
  runs: string;
  verdict: string;
  ratioMedian: number;
  growthA: number;
  growthB: number;
}

function report(a: Sample[], b: Sample[], fileBytes: number): Report {
  const timeA = stats(a.map((s) => s.wallMs));
  const timeB = stats(b.map((s) => s.wallMs));
  const ratios = a.map((s, i) => s.wallMs / b[i]!.wallMs);
  const ratio = stats(ratios);
  const growthA = Math.max(...a.map(growth));
  const growthB = Math.max(...b.map(growth));
  const total = (samples: Sample[]): number =>
    Math.max(0, Math.max(...samples.map((s) => s.rssPeak)) - samples[0]!.rssBefore);
  const totalA = total(a);
  const totalB = total(b);
  const hwm = (samples: Sample[]): string => {
    const values = samples.map(hwmGrowth);
    return values.some((v) => v === null) ? "n/a" : mib(Math.max(...values as number[]));
  };
  const throughput = (ms: number): string => `${(fileBytes / MIB / (ms / 1000)).toFixed(0)} MiB/s`;
  const rows: [string, string, string][] = [
    ["Wall time, median", seconds(timeA.median), seconds(timeB.median)],
    ["Wall time, min", seconds(timeA.min), seconds(timeB.min)],
    ["Wall time, max", seconds(timeA.max), seconds(timeB.max)],
    ["Throughput at the median", throughput(timeA.median), throughput(timeB.median)],
    ["RSS before the first measured upload", mib(a[0]!.rssBefore), mib(b[0]!.rssBefore)],
    ["Peak RSS growth during an upload (max over runs)", mib(growthA), mib(growthB)],
    ["Same, from VmHWM (kernel peak)", hwm(a), hwm(b)],
    ["RSS growth over all runs (highest peak − RSS before the first)", mib(totalA), mib(totalB)],
  ];
  const table = [
    "| | This server (Deno + Hono) | Peer (Node `http` + busboy) |",
    "|---|---:|---:|",
    ...rows.map(([name, x, y]) => `| ${name} | ${x} | ${y} |`),
    `| Ratio this server / peer, per pair | median ${ratio.median.toFixed(2)}× ` +
    `(min ${ratio.min.toFixed(2)}×, max ${ratio.max.toFixed(2)}×) | |`,
  ].join("\n");
  const runs = [
    "| Pair | This server | RSS growth | Peer | RSS growth | Ratio |",
    "|---:|---:|---:|---:|---:|---:|",
    ...a.map((s, i) =>
      `| ${i + 1} | ${seconds(s.wallMs)} | ${mib(growth(s))} | ${seconds(b[i]!.wallMs)} | ${
        mib(growth(b[i]!))
      } | ${ratios[i]!.toFixed(2)}× |`
    ),
  ].join("\n");
  const rssOk = Math.max(growthA, totalA) < TARGET_RSS_GROWTH_BYTES;
  const timeOk = ratio.median <= TARGET_RATIO;
  const verdict = [
    `- Server RSS growth under 64 MB: **${rssOk ? "met" : "not met"}** ` +
    `(max ${mib(growthA)} during one upload, ${mib(totalA)} over all runs).`,
    `- Upload time within ${TARGET_RATIO}× of the peer: **${timeOk ? "met" : "not met"}** ` +
    `(median ratio ${ratio.median.toFixed(2)}×).`,
  ].join("\n");
  return { table, runs, verdict, ratioMedian: ratio.median, growthA, growthB };
}

async function machine(): Promise<Machine> {
  // Deno only reads /proc under --allow-all, so through cat.
  const meminfo = await run("cat", ["/proc/meminfo"]).catch(() => "");
  const total = /^MemTotal:\s+(\d+) kB/m.exec(meminfo);
  const cpuinfo = await run("cat", ["/proc/cpuinfo"]).catch(() => "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
  const nproc = await firstLine("nproc", []);
  return {
    cpus: model ? `${nproc} × ${model}` : nproc,
    memory: total ? `${(Number(total[1]) / 1024 / 1024).toFixed(1)} GiB` : "?",
    kernel: await firstLine("uname", ["-sr"]),
    deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
    node: await firstLine("node", ["--version"]),
    ffmpeg: (await firstLine("ffmpeg", ["-version"])).replace(/ Copyright.*$/, ""),
    curl: (await firstLine("curl", ["--version"])).split(" ").slice(0, 2).join(" "),
  };
}

function section(
  result: Report,
  host: Machine,
  options: Options,
  fileBytes: number,
  videoInfo: string,
): string {
  const date = new Date().toISOString().slice(0, 10);
  return `## ${SECTION_TITLE}

One multipart upload of a ${(fileBytes / MIB).toFixed(0)} MiB (${fileBytes} bytes) MP4 to
\`POST /api/chat/videos/upload/\`, against a minimal Node \`http\` + busboy server
(\`bench/peer_node_busboy.mjs\`) doing the same streaming work minus ffprobe and the database:
the file part is streamed to a temporary file, counted and hashed with SHA-256, then moved into
place and answered with 201 JSON.

Reproduce with:

\`\`\`sh
${COMMAND}
\`\`\`

Measured ${date}: ${options.runs} uploads per server, alternating this server, peer, this server,
peer…, ${
    options.warmup === 0
      ? "starting with fresh processes (the first upload is measured)"
      : `after ${options.warmup} unmeasured warm-up upload(s) each`
  }.

${result.table}

Per pair:

${result.runs}

Targets:

${result.verdict}

Machine:

- CPU: ${host.cpus} (\`nproc\`)
- Memory: ${host.memory} (MemTotal in \`/proc/meminfo\`)
- Kernel: ${host.kernel}
- Deno ${host.deno}, Node ${host.node}, ${host.ffmpeg}, ${host.curl}

How it is measured:

- The video is ${videoInfo}, made in a second by ffmpeg's lavfi \`testsrc2\` with
  \`-movflags +faststart\`, then padded with one ISO-BMFF \`free\` box of random bytes to the
  target size. ffprobe still reads it, and both servers must answer 201 with the file's size and
  SHA-256.
- Both servers listen on 127.0.0.1; the file and both data directories are on the same local
  disk. This server runs with \`WORKER_CONCURRENCY=0\` (no thumbnail jobs) and
  \`MAX_UPLOAD_BYTES\` of 200 MiB.
- Each upload is one \`curl -F message_id=… -F file=@video.mp4\` (with \`Expect:\` cleared on both),
  timed as the wall time of the curl process. This server's time includes the ffprobe run, the
  database transaction and the move into storage; the message is created before the clock starts.
- RSS is the receiving process's \`VmRSS\` from \`/proc/<pid>/status\`, sampled every ~10 ms
  (by \`bench/rss_sampler.mjs\` under node, as Deno reads \`/proc\` only with \`--allow-all\`);
  growth is the peak during the upload minus the value just before it. The VmHWM row resets the
  kernel's peak (\`/proc/<pid>/clear_refs\`) before each upload and reads it afterwards, which
  catches peaks shorter than the sampling interval. ffprobe is a child process and is not counted.
- Memory freed after an upload mostly stays in the process, so later uploads reuse it and show
  less growth than the first: the first upload into a fresh process and the growth over all runs
  are the figures to compare with the target. The target is read as 64 MiB.
- Shared or virtual machines are noisy: quote the medians and the per-pair ratio, not single runs
  or the minimum/maximum.
`;
}

async function writeSection(text: string): Promise<void> {
  let doc = await Deno.readTextFile(DOC_PATH).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  });
  if (!doc.trim()) {
    doc =
      "# Benchmarks\n\nFigures from the scripts in `bench/`. Each section says how to rerun it.\n";
  }
  const heading = `## ${SECTION_TITLE}`;
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
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const fileBytes = options.sizeMiB * MIB;
  const tmp = await Deno.makeTempDir({ prefix: "offchat-bench-upload-" });
  const children: Child[] = [];
  let cleaning: Promise<void> | null = null;
  // Memoized: a signal and the failing main path may both ask, and both wait for the end.
  const cleanup = (): Promise<void> =>
    cleaning ??= (async (): Promise<void> => {
      await Promise.allSettled(children.map(stopChild));
      if (options.keep) console.error(`kept ${tmp}`);
      else await Deno.remove(tmp, { recursive: true }).catch(() => {});
    })();
  const onSignal = (): void => {
    console.error("interrupted; stopping the servers");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  try {
    const videoPath = `${tmp}/video.mp4`;
    console.error(`making a ${options.sizeMiB} MiB video in ${tmp}`);
    await makeVideo(videoPath, fileBytes);
    const videoInfo = await verifyVideo(videoPath);
    const expectedSha256 = await sha256File(videoPath);
    console.error(`video: ${videoInfo}; sha256 ${expectedSha256}`);

    const secret = randomSecret();
    const dataDir = `${tmp}/server-data`;
    const serverPort = freePort();
    const limit = String(Math.max(200 * MIB, 2 * fileBytes));
    const serverEnv: Record<string, string> = {
      // Blank (= unset) whatever the caller's shell may have set, e.g. DATABASE_URL.
      ...Object.fromEntries(SERVER_ENV_BLANK.map((name) => [name, ""])),
      DATA_DIR: dataDir,
      PORT: String(serverPort),
      HOST: "127.0.0.1",
      JWT_SECRET: secret,
      WORKER_CONCURRENCY: "0",
      MAX_UPLOAD_BYTES: limit,
      NO_COLOR: "1",
    };
    const deno = Deno.execPath();
    const server = await spawn(
      "server",
      deno,
      ["run", ...SERVER_PERMISSIONS, "main.ts", "serve"],
      serverEnv,
      `${tmp}/server.log`,
    );
    children.push(server);

    const peerPort = freePort();
    const peer = await spawn("peer", "node", [`${REPO}/bench/peer_node_busboy.mjs`], {
      PEER_PORT: String(peerPort),
      PEER_HOST: "127.0.0.1",
      PEER_DIR: `${tmp}/peer-data`,
      MAX_UPLOAD_BYTES: limit,
      BUSBOY_PATH: `${REPO}/node_modules/busboy`,
    }, `${tmp}/peer.log`);
    children.push(peer);
    const sampler = startSampler(`${tmp}/sampler.log`);
    children.push(sampler.child);

    const serverUrl = `http://127.0.0.1:${serverPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    await Promise.all([
      waitReady(`${serverUrl}/readyz`, server),
      waitReady(`${peerUrl}/healthz`, peer),
    ]);
    console.error(
      `server pid ${server.process.pid} at ${serverUrl}, peer pid ${peer.process.pid} at ${peerUrl}`,
    );

    const token = (await run(deno, [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "main.ts",
      "token",
      "alice",
    ], serverEnv)).trim();
    const conversation = await apiJson(`${serverUrl}/api/chat/conversations`, token, {
      participant_ids: [],
    });
    const conversationId = String(conversation.id);

    const targetA: Target = {
      name: "server",
      uploadUrl: `${serverUrl}/api/chat/videos/upload/`,
      pid: server.process.pid,
      headers: [`Authorization: Bearer ${token}`],
      fields: async (): Promise<Record<string, string>> => {
        const message = await apiJson(
          `${serverUrl}/api/chat/conversations/${conversationId}/messages`,
          token,
          { body: "benchmark upload" },
        );
        return { message_id: String(message.id) };
      },
    };
    const targetB: Target = {
      name: "peer",
      uploadUrl: `${peerUrl}/upload`,
      pid: peer.process.pid,
      headers: [],
      fields: (): Promise<Record<string, string>> =>
        Promise.resolve({ message_id: crypto.randomUUID() }),
    };

    const responsePath = `${tmp}/response.json`;
    const once = (target: Target): Promise<Sample> =>
      upload(sampler, target, videoPath, expectedSha256, fileBytes, responsePath);
    for (let i = 0; i < options.warmup; i++) {
      await once(targetA);
      await once(targetB);
    }
    const a: Sample[] = [];
    const b: Sample[] = [];
    for (let i = 0; i < options.runs; i++) {
      for (const [target, list] of [[targetA, a], [targetB, b]] as const) {
        const sample = await once(target);
        list.push(sample);
        console.error(
          `run ${i + 1}/${options.runs} ${target.name.padEnd(6)} ${seconds(sample.wallMs)} ` +
            `(curl ${seconds(sample.curlMs)}), RSS ${mib(sample.rssBefore)} → peak ${
              mib(sample.rssPeak)
            } (+${mib(growth(sample))}, ${sample.samples} samples` +
            `${sample.hwmPeak === null ? "" : `, HWM +${mib(hwmGrowth(sample)!)}`})`,
        );
      }
    }

    const result = report(a, b, fileBytes);
    const host = await machine();
    console.log(`\n${result.table}\n\n${result.runs}\n\n${result.verdict}\n`);
    console.log(
      `Machine: ${host.cpus}; ${host.memory} RAM; ${host.kernel}; Deno ${host.deno}; ` +
        `Node ${host.node}; ${host.ffmpeg}; ${host.curl}`,
    );
    if (options.write) {
      await writeSection(section(result, host, options, fileBytes, videoInfo));
      console.error(`updated ${DOC_PATH}`);
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await cleanup();
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(1);
  }
}
