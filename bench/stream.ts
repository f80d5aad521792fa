// deno-lint-ignore-file no-console
/**
 * Benchmark: serving a stored ~100 MB video, this server (A) against nginx
 * (B, Debian's package with `sendfile on`) serving the same bytes in the same
 * run; and the rendition transcode through `runTool` against the same ffmpeg
 * command run bare.
 *
 *   deno task bench:stream                 print the tables
 *   deno task bench:stream -- --write      also update docs/BENCHMARKS.md
 *
 * Options: --runs N (full-GET pairs, default 5), --range-runs N (wrk pairs,
 * default 3), --range-seconds N (each wrk run, default 10), --threads N and
 * --connections N (wrk, default 2 and 16), --transcode-runs N (pairs, default
 * 5), --transcode-seconds N (source length, default 20), --nginx-workers N|auto
 * (default auto, as Debian ships it), --size-mib N (default 100), --part
 * stream|transcode|all (default all), --keep (leave the temporary directory).
 *
 * Streaming: the video is the one bench/upload.ts sends (`makeVideo` in
 * bench/_shared.ts: a short H.264 MP4 padded with a `free` box of random
 * bytes), uploaded once to this server (started with WORKER_CONCURRENCY=0, so
 * nothing transcodes it) and served by `GET stream_url`. nginx serves the same
 * bytes from a temporary root. Full GETs alternate A, B, A, B… with
 * `curl -o /dev/null`, timed as the wall time of the curl process. Range
 * throughput is `wrk` with a Lua script asking for
 * `Range: bytes=<random 64 KiB-aligned offset>-<offset + 65535>`, alternating
 * A, B as well. Before measuring, a full GET of each is checked against the
 * file's SHA-256 and a few ranges against the file's bytes (206, 65536 bytes).
 *
 * Transcoding: a 1280×720 MPEG-4 Part 2 AVI with MP3 audio from lavfi
 * `testsrc2` + `sine` needs a rendition; the arguments come from
 * `transcodeArgs` (lib/media/rendition.ts). Bare is `ffmpeg <args>` as a child
 * with stdout to /dev/null; wrapped is the same arguments through `runTool`
 * (lib/media/run_tool.ts) with `progressParser` reading `-progress pipe:1`.
 */

import { progressParser, renditionTimeoutMs, transcodeArgs } from "../lib/media/rendition.ts";
import { runTool } from "../lib/media/run_tool.ts";
import {
  alternate,
  apiSession,
  capture,
  type Child,
  type CommonOptions,
  curlUpload,
  describe,
  freePort,
  loadAverage,
  type Machine,
  machineInfo,
  machineMarkdown,
  machineSummary,
  markdownTable,
  met,
  MIB,
  output,
  parseArgs,
  postMessage,
  prepareVideo,
  probe,
  type ProbeStream,
  ratioText,
  run,
  runCli,
  type Scratch,
  type Server,
  sha256File,
  spawn,
  startServer,
  type Stats,
  stats,
  stopChild,
  throughput,
  uploadAnswer,
  versionLine,
  waitReady,
  wholeNumber,
  withScratch,
  writeSection,
} from "./_shared.ts";

const SECTION_TITLE = "Streaming and transcoding";
const COMMAND = "deno task bench:stream -- --write";
const RANGE_BYTES = 64 * 1024;
const TARGET_FULL_GET = 0.8;
const TARGET_RANGES = 0.25;
const TARGET_TRANSCODE = 1.15;

type Part = "stream" | "transcode" | "all";

interface Options extends CommonOptions {
  runs: number;
  rangeRuns: number;
  rangeSeconds: number;
  threads: number;
  connections: number;
  transcodeRuns: number;
  transcodeSeconds: number;
  nginxWorkers: string;
  sizeMiB: number;
  part: Part;
}

/** The shared machine facts plus the tools this bench runs against. */
interface StreamMachine extends Machine {
  nginx: string;
  wrk: string;
}

/** One full GET: the curl process's wall time and curl's own `time_total`. */
interface GetSample {
  wallMs: number;
  curlMs: number;
}

/** One wrk run, from the Lua script's `done()` line. */
interface WrkSample {
  requests: number;
  bytes: number;
  durationUs: number;
  /** Socket errors and timeouts (an answer that is not 2xx/3xx fails the run). */
  errors: number;
  p50Us: number;
  p99Us: number;
}

interface StreamResult {
  fullA: GetSample[];
  fullB: GetSample[];
  rangeA: WrkSample[];
  rangeB: WrkSample[];
}

