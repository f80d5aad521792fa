// deno-lint-ignore-file no-console
/**
 * Benchmark: one ~100 MB multipart upload, this server (A) against a minimal
 * Node `http` + busboy server (B, bench/peer_node_busboy.mjs) doing the same
 * streaming work minus ffprobe and the database; and the same file as a tus
 * upload in 5 MiB PATCHes (C: another process of this server, driven by
 * tus-js-client in bench/tus_client.ts), against A.
 *
 *   deno task bench:upload                 print the table
 *   deno task bench:upload -- --write      also update docs/BENCHMARKS.md
 *
 * Options: --runs N (rounds of one upload per contender, default 5), --warmup
 * N (unmeasured rounds first, default 0: a warm-up would hide the first
 * upload's growth, since freed memory stays in the process), --size-mib N
 * (default 100), --keep (leave the temporary directory behind).
 *
 * The video is a few seconds of H.264 from ffmpeg's lavfi `testsrc2` with
 * `+faststart`, padded with an ISO-BMFF `free` box to the target size, so it
 * stays a valid file that ffprobe reads. Each round uploads C, A, B: A and B
 * with curl, timed from the bench (curl's process wall time) and by curl
 * (`time_total`); C with tus-js-client, which times itself from the creation
 * POST to the final answer. The receiving server's VmRSS is sampled from /proc
 * every ~10 ms.
 */

import { sha256File } from "../lib/core/hash.ts";
import {
  apiSession,
  capture,
  type Child,
  type CommonOptions,
  curlUpload,
  delay,
  DOC_PATH,
  freePort,
  loadAverage,
  logTail,
  type Machine,
  machineInfo,
  machineMarkdown,
  machineSummary,
  markdownTable,
  met,
  MIB,
  parseArgs,
  postMessage,
  prepareVideo,
  ratioText,
  REPO,
  runCli,
  spawn,
  startServer,
  stats,
  throughput,
  uploadAnswer,
  uploadLimit,
  versionLine,
  waitReady,
  wholeNumber,
  withScratch,
  writeSection,
} from "./_shared.ts";
import type { TusClientResult } from "./tus_client.ts";

const SECTION_TITLE = "Upload (multipart and tus, 100 MB)";
/** The section's title before tus joined it, renamed in place so `--write` replaces it. */
const OLD_SECTION_TITLE = "Upload (multipart, 100 MB)";
const COMMAND = "deno task bench:upload -- --write";
const TARGET_RSS_GROWTH_BYTES = 64 * MIB;
const TARGET_RATIO = 1.2;
const SAMPLE_INTERVAL_MS = 10;
const TUS_CHUNK_MIB = 5;
/** TUS_TOKEN, then what graceful-fs (loaded by tus-js-client's node build) reads. */
const TUS_CLIENT_ENV = "TUS_TOKEN,GRACEFUL_FS_PLATFORM,NODE_DEBUG,TEST_GRACEFUL_FS_GLOBAL_PATCH";

interface Options extends CommonOptions {
  runs: number;
  warmup: number;
  sizeMiB: number;
}

/** The receiving server's memory during one upload, in bytes. */
interface Rss {
  rssBefore: number;
  rssPeak: number;
  /** Peak RSS from VmHWM after resetting it (null where the kernel does not allow the reset). */
  hwmPeak: number | null;
  samples: number;
}

/** One multipart upload with curl. */
interface Sample extends Rss {
  /** Wall time of the curl process, in milliseconds. */
  wallMs: number;
  /** curl's own `time_total`, in milliseconds. */
  curlMs: number;
}

/** One tus upload with bench/tus_client.ts. */
interface TusSample extends Rss {
  /** The client's own time from the creation POST to the final answer, in milliseconds. */
  clientMs: number;
  /** The final PATCH alone: it carries the last chunk and waits for the attachment. */
  lastMs: number;
  /** The PATCHes before the final one, median. */
  patchMs: number;
  /** Wall time of the client process, Deno's start-up included, in milliseconds. */
  processMs: number;
  requests: Record<string, number>;
}

