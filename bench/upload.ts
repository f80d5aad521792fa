// deno-lint-ignore-file no-console
/**
 * Benchmark: one 100 MiB multipart upload by curl to this server against a
 * minimal Node `http` + busboy server doing the same streaming work minus
 * ffprobe and the database (bench/peer_node_busboy.mjs); and the same file
 * over tus in 5 MiB PATCHes (bench/tus_client.ts, tus-js-client) to a second
 * process of this server, so each path's first upload lands in a fresh
 * process. For each upload, the receiving process's peak RSS growth.
 * docs/BENCHMARKS.md says what the figures mean.
 *
 *   deno task bench:upload [-- --json] [--runs 5] [--warmup 0] [--size-mib 100] [--keep]
 *
 * `--warmup` unmeasured rounds come first; none by default, as a warm-up
 * would hide the first upload's growth (freed memory stays in the process).
 */

import { sha256File } from "../lib/core/hash.ts";
import {
  curlUpload,
  delay,
  freePort,
  loadAverage,
  machine,
  makeVideo,
  medianRow,
  MIB,
  mib,
  newMessage,
  ratios,
  ratioText,
  readOptions,
  REPO,
  report,
  run,
  runCli,
  type Session,
  signIn,
  spawn,
  spread,
  spreadRows,
  startServer,
  table,
  throughput,
  time,
  verdict,
  type Video,
  waitReady,
  withScratch,
} from "./_shared.ts";
import type { TusClientResult } from "./tus_client.ts";

const TUS_CHUNK_MIB = 5;
/** The targets in docs/BENCHMARKS.md: peak RSS growth, and multipart time over the peer's. */
const TARGET = { rssGrowth: 64 * MIB, toPeer: 1.2 };
/** TUS_TOKEN, then what graceful-fs (loaded by tus-js-client's node build) reads. */
const TUS_CLIENT_ENV = "TUS_TOKEN,GRACEFUL_FS_PLATFORM,NODE_DEBUG,TEST_GRACEFUL_FS_GLOBAL_PATCH";

/** The receiving process's memory during one upload, in bytes. */
interface Memory {
  /** VmRSS just before the upload. */
  rssBefore: number;
  /** The highest VmRSS sampled during the upload, minus `rssBefore`. */
  growth: number;
  /** VmHWM after the upload (reset before it) minus `rssBefore`; null where the reset is refused. */
  hwmGrowth: number | null;
}

/** One multipart upload: curl's process wall time and curl's own `time_total`. */
interface MultipartSample extends Memory {
  wallMs: number;
  curlMs: number;
}

/** One tus upload, timed by the client. */
interface TusSample extends Memory {
  /** From the creation POST to the final answer. */
  clientMs: number;
  /** The last PATCH: the last chunk, then the hash, ffprobe, the database and the move. */
  lastMs: number;
  /** The PATCHes before the last, median. */
  patchMs: number;
  /** Wall time of the client process, Deno's start-up included. */
  processMs: number;
  requests: Record<string, number>;
}

/** VmRSS and VmHWM of `pid` (Deno reads /proc only with --allow-all, which the task gives). */
async function memory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/**
 * Runs `upload` while sampling `pid`'s VmRSS every ~10 ms, after resetting its
 * VmHWM (which catches peaks between samples) and a pause that lets the last
 * upload's garbage and ffprobe settle.
 */
async function sampled<T>(pid: number, upload: () => Promise<T>): Promise<T & Memory> {
  await delay(300);
  const clearRefs = Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
  const hwmReset = await clearRefs.then(() => true, () => false);
  const rssBefore = (await memory(pid)).rss;
  let peak = rssBefore;
  const sample = (): Promise<void> =>
    memory(pid).then(({ rss }) => void (peak = Math.max(peak, rss)), () => {});
  const timer = setInterval(sample, 10);
  let result: T;
  try {
    result = await upload();
  } finally {
    clearInterval(timer);
  }
  const after = await memory(pid);
  peak = Math.max(peak, after.rss);
  const hwmGrowth = hwmReset ? Math.max(0, after.hwm - rssBefore) : null;
  return { ...result, rssBefore, growth: peak - rssBefore, hwmGrowth };
}