interface TranscodeResult {
  bare: number[];
  wrapped: number[];
  progressEvents: number;
  lastFraction: number;
  sourceInfo: string;
  outputInfo: string;
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    runs: 5,
    rangeRuns: 3,
    rangeSeconds: 10,
    threads: 2,
    connections: 16,
    transcodeRuns: 5,
    transcodeSeconds: 20,
    nginxWorkers: "auto",
    sizeMiB: 100,
    part: "all",
    write: false,
    keep: false,
  };
  parseArgs(args, options, (arg, value) => {
    if (arg === "--runs") options.runs = wholeNumber(arg, value(), 1);
    else if (arg === "--range-runs") options.rangeRuns = wholeNumber(arg, value(), 1);
    else if (arg === "--range-seconds") options.rangeSeconds = wholeNumber(arg, value(), 1);
    else if (arg === "--threads") options.threads = wholeNumber(arg, value(), 1);
    else if (arg === "--connections") options.connections = wholeNumber(arg, value(), 1);
    else if (arg === "--transcode-runs") options.transcodeRuns = wholeNumber(arg, value(), 1);
    else if (arg === "--transcode-seconds") {
      options.transcodeSeconds = wholeNumber(arg, value(), 2);
    } else if (arg === "--size-mib") options.sizeMiB = wholeNumber(arg, value(), 2);
    else if (arg === "--nginx-workers") {
      const workers = value() ?? "";
      if (workers !== "auto") wholeNumber(arg, workers, 1);
      options.nginxWorkers = workers;
    } else if (arg === "--part") {
      const part = value();
      if (part !== "stream" && part !== "transcode" && part !== "all") {
        throw new Error("--part takes stream, transcode or all");
      }
      options.part = part;
    } else return false;
    return true;
  });
  if (options.connections < options.threads) {
    throw new Error("--connections must be at least --threads (wrk gives each thread one or more)");
  }
  if (
    options.write &&
    (options.sizeMiB !== 100 || options.part !== "all" || options.transcodeSeconds !== 20)
  ) {
    throw new Error(
      "--write records the full run with the default file sizes; drop --size-mib, --part and " +
        "--transcode-seconds",
    );
  }
  return options;
}

