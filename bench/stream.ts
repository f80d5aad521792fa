// deno-lint-ignore-file no-console
/**
 * Benchmark: one stored video (100 MiB) served four ways, in rounds — this
 * server (`GET stream_url`), nginx alone (Debian's package, `sendfile on`,
 * the same bytes as a static file), this server behind that nginx with
 * ACCEL_REDIRECT_PREFIX (the service authorizes, nginx sends the file), and a
 * bare `Deno.serve` (bench/peer_deno_static.ts, the runtime's ceiling) —
 * full GETs timed with curl and 64 KiB ranges with wrk; and the rendition
 * transcode through `runTool` against the same ffmpeg command run bare.
 * docs/BENCHMARKS.md says what the figures mean.
 *
 *   deno task bench:stream [-- --json] [--part stream|transcode|all]
 *     [--runs 5] [--range-runs 3] [--range-seconds 10] [--threads 2]
 *     [--connections 16] [--transcode-runs 5] [--transcode-seconds 20]
 *     [--nginx-workers auto] [--size-mib 100] [--processes 1] [--keep]
 *
 * `--processes 2` serves "this server" from two processes sharing the port
 * (REUSE_PORT=1), as docs/DEPLOYMENT.md's one-host shape runs it.
 *
 * Needs curl, ffmpeg, nginx and wrk on the PATH (Debian: apt-get install nginx wrk).
 */

import { createHash } from "node:crypto";
import { progressParser, renditionTimeoutMs, transcodeArgs } from "../lib/media/rendition.ts";
import { runTool } from "../lib/media/run_tool.ts";
import { mediaToolsOf } from "../lib/media/tools.ts";
import { parseConfig } from "../lib/config/config.ts";
import { ffmpeg, ffprobeJson } from "../tests/_fixtures.ts";
import {
  curlUpload,
  delay,
  freePort,
  loadAverage,
  machine,
  makeVideo,
  medianRow,
  MIB,
  newMessage,
  ratios,
  ratioText,
  readOptions,
  REPO,
  report,
  run,
  runCli,
  type Scratch,
  signIn,
  spawn,
  spreadRows,
  startServer,
  stopAll,
  table,
  throughput,
  time,
  verdict,
  type Video,
  waitReady,
  withScratch,
} from "./_shared.ts";

const RANGE_BYTES = 64 * 1024;
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
/**
 * The targets (docs/BENCHMARKS.md): median per-round ratios to nginx, and to
 * bare ffmpeg. Ranges: 0.25× from one serving process, 0.5× from two or more
 * sharing the port (`--processes`, REUSE_PORT=1), nginx running a worker per
 * core either way.
 */
const TARGET = { fullGet: 0.8, ranges: 0.25, rangesMultiProcess: 0.5, transcode: 1.15 };

/** The four ways the file is served, in the order the tables show them. */
const SIDES = ["server", "nginx", "front", "bare"] as const;
type Side = typeof SIDES[number];
const LABEL: Record<Side, string> = {
  server: "This server",
  nginx: "nginx",
  front: "Behind nginx",
  bare: "Bare Deno.serve",
};
/** A side's column title: this server's says how many processes serve it. */
function label(side: Side): string {
  const n = options.processes;
  return side === "server" && n > 1 ? `${LABEL.server} (${n} processes)` : LABEL[side];
}

/**
 * The order each round runs them: every ratio reported (this server to nginx
 * and to bare `Deno.serve`, the front to nginx) compares neighbouring runs,
 * which matters when other work on the machine comes and goes.
 */
const ROUND_ORDER: readonly Side[] = ["bare", "server", "nginx", "front"];
type BySide<T> = Record<Side, T>;

const DEFAULTS = {
  part: "all",
  runs: 5,
  "range-runs": 3,
  "range-seconds": 10,
  threads: 2,
  connections: 16,
  "transcode-runs": 5,
  "transcode-seconds": 20,
  "nginx-workers": "auto",
  "size-mib": 100,
  processes: 1,
};
let options: ReturnType<typeof readOptions<typeof DEFAULTS>>;

/** One full GET: the curl process's wall time and curl's own `time_total`, in milliseconds. */
interface GetSample {
  wallMs: number;
  curlMs: number;
}