/** One run of bench/tus_client.ts to the session's server, its answer checked like a multipart one. */
async function tusUpload(
  session: Session,
  video: Video,
  messageId: string,
): Promise<Omit<TusSample, keyof Memory>> {
  const endpoint = `${session.url}/api/chat/videos/uploads/`;
  const started = performance.now();
  const out = await run(Deno.execPath(), [
    "run",
    `--allow-net=${new URL(endpoint).host}`,
    `--allow-read=${video.path}`,
    `--allow-env=${TUS_CLIENT_ENV}`,
    `${REPO}/bench/tus_client.ts`,
    ...[endpoint, video.path, messageId, String(TUS_CHUNK_MIB)],
  ], { TUS_TOKEN: session.token, NO_COLOR: "1" });
  const processMs = performance.now() - started;
  if (!out.success) throw new Error(`tus_client.ts failed:\n${out.stderr}`);
  const result: TusClientResult = JSON.parse(out.stdout);
  const { answer } = result;
  if (result.status !== 200 || answer.file_size !== video.bytes || answer.sha256 !== video.sha256) {
    throw new Error(`The last PATCH answered ${result.status}: ${JSON.stringify(answer)}`);
  }
  const patches = result.requestMs.slice(result.requests.POST ?? 0, -1);
  return {
    clientMs: result.ms,
    lastMs: result.requestMs.at(-1)!,
    patchMs: patches.length ? spread(patches).median : 0,
    processMs,
    requests: result.requests,
  };
}

/** The largest growth during one upload, the VmHWM one, and over all runs (highest peak − first RSS). */
function memoryRows(columns: Memory[][]): string[][] {
  const hwm = (runs: Memory[]): string =>
    runs.some((s) => s.hwmGrowth === null)
      ? "n/a"
      : mib(Math.max(...runs.map((s) => s.hwmGrowth!)));
  return [
    ["RSS before the first measured upload", ...columns.map((runs) => mib(runs[0]!.rssBefore))],
    ["Peak RSS growth during an upload (max)", ...columns.map((runs) => mib(maxGrowth(runs)))],
    ["Same, from VmHWM (kernel peak)", ...columns.map(hwm)],
    ["RSS growth over all runs", ...columns.map((runs) => mib(totalGrowth(runs)))],
  ];
}

function maxGrowth(runs: Memory[]): number {
  return Math.max(...runs.map((s) => s.growth));
}

function totalGrowth(runs: Memory[]): number {
  return Math.max(...runs.map((s) => s.rssBefore + s.growth)) - runs[0]!.rssBefore;
}

function tables(
  server: MultipartSample[],
  peer: MultipartSample[],
  tus: TusSample[],
  bytes: number,
  hashMs: number,
): string[] {
  const wall = (runs: MultipartSample[]): number[] => runs.map((s) => s.wallMs);
  const curl = server.map((s) => s.curlMs);
  const client = tus.map((s) => s.clientMs);
  const timeRows = (columns: number[][]): string[][] => [
    ...spreadRows("Time", columns, time),
    medianRow("Throughput at the median", columns, (ms) => throughput(bytes, ms)),
  ];
  const requests = Object.entries(tus[0]!.requests).map(([method, n]) => `${n} ${method}`);
  const toPeer = ratios(wall(server), wall(peer));
  const perRound: [number[], Memory[]][] = [
    [wall(server), server],
    [wall(peer), peer],
    [client, tus],
  ];
  // The first upload into a fresh process, and all runs together, are what the target is about.
  const rss = (runs: Memory[]): string => {
    const worst = Math.max(maxGrowth(runs), totalGrowth(runs));
    return `${mib(worst)} ${worst < TARGET.rssGrowth ? "met" : "not met"}`;
  };
  return [
    table("Multipart: this server against the peer (curl's process wall time)", [
      "",
      "This server",
      "Peer (Node http + busboy)",
    ], [
      ...timeRows([wall(server), wall(peer)]),
      ...memoryRows([server, peer]),
      ["This server / peer, per pair", ratioText(toPeer), ""],
    ]),
    table("tus against multipart (timed by the client)", [
      "",
      "Multipart (curl time_total)",
      `tus (tus-js-client, ${TUS_CHUNK_MIB} MiB PATCHes)`,
    ], [
      ...timeRows([curl, client]),
      ["Requests", "1", requests.join(", ")],
      ["One PATCH before the last, median", "", time(spread(tus.map((s) => s.patchMs)).median)],
      ["The last PATCH, median", "", time(spread(tus.map((s) => s.lastMs)).median)],
      ["Client process wall time, median", "", time(spread(tus.map((s) => s.processMs)).median)],
      ...memoryRows([server, tus]),
      ["tus / multipart, per round", "", ratioText(ratios(client, curl))],
      ["SHA-256 pass over the file (lib's sha256File)", "", time(hashMs)],
    ]),
    table(
      "Per round",
      ["", "This server", "RSS growth", "Peer", "RSS growth", "tus", "RSS growth"],
      [
        ...server.map((_, i) => [
          `Round ${i + 1}`,
          ...perRound.flatMap(([ms, runs]) => [time(ms[i]!), mib(runs[i]!.growth)]),
        ]),
      ],
    ),
    table("Targets", ["", "Target", "Measured"], [
      ["Peak RSS growth, multipart", "< 64 MiB", rss(server)],
      ["Peak RSS growth, tus", "< 64 MiB", rss(tus)],
      [
        "Multipart time / peer (median per pair)",
        `≤ ${TARGET.toPeer}×`,
        verdict(toPeer, TARGET.toPeer, true),
      ],
    ]),
  ];
}