/** A source the rendition job must transcode: MPEG-4 Part 2 video and MP3 audio in AVI. */
async function makeTranscodeSource(path: string, seconds: number): Promise<void> {
  await run("ffmpeg", [
    "-nostdin",
    "-hide_banner",
    "-v",
    "error",
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=1280x720:rate=25:duration=${seconds}`,
    "-f",
    "lavfi",
    "-i",
    `sine=frequency=440:sample_rate=44100:duration=${seconds}`,
    "-c:v",
    "mpeg4",
    "-q:v",
    "4",
    "-c:a",
    "libmp3lame",
    "-b:a",
    "128k",
    "-f",
    "avi",
    "-y",
    path,
  ]);
}

async function readSlice(path: string, offset: number, length: number): Promise<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  await file.seek(offset, Deno.SeekMode.Start);
  const bytes = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(bytes.subarray(got));
    if (n === null) break;
    got += n;
  }
  return bytes.subarray(0, got);
}

/** nginx serving `root` on a free port, from a generated config under `tmp`/nginx. */
async function startNginx(
  scratch: Scratch,
  root: string,
  workers: string,
): Promise<{ child: Child; address: string; url: string }> {
  const { tmp } = scratch;
  await Deno.mkdir(`${tmp}/nginx`);
  const port = freePort();
  const confPath = `${tmp}/nginx/nginx.conf`;
  await Deno.writeTextFile(confPath, nginxConfig(tmp, root, port, workers));
  const child = await spawn(
    "nginx",
    "nginx",
    ["-c", confPath, "-p", `${tmp}/nginx/`, "-e", `${tmp}/nginx/error.log`],
    {},
    `${tmp}/nginx.log`,
  );
  scratch.children.push(child);
  return { child, address: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}/video.mp4` };
}

/** Uploads the video to a fresh message; returns the 201 Attachment JSON (checked: same bytes). */
async function uploadVideo(
  server: Server,
  videoPath: string,
  responsePath: string,
  fileBytes: number,
  expectedSha256: string,
): Promise<Record<string, unknown>> {
  const session = await apiSession(server);
  const messageId = await postMessage(session, "benchmark stream");
  const sent = await curlUpload(session.uploadUrl, videoPath, responsePath, session.headers, {
    message_id: messageId,
  });
  return await uploadAnswer("server", sent, responsePath, fileBytes, expectedSha256);
}

/** curl `url` to a file; returns the status, the bytes and the response headers. */
async function curlTo(
  url: string,
  outPath: string,
  headers: string[] = [],
): Promise<{ code: string; size: number; headerText: string }> {
  const args = ["-sS", "-o", outPath, "-D", "-", "-w", "\n%{http_code} %{size_download}"];
  for (const header of headers) args.push("-H", header);
  args.push(url);
  const out = await capture("curl", args);
  if (!out.success) throw new Error(`curl ${url}: ${out.stderr}`);
  const text = out.stdout.trimEnd();
  const lastNewline = text.lastIndexOf("\n");
  const [code, size] = text.slice(lastNewline + 1).split(" ");
  return { code: code ?? "?", size: Number(size), headerText: text.slice(0, lastNewline) };
}

/**
 * Checks that `url` serves the file: a full GET with the file's SHA-256, and
 * 64 KiB ranges (first, middle, last aligned) as 206 with the file's bytes.
 */
async function verifyServing(
  name: string,
  url: string,
  videoPath: string,
  fileBytes: number,
  expectedSha256: string,
  tmp: string,
): Promise<void> {
  const outPath = `${tmp}/check-${name.replace(/\W+/g, "_")}.bin`;
  try {
    const full = await curlTo(url, outPath);
    if (full.code !== "200" || full.size !== fileBytes) {
      throw new Error(`${name}: full GET answered ${full.code} with ${full.size} bytes`);
    }
    const sha = await sha256File(outPath);
    if (sha !== expectedSha256) throw new Error(`${name}: full GET has SHA-256 ${sha}`);
    const slots = Math.floor(fileBytes / RANGE_BYTES);
    for (const slot of [0, Math.floor(slots / 2), slots - 1]) {
      const offset = slot * RANGE_BYTES;
      const last = offset + RANGE_BYTES - 1;
      const range = await curlTo(url, outPath, [`Range: bytes=${offset}-${last}`]);
      const contentRange = /^content-range:\s*(.+?)\s*$/im.exec(range.headerText)?.[1];
      if (range.code !== "206" || range.size !== RANGE_BYTES) {
        throw new Error(
          `${name}: range ${offset}- answered ${range.code} with ${range.size} bytes`,
        );
      }
      if (contentRange !== `bytes ${offset}-${last}/${fileBytes}`) {
        throw new Error(`${name}: range ${offset}- answered Content-Range "${contentRange}"`);
      }
      const got = await Deno.readFile(outPath);
      const want = await readSlice(videoPath, offset, RANGE_BYTES);
      if (got.length !== want.length || got.some((byte, i) => byte !== want[i])) {
        throw new Error(`${name}: range ${offset}- does not match the file's bytes`);
      }
    }
  } finally {
    await Deno.remove(outPath).catch(() => {});
  }
}

async function timedGet(name: string, url: string, fileBytes: number): Promise<GetSample> {
  const started = performance.now();
  const out = await capture("curl", [
    "-sS",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code} %{size_download} %{time_total}",
    url,
  ]);
  const wallMs = performance.now() - started;
  const [code, size, total] = out.stdout.trim().split(" ");
  if (!out.success || code !== "200" || Number(size) !== fileBytes) {
    throw new Error(
      `${name}: GET answered ${code} with ${size} bytes (curl ${out.code}): ${out.stderr}`,
    );
  }
  return { wallMs, curlMs: Number(total) * 1000 };
}

/**
 * The wrk script: each request asks for one random 64 KiB-aligned 64 KiB
 * range of the file (each thread with its own fixed seed, so both servers get
 * the same sequence), and `done()` prints the summary as one JSON line.
 */
function wrkScript(fileBytes: number): string {
  const slots = Math.floor(fileBytes / RANGE_BYTES);
  return `-- Generated by bench/stream.ts
local slots = ${slots}
local chunk = ${RANGE_BYTES}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  math.randomseed(7919 * (id + 1))
end

function request()
  local offset = math.random(0, slots - 1) * chunk
  return wrk.format("GET", nil, { Range = "bytes=" .. offset .. "-" .. (offset + chunk - 1) })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"bytes":%d,"duration_us":%d,"errors":%d,"status_errors":%d,' ..
      '"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99))))
end
`;
}