/** One wrk run, from the Lua script's `done()` line. */
interface WrkSample {
  requests: number;
  bytes: number;
  duration_us: number;
  /** Socket errors and timeouts. */
  errors: number;
  /** Answers that were not 2xx/3xx. */
  status_errors: number;
  p50_us: number;
  p99_us: number;
}

interface StreamResult {
  bytes: number;
  full: BySide<GetSample[]>;
  ranges: BySide<WrkSample[]>;
}

interface TranscodeResult {
  bare: number[];
  runTool: number[];
  /** `progressParser`'s updates in the last run, and the last fraction. */
  progress: { updates: number; last: number };
}

/**
 * nginx: the static copy of the video on one port, and on another the front
 * of the server behind it, which answers media requests with
 * `X-Accel-Redirect: /_offchat_media/<key>`. On such an answer nginx keeps the
 * upstream's Content-Type, Cache-Control and Content-Disposition but drops
 * its other headers, so the internal location adds the security headers back
 * (`always`: on 206 too). As root the workers run as root, to read the
 * service's stored files (mode 0600).
 */
function nginxConfig(
  tmp: string,
  ports: [number, number],
  upstream: string,
  dataDir: string,
): string {
  return `daemon off;
${Deno.uid() === 0 ? "user root;" : ""}
worker_processes ${options["nginx-workers"]};
pid ${tmp}/nginx/nginx.pid;
error_log ${tmp}/nginx/error.log warn;
events { worker_connections 1024; }
http {
    types { video/mp4 mp4; }
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
        listen 127.0.0.1:${ports[0]};
        root ${tmp}/www;
    }

    upstream offchat {
        server ${upstream};
        keepalive 32;
        keepalive_timeout 15s;
    }

    server {
        listen 127.0.0.1:${ports[1]};
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
    }
}
`;
}

/**
 * Starts the four, uploads the video to this server (with its in-process
 * worker, as `deno task start` runs) and waits until it is `ready` as
 * uploaded (`playback: original`); each side's URL, and the download URL
 * direct and through the front.
 */
async function startAll(
  scratch: Scratch,
  video: Video,
): Promise<{ urls: BySide<string>; sameMedia: [string, string][] }> {
  const { tmp } = scratch;
  const bytes = video.bytes;
  const processes = options.processes;
  // The file is served as uploaded, the same bytes as nginx's copy: no stripped copy, its
  // bitrate (a padded clip) no reason to transcode it, and no ladder taking the CPU.
  const asUploaded = { RENDITION_MAX_BITRATE: "1000000", HLS: "0", STRIP_METADATA: "0" };
  const shared: Record<string, string> = {
    ...asUploaded,
    ...(processes > 1 ? { REUSE_PORT: "1" } : {}),
  };
  const server = await startServer(scratch, bytes, {
    publicUrl: true,
    env: { WORKER_CONCURRENCY: "1", ...shared },
  });
  await waitReady(`${server.url}/readyz`, server.child);
  // More serving processes on the same port and data (REUSE_PORT: the kernel spreads the
  // connections), as docs/OPERATIONS.md runs them; the first one's worker does the jobs.
  for (let i = 1; i < processes; i++) {
    const more = await startServer(scratch, bytes, {
      name: `server-${i + 1}`,
      dataDir: server.env.DATA_DIR,
      secret: server.env.JWT_SECRET,
      env: {
        ...shared,
        PORT: server.env.PORT!,
        PUBLIC_URL: server.url,
        WORKER_CONCURRENCY: "0",
      },
    });
    await waitReady(`${server.url}/readyz`, more.child);
  }
  // The same DATA_DIR and JWT_SECRET (so the same signed URLs work), once the first has migrated.
  const behind = await startServer(scratch, bytes, {
    name: "server-behind-nginx",
    dataDir: server.env.DATA_DIR,
    secret: server.env.JWT_SECRET,
    env: { ...asUploaded, ACCEL_REDIRECT_PREFIX: ACCEL_PREFIX },
  });
  const ports: [number, number] = [freePort(), freePort()];
  const config = nginxConfig(tmp, ports, new URL(behind.url).host, server.env.DATA_DIR!);
  await Deno.mkdir(`${tmp}/nginx`);
  await Deno.writeTextFile(`${tmp}/nginx/nginx.conf`, config);
  const dir = `${tmp}/nginx`;
  const nginxArgs = ["-c", `${dir}/nginx.conf`, "-p", `${dir}/`, "-e", `${dir}/error.log`];
  const nginx = await spawn(scratch, "nginx", "nginx", nginxArgs);
  const barePort = freePort();
  const bare = await spawn(scratch, "bare Deno.serve", Deno.execPath(), [
    "run",
    `--allow-read=${video.path}`,
    `--allow-net=127.0.0.1:${barePort}`,
    `${REPO}/bench/peer_deno_static.ts`,
    video.path,
    String(barePort),
  ]);
  const front = `http://127.0.0.1:${ports[1]}`;
  await Promise.all([
    waitReady(`${behind.url}/readyz`, behind.child),
    waitReady(`${front}/readyz`, nginx),
    waitReady(`http://127.0.0.1:${barePort}/healthz`, bare),
  ]);

  const session = await signIn(server);
  const upload = await curlUpload(`${server.url}/api/chat/videos/upload/`, video, {
    message_id: await newMessage(session),
  }, [`Authorization: Bearer ${session.token}`]);
  let attachment = upload.answer;
  for (let i = 0; attachment.status === "processing" && i < 600; i++) {
    await delay(200);
    const response = await fetch(`${server.url}/api/chat/attachments/${attachment.id}`, {
      headers: { authorization: `Bearer ${session.token}` },
    });
    attachment = await response.json();
  }
  if (attachment.status !== "ready" || attachment.playback !== "original") {
    throw new Error(`The upload did not become a ready original: ${JSON.stringify(attachment)}`);
  }
  // Same path and signed token, the front's origin.
  const throughFront = (url: unknown): string => front + String(url).slice(server.url.length);
  const urls: BySide<string> = {
    server: String(attachment.stream_url),
    nginx: `http://127.0.0.1:${ports[0]}/video.mp4`,
    front: throughFront(attachment.stream_url),
    bare: `http://127.0.0.1:${barePort}/video.mp4`,
  };
  const sameMedia: [string, string][] = [
    [urls.server, urls.front],
    [String(attachment.url), throughFront(attachment.url)],
  ];
  return { urls, sameMedia };
}