interface Target {
  name: string;
  uploadUrl: string;
  pid: number;
  headers: string[];
  /** Makes the form fields sent before the file (for A: a fresh message each time). */
  fields: () => Promise<Record<string, string>>;
}

/** This server's tus endpoint, as tus-js-client uploads to it. */
interface TusTarget {
  name: string;
  endpoint: string;
  pid: number;
  token: string;
  /** A fresh message for each upload. */
  messageId: () => Promise<string>;
}

/** The shared machine facts plus node, which runs the peer, and the tus client's version. */
interface UploadMachine extends Machine {
  node: string;
  tusClient: string;
}

function parseOptions(args: string[]): Options {
  const options: Options = { runs: 5, warmup: 0, sizeMiB: 100, write: false, keep: false };
  parseArgs(args, options, (arg, value) => {
    if (arg === "--runs") options.runs = wholeNumber(arg, value(), 1);
    else if (arg === "--warmup") options.warmup = wholeNumber(arg, value(), 0);
    else if (arg === "--size-mib") options.sizeMiB = wholeNumber(arg, value(), 2);
    else return false;
    return true;
  });
  if (options.write && options.sizeMiB !== 100) {
    throw new Error("--write records the 100 MiB figures only; drop --size-mib");
  }
  return options;
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

async function upload(
  sampler: RssSampler,
  target: Target,
  videoPath: string,
  expectedSha256: string,
  expectedSize: number,
  responsePath: string,
): Promise<Sample> {
  const fields = await target.fields();
  // Let the previous upload's garbage and ffprobe settle before the baseline.
  await delay(300);
  const before = await sampler.start(target.pid);
  const sent = await curlUpload(target.uploadUrl, videoPath, responsePath, target.headers, fields);
  const after = await sampler.stop();
  await uploadAnswer(target.name, sent, responsePath, expectedSize, expectedSha256);
  return {
    wallMs: sent.wallMs,
    curlMs: sent.curlMs,
    rssBefore: before.rss,
    rssPeak: after.peak,
    hwmPeak: before.hwmReset ? after.hwm : null,
    samples: after.samples,
  };
}

/** One tus upload of `videoPath` by bench/tus_client.ts, checked like a multipart answer. */
async function uploadTus(
  sampler: RssSampler,
  target: TusTarget,
  videoPath: string,
  expectedSha256: string,
  expectedSize: number,
): Promise<TusSample> {
  const messageId = await target.messageId();
  await delay(300);
  const before = await sampler.start(target.pid);
  const started = performance.now();
  const out = await capture(Deno.execPath(), [
    "run",
    `--allow-net=${new URL(target.endpoint).host}`,
    `--allow-read=${videoPath}`,
    `--allow-env=${TUS_CLIENT_ENV}`,
    `${REPO}/bench/tus_client.ts`,
    target.endpoint,
    videoPath,
    messageId,
    String(TUS_CHUNK_MIB),
  ], { TUS_TOKEN: target.token, NO_COLOR: "1" });
  const processMs = performance.now() - started;
  const after = await sampler.stop();
  if (!out.success) throw new Error(`${target.name}: tus_client.ts failed:\n${out.stderr}`);
  const result = JSON.parse(out.stdout) as TusClientResult;
  const { answer } = result;
  if (result.status !== 200 || answer.file_size !== expectedSize) {
    throw new Error(
      `${target.name}: the final PATCH answered ${result.status}: ${
        JSON.stringify(answer).slice(0, 500)
      }`,
    );
  }
  if (answer.sha256 !== expectedSha256) {
    throw new Error(
      `${target.name}: the server saw sha256 ${answer.sha256}; sent sha256 ${expectedSha256}`,
    );
  }
  const patches = result.requestMs.slice(result.requests.POST ?? 0, -1);
  return {
    clientMs: result.ms,
    lastMs: result.requestMs.at(-1) ?? 0,
    patchMs: patches.length ? stats(patches).median : 0,
    processMs,
    requests: result.requests,
    rssBefore: before.rss,
    rssPeak: after.peak,
    hwmPeak: before.hwmReset ? after.hwm : null,
    samples: after.samples,
  };
}

/**
 * A SHA-256 pass over `path` as lib/uploads/resumable_uploads.ts makes one on
 * a finished tus upload (`sha256File` of lib/core/hash.ts); the median of
 * `runs` passes, in milliseconds.
 */
async function hashPass(path: string, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await sha256File(path);
    times.push(performance.now() - started);
  }
  return stats(times).median;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

function milliseconds(ms: number): string {
  return `${ms.toFixed(0)} ms`;
}

function growth(sample: Rss): number {
  return Math.max(0, sample.rssPeak - sample.rssBefore);
}

function hwmGrowth(sample: Rss): number | null {
  return sample.hwmPeak === null ? null : Math.max(0, sample.hwmPeak - sample.rssBefore);
}

interface Report {
  table: string;
  runs: string;
  tusTable: string;
  tusRuns: string;
  verdict: string;
  /** The tus comparison's medians, for the section's prose. */
  tus: {
    ratio: number;
    requests: { total: number; each: string };
    lastMs: number;
    patchMs: number;
  };
}

/** "n/a" where the kernel did not allow the VmHWM reset, else the largest growth. */
function hwmText(samples: Rss[]): string {
  const values = samples.map(hwmGrowth);
  return values.some((v) => v === null) ? "n/a" : mib(Math.max(...values as number[]));
}

/** The highest peak over all runs minus the RSS before the first. */
function totalGrowth(samples: Rss[]): number {
  return Math.max(0, Math.max(...samples.map((s) => s.rssPeak)) - samples[0]!.rssBefore);
}

/** 21 and "1 POST, 20 PATCH" */
function requestCount(requests: Record<string, number>): { total: number; each: string } {
  const total = Object.values(requests).reduce((sum, n) => sum + n, 0);
  const each = Object.entries(requests).map(([method, n]) => `${n} ${method}`).join(", ");
  return { total, each };
}

/** What the tus path adds to an upload, from the medians. */
function tusProse(tus: Report["tus"], hashMs: number): string {
  const { total, each } = tus.requests;
  return `At the median tus takes ${tus.ratio.toFixed(2)}× multipart's time. What it adds: ` +
    `${total} requests (${each}) instead of one, each a round trip through authentication, ` +
    `a database lookup and the file store (median ${milliseconds(tus.patchMs)} for a ` +
    `${TUS_CHUNK_MIB} MiB \`PATCH\` before the last); and a SHA-256 pass over the finished file ` +
    `before the last answer, where multipart hashes while it streams. The last \`PATCH\` takes ` +
    `a median ${milliseconds(tus.lastMs)}, ${milliseconds(tus.lastMs - tus.patchMs)} more than ` +
    `one before it, for that pass, ffprobe, the database transaction and the move into storage; ` +
    `the same pass (node:crypto over the file's stream, as \`lib/resumable_uploads.ts\` does ` +
    `it) takes a median ${milliseconds(hashMs)} in the bench process.`;
}

function report(a: Sample[], b: Sample[], c: TusSample[], fileBytes: number): Report {
  const timeA = stats(a.map((s) => s.wallMs));
  const timeB = stats(b.map((s) => s.wallMs));
  const ratios = a.map((s, i) => s.wallMs / b[i]!.wallMs);
  const ratio = stats(ratios);
  const growthA = Math.max(...a.map(growth));
  const growthB = Math.max(...b.map(growth));
  const growthC = Math.max(...c.map(growth));
  const totalA = totalGrowth(a);
  const totalB = totalGrowth(b);
  const totalC = totalGrowth(c);
  const table = markdownTable(["", "This server (Deno + Hono)", "Peer (Node `http` + busboy)"], [
    ["Wall time, median", seconds(timeA.median), seconds(timeB.median)],
    ["Wall time, min", seconds(timeA.min), seconds(timeB.min)],
    ["Wall time, max", seconds(timeA.max), seconds(timeB.max)],
    [
      "Throughput at the median",
      throughput(fileBytes, timeA.median),
      throughput(fileBytes, timeB.median),
    ],
    ["RSS before the first measured upload", mib(a[0]!.rssBefore), mib(b[0]!.rssBefore)],
    ["Peak RSS growth during an upload (max over runs)", mib(growthA), mib(growthB)],
    ["Same, from VmHWM (kernel peak)", hwmText(a), hwmText(b)],
    ["RSS growth over all runs (highest peak − RSS before the first)", mib(totalA), mib(totalB)],
    ["Ratio this server / peer, per pair", ratioText(ratio), ""],
  ]);
  const runs = markdownTable(
    ["Pair", "This server", "RSS growth", "Peer", "RSS growth", "Ratio"],
    a.map((s, i) => [
      String(i + 1),
      seconds(s.wallMs),
      mib(growth(s)),
      seconds(b[i]!.wallMs),
      mib(growth(b[i]!)),
      `${ratios[i]!.toFixed(2)}×`,
    ]),
    "right",
  );

  // tus against multipart, both timed by their client.
  const curlA = stats(a.map((s) => s.curlMs));
  const timeC = stats(c.map((s) => s.clientMs));
  const tusRatios = c.map((s, i) => s.clientMs / a[i]!.curlMs);
  const tusRatio = stats(tusRatios);
  const lastC = stats(c.map((s) => s.lastMs));
  const patchC = stats(c.map((s) => s.patchMs));
  const range = (s: { min: number; max: number }): string =>
    `${seconds(s.min)} – ${seconds(s.max)}`;
  const requests = requestCount(c[0]!.requests);
  const tusTable = markdownTable([
    "",
    "Multipart (`POST …/upload/`, curl)",
    `tus (\`…/uploads/\`, tus-js-client, ${TUS_CHUNK_MIB} MiB PATCHes)`,
  ], [
    ["Time measured by the client, median", seconds(curlA.median), seconds(timeC.median)],
    ["Same, min – max", range(curlA), range(timeC)],
    [
      "Throughput at the median",
      throughput(fileBytes, curlA.median),
      throughput(fileBytes, timeC.median),
    ],
    ["Requests", "1", `${requests.total} (${requests.each})`],
    ["One PATCH before the last, median (its chunk only)", "", milliseconds(patchC.median)],
    [
      "The last PATCH, median (last chunk, hash, ffprobe, database, move)",
      "",
      milliseconds(
        lastC.median,
      ),
    ],
    [
      "Client process wall time, median (start-up included)",
      seconds(stats(a.map((s) => s.wallMs)).median),
      seconds(stats(c.map((s) => s.processMs)).median),
    ],
    ["RSS before the first measured upload", mib(a[0]!.rssBefore), mib(c[0]!.rssBefore)],
    ["Peak RSS growth during an upload (max over runs)", mib(growthA), mib(growthC)],
    ["Same, from VmHWM (kernel peak)", hwmText(a), hwmText(c)],
    ["RSS growth over all runs (highest peak − RSS before the first)", mib(totalA), mib(totalC)],
    ["Ratio tus / multipart, per round", "", ratioText(tusRatio)],
  ]);
  const tusRuns = markdownTable(
    ["Round", "Multipart", "RSS growth", "tus", "Last PATCH", "RSS growth", "tus / multipart"],
    c.map((s, i) => [
      String(i + 1),
      seconds(a[i]!.curlMs),
      mib(growth(a[i]!)),
      seconds(s.clientMs),
      milliseconds(s.lastMs),
      mib(growth(s)),
      `${tusRatios[i]!.toFixed(2)}×`,
    ]),
    "right",
  );

  const rssOk = Math.max(growthA, totalA) < TARGET_RSS_GROWTH_BYTES;
  const tusRssOk = Math.max(growthC, totalC) < TARGET_RSS_GROWTH_BYTES;
  const timeOk = ratio.median <= TARGET_RATIO;
  const verdict = [
    `- Server RSS growth under 64 MB, multipart: ${met(rssOk)} ` +
    `(max ${mib(growthA)} during one upload, ${mib(totalA)} over all runs).`,
    `- Server RSS growth under 64 MB, tus: ${met(tusRssOk)} ` +
    `(max ${mib(growthC)} during one upload, ${mib(totalC)} over all runs).`,
    `- Multipart upload time within ${TARGET_RATIO}× of the peer: ${met(timeOk)} ` +
    `(median ratio ${ratio.median.toFixed(2)}×).`,
    `- tus upload time (no target; for information): ${tusRatio.median.toFixed(2)}× multipart ` +
    `at the median.`,
  ].join("\n");
  return {
    table,
    runs,
    tusTable,
    tusRuns,
    verdict,
    tus: { ratio: tusRatio.median, requests, lastMs: lastC.median, patchMs: patchC.median },
  };
}

async function machine(): Promise<UploadMachine> {
  return {
    ...await machineInfo(),
    node: await versionLine("node", ["--version"]),
    tusClient: await tusClientVersion(),
  };
}

/** The versions after Deno's, in the order the docs list them. */
function tools(host: UploadMachine): string[] {
  return [`Node ${host.node}`, host.ffmpeg, host.curl, `tus-js-client ${host.tusClient}`];
}

/** The version of tus-js-client that deno.json's import map resolves to (from the lock file). */
async function tusClientVersion(): Promise<string> {
  const lock = await Deno.readTextFile(`${REPO}/deno.lock`).catch(() => "{}");
  const specifiers = (JSON.parse(lock) as { specifiers?: Record<string, string> }).specifiers ?? {};
  const key = Object.keys(specifiers).find((k) => k.startsWith("npm:tus-js-client@"));
  return key ? specifiers[key]!.split("_")[0]! : "?";
}

function section(
  result: Report,
  host: UploadMachine,
  options: Options,
  fileBytes: number,
  videoInfo: string,
  load: { before: string; after: string },
  hashMs: number,
): string {
  const date = new Date().toISOString().slice(0, 10);
  const chunks = Math.ceil(fileBytes / (TUS_CHUNK_MIB * MIB));
  return `## ${SECTION_TITLE}

One multipart upload of a ${(fileBytes / MIB).toFixed(0)} MiB (${fileBytes} bytes) MP4 to
\`POST /api/chat/videos/upload/\`, against a minimal Node \`http\` + busboy server
(\`bench/peer_node_busboy.mjs\`) doing the same streaming work minus ffprobe and the database:
the file part is streamed to a temporary file, counted and hashed with SHA-256, then moved into
place and answered with 201 JSON. And the same file as a resumable upload (tus 1.0) to
\`/api/chat/videos/uploads/\` in ${TUS_CHUNK_MIB} MiB chunks: one creation \`POST\`, then
${chunks} \`PATCH\`es, the last of which answers 200 with the Attachment JSON.

Reproduce with:

\`\`\`sh
${COMMAND}
\`\`\`

Measured ${date}: ${options.runs} rounds, each a tus upload, a multipart upload to this server
and one to the peer, ${
    options.warmup === 0
      ? "starting with fresh processes (the first upload of each is measured)"
      : `after ${options.warmup} unmeasured warm-up round(s)`
  }. Load average (\`/proc/loadavg\`, 1 min) ${load.before} before the run, ${load.after} after
it: other work on the machine shows here.

### Multipart: this server against the peer

${result.table}

Per pair:

${result.runs}

### tus against multipart

Both timed by their client: curl's \`time_total\` for multipart, tus-js-client from sending the
creation \`POST\` to the last \`PATCH\`'s answer.

${result.tusTable}

Per round:

${result.tusRuns}

${tusProse(result.tus, hashMs)}

Targets:

${result.verdict}

Machine:

${machineMarkdown(host, tools(host))}

How it is measured:

- The video is ${videoInfo}, made in a second by ffmpeg's lavfi \`testsrc2\` with
  \`-movflags +faststart\`, then padded with one ISO-BMFF \`free\` box of random bytes to the
  target size. ffprobe still reads it, and every upload must answer with the file's size and
  SHA-256.
- All servers listen on 127.0.0.1; the file and the data directories are on the same local
  disk. This server runs with \`WORKER_CONCURRENCY=0\` (no thumbnail jobs) and
  \`MAX_UPLOAD_BYTES\` of 200 MiB, as two processes: one takes the multipart uploads, the other
  the tus uploads, so each path's first upload lands in a fresh process and neither reuses
  memory the other freed.
- Each multipart upload is one \`curl -F message_id=… -F file=@video.mp4\` (with \`Expect:\`
  cleared on both servers), timed as the wall time of the curl process (this server against the
  peer) and by curl's \`time_total\` (against tus). This server's time includes the ffprobe run,
  the database transaction and the move into storage; the message is created before the clock
  starts.
- Each tus upload is one run of \`bench/tus_client.ts\`: tus-js-client ${host.tusClient}
  (the reference JavaScript client) under \`deno run\` with network access to the server's
  address, read access to the video and nothing else, given the file as an \`fs.ReadStream\` and
  \`chunkSize\` ${TUS_CHUNK_MIB} MiB, so each \`PATCH\` body is read from disk as it is sent. It
  prints its own time from the creation \`POST\` to the last answer, leaving out Deno's
  start-up; the process wall time is in the table for reference. The message is created before
  the clock starts; the \`POST\` carries no bytes.
- RSS is the receiving process's \`VmRSS\` from \`/proc/<pid>/status\`, sampled every ~10 ms
  (by \`bench/rss_sampler.mjs\` under node, as Deno reads \`/proc\` only with \`--allow-all\`);
  growth is the peak during the upload minus the value just before it. The VmHWM row resets the
  kernel's peak (\`/proc/<pid>/clear_refs\`) before each upload and reads it afterwards, which
  catches peaks shorter than the sampling interval. ffprobe and the clients are other processes
  and are not counted.
- Memory freed after an upload mostly stays in the process, so later uploads reuse it and show
  less growth than the first: the first upload into a fresh process and the growth over all runs
  are the figures to compare with the target. The target is read as 64 MiB.
- Shared or virtual machines are noisy: quote the medians and the per-pair ratio, not single runs
  or the minimum/maximum.
`;
}

/**
 * Renames the section's old heading in docs/BENCHMARKS.md, so `writeSection`
 * replaces it in place rather than appending a second Upload section.
 */
async function renameOldSection(): Promise<void> {
  const doc = await Deno.readTextFile(DOC_PATH).catch(() => "");
  const old = `\n## ${OLD_SECTION_TITLE}\n`;
  if (doc.includes(old)) {
    await Deno.writeTextFile(DOC_PATH, doc.replace(old, `\n## ${SECTION_TITLE}\n`));
  }
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const fileBytes = options.sizeMiB * MIB;
  await withScratch("offchat-bench-upload-", options.keep, async ({ tmp, children }) => {
    const videoPath = `${tmp}/video.mp4`;
    const video = await prepareVideo(tmp, videoPath, fileBytes);

    const server = await startServer({ tmp, children }, fileBytes, { publicUrl: false });
    const tusServer = await startServer({ tmp, children }, fileBytes, {
      publicUrl: false,
      dataDir: `${tmp}/server-tus-data`,
      name: "server-tus",
    });
    const peerPort = freePort();
    const peer = await spawn("peer", "node", [`${REPO}/bench/peer_node_busboy.mjs`], {
      PEER_PORT: String(peerPort),
      PEER_HOST: "127.0.0.1",
      PEER_DIR: `${tmp}/peer-data`,
      MAX_UPLOAD_BYTES: uploadLimit(fileBytes),
      BUSBOY_PATH: `${REPO}/node_modules/busboy`,
    }, `${tmp}/peer.log`);
    children.push(peer);
    const sampler = startSampler(`${tmp}/sampler.log`);
    children.push(sampler.child);

    const peerUrl = `http://127.0.0.1:${peerPort}`;
    await Promise.all([
      waitReady(`${server.url}/readyz`, server.child),
      waitReady(`${tusServer.url}/readyz`, tusServer.child),
      waitReady(`${peerUrl}/healthz`, peer),
    ]);
    console.error(
      `server pid ${server.child.process.pid} at ${server.url}, ` +
        `tus server pid ${tusServer.child.process.pid} at ${tusServer.url}, ` +
        `peer pid ${peer.process.pid} at ${peerUrl}`,
    );

    const session = await apiSession(server);
    const targetA: Target = {
      name: "server",
      uploadUrl: session.uploadUrl,
      pid: server.child.process.pid,
      headers: session.headers,
      fields: async (): Promise<Record<string, string>> => ({
        message_id: await postMessage(session, "benchmark upload"),
      }),
    };
    const targetB: Target = {
      name: "peer",
      uploadUrl: `${peerUrl}/upload`,
      pid: peer.process.pid,
      headers: [],
      fields: (): Promise<Record<string, string>> =>
        Promise.resolve({ message_id: crypto.randomUUID() }),
    };
    const tusSession = await apiSession(tusServer);
    const targetC: TusTarget = {
      name: "tus",
      endpoint: `${tusServer.url}/api/chat/videos/uploads/`,
      pid: tusServer.child.process.pid,
      token: tusSession.token,
      messageId: () => postMessage(tusSession, "benchmark tus upload"),
    };

    const responsePath = `${tmp}/response.json`;
    const once = (target: Target): Promise<Sample> =>
      upload(sampler, target, videoPath, video.sha256, fileBytes, responsePath);
    const tusOnce = (): Promise<TusSample> =>
      uploadTus(sampler, targetC, videoPath, video.sha256, fileBytes);
    for (let i = 0; i < options.warmup; i++) {
      await tusOnce();
      await once(targetA);
      await once(targetB);
    }
    const rss = (sample: Rss): string =>
      `RSS ${mib(sample.rssBefore)} → peak ${mib(sample.rssPeak)} (+${
        mib(growth(sample))
      }, ${sample.samples} samples${
        sample.hwmPeak === null ? "" : `, HWM +${mib(hwmGrowth(sample)!)}`
      })`;
    const loadBefore = await loadAverage();
    const a: Sample[] = [];
    const b: Sample[] = [];
    const c: TusSample[] = [];
    for (let run = 0; run < options.runs; run++) {
      const round = `run ${run + 1}/${options.runs}`;
      const tus = await tusOnce();
      console.error(
        `${round} tus    ${seconds(tus.clientMs)} (last PATCH ${milliseconds(tus.lastMs)}, ` +
          `process ${seconds(tus.processMs)}), ${rss(tus)}`,
      );
      for (const [target, into] of [[targetA, a], [targetB, b]] as const) {
        const sample = await once(target);
        console.error(
          `${round} ${target.name.padEnd(6)} ${seconds(sample.wallMs)} ` +
            `(curl ${seconds(sample.curlMs)}), ${rss(sample)}`,
        );
        into.push(sample);
      }
      c.push(tus);
    }
    const loadAfter = await loadAverage();
    const hashMs = await hashPass(videoPath, 3);

    const result = report(a, b, c, fileBytes);
    const host = await machine();
    console.log(
      `\n${result.table}\n\n${result.runs}\n\n${result.tusTable}\n\n${result.tusRuns}\n\n` +
        `${result.verdict}\n`,
    );
    console.log(`Load average (1 min): ${loadBefore} before, ${loadAfter} after`);
    console.log(`A SHA-256 pass over the video as the tus path makes it: ${milliseconds(hashMs)}`);
    console.log(machineSummary(host, tools(host)));
    if (options.write) {
      await renameOldSection();
      await writeSection(
        section(result, host, options, fileBytes, video.info, {
          before: loadBefore,
          after: loadAfter,
        }, hashMs),
      );
    }
  });
}

if (import.meta.main) await runCli(main);
