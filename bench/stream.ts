// deno-lint-ignore-file no-console
/**
 * Benchmark: serving a stored ~100 MB video, this server (A) and this server
 * behind nginx with `ACCEL_REDIRECT_PREFIX` (C: the service authorizes, nginx
 * sends the file) against nginx (B, Debian's package with `sendfile on`)
 * serving the same bytes as a static file in the same run, and against a bare
 * `Deno.serve` static file server (D, bench/peer_deno_static.ts: the runtime's
 * ceiling without sendfile); and the rendition transcode through `runTool`
 * against the same ffmpeg command run bare.
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
 * bytes), uploaded once to this server (with its in-process worker) and, once
 * it is `ready` (it plays as uploaded: `playback` is `original`), served by
 * `GET stream_url`. nginx serves the same
 * bytes from a temporary root. For C a second server process shares the
 * first's DATA_DIR and JWT_SECRET (so the same signed `stream_url`, with the
 * front's origin, works) and runs with ACCEL_REDIRECT_PREFIX=/_offchat_media/;
 * a second `server {}` in the same nginx proxies to it and serves the
 * redirected path from an `internal` location aliased to DATA_DIR (see
 * `frontConfig`). D serves nginx's copy, with Deno's default V8 settings,
 * read access to that one file and net access to its one address. Full GETs run in rounds D, A, B, C, D, A, B, C… with
 * `curl -o /dev/null`, timed as the wall time of the curl process. Range
 * throughput is `wrk` with a Lua script asking for
 * `Range: bytes=<random 64 KiB-aligned offset>-<offset + 65535>`, in rounds
 * D, A, B, C as well. Before measuring, a full GET of each is checked against
 * the file's SHA-256 and a few ranges against the file's bytes (206, 65536
 * bytes), and C's media headers against A's.
 *
 * Transcoding: a 1280×720 MPEG-4 Part 2 AVI with MP3 audio from lavfi
 * `testsrc2` + `sine` needs a rendition; the arguments come from
 * `transcodeArgs` (lib/media/rendition.ts). Bare is `ffmpeg <args>` as a child
 * with stdout to /dev/null; wrapped is the same arguments through `runTool`
 * (lib/media/run_tool.ts) with `progressParser` reading `-progress pipe:1`.
 */

import { FFMPEG_QUIET } from "../lib/media/tools.ts";
import { mediaLimitsOf } from "../lib/media/limits.ts";
import { parseConfig } from "../lib/config/config.ts";
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
  REPO,
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
/** The ACCEL_REDIRECT_PREFIX of the server behind nginx, and nginx's internal location. */
const ACCEL_PREFIX = "/_offchat_media/";
/** What the service sets on a media answer and nginx must pass on after X-Accel-Redirect. */
const MEDIA_HEADERS = [
  "content-type",
  "cache-control",
  "content-disposition",
  "x-content-type-options",
  "content-security-policy",
  "referrer-policy",
];

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

/** The four ways the file is served, in the order the tables show them. */
const SIDES = ["server", "nginx", "front", "bare"] as const;
type Side = typeof SIDES[number];
/**
 * The order each round runs them: every comparison the report makes (this
 * server with nginx and with bare `Deno.serve`, the front with nginx) is
 * between neighbouring runs, which matters when other work on the machine
 * comes and goes.
 */
const ROUND_ORDER: readonly Side[] = ["bare", "server", "nginx", "front"];

/** Each side's samples, in round order. */
type BySide<T> = Record<Side, T[]>;

/** One value per side. */
function bySide<T>(value: (side: Side) => T): Record<Side, T> {
  return Object.fromEntries(SIDES.map((side) => [side, value(side)])) as Record<Side, T>;
}