/**
 * Checks that each side serves the file (a full GET with its SHA-256; the
 * first, middle and last 64 KiB-aligned ranges as 206 with its bytes), and
 * that through the front the media headers are what the server answers
 * directly, on a full answer and on a range.
 */
async function verify(
  urls: BySide<string>,
  sameMedia: [string, string][],
  video: Video,
): Promise<void> {
  const file = await Deno.readFile(video.path);
  const slots = Math.floor(video.bytes / RANGE_BYTES);
  for (const side of SIDES) {
    const whole = await fetch(urls[side]);
    const hash = createHash("sha256");
    for await (const chunk of whole.body!) hash.update(chunk);
    if (whole.status !== 200 || hash.digest("hex") !== video.sha256) {
      throw new Error(`${side}: a full GET answered ${whole.status} without the file's bytes`);
    }
    for (const start of [0, Math.floor(slots / 2), slots - 1].map((s) => s * RANGE_BYTES)) {
      const end = start + RANGE_BYTES - 1;
      const range = await fetch(urls[side], { headers: { range: `bytes=${start}-${end}` } });
      const got = new Uint8Array(await range.arrayBuffer());
      const want = file.subarray(start, end + 1);
      if (
        range.status !== 206 ||
        range.headers.get("content-range") !== `bytes ${start}-${end}/${video.bytes}` ||
        got.length !== want.length || got.some((byte, i) => byte !== want[i])
      ) throw new Error(`${side}: range ${start}- answered ${range.status} without its bytes`);
    }
  }
  for (const [direct, front] of sameMedia) {
    for (const headers of [{}, { range: `bytes=0-${RANGE_BYTES - 1}` }] as HeadersInit[]) {
      const a = await fetch(direct, { headers });
      const c = await fetch(front, { headers });
      await Promise.all([a.body?.cancel(), c.body?.cancel()]);
      for (const name of MEDIA_HEADERS) {
        const want = a.headers.get(name);
        // Content-Disposition is on the download only.
        if ((want === null && name !== "content-disposition") || c.headers.get(name) !== want) {
          throw new Error(
            `${name} through nginx is "${c.headers.get(name)}" (${c.status}), directly ` +
              `"${want}" (${a.status}), for ${direct} ${JSON.stringify(headers)}`,
          );
        }
      }
    }
  }
}

