// deno-lint-ignore-file no-console
/**
 * Benchmark: interactive reads under background load. For each job priority
 * (`JOB_PRIORITY`: idle, nice, normal) a fresh server with its job workers
 * (WORKER_CONCURRENCY's default): wrk reads one attachment's metadata
 * (`GET /api/chat/attachments/:id`) on the idle server, then again while
 * `--uploads` concurrent multipart uploads of `--size-mib` arrive and their
 * jobs (ffmpeg) run; the uploads' errors and times, the server's peak RSS and
 * the read latency against the idle one (target: p50 and p99 within 1.5×).
 * `--upload-slots` repeats each run for each UPLOADS_PER_PROCESS given (the
 * server's default when none is).
 * Then a soak of mixed uploads, stream range reads and metadata reads for
 * `--soak-seconds`, sampling the server's RSS, open descriptors and the p99
 * of the reads of each interval, drawn as an SVG (`--svg`).
 * docs/BENCHMARKS.md says what the figures mean.
 *
 *   deno task bench:load [-- --json] [--uploads 50] [--size-mib 10] [--wrk-seconds 15]
 *     [--connections 8] [--priorities idle,nice,normal] [--upload-slots 4,0] [--soak-seconds 600, 0 for none]
 *     [--sample-seconds 5] [--svg docs/bench/load-soak.svg] [--keep]
 */

import { ffmpeg } from "../tests/_fixtures.ts";
import {
  check,
  curlUpload,
  delay,
  loadAverage,
  machine,
  makeVideo,
  markdownTable,
  MIB,
  mib,
  newMessage,
  readOptions,
  REPO,
  report,
  run,
  runCli,
  type Scratch,
  type Server,
  type Session,
  signIn,
  startServer,
  stopAll,
  table,
  time,
  type Video,
  waitReady,
  withScratch,
} from "./_shared.ts";

/** The target of the issue: loaded read latency (p50 and p99) at most this times the idle one. */
const TARGET_RATIO = 1.5;
/**
 * The clips' duration: 10 MiB in 12 s is about 7 Mb/s, over the rendition
 * policy's 5000 kbit/s, so each upload is transcoded (the heaviest job), as
 * well as thumbnailed and storyboarded.
 */
const CLIP_SECONDS = 12;
/** Distinct clips the uploads cycle through. */
const CLIPS = ["testsrc2", "mandelbrot", "life=ratio=0.3:mold=10"];

/** What wrk reports. */
interface WrkResult {
  p50Ms: number;
  p99Ms: number;
  rate: number;
  requests: number;
  /** Non-2xx answers and socket errors. */
  errors: number;
}

/** One priority's run: idle reads, then reads under the uploads. */
interface PhaseResult {
  priority: string;
  /** UPLOADS_PER_PROCESS of the run ("" for the server's default). */
  slots: string;
  idle: WrkResult;
  loaded: WrkResult;
  /** Reads right after `loaded`, the uploads in, their jobs running. */
  jobs: WrkResult;
  /** Tool processes of the server when `jobs` started. */
  toolsRunning: number;
  uploads: { ok: number; errors: number; firstError?: string; medianMs: number; maxMs: number };
  /** Highest VmRSS sampled during the loaded phase, and VmHWM at its end, in bytes. */
  rssPeak: number;
  hwm: number;
  p50Ratio: number;
  p99Ratio: number;
  jobsP50Ratio: number;
  jobsP99Ratio: number;
}

/** One soak sample. */
interface SoakSample {
  t: number;
  rss: number;
  fds: number;
  /** p99 of the metadata reads that ended in the interval, ms (null without any). */
  p99Ms: number | null;
  reads: number;
  uploads: number;
  ranges: number;
  errors: number;
}

/** "52.3us", "1.20ms", "1.01s" → milliseconds. */
function wrkMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) throw new Error(`wrk latency "${text}"`);
  const value = Number(match[1]);
  return value * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[match[2]!]!;
}