interface StreamResult {
  full: BySide<GetSample>;
  ranges: BySide<WrkSample>;
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
    ...FFMPEG_QUIET,
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

/** Where the server behind nginx runs and what it serves. */
interface FrontTarget {
  /** The upstream, `127.0.0.1:<port>`. */
  upstream: string;
  /** Its DATA_DIR, which the internal location aliases. */
  dataDir: string;
}

/** The nginx process: the static `root` on `url`, and the front of the second server on `frontUrl`. */
interface Nginx {
  child: Child;
  address: string;
  /** The static copy of the video. */
  url: string;
  /** `http://127.0.0.1:<port>`, proxying to the server behind nginx. */
  frontUrl: string;
}

/**
 * nginx serving `root` on a free port and fronting `front` on another, from a
 * generated config under `tmp`/nginx.
 */
async function startNginx(
  scratch: Scratch,
  root: string,
  workers: string,
  front: FrontTarget,
): Promise<Nginx> {
  const { tmp } = scratch;
  await Deno.mkdir(`${tmp}/nginx`);
  const port = freePort();
  const frontPort = freePort();
  const confPath = `${tmp}/nginx/nginx.conf`;
  await Deno.writeTextFile(
    confPath,
    nginxConfig(tmp, root, port, workers, frontConfig(front.upstream, frontPort, front.dataDir)),
  );
  const child = await spawn(
    "nginx",
    "nginx",
    ["-c", confPath, "-p", `${tmp}/nginx/`, "-e", `${tmp}/nginx/error.log`],
    {},
    `${tmp}/nginx.log`,
  );
  scratch.children.push(child);
  return {
    child,
    address: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/video.mp4`,
    frontUrl: `http://127.0.0.1:${frontPort}`,
  };
}

/** How long the in-process worker may take to make the thumbnail and storyboard. */
const READY_TIMEOUT_MS = 120_000;

/**
 * Uploads the video to a fresh message and waits until it is `ready` (as a
 * receiver plays it); returns its Attachment JSON (checked: same bytes).
 */
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
  let attachment = await uploadAnswer("server", sent, responsePath, fileBytes, expectedSha256);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (attachment.status === "processing" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const response = await fetch(`${server.url}/api/chat/attachments/${attachment.id}`, {
      headers: { authorization: `Bearer ${session.token}` },
    });
    attachment = await response.json();
  }
  if (attachment.status !== "ready" || attachment.playback !== "original") {
    throw new Error(`the upload did not become a ready original: ${JSON.stringify(attachment)}`);
  }
  return attachment;
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

/** The named headers of an answer (lowercase names; repeated ones joined with ", "). */
function headerValues(headerText: string, names: string[]): Record<string, string | null> {
  const values: Record<string, string | null> = {};
  for (const name of names) {
    const found = headerText.split(/\r?\n/)
      .map((line) => /^([^:\s]+):\s*(.*?)\s*$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null && m[1]!.toLowerCase() === name)
      .map((m) => m[2]!);
    values[name] = found.length ? found.join(", ") : null;
  }
  return values;
}

/**
 * Checks that the front answers `MEDIA_HEADERS` as the server does directly,
 * for each pair of URLs (the same media, direct and through the front), on a
 * full answer and on a 64 KiB range.
 */
async function verifyFrontHeaders(
  pairs: { what: string; direct: string; front: string }[],
  tmp: string,
): Promise<void> {
  const outPath = `${tmp}/check-headers.bin`;
  try {
    for (const { what, direct, front } of pairs) {
      for (const range of [null, `bytes=0-${RANGE_BYTES - 1}`]) {
        const headers = range ? [`Range: ${range}`] : [];
        const a = await curlTo(direct, outPath, headers);
        const c = await curlTo(front, outPath, headers);
        if (a.code !== c.code) {
          throw new Error(`${what}${range ? " (range)" : ""}: direct ${a.code}, front ${c.code}`);
        }
        const want = headerValues(a.headerText, MEDIA_HEADERS);
        const got = headerValues(c.headerText, MEDIA_HEADERS);
        for (const name of MEDIA_HEADERS) {
          // Content-Disposition is only on the download.
          if (want[name] === null && name !== "content-disposition") {
            throw new Error(`${what}: the server answered no ${name} directly:\n${a.headerText}`);
          }
          if (want[name] !== got[name]) {
            throw new Error(
              `${what}${range ? " (range)" : ""}: ${name} is ${JSON.stringify(got[name])} ` +
                `through nginx, ${JSON.stringify(want[name])} directly:\n${c.headerText}`,
            );
          }
        }
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

/**
 * The front of the server behind nginx, as the docs recommend it: the service
 * answers media requests with `X-Accel-Redirect: /_offchat_media/<key>` and
 * nginx sends the file from DATA_DIR. On such an answer nginx keeps the
 * upstream's Content-Type, Cache-Control and Content-Disposition (and
 * Set-Cookie, Expires, Accept-Ranges) but drops every other header, so the
 * internal location adds the security headers back from the upstream's answer
 * (`always`: on 206, 304 and 416 too). Also printed in docs/BENCHMARKS.md.
 */
function frontConfig(upstream: string, port: number | string, dataDir: string): string {
  return `upstream offchat {
    server ${upstream};
    keepalive 32;
}

server {
    listen 127.0.0.1:${port};

    location / {
        proxy_pass http://offchat;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
    }

    location ${ACCEL_PREFIX} {
        internal;
        alias ${dataDir}/;
        add_header X-Content-Type-Options $upstream_http_x_content_type_options always;
        add_header Content-Security-Policy $upstream_http_content_security_policy always;
        add_header Referrer-Policy $upstream_http_referrer_policy always;
    }
}`;
}

function indent(text: string, prefix: string): string {
  return text.split("\n").map((line) => (line ? prefix + line : line)).join("\n");
}

/**
 * The whole config: the static server, then `front`. As root, the workers run
 * as root too, to read the service's stored files (mode 0600, owned by the
 * user that runs the service); otherwise they run as the invoking user anyway.
 */
function nginxConfig(
  tmp: string,
  root: string,
  port: number,
  workers: string,
  front: string,
): string {
  return `# Generated by bench/stream.ts
daemon off;
master_process on;
${Deno.uid() === 0 ? "user root;\n" : ""}worker_processes ${workers};
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

${indent(front, "    ")}
}
`;
}

/**
 * The bare `Deno.serve` peer (bench/peer_deno_static.ts), allowed to read
 * `path` only, with Deno's default V8 settings: the runtime's ceiling, not the
 * service's memory-saving `--max-semi-space-size`.
 */
async function startBare(scratch: Scratch, path: string): Promise<{ child: Child; url: string }> {
  const port = freePort();
  const child = await spawn(
    "bare Deno.serve",
    Deno.execPath(),
    [
      "run",
      `--allow-read=${path}`,
      `--allow-net=127.0.0.1:${port}`,
      `${REPO}/bench/peer_deno_static.ts`,
      path,
      String(port),
    ],
    { NO_COLOR: "1" },
    `${scratch.tmp}/bare-deno.log`,
  );
  scratch.children.push(child);
  return { child, url: `http://127.0.0.1:${port}` };
}

/**
 * One unmeasured run of each side (caches, connections, JIT), then `runs`
 * measured rounds, each running the sides in `ROUND_ORDER`.
 */
async function warmedRounds<T>(
  runs: number,
  measure: (side: Side, warmUp: boolean) => Promise<T>,
  onRound: (run: number, round: Record<Side, T>) => void,
): Promise<BySide<T>> {
  for (const side of ROUND_ORDER) await measure(side, true);
  const result: BySide<T> = bySide((): T[] => []);
  for (let i = 0; i < runs; i++) {
    const round = {} as Record<Side, T>;
    for (const side of ROUND_ORDER) {
      round[side] = await measure(side, false);
      result[side].push(round[side]);
    }
    onRound(i, round);
  }
  return result;
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
  const wwwDir = `${tmp}/www`;
  await Deno.mkdir(wwwDir, { mode: 0o755 });
  const videoPath = `${wwwDir}/video.mp4`;
  const video = await prepareVideo(tmp, videoPath, fileBytes, "MP4");

  // With its in-process worker, as `deno task start` runs: the video is measured once ready.
  const server = await startServer(scratch, fileBytes, {
    publicUrl: true,
    env: { WORKER_CONCURRENCY: "1" },
  });
  await waitReady(`${server.url}/readyz`, server.child);
  // Started once the first has migrated the database they share.
  const dataDir = server.env.DATA_DIR!;
  const behind = await startServer(scratch, fileBytes, {
    publicUrl: false,
    name: "server-behind-nginx",
    dataDir,
    secret: server.env.JWT_SECRET!,
    env: { ACCEL_REDIRECT_PREFIX: ACCEL_PREFIX, WORKER_CONCURRENCY: "0" },
  });
  const nginx = await startNginx(scratch, wwwDir, options.nginxWorkers, {
    upstream: new URL(behind.url).host,
    dataDir,
  });
  const bare = await startBare(scratch, videoPath);
  await Promise.all([
    waitReady(`${behind.url}/readyz`, behind.child),
    waitReady(nginx.url, nginx.child),
    waitReady(`${bare.url}/healthz`, bare.child),
  ]);
  await waitReady(`${nginx.frontUrl}/readyz`, nginx.child);
  console.error(
    `server pid ${server.child.process.pid} at ${server.url}, nginx pid ${nginx.child.process.pid} ` +
      `at ${nginx.address} and ${
        new URL(nginx.frontUrl).host
      } (front of server pid ${behind.child.process.pid} at ${behind.url}), bare Deno.serve pid ${bare.child.process.pid} at ${
        new URL(bare.url).host
      }`,
  );

  const attachment = await uploadVideo(
    server,
    videoPath,
    `${tmp}/upload.json`,
    fileBytes,
    video.sha256,
  );
  const streamUrl = attachment.stream_url;
  const downloadUrl = attachment.url;
  if (
    typeof streamUrl !== "string" || !streamUrl.startsWith(`${server.url}/`) ||
    typeof downloadUrl !== "string" || !downloadUrl.startsWith(`${server.url}/`)
  ) {
    throw new Error(`the upload answered no usable stream_url: ${JSON.stringify(attachment)}`);
  }
  // Same path and signed token; the front's origin.
  const throughFront = (url: string): string => nginx.frontUrl + url.slice(server.url.length);
  const urls: Record<Side, string> = {
    server: streamUrl,
    nginx: nginx.url,
    front: throughFront(streamUrl),
    bare: `${bare.url}/video.mp4`,
  };

  for (const side of SIDES) {
    await verifyServing(side, urls[side], videoPath, fileBytes, video.sha256, tmp);
  }
  await verifyFrontHeaders([
    { what: "stream_url", direct: streamUrl, front: urls.front },
    { what: "url (download)", direct: downloadUrl, front: throughFront(downloadUrl) },
  ], tmp);
  console.error(
    "all four serve the file: full GET matches the SHA-256, 64 KiB ranges answer 206; " +
      `through nginx, the media headers match the server's (${MEDIA_HEADERS.join(", ")})`,
  );

  const ratioTo = (side: Side, round: Record<Side, number>): string =>
    (round.nginx / round[side]).toFixed(2);
  // The unmeasured GETs leave the files in the page cache and each process has served once.
  const full = await warmedRounds(
    options.runs,
    (side) => timedGet(side, urls[side], fileBytes),
    (i, round) => {
      const wall = bySide((side) => round[side].wallMs);
      console.error(
        `full GET ${i + 1}/${options.runs}: ` +
          SIDES.map((side) =>
            `${side} ${seconds(wall[side])} (curl ${seconds(round[side].curlMs)})`
          )
            .join(", ") +
          `; nginx/server ${ratioTo("server", wall)}×, nginx/front ${
            ratioTo("front", wall)
          }×, nginx/bare ${ratioTo("bare", wall)}×, bare/server ${
            (wall.bare / wall.server).toFixed(2)
          }×`,
      );
    },
  );

  const scriptPath = `${tmp}/ranges.lua`;
  await Deno.writeTextFile(scriptPath, wrkScript(fileBytes));
  // A short unmeasured run each warms connections and the JIT.
  const wrkSeconds = (warmUp: boolean): number => warmUp ? 2 : options.rangeSeconds;
  const ranges = await warmedRounds(
    options.rangeRuns,
    (side, warmUp) => wrkRun(side, urls[side], scriptPath, wrkSeconds(warmUp), options),
    (i, round) => {
      const perSecond = bySide((side) => rps(round[side]));
      console.error(
        `ranges ${i + 1}/${options.rangeRuns}: ` +
          SIDES.map((side) =>
            `${side} ${perSecond[side].toFixed(0)}/s (p50 ${ms(round[side].p50Us / 1000)})`
          ).join(", ") +
          `; server/nginx ${(perSecond.server / perSecond.nginx).toFixed(2)}×, front/nginx ${
            (perSecond.front / perSecond.nginx).toFixed(2)
          }×, bare/nginx ${(perSecond.bare / perSecond.nginx).toFixed(2)}×, server/bare ${
            (perSecond.server / perSecond.bare).toFixed(2)
          }×`,
      );
    },
  );
  return { result: { full, ranges }, videoInfo: video.info };
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
  const limits = mediaLimitsOf(parseConfig({}));
  const args = transcodeArgs(
    { path: sourcePath, demuxer: "avi", width: 1280, height: 720, hasAudio: true },
    outPath,
    limits,
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
    const result = await runTool("ffmpeg", args, {
      timeoutMs,
      onStdout,
      addressSpaceBytes: limits.toolMemoryBytes,
    });
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

/** "<label>, median" and "<label>, min – max" rows, one column per `Stats`. */
function spreadRows(
  label: string,
  columns: Stats[],
  format: (value: number) => string,
): string[][] {
  return [
    [`${label}, median`, ...columns.map((c) => format(c.median))],
    [`${label}, min – max`, ...columns.map((c) => `${format(c.min)} – ${format(c.max)}`)],
  ];
}

interface Report {
  text: string;
  verdict: string;
}

/** The stream part's tables and targets, and what they mean in prose. */
interface StreamReport extends Report {
  reading: string;
}

/** How the tables head each side's column. */
const COLUMN: Record<Side, string> = {
  server: "This server",
  nginx: "nginx",
  front: "This server behind nginx",
  bare: "Bare `Deno.serve`",
};

/** How the targets name the two ways this server is measured. */
const DEPLOYMENT: Record<"server" | "front", string> = {
  server: "this server answering directly",
  front: "this server behind nginx (`X-Accel-Redirect`)",
};

/** `ratio` to two decimals, or three when two would round it onto the other side of `target`. */
function verdictRatio(ratio: number, target: number): string {
  const short = ratio.toFixed(2);
  return (Number(short) >= target) === (ratio >= target) ? short : ratio.toFixed(3);
}

function streamReport(r: StreamResult, fileBytes: number): StreamReport {
  const of = <T>(samples: BySide<T>, value: (sample: T) => number): Stats[] =>
    SIDES.map((side) => stats(samples[side].map(value)));
  const wall = of(r.full, (s) => s.wallMs);
  const curl = of(r.full, (s) => s.curlMs);
  const perSecond = of(r.ranges, rps);
  const p50 = of(r.ranges, (s) => s.p50Us / 1000);
  const p99 = of(r.ranges, (s) => s.p99Us / 1000);
  // Higher is better and 1.0× is parity for all: the reference's time / this one's, this one's
  // rate / the reference's, per round.
  const fullRatios = (side: Side, reference: Side = "nginx"): number[] =>
    r.full[side].map((s, i) => r.full[reference][i]!.wallMs / s.wallMs);
  const rangeRatios = (side: Side, reference: Side = "nginx"): number[] =>
    r.ranges[side].map((s, i) => rps(s) / rps(r.ranges[reference][i]!));
  const fullRatio = bySide((side) => stats(fullRatios(side)));
  const rangeRatio = bySide((side) => stats(rangeRatios(side)));
  const fullToBare = stats(fullRatios("server", "bare"));
  const rangeToBare = stats(rangeRatios("server", "bare"));
  const whole = (value: number): string => value.toFixed(0);
  const times = (value: number): string => `${value.toFixed(2)}×`;
  const rangeThroughput = (rate: number): string =>
    `${(rate * RANGE_BYTES / MIB).toFixed(0)} MiB/s`;
  const toNginxRow = (label: string, ratios: Record<Side, Stats>): string[] => [
    label,
    ratioText(ratios.server),
    "",
    ratioText(ratios.front),
    ratioText(ratios.bare),
  ];
  const toBareRow = (label: string, ratio: Stats): string[] => [
    label,
    ratioText(ratio),
    "",
    "",
    "",
  ];
  const roundColumns = [
    "Round",
    ...SIDES.map((side) => COLUMN[side]),
    "This server vs nginx",
    "Behind nginx vs nginx",
    "Bare `Deno.serve` vs nginx",
    "This server vs bare `Deno.serve`",
  ];

  const full = markdownTable(
    [
      "",
      "This server (`GET stream_url`)",
      "nginx (`sendfile on`)",
      "This server behind nginx (`X-Accel-Redirect`)",
      "Bare `Deno.serve` (`file.readable`)",
    ],
    [
      ...spreadRows("Wall time", wall, seconds),
      ["curl `time_total`, median", ...curl.map((c) => seconds(c.median))],
      ["Throughput at the median wall time", ...wall.map((w) => throughput(fileBytes, w.median))],
      toNginxRow("Speed relative to nginx (nginx time / this one's), per round", fullRatio),
      toBareRow(
        "Speed relative to bare `Deno.serve` (its time / this one's), per round",
        fullToBare,
      ),
    ],
  );
  const fullRuns = markdownTable(
    roundColumns,
    r.full.server.map((_, i) => [
      String(i + 1),
      ...SIDES.map((side) => seconds(r.full[side][i]!.wallMs)),
      times(fullRatios("server")[i]!),
      times(fullRatios("front")[i]!),
      times(fullRatios("bare")[i]!),
      times(fullRatios("server", "bare")[i]!),
    ]),
    "right",
  );
  const ranges = markdownTable(["", ...SIDES.map((side) => COLUMN[side])], [
    ...spreadRows("Requests/s", perSecond, whole),
    ["Throughput at the median", ...perSecond.map((p) => rangeThroughput(p.median))],
    ["Latency p50, median of runs", ...p50.map((p) => ms(p.median))],
    ["Latency p99, median of runs", ...p99.map((p) => ms(p.median))],
    toNginxRow("Requests/s relative to nginx, per round", rangeRatio),
    toBareRow("Requests/s relative to bare `Deno.serve`, per round", rangeToBare),
  ]);
  const rangeRuns = markdownTable(
    roundColumns,
    r.ranges.server.map((_, i) => [
      String(i + 1),
      ...SIDES.map((side) => `${whole(rps(r.ranges[side][i]!))}/s`),
      times(rangeRatios("server")[i]!),
      times(rangeRatios("front")[i]!),
      times(rangeRatios("bare")[i]!),
      times(rangeRatios("server", "bare")[i]!),
    ]),
    "right",
  );
  const target = (what: string, side: "server" | "front", ratio: Stats, min: number): string =>
    `- ${what} at least ${min}× nginx's, ${DEPLOYMENT[side]}: ${met(ratio.median >= min)} ` +
    `(median ${verdictRatio(ratio.median, min)}×).`;
  const verdict = [
    ...(["server", "front"] as const).flatMap((side) => [
      target("Full GET speed", side, fullRatio[side], TARGET_FULL_GET),
      target("64 KiB range requests/s", side, rangeRatio[side], TARGET_RANGES),
    ]),
    "- Not a target, for reference: this server answering directly relative to bare " +
    `\`Deno.serve\` serving the same file, full GET speed median ${times(fullToBare.median)} ` +
    `and 64 KiB range requests/s median ${times(rangeToBare.median)}; bare \`Deno.serve\` ` +
    `itself reaches median ${verdictRatio(fullRatio.bare.median, TARGET_FULL_GET)}× of ` +
    `nginx's full-GET speed and ${verdictRatio(rangeRatio.bare.median, TARGET_RANGES)}× of its ` +
    "range requests/s.",
  ].join("\n");

  const text = `### Full GET (${(fileBytes / MIB).toFixed(0)} MiB)

${full}

Per round:

${fullRuns}

### 64 KiB range requests

${ranges}

Per round:

${rangeRuns}`;
  return {
    text,
    verdict,
    reading: streamReading({
      full: fullRatio,
      ranges: rangeRatio,
      fullToBare,
      rangeToBare,
      mib: Math.round(fileBytes / MIB),
    }),
  };
}

/**
 * What the streaming figures mean, in prose, from the medians: which targets
 * are met, where the full-GET ceiling of a Deno process is, and which
 * deployment meets them all.
 */
function streamReading(
  m: {
    full: Record<Side, Stats>;
    ranges: Record<Side, Stats>;
    fullToBare: Stats;
    rangeToBare: Stats;
    /** The file's size in MiB. */
    mib: number;
  },
): string {
  const x = (s: Stats): string => `${s.median.toFixed(2)}×`;
  /** Like `x`, with a third decimal when two would round onto the other side of `target`. */
  const xTo = (s: Stats, target: number): string => `${verdictRatio(s.median, target)}×`;
  const fullMet = (side: Side): boolean => m.full[side].median >= TARGET_FULL_GET;
  const rangesMet = (side: Side): boolean => m.ranges[side].median >= TARGET_RANGES;
  const metText = (ok: boolean): string => ok ? "meets" : "misses";
  const lines: string[] = [];
  const sameVerdict = rangesMet("server") === fullMet("server");
  /** Within 0.05 of the target: the next run may land on the other side. */
  const near = (s: Stats, target: number): string =>
    Math.abs(s.median - target) <= 0.05 ? ", close enough that runs land on either side of it" : "";
  lines.push(
    `- Answering directly, this server ${metText(rangesMet("server"))} the range target ` +
      `(median ${
        xTo(m.ranges.server, TARGET_RANGES)
      } nginx's requests/s, target ${TARGET_RANGES}×` +
      `${near(m.ranges.server, TARGET_RANGES)})${sameVerdict ? ", and also" : " but"} ` +
      `${metText(fullMet("server"))} the full-GET one (median ${
        xTo(m.full.server, TARGET_FULL_GET)
      } nginx's ` +
      `speed, target ${TARGET_FULL_GET}×${near(m.full.server, TARGET_FULL_GET)}).`,
  );
  const bareVerdict = !fullMet("bare")
    ? `itself below the ${TARGET_FULL_GET}× target: on this machine the target is above what ` +
      "`Deno.serve` does, framework or not"
    : fullMet("server")
    ? `above the ${TARGET_FULL_GET}× target, as is this server`
    : `above the ${TARGET_FULL_GET}× target, so the gap is the service's`;
  /** How this server compares with the bare one, when it is within 10 % or above. */
  const closeToBare = (s: Stats): string | null =>
    s.median > 1.1 ? "at least as fast" : s.median >= 0.9 ? "about as fast" : null;
  const aroundTheBytes = "what it does around the bytes (verifying the signed URL's token, " +
    "looking the attachment up, Hono's routing and middleware, the media headers)";
  const fullVsBare = closeToBare(m.fullToBare);
  lines.push(
    `- A full GET is a copy of ${m.mib} MiB, and \`Deno.serve\` has no \`sendfile\`. This server ` +
      "answers a whole GET (and an open-ended `bytes=N-`) with the file's own `readable`, which " +
      "the HTTP server pumps without running JavaScript, but every byte is still read from the " +
      "page cache into a buffer in the process and written to the socket from there; nginx's " +
      "`sendfile` has the kernel send page-cache pages without passing them through user space. " +
      "The bare `Deno.serve` (no framework, no authentication, no database) reaches median " +
      `${
        xTo(m.full.bare, TARGET_FULL_GET)
      } of nginx's speed, ${bareVerdict}. This server reaches median ` +
      `${x(m.fullToBare)} of the bare server's speed, ${
        fullVsBare
          ? `${fullVsBare}: ${aroundTheBytes} is small next to the copy`
          : `and the rest is ${aroundTheBytes}`
      }.`,
  );
  const rangesVsBare = closeToBare(m.rangeToBare);
  const caches = "the media-token cache, the two-second access memory and the open-file cache " +
    "(`lib/open_files.ts`: handles kept open for the same two seconds, like nginx's " +
    "`open_file_cache`), each range read with one synchronous seek and read as the bare server " +
    "does";
  lines.push(
    "- For 64 KiB ranges the runtime's own per-request work sets the ceiling: the bare " +
      "`Deno.serve`, which does nothing but a seek and a read, reaches median " +
      `${xTo(m.ranges.bare, TARGET_RANGES)} of nginx's requests/s${
        rangesMet("bare") ? "" : `, itself below the ${TARGET_RANGES}× target in this run`
      }. nginx's workers (one per CPU) answer on every CPU, \`Deno.serve\` on the one thread ` +
      "that also runs JavaScript, so other work on the machine costs nginx more and moves this " +
      `ratio from run to run. This server reaches median ` +
      `${x(m.rangeToBare)} of the bare server's${
        rangesVsBare
          ? `, ${rangesVsBare}: ${aroundTheBytes} is kept small by ${caches}`
          : `; the rest is ${aroundTheBytes}, kept small by ${caches}`
      }.`,
  );
  const frontAll = fullMet("front") && rangesMet("front");
  lines.push(
    `- ${
      frontAll
        ? "The deployment that meets every target is the one the design's scaled-out shape " +
          "already has: a front proxy."
        : "The front proxy is the deployment meant to close the gap, but here it misses a " +
          "target too (see the targets above)."
    } With nginx in front and \`ACCEL_REDIRECT_PREFIX\` set ` +
      "([OPERATIONS.md](OPERATIONS.md#letting-nginx-send-the-bytes-accel_redirect_prefix)), the " +
      "service still checks the token and the participant of every request and nginx sends the bytes " +
      `with \`sendfile\`: full GETs at median ${x(m.full.front)} nginx's static speed and ` +
      `ranges at ${x(m.ranges.front)} its requests/s.`,
  );
  return lines.join("\n");
}

function transcodeReport(r: TranscodeResult): Report & { ratio: number } {
  const bare = stats(r.bare);
  const wrapped = stats(r.wrapped);
  const ratios = r.wrapped.map((w, i) => w / r.bare[i]!);
  const ratio = stats(ratios);
  const table = markdownTable(["", "`ffmpeg` bare", "Through `runTool` + `progressParser`"], [
    ...spreadRows("Wall time", [bare, wrapped], seconds),
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
  stream: StreamReport,
  transcode: ReturnType<typeof transcodeReport>,
  transcode_: TranscodeResult,
  load: { before: string; after: string },
): string {
  const date = new Date().toISOString().slice(0, 10);
  const headerList = MEDIA_HEADERS.map((name) => `\`${name}\``).join(", ");
  return `## ${SECTION_TITLE}

Serving one stored ${(fileBytes / MIB).toFixed(0)} MiB (${fileBytes} bytes) MP4 by
\`GET /api/chat/videos/:id/stream\` (the signed \`stream_url\` of the upload's answer), by this
server directly and by this server behind nginx with \`ACCEL_REDIRECT_PREFIX\` (the service
authorizes the request and answers \`X-Accel-Redirect\`, nginx sends the file), against nginx
(Debian's package, \`sendfile on\`) serving the same bytes as a static file in the same run, and
against a bare \`Deno.serve\` static file server (\`bench/peer_deno_static.ts\`: no framework, no
authentication, no database), which shows what the runtime itself reaches; and making a
browser-playable rendition through the service's ffmpeg wrapper against the same ffmpeg command run
bare.

Reproduce with:

\`\`\`sh
${COMMAND}
\`\`\`

It needs curl, ffmpeg, nginx and wrk on the \`PATH\` (Debian: \`apt-get install nginx wrk\`).

Measured ${date}: ${options.runs} full-GET rounds, ${options.rangeRuns} range rounds of ${options.rangeSeconds} s
each, ${options.transcodeRuns} transcode pairs; each round runs bare \`Deno.serve\`, then this
server, then nginx, then this server behind nginx, so each ratio compares neighbouring runs (for
transcoding, each pair runs bare ffmpeg first and then the wrapper). Load average (\`/proc/loadavg\`, 1 min)
${load.before} before the run, ${load.after} after it: other work on the machine shows here.

${stream.text}

${transcode.text}

Targets:

${stream.verdict}
${transcode.verdict}

What the figures say:

${stream.reading}

Machine:

${machineMarkdown(host, tools(host))}

How it is measured:

- The video is ${videoInfo}, made by ffmpeg's lavfi \`testsrc2\` with \`-movflags +faststart\`,
  then padded with one ISO-BMFF \`free\` box of random bytes to the target size (as in the upload
  benchmark). It is uploaded once, to this server running its in-process worker, and measured
  once \`ready\`: an 8-bit H.264 faststart MP4 plays as uploaded (\`playback: original\`), so
  \`stream_url\` serves the stored original. nginx serves the file the upload
  was made from, from a temporary root, with a generated config:
  \`worker_processes ${options.nginxWorkers}\`, \`sendfile on\`, \`tcp_nopush on\`, \`access_log off\`.
  All listen on 127.0.0.1 and both files are in the page cache (one unmeasured full GET each
  first). This server reads 64 KiB ranges from its open-file cache (\`lib/open_files.ts\`) with one
  synchronous seek and read, and answers a whole GET with the file's own \`readable\`
  (\`lib/file_response.ts\`).
- Bare \`Deno.serve\` is \`bench/peer_deno_static.ts\`, serving nginx's copy of the file, run with
  \`--allow-read\` for that one file, \`--allow-net\` for its one address and Deno's default V8
  settings: it stands for the runtime's ceiling, and in trials here the service's
  \`--max-semi-space-size=2\` cost a process this small some of its range requests/s. It answers a whole GET with a fresh handle's \`readable\` and
  \`Content-Length\`, and a 64 KiB range with one synchronous seek and read from a handle opened at
  start-up: the same reads as this server, without routing, authentication, the database or the
  media headers.
- This server behind nginx is a second server process on the same \`DATA_DIR\` (storage and
  database) with the same \`JWT_SECRET\` as the first, started with
  \`ACCEL_REDIRECT_PREFIX=${ACCEL_PREFIX}\` and \`WORKER_CONCURRENCY=0\`, behind a second
  \`server {}\` in the same nginx process (same workers and settings as above). It is asked for
  the same signed \`stream_url\` with the front's origin: the token is signed with the shared
  secret. The front's part of the generated config:

  \`\`\`nginx
${indent(frontConfig("127.0.0.1:<server port>", "<front port>", "<DATA_DIR>"), "  ")}
  \`\`\`

  On an \`X-Accel-Redirect\` answer nginx keeps the upstream's \`Content-Type\`,
  \`Cache-Control\` and \`Content-Disposition\` but drops \`X-Content-Type-Options\`,
  \`Content-Security-Policy\` and \`Referrer-Policy\`; the three \`add_header … always\` lines
  put them back from the upstream's answer. The stored files are mode 0600, owned by the user
  that runs the service, so when the bench runs as root (as here) its config has \`user root;\`
  for nginx's workers to read them; in production run the service and nginx's workers under one
  user or group instead.
- Before measuring, a full GET from each is checked against the file's SHA-256, and the first,
  middle and last 64 KiB-aligned ranges must answer 206 with the right \`Content-Range\` and the
  file's bytes. Through the front, ${headerList} must match what the server
  answers directly, on \`stream_url\` and on the download \`url\`, for a full answer and a range.
- Full GET: \`curl -o /dev/null\`, timed as the wall time of the curl process (curl's own
  \`time_total\` is shown too); this server's time includes verifying the signed URL's token and
  looking the attachment up in the database, and behind nginx also the proxied request to it. Each
  per-round ratio is the reference's time (nginx's, or bare \`Deno.serve\`'s) divided by the
  contender's, so higher is better and 1.0× is parity.
- Ranges: \`wrk -t ${options.threads} -c ${options.connections} -d ${options.rangeSeconds}s\` with a Lua
  script whose every request carries \`Range: bytes=<offset>-<offset + 65535>\`, the offset a
  random multiple of 64 KiB over the whole file (fixed seeds, so all four see the same
  sequence). Behind nginx, every range is one proxied request to this server (on a keepalive
  connection) and then nginx reading the file. wrk, the server under test and curl share the machine's CPUs. A run fails if
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
- Shared or virtual machines are noisy: quote the medians and the per-round (per-pair) ratio, not
  single runs or the minimum/maximum. nginx's workers use every CPU while this server answers on one
  thread, so other work on the machine slows nginx more and raises the ratios to it: compare runs
  made at a low load average.
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
    let stream: StreamReport | null = null;
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
    if (stream) console.log(`\n${stream.reading}`);
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