async function wrkRun(
  name: string,
  url: string,
  scriptPath: string,
  seconds: number,
  options: Options,
): Promise<WrkSample> {
  const out = await capture("wrk", [
    "-t",
    String(options.threads),
    "-c",
    String(options.connections),
    "-d",
    `${seconds}s`,
    "-s",
    scriptPath,
    url,
  ]);
  const text = out.stdout;
  const line = text.split("\n").find((l) => l.startsWith("WRK_RESULT "));
  if (!out.success || !line) {
    throw new Error(`${name}: wrk failed (${out.code}):\n${text}${out.stderr}`);
  }
  const json = JSON.parse(line.slice("WRK_RESULT ".length)) as {
    requests: number;
    bytes: number;
    duration_us: number;
    errors: number;
    status_errors: number;
    p50_us: number;
    p99_us: number;
  };
  const sample: WrkSample = {
    requests: json.requests,
    bytes: json.bytes,
    durationUs: json.duration_us,
    errors: json.errors,
    p50Us: json.p50_us,
    p99Us: json.p99_us,
  };
  // Each answer is the 64 KiB body plus headers; anything else means the range was not served.
  const perRequest = sample.requests > 0 ? sample.bytes / sample.requests : 0;
  if (sample.requests === 0 || perRequest < RANGE_BYTES || perRequest > RANGE_BYTES + 4096) {
    throw new Error(
      `${name}: wrk read ${sample.bytes} bytes in ${sample.requests} requests; ` +
        `expected 64 KiB ranges:\n${text}`,
    );
  }
  if (json.status_errors > 0 || sample.errors > sample.requests / 1000) {
    throw new Error(
      `${name}: wrk counted ${json.status_errors} answers that were not 2xx/3xx and ` +
        `${sample.errors} socket errors or timeouts:\n${text}`,
    );
  }
  return sample;
}

function rps(sample: WrkSample): number {
  return sample.requests / (sample.durationUs / 1e6);
}

function nginxConfig(tmp: string, root: string, port: number, workers: string): string {
  return `# Generated by bench/stream.ts
daemon off;
master_process on;
worker_processes ${workers};
pid ${tmp}/nginx/nginx.pid;
error_log ${tmp}/nginx/error.log warn;

events {
    worker_connections 1024;
}

http {
    types {
        video/mp4 mp4;
    }
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    access_log off;
    client_body_temp_path ${tmp}/nginx/client_body;
    proxy_temp_path ${tmp}/nginx/proxy;
    fastcgi_temp_path ${tmp}/nginx/fastcgi;
    uwsgi_temp_path ${tmp}/nginx/uwsgi;
    scgi_temp_path ${tmp}/nginx/scgi;

    server {
        listen 127.0.0.1:${port};
        root ${root};
    }
}
`;
}

/** One unmeasured run of each side (caches, connections, JIT), then `runs` measured pairs. */
async function warmedPairs<T>(
  runs: number,
  first: (warmUp: boolean) => Promise<T>,
  second: (warmUp: boolean) => Promise<T>,
  onPair: (run: number, a: T, b: T) => void,
): Promise<[T[], T[]]> {
  await first(true);
  await second(true);
  return await alternate(runs, () => first(false), () => second(false), onPair);
}

