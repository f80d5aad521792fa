// deno-lint-ignore-file no-console
/**
 * Benchmark: what a receiver sees. Two clips made with ffmpeg at run time — a
 * minute of 1920×1080 H.264/AAC at about 8 Mb/s and a 3 s 1080×1920 phone
 * clip — are uploaded to this server (in-process worker on, as `deno task
 * start` runs it) and, once ready, played in Chromium (playwright-core, a
 * fresh context per run) over three links emulated with DevTools'
 * `Network.emulateNetworkConditions`, each three ways: the stripped original
 * (`url`), `stream_url` (the compact rendition, or the stripped original when
 * the clip is within the policy) and `hls_url` with hls.js. Per run: the time
 * to the first frame, the stalls in the first seconds of playback and the
 * bytes fetched. The 3 s clip is also played as HLS from a second server
 * with HLS_MIN_DURATION=0, to show what the default threshold leaves out.
 * Then the ladder's cost: `ladderArgs` through `runTool` against the same
 * arguments run bare, and against one ffmpeg run per rung.
 * docs/BENCHMARKS.md says what the figures mean.
 *
 *   deno task bench:receiver [-- --json] [--part playback|ladder|all] [--runs 1]
 *     [--watch-seconds 30] [--start-timeout 60] [--ladder-runs 3]
 *     [--ladder-seconds 60] [--long-seconds 60] [--keep]
 *
 * Needs curl, ffmpeg and Chromium (`deno task setup:test` installs Debian's).
 */

import type { Browser, Page } from "playwright-core";
import { parseConfig } from "../lib/config/config.ts";
import { sha256File } from "../lib/core/hash.ts";
import { containerNamed } from "../lib/media/containers.ts";
import {
  checkLadder,
  ladderArgs,
  type LadderSource,
  ladderTimeoutMs,
  planLadder,
  type Rung,
} from "../lib/media/hls.ts";
import { probeVideo } from "../lib/media/probe.ts";
import { progressParser } from "../lib/media/rendition.ts";
import { runTool } from "../lib/media/run_tool.ts";
import { mediaToolsOf } from "../lib/media/tools.ts";
import { ffmpeg } from "../tests/_fixtures.ts";
import { launchChromium } from "../tests/e2e/_browser.ts";
import {
  curlUpload,
  delay,
  loadAverage,
  machine,
  markdownTable,
  newMessage,
  ratios,
  ratioText,
  readOptions,
  report,
  run,
  runCli,
  type Scratch,
  type Server,
  type Session,
  signIn,
  spread,
  spreadRows,
  startServer,
  stopAll,
  time,
  verdict,
  type Video,
  waitReady,
  withScratch,
} from "./_shared.ts";

/** The targets of issue 12 (docs/BENCHMARKS.md). */
const TARGET = {
  /** On the slowest link, with HLS or the compact rendition: first frame within this, no stall. */
  firstFrameMs: 2500,
  /** The ladder in one run, against one run per rung: at most this ratio of the time. */
  oneRunToSeparate: 0.8,
  /** The ladder through `runTool`, against the same arguments run bare. */
  runToolToBare: 1.1,
};

/** A link emulated by DevTools; null throughputs leave it unthrottled. */
interface Link {
  key: string;
  label: string;
  /** bit/s */
  down: number | null;
  up: number | null;
  latencyMs: number;
}

const LINKS: readonly Link[] = [
  { key: "slow", label: "1.6 Mb/s, 150 ms", down: 1.6e6, up: 768e3, latencyMs: 150 },
  { key: "fast", label: "9 Mb/s, 40 ms", down: 9e6, up: 3e6, latencyMs: 40 },
  { key: "open", label: "unthrottled", down: null, up: null, latencyMs: 0 },
];

/** The two clips, by what they stand for (`makeClips` says how ffmpeg makes them). */
const CLIPS = {
  long: { label: "1080p landscape, ~8 Mb/s" },
  short: { label: "3 s portrait phone clip" },
} as const;
type ClipKey = keyof typeof CLIPS;

const DELIVERIES = ["original", "compact", "hls", "hls-all"] as const;
type DeliveryKey = typeof DELIVERIES[number];

const DEFAULTS = {
  part: "all",
  runs: 1,
  "watch-seconds": 30,
  "start-timeout": 60,
  "ladder-runs": 3,
  "ladder-seconds": 60,
  "long-seconds": 60,
};
let options: ReturnType<typeof readOptions<typeof DEFAULTS>>;

// ---------------------------------------------------------------------------
// The clips

/** A generated clip: the file, and what ffmpeg was asked for. */
interface Clip extends Video {
  key: ClipKey;
  seconds: number;
  recipe: string;
}

/**
 * Makes a clip from lavfi's moving `testsrc2` pattern with temporal noise on
 * top (fine detail that changes every frame, so the bitrate is spent for
 * real) and a tone, as a faststart H.264/AAC MP4 with a keyframe every 2 s.
 */