async function main(): Promise<void> {
  const options = readOptions({ runs: 5, warmup: 0, "size-mib": 100 });
  const bytes = options["size-mib"] * MIB;
  await withScratch(options.keep, async (scratch) => {
    const video = await makeVideo(`${scratch.tmp}/video.mp4`, bytes);
    const server = await startServer(scratch, bytes);
    const tusServer = await startServer(scratch, bytes, { name: "server-tus" });
    const peerUrl = `http://127.0.0.1:${freePort()}`;
    const peer = await spawn(scratch, "peer", "node", [`${REPO}/bench/peer_node_busboy.mjs`], {
      PEER_PORT: new URL(peerUrl).port,
      PEER_DIR: `${scratch.tmp}/peer-data`,
      MAX_UPLOAD_BYTES: server.env.MAX_UPLOAD_BYTES!,
      BUSBOY_PATH: `${REPO}/node_modules/busboy`,
    });
    await Promise.all([
      waitReady(`${server.url}/readyz`, server.child),
      waitReady(`${tusServer.url}/readyz`, tusServer.child),
      waitReady(`${peerUrl}/healthz`, peer),
    ]);
    const session = await signIn(server);
    const tusSession = await signIn(tusServer);
    const multipart = (pid: number, url: string, fields: object, headers?: string[]) =>
      sampled(pid, async () => {
        const { wallMs, curlMs } = await curlUpload(url, video, { ...fields }, headers);
        return { wallMs, curlMs };
      });
    const pids = [server, tusServer].map((s) => s.child.process.pid);
    const uploadUrl = `${server.url}/api/chat/videos/upload/`;
    const auth = [`Authorization: Bearer ${session.token}`];
    const runs = {
      tus: [] as TusSample[],
      server: [] as MultipartSample[],
      peer: [] as MultipartSample[],
    };
    const loadBefore = await loadAverage();
    for (let i = -options.warmup; i < options.runs; i++) {
      // The messages are made before the clocks start.
      const message = await newMessage(tusSession);
      const tus = await sampled(pids[1]!, () => tusUpload(tusSession, video, message));
      const fields = { message_id: await newMessage(session) };
      const toServer = await multipart(pids[0]!, uploadUrl, fields, auth);
      const toPeer = await multipart(peer.process.pid, `${peerUrl}/upload`, { message_id: "peer" });
      console.error(
        `${i < 0 ? "warm-up" : `round ${i + 1}/${options.runs}`}: tus ${time(tus.clientMs)} ` +
          `(+${mib(tus.growth)}), server ${time(toServer.wallMs)} (+${mib(toServer.growth)}), ` +
          `peer ${time(toPeer.wallMs)} (+${mib(toPeer.growth)})`,
      );
      if (i < 0) continue;
      runs.tus.push(tus);
      runs.server.push(toServer);
      runs.peer.push(toPeer);
    }
    // The SHA-256 pass the last PATCH makes, with the server's own function.
    const hashTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await sha256File(video.path);
      hashTimes.push(performance.now() - started);
    }
    const hashMs = spread(hashTimes).median;
    const tools: [string, string][] = [["node", "-v"], ["curl", "-V"], ["ffmpeg", "-version"]];
    const host = await machine(loadBefore, tools);
    report(options.json, tables(runs.server, runs.peer, runs.tus, bytes, hashMs), {
      options,
      bytes,
      ...runs,
      hashMs,
      machine: host,
    });
  });
}

if (import.meta.main) await runCli(main);