/** One full GET by `curl -o /dev/null`: the process's wall time and curl's `time_total`. */
async function timedGet(side: Side, url: string, bytes: number): Promise<GetSample> {
  const started = performance.now();
  const format = "%{http_code} %{size_download} %{time_total}";
  const out = await run("curl", ["-sS", "-o", "/dev/null", "-w", format, url]);
  const wallMs = performance.now() - started;
  const [code, size, total] = out.stdout.split(" ");
  if (!out.success || code !== "200" || Number(size) !== bytes) {
    throw new Error(`${side}: GET answered ${code} with ${size} bytes: ${out.stderr}`);
  }
  return { wallMs, curlMs: Number(total) * 1000 };
}

/**
 * The wrk script: each request asks for a random 64 KiB-aligned 64 KiB range
 * (each thread with its own fixed seed, so every side gets the same
 * sequence), and `done()` prints the summary as one JSON line.
 */
function wrkScript(bytes: number): string {
  return `local slots = ${Math.floor(bytes / RANGE_BYTES)}
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

/**
 * One wrk run; fails when any answer is not 2xx/3xx or not a 64 KiB range
 * (bytes read per request), or on more than one socket error in a thousand.
 */
async function wrk(side: Side, url: string, script: string, seconds: number): Promise<WrkSample> {
  const out = await run("wrk", [
    ...["-t", String(options.threads), "-c", String(options.connections)],
    ...["-d", `${seconds}s`, "-s", script, url],
  ]);
  const line = out.stdout.split("\n").find((l) => l.startsWith("WRK_RESULT "));
  if (!out.success || !line) throw new Error(`${side}: wrk failed:\n${out.stdout}${out.stderr}`);
  const sample: WrkSample = JSON.parse(line.slice("WRK_RESULT ".length));
  const perRequest = sample.bytes / sample.requests;
  if (
    !(perRequest >= RANGE_BYTES && perRequest <= RANGE_BYTES + 4096) ||
    sample.status_errors > 0 || sample.errors > sample.requests / 1000
  ) throw new Error(`${side}: wrk did not get 64 KiB ranges only:\n${out.stdout}`);
  return sample;
}

function rps(sample: WrkSample): number {
  return sample.requests / (sample.duration_us / 1e6);
}

/**
 * One unmeasured run of each side (page cache, connections, JIT), then
 * `runs` measured rounds in `ROUND_ORDER`, each logged to stderr.
 */
async function rounds<T>(
  what: string,
  runs: number,
  measure: (side: Side, warmUp: boolean) => Promise<T>,
  show: (sample: T) => string,
): Promise<BySide<T[]>> {
  for (const side of ROUND_ORDER) await measure(side, true);
  const result: BySide<T[]> = { server: [], nginx: [], front: [], bare: [] };
  for (let i = 0; i < runs; i++) {
    for (const side of ROUND_ORDER) result[side].push(await measure(side, false));
    const shown = SIDES.map((side) => `${side} ${show(result[side][i]!)}`).join(", ");
    console.error(`${what} ${i + 1}/${runs}: ${shown}`);
  }
  return result;
}

async function measureStream(scratch: Scratch): Promise<StreamResult> {
  await Deno.mkdir(`${scratch.tmp}/www`, { mode: 0o755 });
  const bytes = options["size-mib"] * MIB;
  const video = await makeVideo(`${scratch.tmp}/www/video.mp4`, bytes);
  const { urls, sameMedia } = await startAll(scratch, video);
  await verify(urls, sameMedia, video);
  console.error("all four serve the file; through nginx the media headers match the server's");

  const full = await rounds(
    "full GET",
    options.runs,
    (side) => timedGet(side, urls[side], bytes),
    (s) => time(s.wallMs),
  );
  const script = `${scratch.tmp}/ranges.lua`;
  await Deno.writeTextFile(script, wrkScript(bytes));
  const ranges = await rounds(
    "ranges",
    options["range-runs"],
    (side, warmUp) => wrk(side, urls[side], script, warmUp ? 2 : options["range-seconds"]),
    (s) => `${rps(s).toFixed(0)}/s`,
  );
  return { bytes, full, ranges };
}

async function measureTranscode(tmp: string): Promise<TranscodeResult> {
  const seconds = options["transcode-seconds"];
  const source = `${tmp}/source.avi`;
  console.error(`making ${seconds} s of 1280×720 MPEG-4 Part 2 + MP3 in AVI`);
  const mpeg4 = "-c:v mpeg4 -q:v 4 -c:a libmp3lame -b:a 128k -f avi -y";
  await ffmpeg([
    ...["-f", "lavfi", "-i", `testsrc2=size=1280x720:rate=25:duration=${seconds}`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=44100:duration=${seconds}`],
    ...mpeg4.split(" "),
    source,
  ]);
  const duration = Number(
    (await ffprobeJson(source) as { format: { duration: string } }).format.duration,
  );
  const out = `${tmp}/rendition.mp4`;
  const source_ = { path: source, demuxer: "avi", width: 1280, height: 720, hasAudio: true };
  // The limits the service runs with by default (MAX_PIXELS, MAX_STREAMS, MEDIA_MEMORY_LIMIT_MB).
  const config = parseConfig({});
  const limits = mediaToolsOf(config).limits;
  const args = transcodeArgs(source_, out, { limits, policy: config.renditionPolicy });
  const progress = { updates: 0, last: 0 };
  const bare = async (): Promise<void> => {
    const out = await new Deno.Command("ffmpeg", { args, stdin: "null", stdout: "null" }).output();
    if (!out.success) throw new Error(`ffmpeg failed: ${new TextDecoder().decode(out.stderr)}`);
  };
  const wrapped = async (): Promise<void> => {
    Object.assign(progress, { updates: 0, last: 0 });
    const onStdout = progressParser(duration, (fraction) => {
      progress.updates++;
      progress.last = fraction;
    });
    const result = await runTool("ffmpeg", args, {
      timeoutMs: renditionTimeoutMs(duration),
      addressSpaceBytes: limits.toolMemoryBytes,
      onStdout,
    });
    if (result.code !== 0 || result.timedOut) {
      throw new Error(`runTool: ffmpeg failed: ${result.stderr}`);
    }
  };
  /** Times `transcode`, then checks its output has an H.264 stream and removes it. */
  const timed = async (transcode: () => Promise<void>): Promise<number> => {
    const started = performance.now();
    await transcode();
    const ms = performance.now() - started;
    const streams = (await ffprobeJson(out)).streams as { codec_name?: string }[];
    if (!streams.some((stream) => stream.codec_name === "h264")) {
      throw new Error("The rendition has no H.264");
    }
    await Deno.remove(out);
    return ms;
  };
  // Unmeasured: the source into the page cache, ffmpeg's pages loaded.
  await timed(bare);
  await timed(wrapped);
  const result: TranscodeResult = { bare: [], runTool: [], progress };
  for (let i = 0; i < options["transcode-runs"]; i++) {
    result.bare.push(await timed(bare));
    result.runTool.push(await timed(wrapped));
    console.error(
      `transcode ${i + 1}/${options["transcode-runs"]}: bare ${time(result.bare[i]!)}, runTool ` +
        `${time(result.runTool[i]!)} (${progress.updates} progress updates, last ${
          progress.last.toFixed(2)
        })`,
    );
  }
  return result;
}