async function measureStream(
  options: Options,
  scratch: Scratch,
): Promise<{ result: StreamResult; videoInfo: string }> {
  const { tmp } = scratch;
  const fileBytes = options.sizeMiB * MIB;
  // nginx's workers run as an unprivileged user when it starts as root: let them reach the file.
  await Deno.chmod(tmp, 0o711);
  const wwwDir = `${tmp}/www`;
  await Deno.mkdir(wwwDir, { mode: 0o755 });
  const videoPath = `${wwwDir}/video.mp4`;
  const video = await prepareVideo(tmp, videoPath, fileBytes, "MP4");
  await Deno.chmod(videoPath, 0o644);

  const server = await startServer(scratch, fileBytes, { publicUrl: true });
  const nginx = await startNginx(scratch, wwwDir, options.nginxWorkers);
  await Promise.all([
    waitReady(`${server.url}/readyz`, server.child),
    waitReady(nginx.url, nginx.child),
  ]);
  console.error(
    `server pid ${server.child.process.pid} at ${server.url}, nginx pid ${nginx.child.process.pid} ` +
      `at ${nginx.address}`,
  );

  const attachment = await uploadVideo(
    server,
    videoPath,
    `${tmp}/upload.json`,
    fileBytes,
    video.sha256,
  );
  const streamUrl = attachment.stream_url;
  if (typeof streamUrl !== "string" || !streamUrl.startsWith(`${server.url}/`)) {
    throw new Error(`the upload answered no usable stream_url: ${JSON.stringify(attachment)}`);
  }

  for (const [name, url] of [["server", streamUrl], ["nginx", nginx.url]] as const) {
    await verifyServing(name, url, videoPath, fileBytes, video.sha256, tmp);
  }
  console.error("both serve the file: full GET matches the SHA-256, 64 KiB ranges answer 206");

  // The unmeasured GETs leave both copies in the page cache and each process has served once.
  const [fullA, fullB] = await warmedPairs(
    options.runs,
    () => timedGet("server", streamUrl, fileBytes),
    () => timedGet("nginx", nginx.url, fileBytes),
    (i, a, b) =>
      console.error(
        `full GET ${i + 1}/${options.runs}: server ${seconds(a.wallMs)} (curl ${
          seconds(a.curlMs)
        }), nginx ${seconds(b.wallMs)} (curl ${seconds(b.curlMs)}), nginx/server ${
          (b.wallMs / a.wallMs).toFixed(2)
        }×`,
      ),
  );

  const scriptPath = `${tmp}/ranges.lua`;
  await Deno.writeTextFile(scriptPath, wrkScript(fileBytes));
  // A short unmeasured run each warms connections and the JIT.
  const wrkSeconds = (warmUp: boolean): number => warmUp ? 2 : options.rangeSeconds;
  const [rangeA, rangeB] = await warmedPairs(
    options.rangeRuns,
    (warmUp) => wrkRun("server", streamUrl, scriptPath, wrkSeconds(warmUp), options),
    (warmUp) => wrkRun("nginx", nginx.url, scriptPath, wrkSeconds(warmUp), options),
    (i, a, b) =>
      console.error(
        `ranges ${i + 1}/${options.rangeRuns}: server ${rps(a).toFixed(0)}/s (p50 ${
          ms(a.p50Us / 1000)
        }), nginx ${rps(b).toFixed(0)}/s (p50 ${ms(b.p50Us / 1000)}), server/nginx ${
          (rps(a) / rps(b)).toFixed(2)
        }×`,
      ),
  );
  return { result: { fullA, fullB, rangeA, rangeB }, videoInfo: video.info };
}