async function makeClip(
  path: string,
  clip: { key: ClipKey; size: string; seconds: number; video: string[] },
): Promise<Clip> {
  const { size, seconds } = clip;
  const recipe = [
    ...["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30:duration=${seconds}`],
    ...["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`],
    ...["-vf", "noise=alls=8:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60"],
    ...clip.video,
    ...["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-shortest"],
    ...["-movflags", "+faststart", "-f", "mp4", "-y"],
  ];
  console.error(`making ${path.slice(path.lastIndexOf("/") + 1)} (${size}, ${seconds} s)`);
  await ffmpeg([...recipe, path]);
  const bytes = (await Deno.stat(path)).size;
  return {
    key: clip.key,
    seconds,
    path,
    bytes,
    sha256: await sha256File(path),
    recipe: `ffmpeg ${recipe.join(" ")} ${path.slice(path.lastIndexOf("/") + 1)}`,
  };
}

function makeClips(tmp: string): Promise<[Clip, Clip]> {
  return Promise.all([
    makeClip(`${tmp}/long.mp4`, {
      key: "long",
      size: "1920x1080",
      seconds: options["long-seconds"],
      video: ["-b:v", "8M", "-maxrate", "8M", "-bufsize", "16M"],
    }),
    makeClip(`${tmp}/phone.mp4`, {
      key: "short",
      size: "1080x1920",
      seconds: 3,
      video: ["-b:v", "3500k", "-maxrate", "4M", "-bufsize", "8M"],
    }),
  ]);
}

// ---------------------------------------------------------------------------
// The service

type Attachment = Record<string, unknown> & {
  id: string;
  status: string;
  playback: string | null;
  url: string;
  stream_url: string | null;
  hls_url: string | null;
  renditions: {
    kind: string;
    width: number | null;
    height: number | null;
    bitrate: number | null;
    bytes: number;
  }[];
};

/** One clip as the service made it: its Attachment JSON once ready, and how long that took. */
interface Processed {
  clip: ClipKey;
  attachment: Attachment;
  /** From the upload's answer to `ready`, polled every 500 ms. */
  readyMs: number;
  /** The stripped original's size (what `url` serves). */
  strippedBytes: number;
}

async function getAttachment(session: Session, id: string): Promise<Attachment> {
  const response = await fetch(`${session.url}/api/chat/attachments/${id}`, {
    headers: { authorization: `Bearer ${session.token}` },
  });
  if (!response.ok) throw new Error(`GET attachment ${id} answered ${response.status}`);
  return await response.json();
}

/** The size of what `url` serves, from the Content-Range of its first byte. */
async function servedBytes(url: string): Promise<number> {
  const response = await fetch(url, { headers: { range: "bytes=0-0" } });
  await response.body?.cancel();
  const total = /\/(\d+)$/.exec(response.headers.get("content-range") ?? "")?.[1];
  if (response.status !== 206 || !total) throw new Error(`${url} answered ${response.status}`);
  return Number(total);
}

/** Uploads the clips by curl (multipart), then waits until each is `ready`. */
async function uploadAll(session: Session, clips: Clip[]): Promise<Processed[]> {
  const uploads = [];
  for (const clip of clips) {
    const answer = (await curlUpload(`${session.url}/api/chat/videos/upload/`, clip, {
      message_id: await newMessage(session),
    }, [`Authorization: Bearer ${session.token}`])).answer as Attachment;
    uploads.push({ clip, id: answer.id, started: performance.now() });
  }
  const done = new Map<string, Processed>();
  const deadline = Date.now() + 20 * 60_000;
  let lastLog = 0;
  while (done.size < uploads.length) {
    if (Date.now() > deadline) throw new Error("The uploads were not ready after 20 minutes");
    for (const upload of uploads) {
      if (done.has(upload.id)) continue;
      const attachment = await getAttachment(session, upload.id);
      if (attachment.status === "failed") {
        throw new Error(`Processing ${upload.clip.key} failed: ${attachment.error}`);
      }
      if (attachment.status === "ready") {
        const readyMs = performance.now() - upload.started;
        console.error(`${upload.clip.key} ready after ${time(readyMs)} (${session.url})`);
        const strippedBytes = await servedBytes(attachment.url);
        done.set(upload.id, { clip: upload.clip.key, attachment, readyMs, strippedBytes });
      }
    }
    if (Date.now() - lastLog > 30_000) {
      lastLog = Date.now();
      console.error(`processing: ${done.size}/${uploads.length} ready`);
    }
    await delay(500);
  }
  return uploads.map((upload) => done.get(upload.id)!);
}

// ---------------------------------------------------------------------------
// Playback in Chromium

/** One way of playing a clip, with the URL the page is given. */
interface Delivery {
  key: DeliveryKey;
  label: string;
  url: string | null;
  hls: boolean;
  /** Why there is no URL. */
  missing?: string;
}

function deliveriesOf(
  processed: Processed,
  hlsForAll: Processed | null,
  hlsMinDuration: number,
): Delivery[] {
  const a = processed.attachment;
  const compact = a.playback === "original"
    ? "stream_url: stripped original (within policy)"
    : `stream_url: compact rendition (${a.playback})`;
  const list: Delivery[] = [
    { key: "original", label: "url: stripped original", url: a.url, hls: false },
    { key: "compact", label: compact, url: a.stream_url, hls: false },
    {
      key: "hls",
      label: "hls_url (hls.js)",
      url: a.hls_url,
      hls: true,
      missing: `no ladder, shorter than HLS_MIN_DURATION=${hlsMinDuration}`,
    },
  ];
  if (hlsForAll) {
    list.push({
      key: "hls-all",
      label: "hls_url (hls.js), HLS_MIN_DURATION=0",
      url: hlsForAll.attachment.hls_url,
      hls: true,
    });
  }
  return list;
}

/** What the page measured in one run (times from attaching the source). */
interface PageResult {
  /** The first frame rendered while playing (`requestVideoFrameCallback` after `playing`). */
  ttffMs: number | null;
  /** The first frame rendered at all, which may come before playback. */
  firstFrameMs: number | null;
  /** The first `playing` event. */
  playingMs: number | null;
  /** `waiting` → `playing` intervals after the first frame, within the watch window. */
  stalls: number;
  stalledMs: number;
  /** Wall time from the first frame to the end of the window (or the clip). */
  watchedMs: number;
  /** `currentTime` at the end of the window. */
  playedS: number;
  ended: boolean;
  /** `videoWidth` and `videoHeight` at the end of the window. */
  width: number;
  height: number;
  frames: number;
  droppedFrames: number;
  /** hls.js level switches. */
  switches: { atMs: number; height: number }[];
  error: string | null;
}

/** One run: the page's figures and the media bytes DevTools saw arrive. */
interface PlaySample extends PageResult {
  /** Encoded bytes (headers included) of the media requests, until the window ended. */
  bytes: number;
  requests: number;
}

/**
 * The measuring page's script. `measure()` starts the clock, attaches the
 * source (hls.js's `loadSource` + `attachMedia`, or `src`), calls `play()` on
 * the muted element and resolves when the watch window ends: `watchMs` after
 * the first frame rendered while playing, or at the clip's end, or
 * `startTimeoutMs` without one.
 */
const PAGE_SCRIPT = `
const video = document.querySelector("video");
window.measure = (o) => new Promise((resolve) => {
  const r = { ttffMs: null, firstFrameMs: null, playingMs: null, stalls: 0, stalledMs: 0,
    watchedMs: 0, playedS: 0, ended: false, width: 0, height: 0, frames: 0, droppedFrames: 0,
    switches: [], error: null };
  const now = () => performance.now();
  let t0 = 0, startAt = null, stallAt = null, playing = false, done = false, hls = null;
  let timer = setTimeout(() => finish("no frame within " + o.startTimeoutMs / 1000 + " s"),
    o.startTimeoutMs);
  const finish = (error) => {
    if (done) return;
    done = true;
    const t = now();
    clearTimeout(timer);
    if (stallAt !== null) r.stalledMs += t - stallAt;
    r.error = error;
    r.watchedMs = startAt === null ? 0 : t - startAt;
    r.playedS = video.currentTime;
    r.ended = video.ended;
    r.width = video.videoWidth;
    r.height = video.videoHeight;
    const quality = video.getVideoPlaybackQuality();
    r.frames = quality.totalVideoFrames;
    r.droppedFrames = quality.droppedVideoFrames;
    video.pause();
    if (hls) hls.destroy();
    resolve(r);
  };
  const start = (t) => {
    if (startAt !== null || done) return;
    startAt = t;
    r.ttffMs = t - t0;
    clearTimeout(timer);
    timer = setTimeout(() => finish(null), o.watchMs);
  };
  const onFrame = () => {
    const t = now();
    if (r.firstFrameMs === null) r.firstFrameMs = t - t0;
    if (playing && !video.paused) start(t);
    if (startAt === null && !done) video.requestVideoFrameCallback(onFrame);
  };
  video.addEventListener("playing", () => {
    const t = now();
    if (r.playingMs === null) r.playingMs = t - t0;
    playing = true;
    if (stallAt !== null) {
      r.stalledMs += t - stallAt;
      stallAt = null;
    }
  });
  video.addEventListener("waiting", () => {
    if (startAt === null || done || stallAt !== null) return;
    stallAt = now();
    r.stalls++;
  });
  // A fallback should no frame callback come: the playhead moving while playing.
  video.addEventListener("timeupdate", () => {
    if (playing && !video.paused && video.currentTime > 0) start(now());
  });
  video.addEventListener("ended", () => finish(null));
  video.addEventListener("error", () => finish("media error " + (video.error && video.error.code)));
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.requestVideoFrameCallback(onFrame);
  t0 = now();
  if (o.hls) {
    hls = new Hls();
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => r.switches.push({
      atMs: Math.round(now() - t0), height: hls.levels[data.level].height }));
    hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) finish("hls.js: " + data.details); });
    hls.loadSource(o.url);
    hls.attachMedia(video);
  } else {
    video.src = o.url;
  }
  video.play().catch(() => {});
});
`;

/** The page, on the origin of the media (hls.js loads with XHR, and the service sends no CORS). */
function pageHtml(hlsScript: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Receiver benchmark</title></head>
<body style="margin:0;background:#000">
<video width="640" height="360" muted playsinline></video>
<script src="${hlsScript}"></script>
<script>${PAGE_SCRIPT}</script>
</body></html>`;
}

/** The versioned path of hls.js among the dashboard's assets, read from the dashboard page. */
async function hlsScriptPath(origin: string): Promise<string> {
  const page = await (await fetch(`${origin}/`)).text();
  const version = /\/ui\/([0-9a-f]+)\//.exec(page)?.[1];
  if (!version) throw new Error(`No versioned asset path in the dashboard page of ${origin}`);
  const path = `/ui/${version}/vendor/hls.min.js`;
  const response = await fetch(origin + path);
  await response.body?.cancel();
  if (!response.ok) throw new Error(`${origin}${path} answered ${response.status}`);
  return path;
}

/** Sums the encoded bytes of the media requests a page makes, as DevTools reports them. */
async function countMediaBytes(page: Page, mediaPrefix: string) {
  const cdp = await page.context().newCDPSession(page);
  const requests = new Map<string, { received: number; finished: number | null }>();
  cdp.on("Network.requestWillBeSent", (event) => {
    if (event.request.url.startsWith(mediaPrefix)) {
      requests.set(event.requestId, { received: 0, finished: null });
    }
  });
  cdp.on("Network.dataReceived", (event) => {
    const request = requests.get(event.requestId);
    if (request) request.received += event.encodedDataLength;
  });
  cdp.on("Network.loadingFinished", (event) => {
    const request = requests.get(event.requestId);
    if (request) request.finished = event.encodedDataLength;
  });
  await cdp.send("Network.enable");
  return {
    cdp,
    /** Finished requests count what `loadingFinished` says, unfinished ones what has arrived. */
    total(): { bytes: number; requests: number } {
      let bytes = 0;
      for (const request of requests.values()) {
        bytes += request.finished ?? request.received;
      }
      return { bytes, requests: requests.size };
    },
  };
}

/**
 * One run in a fresh context (empty cache): the page is served on the media's
 * origin by Playwright (that one request intercepted, then no more) and loads
 * hls.js from the service unthrottled, as an app that is already open would
 * have it; then the link is emulated and `measure()` runs.
 */
async function playOnce(
  browser: Browser,
  delivery: Delivery & { url: string },
  link: Link,
  hlsScript: Map<string, string>,
): Promise<PlaySample> {
  const origin = new URL(delivery.url).origin;
  const context = await browser.newContext({ viewport: { width: 800, height: 450 } });
  try {
    const page = await context.newPage();
    const pageUrl = `${origin}/bench/receiver.html`;
    const html = pageHtml(hlsScript.get(origin)!);
    await page.route(pageUrl, (route) => route.fulfill({ contentType: "text/html", body: html }));
    await page.goto(pageUrl);
    await page.unroute(pageUrl);
    await page.waitForFunction("typeof Hls === 'function' && typeof measure === 'function'");
    const media = await countMediaBytes(page, `${origin}/api/`);
    if (link.down !== null && link.up !== null) {
      await media.cdp.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: link.latencyMs,
        downloadThroughput: link.down / 8,
        uploadThroughput: link.up / 8,
      });
    }
    const result = await page.evaluate<PageResult>(`measure(${
      JSON.stringify({
        url: delivery.url,
        hls: delivery.hls,
        watchMs: options["watch-seconds"] * 1000,
        startTimeoutMs: options["start-timeout"] * 1000,
      })
    })`);
    return { ...result, ...media.total() };
  } finally {
    await context.close();
  }
}

/** Every run of one clip × link × delivery. */
interface Cell {
  clip: ClipKey;
  link: string;
  delivery: DeliveryKey;
  label: string;
  /** Empty when the delivery does not exist for this clip. */
  runs: PlaySample[];
  missing?: string;
}

async function measurePlayback(processed: Processed[], hlsForAll: Processed | null) {
  const cells: Cell[] = [];
  const hlsMinDuration = parseConfig({}).hlsPolicy.minDuration;
  const plans = processed.map((p) => ({
    clip: p.clip,
    deliveries: deliveriesOf(p, p.clip === "short" ? hlsForAll : null, hlsMinDuration),
  }));
  const hlsScript = new Map<string, string>();
  for (const { deliveries } of plans) {
    for (const delivery of deliveries) {
      if (!delivery.url) continue;
      const origin = new URL(delivery.url).origin;
      if (!hlsScript.has(origin)) hlsScript.set(origin, await hlsScriptPath(origin));
    }
  }
  await using browser = await launchChromium();
  const version = browser.version();
  for (const link of LINKS) {
    for (const { clip, deliveries } of plans) {
      for (const delivery of deliveries) {
        const cell: Cell = {
          clip,
          link: link.key,
          delivery: delivery.key,
          label: delivery.label,
          runs: [],
        };
        cells.push(cell);
        if (!delivery.url) {
          cell.missing = delivery.missing;
          continue;
        }
        for (let i = 0; i < options.runs; i++) {
          const sample = await playOnce(
            browser,
            { ...delivery, url: delivery.url },
            link,
            hlsScript,
          );
          cell.runs.push(sample);
          const at = (ms: number | null): string => ms === null ? "none" : time(ms);
          console.error(
            `${clip}, ${link.label}, ${delivery.key}: first frame ${at(sample.ttffMs)} ` +
              `(shown ${at(sample.firstFrameMs)}, playing ${at(sample.playingMs)}), ` +
              `${sample.stalls} stalls (${time(sample.stalledMs)}), played ` +
              `${sample.playedS.toFixed(1)} s, ${(sample.bytes / 1e6).toFixed(1)} MB in ` +
              `${sample.requests} requests, ${sample.width}×${sample.height}, ` +
              `${sample.droppedFrames}/${sample.frames} frames dropped` +
              (sample.switches.length
                ? `, levels ${
                  sample.switches.map((s) => `${s.height} at ${time(s.atMs)}`).join(" → ")
                }`
                : "") +
              (sample.error ? `, ${sample.error}` : ""),
          );
        }
      }
    }
  }
  return { cells, chromium: version };
}

// ---------------------------------------------------------------------------
// The ladder's cost

const CONTENDERS = ["bare", "runTool", "separate"] as const;
type Contender = typeof CONTENDERS[number];

/** Wall time and CPU time (user + system) of one contender in one round, in milliseconds. */
interface Cost {
  wallMs: number;
  cpuMs: number;
}

interface LadderResult {
  seconds: number;
  rungs: Rung[];
  /** Per round. */
  costs: Record<Contender, Cost[]>;
  /** For each round, each separate run's cost (one per rung). */
  separateRuns: Cost[][];
  args: string[];
}

/**
 * The CPU time of this process's children that have ended, in milliseconds
 * (`cutime` + `cstime` of /proc/self/stat): a child's time is added when it is
 * reaped, prlimit's included, as it execs the tool in its own process.
 */
async function childrenCpuMs(): Promise<number> {
  const stat = await Deno.readTextFile("/proc/self/stat");
  // The fields after the command name (which may hold spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

/**
 * Times the ladder of the long clip (its first `--ladder-seconds`, copied
 * without re-encoding) three ways, in rounds whose order rotates: the
 * arguments of `ladderArgs` run bare by ffmpeg (a child with no wrapper),
 * the same arguments through `runTool` as the hls job runs them (prlimit,
 * the tool environment, `-progress` read by `progressParser`), and one
 * `runTool` run per rung with the same per-rung settings (`ladderArgs` given
 * one rung; the audio encoded in the first only), each decoding the source
 * again. Every output is checked with `checkLadder`, outside the clock.
 * Besides the wall time, each run's CPU time (user + system, from
 * /proc/self/stat, in clock ticks of 10 ms), which other work on a shared
 * machine changes far less.
 */
async function measureLadder(tmp: string, clip: Clip): Promise<LadderResult> {
  const config = parseConfig({});
  const tools = mediaToolsOf(config);
  const policy = config.renditionPolicy;
  const seconds = Math.min(options["ladder-seconds"], clip.seconds);
  const path = `${tmp}/ladder-source.mp4`;
  await ffmpeg(["-i", clip.path, "-t", String(seconds), "-c", "copy", "-f", "mp4", "-y", path]);
  const container = containerNamed("mp4");
  const meta = await probeVideo(tools, path, { container });
  const source: LadderSource = {
    path,
    demuxer: container.demuxer,
    width: meta.width,
    height: meta.height,
    hasAudio: meta.hasAudio,
    fps: meta.fps,
    hdr: meta.hdr,
    bitrate: meta.bitrate,
    duration: meta.duration,
  };
  const rungs = planLadder(source, policy);
  const argsFor = (outDir: string, only?: number): string[] =>
    only === undefined
      ? ladderArgs(source, { rungs, outDir, limits: tools.limits, maxFps: policy.maxFps })
      : ladderArgs({ ...source, hasAudio: source.hasAudio && only === 0 }, {
        rungs: [rungs[only]!],
        outDir,
        limits: tools.limits,
        maxFps: policy.maxFps,
      });
  let made = 0;
  const freshDir = async (): Promise<string> => {
    const dir = `${tmp}/ladder-${made++}`;
    await Deno.mkdir(dir, { mode: 0o700 });
    return dir;
  };
  const viaRunTool = async (args: string[]): Promise<void> => {
    const result = await runTool(tools.ffmpegPath, args, {
      timeoutMs: ladderTimeoutMs(source.duration),
      maxStdoutBytes: 64 * 1024,
      addressSpaceBytes: tools.limits.toolMemoryBytes,
      onStdout: progressParser(source.duration, () => {}),
    });
    if (result.code !== 0 || result.timedOut) throw new Error(`runTool: ${result.stderr}`);
  };
  const bare = async (args: string[]): Promise<void> => {
    const out = await new Deno.Command(tools.ffmpegPath, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`ffmpeg: ${new TextDecoder().decode(out.stderr)}`);
  };
  const check = async (outDir: string, only?: number): Promise<void> => {
    await checkLadder(tools, {
      outDir,
      rungs: only === undefined ? rungs : [rungs[only]!],
      hasAudio: source.hasAudio && (only === undefined || only === 0),
      duration: source.duration,
    });
    await Deno.remove(outDir, { recursive: true });
  };
  /** Nothing else ends while it runs: the servers are stopped, the checks come after. */
  const timed = async (body: () => Promise<void>): Promise<Cost> => {
    const cpu = await childrenCpuMs();
    const started = performance.now();
    await body();
    const wallMs = performance.now() - started;
    return { wallMs, cpuMs: await childrenCpuMs() - cpu };
  };
  const result: LadderResult = {
    seconds: source.duration ?? seconds,
    rungs,
    costs: { bare: [], runTool: [], separate: [] },
    separateRuns: [],
    args: argsFor("OUT"),
  };
  const runs = options["ladder-runs"];
  console.error(
    `ladder of ${result.seconds.toFixed(1)} s, ${rungs.map((r) => `${r.height}p`).join(", ")}: ` +
      `${runs} rounds of bare, runTool and one run per rung`,
  );
  for (let round = 0; round < runs; round++) {
    const order = CONTENDERS.map((_, i) => CONTENDERS[(i + round) % CONTENDERS.length]!);
    for (const contender of order) {
      if (contender === "separate") {
        const each: Cost[] = [];
        for (let i = 0; i < rungs.length; i++) {
          const dir = await freshDir();
          each.push(await timed(() => viaRunTool(argsFor(dir, i))));
          await check(dir, i);
        }
        result.separateRuns.push(each);
        result.costs.separate.push({
          wallMs: each.reduce((sum, c) => sum + c.wallMs, 0),
          cpuMs: each.reduce((sum, c) => sum + c.cpuMs, 0),
        });
      } else {
        const dir = await freshDir();
        const run = contender === "bare" ? bare : viaRunTool;
        result.costs[contender].push(await timed(() => run(argsFor(dir))));
        await check(dir);
      }
    }
    const shown = CONTENDERS.map((c) => {
      const cost = result.costs[c][round]!;
      return `${c} ${time(cost.wallMs)} (CPU ${time(cost.cpuMs)})`;
    }).join(", ");
    console.error(`ladder ${round + 1}/${runs}: ${shown}`);
  }
  return result;
}

// ---------------------------------------------------------------------------
// Tables

const CLIP_ORDER: readonly ClipKey[] = ["long", "short"];

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function seconds(ms: number | null): string {
  return ms === null ? "–" : (ms / 1000).toFixed(2);
}

/** The median of the runs' values, with "–" for a run without one. */
function median(values: (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === values.length && known.length > 0 ? spread(known).median : null;
}

function clipTitle(clip: ClipKey, clips: Clip[], processed: Processed[]): string {
  const c = clips.find((x) => x.key === clip)!;
  const a = processed.find((p) => p.clip === clip)!.attachment;
  const kbps = Number(a.bitrate);
  return `${CLIPS[clip].label}: ${a.width}×${a.height}, ${c.seconds} s, ${
    (kbps / 1000).toFixed(1)
  } Mb/s, ${mb(c.bytes)} MB`;
}

function outputsTable(clips: Clip[], processed: Processed[], hlsForAll: Processed | null): string {
  const header = ["", ...CLIP_ORDER.map((k) => CLIPS[k].label)];
  const of = (k: ClipKey): Processed => processed.find((p) => p.clip === k)!;
  const rungs = (p: Processed | null): string => {
    const hls = p?.attachment.renditions.filter((r) => r.kind === "hls") ?? [];
    if (hls.length === 0) return "none";
    const list = hls.map((r) =>
      `${r.width}×${r.height} ${((r.bitrate ?? 0) / 1000).toFixed(2)} Mb/s`
    );
    const total = hls.reduce((sum, r) => sum + r.bytes, 0);
    return `${list.join(", ")} (${mb(total)} MB of video)`;
  };
  const progressive = (p: Processed): string => {
    const r = p.attachment.renditions.find((x) => x.kind === "progressive");
    if (!r) return `none: the stripped original plays (playback ${p.attachment.playback})`;
    return `${r.width}×${r.height}, ${((r.bitrate ?? 0) / 1000).toFixed(2)} Mb/s, ${
      mb(r.bytes)
    } MB`;
  };
  return markdownTable("What the service made of each clip", header, [
    [
      "Uploaded",
      ...CLIP_ORDER.map((k) => {
        const a = of(k).attachment;
        const c = clips.find((x) => x.key === k)!;
        return `${a.width}×${a.height}, ${Number(a.fps).toFixed(0)} fps, ${
          (Number(a.bitrate) / 1000).toFixed(2)
        } Mb/s, ${mb(c.bytes)} MB`;
      }),
    ],
    ["Stripped original (`url`)", ...CLIP_ORDER.map((k) => `${mb(of(k).strippedBytes)} MB`)],
    ["Compact rendition (`stream_url`)", ...CLIP_ORDER.map((k) => progressive(of(k)))],
    ["HLS ladder (`hls_url`)", ...CLIP_ORDER.map((k) => rungs(of(k)))],
    ...(hlsForAll
      ? [[
        "HLS ladder with HLS_MIN_DURATION=0 (second server)",
        "",
        `${rungs(hlsForAll)}, ready after ${time(hlsForAll.readyMs)}`,
      ]]
      : []),
    [
      "Upload answered → `ready` (both processed at once)",
      ...CLIP_ORDER.map((k) => time(of(k).readyMs)),
    ],
  ]);
}

function playbackTables(cells: Cell[], clips: Clip[], processed: Processed[]): string[] {
  const watch = options["watch-seconds"];
  const header = [
    "Link",
    "Delivery",
    "First frame (s)",
    "Stalls",
    "Stalled (s)",
    `Played (s, of ≤ ${watch})`,
    "MB fetched",
    "Requests",
    "Size at end",
    "Dropped frames",
  ];
  return CLIP_ORDER.map((clip) => {
    const rows = cells.filter((c) => c.clip === clip).map((cell) => {
      const link = LINKS.find((l) => l.key === cell.link)!.label;
      if (cell.runs.length === 0) return [link, cell.label, `n/a: ${cell.missing}`];
      const m = (pick: (s: PlaySample) => number | null): number | null =>
        median(cell.runs.map(pick));
      const errors = cell.runs.map((s) => s.error).filter((e) => e);
      return [
        link,
        cell.label,
        seconds(m((s) => s.ttffMs)) + (errors.length ? ` (${errors.join("; ")})` : ""),
        String(m((s) => s.stalls) ?? "–"),
        seconds(m((s) => s.stalledMs)),
        (m((s) => s.playedS) ?? 0).toFixed(1),
        mb(m((s) => s.bytes) ?? 0),
        String(m((s) => s.requests) ?? "–"),
        `${m((s) => s.width) ?? "–"}×${m((s) => s.height) ?? "–"}`,
        String(m((s) => s.droppedFrames) ?? "–"),
      ];
    });
    const runs = options.runs > 1 ? ` (median of ${options.runs} runs)` : "";
    return markdownTable(`${clipTitle(clip, clips, processed)}${runs}`, header, rows, 2);
  });
}

function targetTable(cells: Cell[]): string {
  const slow = LINKS[0]!;
  const rows: string[][] = [];
  for (const clip of CLIP_ORDER) {
    for (const cell of cells.filter((c) => c.clip === clip && c.link === slow.key)) {
      if (cell.delivery === "original" || cell.runs.length === 0) continue;
      const ttff = median(cell.runs.map((s) => s.ttffMs));
      const stalls = median(cell.runs.map((s) => s.stalls)) ?? 0;
      const fast = ttff !== null && ttff <= TARGET.firstFrameMs;
      rows.push([
        CLIPS[clip].label,
        cell.label,
        `${seconds(ttff)} s ${fast ? "met" : "not met"}`,
        `${stalls} ${stalls === 0 ? "met" : "not met"}`,
      ]);
    }
  }
  return markdownTable(
    `Target on the ${slow.label} link`,
    [
      "Clip",
      "Delivery",
      `First frame ≤ ${TARGET.firstFrameMs / 1000} s`,
      "No stall",
    ],
    rows,
    2,
  );
}

function ladderTables(l: LadderResult): string[] {
  const wall = (c: Contender): number[] => l.costs[c].map((x) => x.wallMs);
  const cpu = (c: Contender): number[] => l.costs[c].map((x) => x.cpuMs);
  const perRound = (pick: typeof wall) => ({
    runTool: ratios(pick("runTool"), pick("bare")),
    separate: ratios(pick("runTool"), pick("separate")),
    bareSeparate: ratios(pick("bare"), pick("separate")),
  });
  const byWall = perRound(wall);
  const byCpu = perRound(cpu);
  const rungs = l.rungs.map((r) => `${r.height}p ${r.kbps}k`).join(", ");
  const perRung = (pick: (c: Cost) => number): string =>
    l.rungs.map((r, i) =>
      `${r.height}p ${time(spread(l.separateRuns.map((each) => pick(each[i]!))).median)}`
    ).join(", ");
  const target = (label: string, target: number, ratios: number[]): string[] => [
    label,
    `≤ ${target}×`,
    ratioText(ratios),
    verdict(ratios, target, true),
  ];
  return [
    markdownTable(
      `The ladder's cost: ${
        l.seconds.toFixed(1)
      } s of the 1080p clip, ${rungs}, ${l.costs.bare.length} rounds`,
      [
        "",
        "ffmpeg bare (one run)",
        "runTool (one run, as the hls job)",
        "runTool, one run per rung",
      ],
      [
        ...spreadRows("Wall time", CONTENDERS.map(wall), time),
        ...spreadRows("CPU time", CONTENDERS.map(cpu), time),
        ["Per rung, wall (median)", "", "", perRung((c) => c.wallMs)],
        ["Per rung, CPU (median)", "", "", perRung((c) => c.cpuMs)],
        ...l.costs.bare.map((_, i) => [
          `Round ${i + 1}: wall (CPU)`,
          ...CONTENDERS.map((c) =>
            `${time(l.costs[c][i]!.wallMs)} (${time(l.costs[c][i]!.cpuMs)})`
          ),
        ]),
      ],
    ),
    markdownTable("Ladder targets (median of the per-round ratios)", [
      "",
      "Target",
      "Per round",
      "Median",
    ], [
      target(
        "One run (runTool) / one run per rung, wall time",
        TARGET.oneRunToSeparate,
        byWall.separate,
      ),
      target("Same, CPU time", TARGET.oneRunToSeparate, byCpu.separate),
      target("One run: runTool / bare ffmpeg, wall time", TARGET.runToolToBare, byWall.runTool),
      target("Same, CPU time", TARGET.runToolToBare, byCpu.runTool),
      ["One run bare / one run per rung, wall (no target)", "", ratioText(byWall.bareSeparate), ""],
      ["Same, CPU time (no target)", "", ratioText(byCpu.bareSeparate), ""],
    ]),
  ];
}

// ---------------------------------------------------------------------------

async function startAndUpload(scratch: Scratch, clips: [Clip, Clip]) {
  const bytes = Math.max(...clips.map((c) => c.bytes));
  // The worker as deployed (WORKER_CONCURRENCY blank: the default).
  const server = await startServer(scratch, bytes, {
    publicUrl: true,
    env: { WORKER_CONCURRENCY: "" },
  });
  // The same service with a ladder for every video, for the short clip only.
  const everyLadder = await startServer(scratch, bytes, {
    name: "server-hls-min-0",
    publicUrl: true,
    env: { WORKER_CONCURRENCY: "", HLS_MIN_DURATION: "0" },
  });
  await Promise.all([
    waitReady(`${server.url}/readyz`, server.child),
    waitReady(`${everyLadder.url}/readyz`, everyLadder.child),
  ]);
  const processed = await uploadAll(await signIn(server), clips);
  // After the others, so that its processing does not slow theirs.
  const [hlsForAll] = await uploadAll(await signIn(everyLadder), [clips[1]]);
  if (!hlsForAll?.attachment.hls_url) throw new Error("HLS_MIN_DURATION=0 made no ladder");
  const long = processed.find((p) => p.clip === "long")!;
  if (!long.attachment.hls_url) throw new Error("The long clip has no ladder");
  return { servers: [server, everyLadder] as Server[], processed, hlsForAll };
}

async function main(): Promise<void> {
  const started = performance.now();
  options = readOptions(DEFAULTS);
  const part = options.part;
  if (part !== "playback" && part !== "ladder" && part !== "all") {
    throw new Error(`--part takes playback, ladder or all, not "${part}"`);
  }
  for (const tool of ["curl", "ffmpeg"]) {
    await run(tool, ["-h"]).catch(() => {
      throw new Error(`${tool} not found on the PATH (Debian: apt-get install -y ${tool})`);
    });
  }
  await withScratch(options.keep, async (scratch) => {
    const loadBefore = await loadAverage();
    const clips = await makeClips(scratch.tmp);
    let playback = null;
    const tables: string[] = [];
    if (part !== "ladder") {
      const { processed, hlsForAll } = await startAndUpload(scratch, clips);
      const measured = await measurePlayback(processed, hlsForAll);
      playback = { processed, hlsForAll, ...measured };
      tables.push(
        outputsTable(clips, processed, hlsForAll),
        ...playbackTables(measured.cells, clips, processed),
        targetTable(measured.cells),
      );
    }
    // The servers cost nothing while ffmpeg runs.
    await stopAll(scratch);
    const ladder = part === "playback" ? null : await measureLadder(scratch.tmp, clips[0]);
    if (ladder) tables.push(...ladderTables(ladder));
    const host = await machine(loadBefore, [["ffmpeg", "-version"], ["curl", "-V"]]);
    if (playback) host.chromium = playback.chromium;
    host["run time"] = time(performance.now() - started);
    report(options.json, tables, {
      options,
      clips: clips.map(({ key, seconds, bytes, recipe }) => ({ key, seconds, bytes, recipe })),
      links: LINKS,
      playback,
      ladder,
      machine: host,
    });
  });
}

if (import.meta.main) await runCli(main);