function streamTables(m: StreamResult): string[] {
  const wall = (side: Side): number[] => m.full[side].map((s) => s.wallMs);
  const perSecond = (side: Side): number[] => m.ranges[side].map(rps);
  // Higher is better and 1.0× is parity: the reference's time over this one's; rates the other way.
  const fullTo = (side: Side, reference: Side): number[] => ratios(wall(reference), wall(side));
  const rangesTo = (side: Side, reference: Side): number[] =>
    ratios(perSecond(side), perSecond(reference));
  const walls = SIDES.map(wall);
  const rates = SIDES.map(perSecond);
  const vs = (label: string, to: typeof fullTo): string[][] => [
    [
      `${label} vs nginx, per round`,
      ...SIDES.map((s) => s === "nginx" ? "" : ratioText(to(s, "nginx"))),
    ],
    [`${label} vs bare Deno.serve, per round`, ratioText(to("server", "bare"))],
  ];
  const perRound = (columns: number[][], format: (value: number) => string): string[][] =>
    columns[0]!.map((_, i) => [`Round ${i + 1}`, ...columns.map((runs) => format(runs[i]!))]);
  const latency = (key: "p50_us" | "p99_us"): number[][] =>
    SIDES.map((side) => m.ranges[side].map((s) => s[key] / 1000));
  const ms = (value: number): string => `${value.toFixed(2)} ms`;
  const whole = (value: number): string => value.toFixed(0);
  const header = ["", ...SIDES.map((side) => label(side))];
  const target = (
    label: string,
    to: typeof fullTo,
    min: number,
  ): string[] => [
    label,
    `≥ ${min}×`,
    ...(["server", "front", "bare"] as const).map((s) => verdict(to(s, "nginx"), min)),
  ];
  return [
    table(`Full GET (${m.bytes / MIB} MiB)`, header, [
      ...spreadRows("Wall time", walls, time),
      medianRow(
        "curl time_total, median",
        SIDES.map((side) => m.full[side].map((s) => s.curlMs)),
        time,
      ),
      medianRow("Throughput at the median", walls, (wallMs) => throughput(m.bytes, wallMs)),
      ...vs("Speed", fullTo),
      ...perRound(walls, time),
    ]),
    table("64 KiB range requests", header, [
      ...spreadRows("Requests/s", rates, whole),
      medianRow("Throughput at the median", rates, (rate) => throughput(rate * RANGE_BYTES, 1000)),
      medianRow("Latency p50, median of runs", latency("p50_us"), ms),
      medianRow("Latency p99, median of runs", latency("p99_us"), ms),
      ...vs("Requests/s", rangesTo),
      ...perRound(rates, (rate) => `${whole(rate)}/s`),
    ]),
    table("Targets (median of the per-round ratios)", [
      "",
      "Target",
      ...SIDES.filter((s) => s !== "nginx").map(label),
    ], [
      target("Full GET speed vs nginx", fullTo, TARGET.fullGet),
      target(
        "64 KiB requests/s vs nginx",
        rangesTo,
        options.processes > 1 ? TARGET.rangesMultiProcess : TARGET.ranges,
      ),
    ]),
  ];
}