async function timedBare(args: string[]): Promise<number> {
  const started = performance.now();
  const out = await output("ffmpeg", {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  });
  const elapsed = performance.now() - started;
  if (!out.success) {
    throw new Error(`bare ffmpeg exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return elapsed;
}

async function measureTranscode(
  options: Options,
  tmp: string,
): Promise<TranscodeResult> {
  const sourcePath = `${tmp}/source.avi`;
  console.error(`making a ${options.transcodeSeconds} s 1280×720 MPEG-4 Part 2 + MP3 AVI`);
  await makeTranscodeSource(sourcePath, options.transcodeSeconds);
  const sourceProbe = await probe(sourcePath);
  const sourceInfo = describe(sourceProbe.streams, sourceProbe.duration, "AVI");
  const outPath = `${tmp}/rendition.mp4`;
  const args = transcodeArgs(
    { path: sourcePath, demuxer: "avi", width: 1280, height: 720, hasAudio: true },
    outPath,
  );
  const timeoutMs = renditionTimeoutMs(sourceProbe.duration);
  let progressEvents = 0;
  let lastFraction = 0;
  const wrapped = async (): Promise<number> => {
    progressEvents = 0;
    lastFraction = 0;
    const onStdout = progressParser(sourceProbe.duration, (fraction) => {
      progressEvents++;
      lastFraction = fraction;
    });
    const started = performance.now();
    const result = await runTool("ffmpeg", args, { timeoutMs, onStdout });
    const elapsed = performance.now() - started;
    if (result.code !== 0 || result.timedOut) {
      throw new Error(`ffmpeg through runTool exited ${result.code}: ${result.stderr}`);
    }
    return elapsed;
  };
  let outStreams: ProbeStream[] = [];
  /** Times `transcode`, then checks its output has an H.264 stream and removes it. */
  const checked = async (transcode: () => Promise<number>): Promise<number> => {
    const elapsed = await transcode();
    const out = await probe(outPath);
    if (!out.streams.some((s) => s.codec_name === "h264")) {
      throw new Error("the rendition has no H.264 stream");
    }
    await Deno.remove(outPath);
    outStreams = out.streams;
    return elapsed;
  };

  // The unmeasured runs leave the source in the page cache and ffmpeg's pages loaded.
  const [bare, wrappedTimes] = await warmedPairs(
    options.transcodeRuns,
    () => checked(() => timedBare(args)),
    () => checked(wrapped),
    (i, a, b) =>
      console.error(
        `transcode ${i + 1}/${options.transcodeRuns}: bare ${seconds(a)}, runTool ${
          seconds(b)
        } (${progressEvents} progress updates, last ${lastFraction.toFixed(2)}), ratio ${
          (b / a).toFixed(2)
        }×`,
      ),
  );
  return {
    bare,
    wrapped: wrappedTimes,
    progressEvents,
    lastFraction,
    sourceInfo,
    outputInfo: describe(outStreams, sourceProbe.duration, "MP4"),
  };
}

function seconds(msValue: number): string {
  return msValue < 1000 ? `${msValue.toFixed(0)} ms` : `${(msValue / 1000).toFixed(2)} s`;
}

function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}

/** "<label>, median" and "<label>, min – max" rows of two columns' figures. */
function spreadRows(
  label: string,
  a: Stats,
  b: Stats,
  format: (value: number) => string,
): string[][] {
  return [
    [`${label}, median`, format(a.median), format(b.median)],
    [
      `${label}, min – max`,
      `${format(a.min)} – ${format(a.max)}`,
      `${format(b.min)} – ${format(b.max)}`,
    ],
  ];
}

interface Report {
  text: string;
  verdict: string;
}

function streamReport(r: StreamResult, fileBytes: number): Report & {
  fullRatio: number;
  rangeRatio: number;
} {
  const wallA = stats(r.fullA.map((s) => s.wallMs));
  const wallB = stats(r.fullB.map((s) => s.wallMs));
  const curlA = stats(r.fullA.map((s) => s.curlMs));
  const curlB = stats(r.fullB.map((s) => s.curlMs));
  const fullRatios = r.fullA.map((a, i) => r.fullB[i]!.wallMs / a.wallMs);
  const fullRatio = stats(fullRatios);
  const rpsA = stats(r.rangeA.map(rps));
  const rpsB = stats(r.rangeB.map(rps));
  const p50A = stats(r.rangeA.map((s) => s.p50Us / 1000));
  const p50B = stats(r.rangeB.map((s) => s.p50Us / 1000));
  const p99A = stats(r.rangeA.map((s) => s.p99Us / 1000));
  const p99B = stats(r.rangeB.map((s) => s.p99Us / 1000));
  const rangeRatios = r.rangeA.map((a, i) => rps(a) / rps(r.rangeB[i]!));
  const rangeRatio = stats(rangeRatios);
  const whole = (value: number): string => value.toFixed(0);
  const rangeThroughput = (perSecond: number): string =>
    `${(perSecond * RANGE_BYTES / MIB).toFixed(0)} MiB/s`;

  const full = markdownTable(["", "This server (`GET stream_url`)", "nginx (`sendfile on`)"], [
    ...spreadRows("Wall time", wallA, wallB, seconds),
    ["curl `time_total`, median", seconds(curlA.median), seconds(curlB.median)],
    [
      "Throughput at the median wall time",
      throughput(fileBytes, wallA.median),
      throughput(fileBytes, wallB.median),
    ],
    [
      "Speed relative to nginx (nginx time / this server's), per pair",
      ratioText(fullRatio),
      "",
    ],
  ]);
  const fullRuns = markdownTable(
    ["Pair", "This server", "nginx", "Speed relative to nginx"],
    r.fullA.map((a, i) => [
      String(i + 1),
      seconds(a.wallMs),
      seconds(r.fullB[i]!.wallMs),
      `${fullRatios[i]!.toFixed(2)}×`,
    ]),
    "right",
  );
  const ranges = markdownTable(["", "This server", "nginx"], [
    ...spreadRows("Requests/s", rpsA, rpsB, whole),
    ["Throughput at the median", rangeThroughput(rpsA.median), rangeThroughput(rpsB.median)],
    ["Latency p50, median of runs", ms(p50A.median), ms(p50B.median)],
    ["Latency p99, median of runs", ms(p99A.median), ms(p99B.median)],
    ["Requests/s relative to nginx, per pair", ratioText(rangeRatio), ""],
  ]);
  const rangeRuns = markdownTable(
    ["Pair", "This server", "nginx", "Relative to nginx"],
    r.rangeA.map((a, i) => [
      String(i + 1),
      `${whole(rps(a))}/s`,
      `${whole(rps(r.rangeB[i]!))}/s`,
      `${rangeRatios[i]!.toFixed(2)}×`,
    ]),
    "right",
  );
  const fullOk = fullRatio.median >= TARGET_FULL_GET;
  const rangeOk = rangeRatio.median >= TARGET_RANGES;
  const verdict = [
    `- Full GET at least ${TARGET_FULL_GET}× nginx's speed: ${met(fullOk)} ` +
    `(median ${fullRatio.median.toFixed(2)}×).`,
    `- 64 KiB range requests/s at least ${TARGET_RANGES}× nginx's: ${met(rangeOk)} ` +
    `(median ${rangeRatio.median.toFixed(2)}×).`,
  ].join("\n");
  const text = `### Full GET (${(fileBytes / MIB).toFixed(0)} MiB)

${full}

Per pair:

${fullRuns}

### 64 KiB range requests

${ranges}

Per pair:

${rangeRuns}`;
  return { text, verdict, fullRatio: fullRatio.median, rangeRatio: rangeRatio.median };
}

function transcodeReport(r: TranscodeResult): Report & { ratio: number } {
  const bare = stats(r.bare);
  const wrapped = stats(r.wrapped);
  const ratios = r.wrapped.map((w, i) => w / r.bare[i]!);
  const ratio = stats(ratios);
  const table = markdownTable(["", "`ffmpeg` bare", "Through `runTool` + `progressParser`"], [
    ...spreadRows("Wall time", bare, wrapped, seconds),
    ["Ratio runTool / bare, per pair", ratioText(ratio), ""],
  ]);
  const runs = markdownTable(
    ["Pair", "Bare", "runTool", "Ratio"],
    r.bare.map((b, i) => [
      String(i + 1),
      seconds(b),
      seconds(r.wrapped[i]!),
      `${ratios[i]!.toFixed(2)}×`,
    ]),
    "right",
  );
  const ok = ratio.median <= TARGET_TRANSCODE;
  const verdict = `- Transcode wall time within ${TARGET_TRANSCODE}× of bare ffmpeg: ${met(ok)} ` +
    `(median ratio ${ratio.median.toFixed(2)}×).`;
  const text = `### Transcode to the playable rendition

${table}

Per pair:

${runs}`;
  return { text, verdict, ratio: ratio.median };
}

/** Fails early, saying what to install, when a tool the bench runs is missing. */
async function requireTools(tools: string[]): Promise<void> {
  const missing: string[] = [];
  for (const tool of tools) {
    try {
      await output(tool, {
        args: [tool === "nginx" ? "-v" : "--version"],
        stdout: "null",
        stderr: "null",
      });
    } catch {
      missing.push(tool);
    }
  }
  if (missing.length) {
    throw new Error(
      `${missing.join(", ")} not found on the PATH (Debian: apt-get install -y ${
        missing.join(" ")
      })`,
    );
  }
}

async function machine(): Promise<StreamMachine> {
  return {
    ...await machineInfo(),
    nginx: (await versionLine("nginx", ["-v"])).replace(/^nginx version:\s*/, ""),
    wrk: (await versionLine("wrk", ["--version"])).replace(/\s*\[.*$/, ""),
  };
}

/** The versions after Deno's, in the order the docs list them. */
function tools(host: StreamMachine): string[] {
  return [host.nginx, host.wrk, host.curl, host.ffmpeg];
}

function section(
  host: StreamMachine,
  options: Options,
  fileBytes: number,
  videoInfo: string,
  stream: ReturnType<typeof streamReport>,
  transcode: ReturnType<typeof transcodeReport>,
  transcode_: TranscodeResult,
  load: { before: string; after: string },
): string {
  const date = new Date().toISOString().slice(0, 10);
  return `## ${SECTION_TITLE}

Serving one stored ${(fileBytes / MIB).toFixed(0)} MiB (${fileBytes} bytes) MP4 by
\`GET /api/chat/videos/:id/stream\` (the signed \`stream_url\` of the upload's answer), against
nginx (Debian's package, \`sendfile on\`) serving the same bytes as a static file in the same run;
and making a browser-playable rendition through the service's ffmpeg wrapper against the same
ffmpeg command run bare.

Reproduce with:

\`\`\`sh
${COMMAND}
\`\`\`

It needs curl, ffmpeg, nginx and wrk on the \`PATH\` (Debian: \`apt-get install nginx wrk\`).

Measured ${date}: ${options.runs} full-GET pairs, ${options.rangeRuns} range pairs of ${options.rangeSeconds} s
each, ${options.transcodeRuns} transcode pairs; each pair runs this server first and then nginx
(for transcoding, bare ffmpeg first and then the wrapper). Load average (\`/proc/loadavg\`, 1 min)
${load.before} before the run, ${load.after} after it: other work on the machine shows here.

${stream.text}

${transcode.text}

Targets:

${stream.verdict}
${transcode.verdict}

Machine:

${machineMarkdown(host, tools(host))}

How it is measured:

- The video is ${videoInfo}, made by ffmpeg's lavfi \`testsrc2\` with \`-movflags +faststart\`,
  then padded with one ISO-BMFF \`free\` box of random bytes to the target size (as in the upload
  benchmark). It is uploaded once; this server runs with \`WORKER_CONCURRENCY=0\`, so nothing
  transcodes it and \`stream_url\` serves the stored original. nginx serves the file the upload
  was made from, from a temporary root, with a generated config:
  \`worker_processes ${options.nginxWorkers}\`, \`sendfile on\`, \`tcp_nopush on\`, \`access_log off\`.
  Both listen on 127.0.0.1 and both files are in the page cache (one unmeasured full GET each
  first).
- Before measuring, a full GET from each is checked against the file's SHA-256, and the first,
  middle and last 64 KiB-aligned ranges must answer 206 with the right \`Content-Range\` and the
  file's bytes.
- Full GET: \`curl -o /dev/null\`, timed as the wall time of the curl process (curl's own
  \`time_total\` is shown too); this server's time includes verifying the signed URL's token and
  looking the attachment up in the database. The per-pair figure is nginx's time divided by this
  server's, so higher is better and 1.0× is parity.
- Ranges: \`wrk -t ${options.threads} -c ${options.connections} -d ${options.rangeSeconds}s\` with a Lua
  script whose every request carries \`Range: bytes=<offset>-<offset + 65535>\`, the offset a
  random multiple of 64 KiB over the whole file (fixed seeds, so both servers see the same
  sequence). wrk, the server under test and curl share the machine's CPUs. A run fails if
  any answer is not 2xx/3xx or not a 64 KiB range (bytes read per request), or on more than one
  socket error per thousand requests. One unmeasured
  2 s run each warms connections first.
- Transcode: the source is ${transcode_.sourceInfo} from lavfi \`testsrc2\` + \`sine\`, which does
  not play in browsers; the rendition is ${transcode_.outputInfo}. The arguments are
  \`transcodeArgs()\` from \`lib/media/rendition.ts\` (\`-preset veryfast -crf 23\`, AAC,
  \`+faststart\`, \`-progress pipe:1\`). Bare runs \`ffmpeg <args>\` as a child with stdout to
  \`/dev/null\`; the wrapper is \`runTool()\` from \`lib/media/run_tool.ts\` with
  \`progressParser()\` reading the progress lines (${transcode_.progressEvents} updates in the
  last run, ending at ${transcode_.lastFraction.toFixed(2)}). One unmeasured run of each first;
  every output is checked with ffprobe for an H.264 stream.
- Shared or virtual machines are noisy: quote the medians and the per-pair ratio, not single runs
  or the minimum/maximum.
`;
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const fileBytes = options.sizeMiB * MIB;
  await withScratch("offchat-bench-stream-", options.keep, async (scratch) => {
    await requireTools(
      options.part === "transcode" ? ["ffmpeg"] : ["curl", "ffmpeg", "nginx", "wrk"],
    );
    const loadBefore = await loadAverage();
    let stream: ReturnType<typeof streamReport> | null = null;
    let videoInfo = "";
    if (options.part !== "transcode") {
      const measured = await measureStream(options, scratch);
      videoInfo = measured.videoInfo;
      // The servers are not needed for the transcode part; stop them so they cost nothing.
      await Promise.allSettled(scratch.children.map(stopChild));
      stream = streamReport(measured.result, fileBytes);
    }
    let transcodeResult: TranscodeResult | null = null;
    let transcode: ReturnType<typeof transcodeReport> | null = null;
    if (options.part !== "stream") {
      transcodeResult = await measureTranscode(options, scratch.tmp);
      transcode = transcodeReport(transcodeResult);
    }

    const loadAfter = await loadAverage();
    console.error(`load average (1 min): ${loadBefore} before, ${loadAfter} after`);
    const host = await machine();
    for (const report of [stream, transcode]) {
      if (report) console.log(`\n${report.text}\n\n${report.verdict}`);
    }
    console.log(`\n${machineSummary(host, tools(host))}`);
    if (options.write && stream && transcode && transcodeResult) {
      await writeSection(
        section(host, options, fileBytes, videoInfo, stream, transcode, transcodeResult, {
          before: loadBefore,
          after: loadAfter,
        }),
      );
    }
  });
}

if (import.meta.main) await runCli(main);
