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

import {
  alternate,
  apiSession,
  type Child,
  type CommonOptions,
  curlUpload,
  delay,
  freePort,
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

const SECTION_TITLE = "Upload (multipart, 100 MB)";
const COMMAND = "deno task bench:upload -- --write";
const TARGET_RSS_GROWTH_BYTES = 64 * MIB;
const TARGET_RATIO = 1.2;
const SAMPLE_INTERVAL_MS = 10;

interface Options extends CommonOptions {
  runs: number;
  warmup: number;
  sizeMiB: number;
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

/** The shared machine facts plus node, which runs the peer. */
interface UploadMachine extends Machine {
  node: string;
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
    ["Same, from VmHWM (kernel peak)", hwm(a), hwm(b)],
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
  const rssOk = Math.max(growthA, totalA) < TARGET_RSS_GROWTH_BYTES;
  const timeOk = ratio.median <= TARGET_RATIO;
  const verdict = [
    `- Server RSS growth under 64 MB: ${met(rssOk)} ` +
    `(max ${mib(growthA)} during one upload, ${mib(totalA)} over all runs).`,
    `- Upload time within ${TARGET_RATIO}× of the peer: ${met(timeOk)} ` +
    `(median ratio ${ratio.median.toFixed(2)}×).`,
  ].join("\n");
  return { table, runs, verdict, ratioMedian: ratio.median, growthA, growthB };
}

async function machine(): Promise<UploadMachine> {
  return { ...await machineInfo(), node: await versionLine("node", ["--version"]) };
}

/** The versions after Deno's, in the order the docs list them. */
function tools(host: UploadMachine): string[] {
  return [`Node ${host.node}`, host.ffmpeg, host.curl];
}

function section(
  result: Report,
  host: UploadMachine,
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

${machineMarkdown(host, tools(host))}

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

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const fileBytes = options.sizeMiB * MIB;
  await withScratch("offchat-bench-upload-", options.keep, async ({ tmp, children }) => {
    const videoPath = `${tmp}/video.mp4`;
    const video = await prepareVideo(tmp, videoPath, fileBytes);

    const server = await startServer({ tmp, children }, fileBytes, { publicUrl: false });
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
      waitReady(`${peerUrl}/healthz`, peer),
    ]);
    console.error(
      `server pid ${server.child.process.pid} at ${server.url}, peer pid ${peer.process.pid} at ${peerUrl}`,
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

    const responsePath = `${tmp}/response.json`;
    const once = (target: Target): Promise<Sample> =>
      upload(sampler, target, videoPath, video.sha256, fileBytes, responsePath);
    await alternate(options.warmup, () => once(targetA), () => once(targetB));
    const measured = (target: Target) => async (run: number): Promise<Sample> => {
      const sample = await once(target);
      console.error(
        `run ${run + 1}/${options.runs} ${target.name.padEnd(6)} ${seconds(sample.wallMs)} ` +
          `(curl ${seconds(sample.curlMs)}), RSS ${mib(sample.rssBefore)} → peak ${
            mib(sample.rssPeak)
          } (+${mib(growth(sample))}, ${sample.samples} samples` +
          `${sample.hwmPeak === null ? "" : `, HWM +${mib(hwmGrowth(sample)!)}`})`,
      );
      return sample;
    };
    const [a, b] = await alternate(options.runs, measured(targetA), measured(targetB));

    const result = report(a, b, fileBytes);
    const host = await machine();
    console.log(`\n${result.table}\n\n${result.runs}\n\n${result.verdict}\n`);
    console.log(machineSummary(host, tools(host)));
    if (options.write) {
      await writeSection(section(result, host, options, fileBytes, video.info));
    }
  });
}

if (import.meta.main) await runCli(main);