function transcodeTable(t: TranscodeResult): string {
  const perPair = ratios(t.runTool, t.bare);
  const header = ["", "ffmpeg bare", "runTool + progressParser"];
  return table("Transcode to the playable rendition", header, [
    ...spreadRows("Wall time", [t.bare, t.runTool], time),
    ["runTool / bare, per pair", "", ratioText(perPair)],
    [`Target: ≤ ${TARGET.transcode}×`, "", verdict(perPair, TARGET.transcode, true)],
    ...t.bare.map((bare, i) => [`Pair ${i + 1}`, time(bare), time(t.runTool[i]!)]),
  ]);
}

async function main(): Promise<void> {
  options = readOptions(DEFAULTS);
  const part = options.part;
  if (part !== "stream" && part !== "transcode" && part !== "all") {
    throw new Error(`--part takes stream, transcode or all, not "${part}"`);
  }
  const needed = part === "transcode" ? ["ffmpeg"] : ["curl", "ffmpeg", "nginx", "wrk"];
  for (const tool of needed) {
    await run(tool, ["-h"]).catch(() => {
      throw new Error(`${tool} not found on the PATH (Debian: apt-get install -y ${tool})`);
    });
  }
  await withScratch(options.keep, async (scratch) => {
    const loadBefore = await loadAverage();
    const stream = part === "transcode" ? null : await measureStream(scratch);
    // The servers cost nothing while ffmpeg runs.
    await stopAll(scratch);
    const transcode = part === "stream" ? null : await measureTranscode(scratch.tmp);
    const tools: [string, string][] = [["nginx", "-v"], ["wrk", "-v"], ["curl", "-V"]];
    tools.push(["ffmpeg", "-version"]);
    const host = await machine(loadBefore, tools);
    report(options.json, [
      ...(stream ? streamTables(stream) : []),
      ...(transcode ? [transcodeTable(transcode)] : []),
    ], { options, stream, transcode, machine: host });
  });
}

if (import.meta.main) await runCli(main);