/** Runs wrk on `url` with the bearer token for `seconds`. */
async function wrk(url: string, token: string, seconds: number, connections: number) {
  const out = await check("wrk", [
    "-t2",
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    "-H",
    `Authorization: Bearer ${token}`,
    url,
  ]);
  const latency = (p: string): number => {
    const match = new RegExp(`^\\s*${p}%\\s+(\\S+)`, "m").exec(out);
    if (!match) throw new Error(`no ${p}% in wrk's output:\n${out}`);
    return wrkMs(match[1]!);
  };
  const number = (pattern: RegExp): number => Number(pattern.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const result: WrkResult = {
    p50Ms: latency("50"),
    p99Ms: latency("99"),
    rate: number(/Requests\/sec:\s+([\d.]+)/),
    requests: number(/(\d+) requests in/),
    errors: number(/Non-2xx or 3xx responses: (\d+)/) +
      (socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0),
  };
  return result;
}

/** A `/proc/<pid>/status` field in bytes. */
async function procStatus(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) * 1024;
}

/** Open descriptors of `pid`. */
async function openFds(pid: number): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) count++;
  return count;
}

/** Processes whose parent is `pid` (the tools: setpriv and the others exec, keeping the pid). */
async function children(pid: number): Promise<number> {
  const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`).catch(() => "");
  return text.trim() ? text.trim().split(/\s+/).length : 0;
}

/** Resolves once `pid` has had no child process for 2 s (its jobs are done); at most `ms`. */
async function quiet(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let since = Date.now();
  while (Date.now() < deadline) {
    if (await children(pid) > 0) since = Date.now();
    else if (Date.now() - since >= 2000) return;
    await delay(100);
  }
  throw new Error(`the server still runs tools after ${ms / 1000} s`);
}

/**
 * A 720p clip of lavfi `source`, H.264 at a bitrate that fills most of
 * `bytes`, padded with a `free` box to exactly `bytes` (by makeVideo's way).
 */
async function makeClip(path: string, source: string, bytes: number, seconds: number) {
  const bitrate = Math.floor(bytes * 8 * 0.85 / seconds);
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    `${source.replace(/^(\w+)=?/, "$1=size=1280x720:rate=25:")}`.replace(/:$/, ""),
    "-t",
    String(seconds),
    "-vf",
    // Grain, so that the bitrate is spent on pictures rather than padding.
    "noise=alls=12:allf=t,format=yuv420p",
    ..."-c:v libx264 -preset ultrafast -movflags +faststart -f mp4 -y".split(" "),
    "-b:v",
    String(bitrate),
    "-maxrate",
    String(bitrate),
    "-bufsize",
    String(bitrate),
    path,
  ]);
  const box = bytes - (await Deno.stat(path)).size;
  if (box < 8) throw new Error(`${source}: ${(await Deno.stat(path)).size} bytes, over ${bytes}`);
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, box);
  header.set(new TextEncoder().encode("free"), 4);
  const random = new Uint8Array(box - 8);
  for (let i = 0; i < random.length; i += 65536) {
    crypto.getRandomValues(random.subarray(i, i + 65536));
  }
  await Deno.writeFile(path, header, { append: true });
  await Deno.writeFile(path, random, { append: true });
  const sha256 = (await check("sha256sum", [path])).split(" ")[0]!;
  const video: Video = { path, bytes, sha256 };
  return video;
}

/** Starts a server with job workers at `priority`, ready, with a session. */
async function serve(
  scratch: Scratch,
  name: string,
  priority: string,
  bytes: number,
  slots = "",
) {
  const server = await startServer(scratch, bytes, {
    name,
    publicUrl: true,
    env: {
      JOB_PRIORITY: priority,
      // WORKER_CONCURRENCY's default: the jobs run in the server.
      WORKER_CONCURRENCY: "",
      // One bench user makes every request: no per-user limits in the way.
      RATE_LIMIT_PER_MINUTE: "0",
      MAX_CONCURRENT_UPLOADS: "0",
      MAX_UNFINISHED_UPLOADS: "",
      UPLOADS_PER_PROCESS: slots,
    },
  });
  await waitReady(`${server.url}/readyz`, server.child);
  return { server, session: await signIn(server) };
}

/** Uploads `video` to a new message; the attachment's answer. */
async function upload(session: Session, video: Video) {
  const fields = { message_id: await newMessage(session) };
  const auth = [`Authorization: Bearer ${session.token}`];
  return await curlUpload(`${session.url}/api/chat/videos/upload/`, video, fields, auth);
}

/** The attachment wrk reads: a small video, its jobs done. */
async function target(server: Server, session: Session, small: Video): Promise<string> {
  const { answer } = await upload(session, small);
  await quiet(server.child.process.pid, 300_000);
  return `${session.url}/api/chat/attachments/${answer.id}`;
}

/** A run's column: its JOB_PRIORITY, and its UPLOADS_PER_PROCESS when one was set. */
function setup(priority: string, slots: string): string {
  return `JOB_PRIORITY=${priority}${slots ? `, UPLOADS_PER_PROCESS=${slots}` : ""}`;
}

/** The `q` quantile of `values` (nearest rank); NaN when empty. */
function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function phase(
  scratch: Scratch,
  priority: string,
  videos: Video[],
  small: Video,
  options: {
    uploads: number;
    wrkSeconds: number;
    connections: number;
    bytes: number;
    slots: string;
  },
): Promise<PhaseResult> {
  const name = `${priority}${options.slots ? `-${options.slots}` : ""}`;
  console.error(`${setup(priority, options.slots)}: idle reads`);
  const { server, session } = await serve(
    scratch,
    `server-${name}`,
    priority,
    options.bytes,
    options.slots,
  );
  const pid = server.child.process.pid;
  const url = await target(server, session, small);
  const idle = await wrk(url, session.token, options.wrkSeconds, options.connections);
  console.error(`${setup(priority, options.slots)}: ${options.uploads} uploads and reads`);
  // The messages first, so that the uploads start together.
  const messages = await Promise.all(
    Array.from({ length: options.uploads }, () => newMessage(session)),
  );
  let rssPeak = await procStatus(pid, "VmRSS");
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssPeak = Math.max(rssPeak, await procStatus(pid, "VmRSS"));
      await delay(200);
    }
  })();
  const reads = wrk(url, session.token, options.wrkSeconds, options.connections);
  const auth = [`Authorization: Bearer ${session.token}`];
  const results = await Promise.allSettled(messages.map(async (message_id, i) => {
    const clip = videos[i % videos.length]!;
    // A link of its own: curlUpload keeps the answer beside the file.
    const video = { ...clip, path: `${clip.path}.${name}.${i}.mp4` };
    await Deno.link(clip.path, video.path);
    const started = performance.now();
    await curlUpload(`${session.url}/api/chat/videos/upload/`, video, { message_id }, auth);
    return performance.now() - started;
  }));
  const loaded = await reads;
  // The uploads are in; their jobs still run (a transcode each, two at a time).
  const running = await children(pid);
  console.error(`${setup(priority, options.slots)}: reads while the jobs run`);
  const jobs = await wrk(url, session.token, options.wrkSeconds, options.connections);
  sampling = false;
  await sampler;
  const hwm = await procStatus(pid, "VmHWM");
  await stopAll(scratch);
  const times = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const failed = results.flatMap((r) => r.status === "rejected" ? [String(r.reason)] : []);
  return {
    priority,
    slots: options.slots,
    idle,
    loaded,
    jobs,
    toolsRunning: running,
    uploads: {
      ok: times.length,
      errors: failed.length,
      firstError: failed[0]?.slice(0, 300),
      medianMs: quantile(times, 0.5),
      maxMs: Math.max(...times),
    },
    rssPeak,
    hwm,
    p50Ratio: loaded.p50Ms / idle.p50Ms,
    p99Ratio: loaded.p99Ms / idle.p99Ms,
    jobsP50Ratio: jobs.p50Ms / idle.p50Ms,
    jobsP99Ratio: jobs.p99Ms / idle.p99Ms,
  };
}

/** Mixed uploads, range reads and metadata reads for `seconds`, sampled every `every` s. */
async function soak(
  scratch: Scratch,
  priority: string,
  videos: Video[],
  small: Video,
  options: { seconds: number; every: number; bytes: number },
): Promise<SoakSample[]> {
  console.error(`soak (JOB_PRIORITY=${priority}): ${options.seconds} s`);
  const { server, session } = await serve(scratch, "server-soak", priority, options.bytes);
  const pid = server.child.process.pid;
  const url = await target(server, session, small);
  const headers = { authorization: `Bearer ${session.token}` };
  const streams: string[] = [];
  const sizes = new Map<string, number>();
  const end = Date.now() + options.seconds * 1000;
  let latencies: number[] = [];
  const counts = { uploads: 0, ranges: 0, errors: 0 };
  const loops: Promise<void>[] = [];
  // Two uploaders, one after the other each, a second apart.
  for (let i = 0; i < 2; i++) {
    loops.push((async () => {
      for (let n = i; Date.now() < end; n++) {
        try {
          const { answer } = await upload(session, videos[n % videos.length]!);
          counts.uploads++;
          if (answer.stream_url) streams.push(String(answer.stream_url));
        } catch (error) {
          counts.errors++;
          console.error(String(error).slice(0, 300));
        }
        await delay(1000);
      }
    })());
  }
  // Four range readers: 256 KiB at a random offset of a random upload.
  for (let i = 0; i < 4; i++) {
    loops.push((async () => {
      while (Date.now() < end) {
        const stream = streams[Math.floor(Math.random() * streams.length)];
        if (!stream) {
          await delay(200);
          continue;
        }
        // The stream is the stripped file (no padding): its size from the first answer.
        const size = sizes.get(stream) ?? 256 * 1024;
        const start = Math.floor(Math.random() * Math.max(1, size - 256 * 1024));
        const response = await fetch(stream, {
          headers: { range: `bytes=${start}-${start + 256 * 1024 - 1}` },
        }).catch(() => null);
        await response?.arrayBuffer();
        const total = /\/(\d+)$/.exec(response?.headers.get("content-range") ?? "")?.[1];
        if (total) sizes.set(stream, Number(total));
        if (response?.status === 206) counts.ranges++;
        // The rendition, once made, replaces the original behind the stream URL: a smaller file.
        else if (response?.status === 416) sizes.delete(stream);
        else {
          counts.errors++;
          if (counts.errors <= 3) console.error(`range read: ${response?.status ?? "no answer"}`);
        }
      }
    })());
  }
  // Four metadata readers, timed.
  for (let i = 0; i < 4; i++) {
    loops.push((async () => {
      while (Date.now() < end) {
        const started = performance.now();
        const response = await fetch(url, { headers }).catch(() => null);
        await response?.arrayBuffer();
        if (response?.ok) latencies.push(performance.now() - started);
        else {
          counts.errors++;
          if (counts.errors <= 3) {
            console.error(`metadata read: ${response?.status ?? "no answer"}`);
          }
        }
      }
    })());
  }
  const samples: SoakSample[] = [];
  const started = Date.now();
  let last = { ...counts };
  while (Date.now() < end) {
    await delay(Math.min(options.every * 1000, Math.max(0, end - Date.now())));
    const window = latencies;
    latencies = [];
    const p99 = quantile(window, 0.99);
    samples.push({
      t: Math.round((Date.now() - started) / 1000),
      rss: await procStatus(pid, "VmRSS"),
      fds: await openFds(pid),
      p99Ms: Number.isNaN(p99) ? null : p99,
      reads: window.length,
      uploads: counts.uploads - last.uploads,
      ranges: counts.ranges - last.ranges,
      errors: counts.errors - last.errors,
    });
    last = { ...counts };
    const s = samples.at(-1)!;
    console.error(
      `${s.t} s: RSS ${mib(s.rss)}, ${s.fds} fds, p99 ${s.p99Ms?.toFixed(0)} ms, ` +
        `${s.reads} reads, ${s.uploads} uploads, ${s.ranges} ranges, ${s.errors} errors`,
    );
  }
  await Promise.all(loops);
  await stopAll(scratch);
  return samples;
}

/** Three stacked line plots (RSS, descriptors, p99) against time, as SVG. */
function plot(samples: SoakSample[], title: string): string {
  const width = 720;
  const panel = 150;
  const left = 70;
  const right = 20;
  const top = 40;
  const gap = 40;
  const series: { label: string; unit: string; values: (number | null)[]; color: string }[] = [
    { label: "RSS", unit: "MiB", values: samples.map((s) => s.rss / MIB), color: "#1f77b4" },
    { label: "open descriptors", unit: "", values: samples.map((s) => s.fds), color: "#2ca02c" },
    {
      label: "metadata read p99",
      unit: "ms",
      values: samples.map((s) => s.p99Ms),
      color: "#d62728",
    },
  ];
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const height = top + series.length * (panel + gap) + 10;
  const esc = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">${esc(title)}</text>`,
  ];
  series.forEach((s, i) => {
    const y0 = top + i * (panel + gap);
    const present = s.values.filter((v): v is number => v !== null);
    const max = Math.max(1, ...present) * 1.1;
    const x = (t: number) => left + (t / tMax) * (width - left - right);
    const y = (v: number) => y0 + panel - (v / max) * panel;
    parts.push(
      `<rect x="${left}" y="${y0}" width="${width - left - right}" height="${panel}" ` +
        `fill="none" stroke="#999"/>`,
      `<text x="${left + 5}" y="${y0 + 14}">${esc(s.label)}${s.unit ? ` (${s.unit})` : ""}</text>`,
    );
    for (const fraction of [0, 0.5, 1]) {
      const value = max * fraction;
      parts.push(
        `<text x="${left - 5}" y="${y(value) + 4}" text-anchor="end">${
          value.toFixed(value < 10 ? 1 : 0)
        }</text>`,
      );
    }
    const points = samples.flatMap((sample, j) => {
      const v = s.values[j];
      return v === null || v === undefined ? [] : [`${x(sample.t).toFixed(1)},${y(v).toFixed(1)}`];
    });
    parts.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${points.join(" ")}"/>`,
    );
    parts.push(
      `<text x="${width - right}" y="${y0 + panel + 14}" text-anchor="end">${tMax} s</text>`,
      `<text x="${left}" y="${y0 + panel + 14}">0 s</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

async function main(): Promise<void> {
  const options = readOptions({
    uploads: 50,
    "size-mib": 10,
    "wrk-seconds": 15,
    connections: 8,
    priorities: "idle,nice,normal",
    "upload-slots": "",
    "soak-seconds": 600,
    "sample-seconds": 5,
    "soak-priority": "",
    svg: "docs/bench/load-soak.svg",
  }, ["soak-seconds"]);
  const loadBefore = await loadAverage();
  const date = new Date().toISOString();
  const bytes = options["size-mib"] * MIB;
  const priorities = options.priorities.split(",").filter(Boolean);
  const soakPriority = options["soak-priority"] || priorities[0]!;
  const figures = await withScratch(options.keep, async (scratch) => {
    console.error(`making ${CLIPS.length} ${options["size-mib"]} MiB clips`);
    const videos = await Promise.all(
      CLIPS.map((source, i) =>
        makeClip(`${scratch.tmp}/clip-${i}.mp4`, source, bytes, CLIP_SECONDS)
      ),
    );
    const small = await makeVideo(`${scratch.tmp}/small.mp4`, MIB);
    const phases: PhaseResult[] = [];
    for (const priority of priorities) {
      for (const slots of options["upload-slots"].split(",")) {
        phases.push(
          await phase(scratch, priority, videos, small, {
            uploads: options.uploads,
            wrkSeconds: options["wrk-seconds"],
            connections: options.connections,
            bytes,
            slots: slots.trim(),
          }),
        );
      }
    }
    const samples = options["soak-seconds"] > 0
      ? await soak(scratch, soakPriority, videos, small, {
        seconds: options["soak-seconds"],
        every: options["sample-seconds"],
        bytes,
      })
      : [];
    return { phases, samples };
  });
  const { phases, samples } = figures;
  const command = `deno task bench:load${Deno.args.length ? ` ${Deno.args.join(" ")}` : ""}`;
  if (samples.length > 0 && options.svg) {
    const path = options.svg.startsWith("/") ? options.svg : `${REPO}/${options.svg}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(
      path,
      plot(
        samples,
        `Soak, JOB_PRIORITY=${soakPriority}, ${options["soak-seconds"]} s, ${date.slice(0, 10)}`,
      ),
    );
    // As `deno fmt --check` wants it, when it is in the repository.
    await run(Deno.execPath(), ["fmt", path]);
    console.error(`wrote ${path}`);
  }
  const ms = (value: number) => value < 10 ? `${value.toFixed(2)} ms` : time(value);
  const verdict = (ratio: number) =>
    `${ratio.toFixed(2)}× ${ratio <= TARGET_RATIO ? "met" : "not met"}`;
  const header = ["", ...phases.map((p) => setup(p.priority, p.slots))];
  const rows = [
    ["idle: p50", ...phases.map((p) => ms(p.idle.p50Ms))],
    ["idle: p99", ...phases.map((p) => ms(p.idle.p99Ms))],
    ["idle: requests/s", ...phases.map((p) => p.idle.rate.toFixed(0))],
    [`${options.uploads} uploads: p50`, ...phases.map((p) => ms(p.loaded.p50Ms))],
    [`${options.uploads} uploads: p99`, ...phases.map((p) => ms(p.loaded.p99Ms))],
    [`${options.uploads} uploads: requests/s`, ...phases.map((p) => p.loaded.rate.toFixed(0))],
    [`p50 loaded / idle (≤ ${TARGET_RATIO}×)`, ...phases.map((p) => verdict(p.p50Ratio))],
    [`p99 loaded / idle (≤ ${TARGET_RATIO}×)`, ...phases.map((p) => verdict(p.p99Ratio))],
    ["then jobs only: p50", ...phases.map((p) => ms(p.jobs.p50Ms))],
    ["then jobs only: p99", ...phases.map((p) => ms(p.jobs.p99Ms))],
    ["then jobs only: requests/s", ...phases.map((p) => p.jobs.rate.toFixed(0))],
    [`p50 jobs / idle (≤ ${TARGET_RATIO}×)`, ...phases.map((p) => verdict(p.jobsP50Ratio))],
    [`p99 jobs / idle (≤ ${TARGET_RATIO}×)`, ...phases.map((p) => verdict(p.jobsP99Ratio))],
    ["tool processes then", ...phases.map((p) => String(p.toolsRunning))],
    [
      "read errors",
      ...phases.map((p) => String(p.idle.errors + p.loaded.errors + p.jobs.errors)),
    ],
    ["upload errors", ...phases.map((p) => String(p.uploads.errors))],
    ["upload time, median", ...phases.map((p) => time(p.uploads.medianMs))],
    ["upload time, max", ...phases.map((p) => time(p.uploads.maxMs))],
    ["server RSS, peak sampled", ...phases.map((p) => mib(p.rssPeak))],
    ["server VmHWM", ...phases.map((p) => mib(p.hwm))],
  ];
  const title =
    `${options.uploads} concurrent ${
      options["size-mib"]
    } MiB uploads, wrk -c${options.connections} ` +
    `${options["wrk-seconds"]} s on GET /api/chat/attachments/:id`;
  const soakRows = samples.length === 0 ? [] : (() => {
    const p99s = samples.flatMap((s) => s.p99Ms === null ? [] : [s.p99Ms]);
    const third = Math.max(1, Math.floor(samples.length / 3));
    const first = samples.slice(0, third);
    const lastThird = samples.slice(-third);
    const avg = (list: SoakSample[], f: (s: SoakSample) => number) =>
      list.reduce((sum, s) => sum + f(s), 0) / list.length;
    return [
      ["RSS, first third (mean)", mib(avg(first, (s) => s.rss))],
      ["RSS, last third (mean)", mib(avg(lastThird, (s) => s.rss))],
      ["RSS, max", mib(Math.max(...samples.map((s) => s.rss)))],
      ["open fds, first third (mean)", avg(first, (s) => s.fds).toFixed(1)],
      ["open fds, last third (mean)", avg(lastThird, (s) => s.fds).toFixed(1)],
      ["open fds, max", String(Math.max(...samples.map((s) => s.fds)))],
      ["read p99 per interval, median", ms(quantile(p99s, 0.5))],
      ["read p99 per interval, max", ms(Math.max(...p99s))],
      [
        "uploads / range reads / metadata reads",
        [
          samples.reduce((n, s) => n + s.uploads, 0),
          samples.reduce((n, s) => n + s.ranges, 0),
          samples.reduce((n, s) => n + s.reads, 0),
        ].join(" / "),
      ],
      ["errors", String(samples.reduce((n, s) => n + s.errors, 0))],
    ];
  })();
  const soakTitle = `Soak, JOB_PRIORITY=${soakPriority}: ${
    options["soak-seconds"]
  } s, sampled every ${options["sample-seconds"]} s`;
  const host = await machine(loadBefore, [["ffmpeg", "-version"], ["wrk", "-v"]]);
  const tables = [
    table(title, header, rows),
    ...(soakRows.length ? [table(soakTitle, ["", "value"], soakRows)] : []),
    markdownTable(title, header, rows),
    ...(soakRows.length ? [markdownTable(soakTitle, ["", "value"], soakRows)] : []),
    `date: ${date}\ncommand: ${command}`,
  ];
  report(options.json, tables, {
    date,
    command,
    options,
    phases,
    samples,
    machine: host,
  });
  const failed = phases.some((p) => p.uploads.errors > 0);
  if (failed) console.error(phases.map((p) => p.uploads.firstError).filter(Boolean).join("\n"));
}

if (import.meta.main) await runCli(main);
