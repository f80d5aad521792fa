/**
 * Point 2 of the threat model: resource bombs are refused on the probe
 * result, ffmpeg's own ceilings and the child's limits hold, and the server
 * keeps answering `/healthz` while it deals with them.
 */
import assert from "node:assert/strict";
import { ApiError } from "../../lib/core/errors.ts";
import { parseConfig } from "../../lib/config/config.ts";
import {
  assertWithinLimits,
  MAX_FRAMES_PER_SECOND,
  type MediaLimits,
  mediaLimitsOf,
} from "../../lib/media/limits.ts";
import { parseProbeOutput } from "../../lib/media/probe.ts";
import { limitedCommand, runTool, TOOL_ENV } from "../../lib/media/run_tool.ts";
import { sniffContainer } from "../../lib/media/containers.ts";
import { hardenedInputArgs } from "../../lib/media/tools.ts";
import { fixture } from "../_fixtures.ts";
import { conversationWithMessage, createTestContext } from "../_helpers.ts";
import { bombs } from "./_payloads.ts";
import { assertNothingLeft, assertProblem, pollHealth, snapshot, uploadBytes } from "./_world.ts";

/** The limits of a configuration with every default. */
const DEFAULT_MEDIA_LIMITS = mediaLimitsOf(parseConfig({}));

/** The most frames a stream may declare under the default limits. */
const MAX_FRAMES = DEFAULT_MEDIA_LIMITS.maxDurationSeconds * MAX_FRAMES_PER_SECOND;

Deno.test("bombs: each is a 422 over real HTTP, leaves nothing, and /healthz keeps answering", async () => {
  // All at once from one user: the concurrent-upload cap is lifted to let them through.
  await using ctx = await createTestContext({ env: { MAX_CONCURRENT_UPLOADS: "0" } });
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => ctx.app.fetch(request),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const scratch = await Deno.makeTempDir({ prefix: "offchat-bombs-" });
  try {
    const payloads = await bombs(scratch);
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const before = await snapshot(ctx);
    const health = pollHealth(base);
    const details: Record<string, unknown> = {};
    // All at once, as an attacker would send them.
    await Promise.all(
      Object.entries(payloads).map(async ([label, bytes]) => {
        const response = await uploadBytes(ctx, "alice", messageId, bytes, "bomb.mp4", base);
        details[label] = (await assertProblem(response, label, [422])).detail;
      }),
    );
    const stats = await health.stop();
    assert.equal(stats.failures, 0, "/healthz failed during the bombs");
    assert.ok(stats.polls > 0);
    assert.ok(stats.slowestMs < 1000, `/healthz took ${stats.slowestMs} ms`);
    await assertNothingLeft(ctx, before);
    // Each bomb gets the answer of the check that stopped it (see the next test for why
    // two of them say only that the file could not be read).
    const unreadable = "The file could not be read as a video";
    assert.deepEqual(Object.keys(details).sort(), Object.keys(payloads).sort());
    assert.deepEqual(
      {
        ...details,
        "truncated MP4 (index whole, samples cut)": String(
          details["truncated MP4 (index whole, samples cut)"],
        ).replace(/\d+/g, "N"),
      },
      {
        // ffprobe's -max_pixels refuses to open the decoder: no dimensions are reported.
        "16000×16000 frames": 'Video dimensions "0x0" are outside 1..8192',
        "50 million frames": `A stream declares 50000000 frames; the limit is ${MAX_FRAMES}`,
        "a header claiming six days": "The file declares 500000 s; the limit is 86400 s",
        // ffprobe's -max_streams refuses the file.
        "300 streams": unreadable,
        "truncated MP4 (index whole, samples cut)":
          "The video stream declares N frames but the file holds N: it is truncated",
        // No moov atom: nothing to read.
        "truncated MP4 (no index)": unreadable,
      },
    );
    const [declared, held] = String(details["truncated MP4 (index whole, samples cut)"])
      .match(/\d+/g)!.map(Number);
    assert.ok(held! < declared!, "fewer frames held than declared");
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

/** ffprobe as the service runs it (hardened input, every packet counted) on bytes. */
async function probeBytes(
  dir: string,
  bytes: Uint8Array,
  limits: MediaLimits,
): Promise<{ code: number; stderr: string; stdout: string }> {
  const path = `${dir}/probe-${crypto.randomUUID()}`;
  await Deno.writeFile(path, bytes);
  const container = sniffContainer(bytes.subarray(0, 64));
  assert.ok(container, "an accepted container");
  return await runTool("ffprobe", [
    "-v",
    "error",
    ...hardenedInputArgs({ path, demuxer: container.demuxer }, limits),
    "-count_packets",
    "-show_format",
    "-show_streams",
    "-of",
    "json",
  ], { timeoutMs: 20_000, addressSpaceBytes: limits.toolMemoryBytes });
}

Deno.test("bombs: ffmpeg's ceilings stop the pixel and stream bombs, and limits.ts would stop each one behind them", async () => {
  const scratch = await Deno.makeTempDir({ prefix: "offchat-bombs-" });
  try {
    const payloads = await bombs(scratch);
    const lifted: MediaLimits = { ...DEFAULT_MEDIA_LIMITS, maxPixels: 2 ** 30, maxStreams: 1000 };
    // What the service's ffprobe says of the two the server answers generically for.
    const pixels = await probeBytes(scratch, payloads["16000×16000 frames"]!, DEFAULT_MEDIA_LIMITS);
    assert.match(
      pixels.stderr,
      new RegExp(`16000x16000 exceeds specified max pixel count ${DEFAULT_MEDIA_LIMITS.maxPixels}`),
    );
    const streams = await probeBytes(scratch, payloads["300 streams"]!, DEFAULT_MEDIA_LIMITS);
    assert.notEqual(streams.code, 0);
    assert.match(
      streams.stderr,
      new RegExp(`exceeds max_streams parameter \\(${DEFAULT_MEDIA_LIMITS.maxStreams}\\)`),
    );
    const noIndex = await probeBytes(
      scratch,
      payloads["truncated MP4 (no index)"]!,
      DEFAULT_MEDIA_LIMITS,
    );
    assert.notEqual(noIndex.code, 0);
    assert.match(noIndex.stderr, /moov atom not found/);

    // With ffmpeg's ceilings lifted (and the probe's own dimension bound too), the
    // checks of limits.ts refuse each bomb for its own reason.
    const backstop: Record<string, string> = {};
    for (const [label, bytes] of Object.entries(payloads)) {
      if (label === "truncated MP4 (no index)") continue;
      const probe = await probeBytes(scratch, bytes, lifted);
      assert.equal(probe.code, 0, `${label}: ${probe.stderr}`);
      const { inventory } = parseProbeOutput(probe.stdout, {
        maxDimension: 100_000,
        countedPackets: true,
      });
      try {
        assertWithinLimits(inventory, DEFAULT_MEDIA_LIMITS);
        backstop[label] = "accepted";
      } catch (error) {
        assert.ok(error instanceof ApiError, label);
        assert.equal(error.code, "invalid_video", label);
        backstop[label] = error.message.replace(/declares \d+ frames but the file holds \d+/, "…");
      }
    }
    const { maxPixels, maxStreams, maxDurationSeconds } = DEFAULT_MEDIA_LIMITS;
    assert.deepEqual(backstop, {
      "16000×16000 frames": `A video stream has ${16000 * 16000} pixels per frame; ` +
        `the limit is ${maxPixels}`,
      "50 million frames": `A stream declares 50000000 frames; the limit is ${MAX_FRAMES}`,
      "a header claiming six days":
        `The file declares 500000 s; the limit is ${maxDurationSeconds} s`,
      "300 streams": `The file has 300 streams; the limit is ${maxStreams}`,
      "truncated MP4 (index whole, samples cut)": "The video stream …: it is truncated",
    });
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("bombs: the probe-result limits are configurable", async () => {
  // h264.mp4: 320×240, 2 s, video and audio. Each limit on its own: one below the file
  // is refused (with what says so, or ffprobe's refusal for its own ceilings), the
  // file's own value is accepted, so the refusal is the limit's doing.
  const bytes = await Deno.readFile(await fixture("h264.mp4"));
  const unreadable = "The file could not be read as a video";
  const cases: [Record<string, string>, string | null][] = [
    [{ MAX_PIXELS: String(320 * 240 - 1) }, unreadable],
    [{ MAX_PIXELS: String(320 * 240) }, null],
    [{ MAX_STREAMS: "1" }, unreadable],
    [{ MAX_STREAMS: "2" }, null],
    [{ MAX_DURATION_SECONDS: "1" }, "The file declares 2 s; the limit is 1 s"],
    [{ MAX_DURATION_SECONDS: "3" }, null],
  ];
  for (const [env, detail] of cases) {
    const label = JSON.stringify(env);
    await using ctx = await createTestContext({ worker: false, env });
    const { messageId } = await conversationWithMessage(ctx, "alice");
    const before = await snapshot(ctx);
    const response = await uploadBytes(ctx, "alice", messageId, bytes, "clip.mp4");
    if (detail === null) {
      assert.equal(response.status, 201, label);
      await response.body?.cancel();
      continue;
    }
    const problem = await assertProblem(response, label, [422]);
    assert.equal(problem.code, "invalid_video", label);
    assert.equal(problem.detail, detail, label);
    await assertNothingLeft(ctx, before);
  }

  const json = JSON.stringify({
    streams: [{
      codec_type: "video",
      codec_name: "h264",
      width: 320,
      height: 240,
      nb_read_packets: "50",
      nb_frames: "50",
    }],
    format: { duration: "2" },
  });
  const { inventory } = parseProbeOutput(json);
  assert.throws(
    () => assertWithinLimits(inventory, { ...DEFAULT_MEDIA_LIMITS, maxPixels: 320 * 240 - 1 }),
    {
      code: "invalid_video",
      message: "A video stream has 76800 pixels per frame; the limit is 76799",
    },
  );
  assert.throws(
    () => assertWithinLimits(inventory, { ...DEFAULT_MEDIA_LIMITS, maxDurationSeconds: 1 }),
    { code: "invalid_video", message: "The file declares 2 s; the limit is 1 s" },
  );
  assert.throws(
    () => assertWithinLimits(inventory, { ...DEFAULT_MEDIA_LIMITS, maxStreams: 0 }),
    { code: "invalid_video", message: "The file has 1 streams; the limit is 0" },
  );
  assertWithinLimits(inventory, DEFAULT_MEDIA_LIMITS);
});

Deno.test("bombs: ffmpeg's own ceilings refuse a picture over max_pixels and files over max_streams", async () => {
  const path = await fixture("h264.mp4");
  const probe = (limits: { maxPixels: number; maxStreams: number }) =>
    runTool("ffprobe", [
      "-v",
      "error",
      ...hardenedInputArgs({ path, demuxer: "mov" }, limits),
      "-show_streams",
      "-of",
      "json",
    ], {
      timeoutMs: 10_000,
      addressSpaceBytes: DEFAULT_MEDIA_LIMITS.toolMemoryBytes,
    });
  const ok = await probe({ maxPixels: 320 * 240, maxStreams: 2 });
  assert.equal(ok.code, 0);
  const pixels = await probe({ maxPixels: 320 * 240 - 1, maxStreams: 2 });
  assert.notEqual(pixels.code, 0);
  assert.match(pixels.stderr, /exceeds specified max pixel count/);
  const streams = await probe({ maxPixels: 320 * 240, maxStreams: 1 });
  assert.notEqual(streams.code, 0);
  assert.match(streams.stderr, /exceeds max_streams/);
  const args = hardenedInputArgs({ path: "/x.mp4", demuxer: "mov" }, DEFAULT_MEDIA_LIMITS);
  for (
    const flag of [
      "-protocol_whitelist",
      "-format_whitelist",
      "-max_streams",
      "-max_pixels",
      "-enable_drefs",
      "-use_absolute_path",
      "-f",
    ]
  ) {
    assert.ok(args.includes(flag), flag);
  }
  assert.ok(
    !hardenedInputArgs({ path: "/x.mkv", demuxer: "matroska" }, DEFAULT_MEDIA_LIMITS)
      .includes("-enable_drefs"),
  );
});

Deno.test("tools: a child that ignores SIGTERM is killed with SIGKILL; output is capped", async () => {
  const started = performance.now();
  const addressSpaceBytes = DEFAULT_MEDIA_LIMITS.toolMemoryBytes;
  const stubborn = await runTool("sh", ["-c", "trap '' TERM; exec sleep 30"], {
    timeoutMs: 200,
    killAfterMs: 300,
    addressSpaceBytes,
  });
  const elapsed = performance.now() - started;
  assert.equal(stubborn.timedOut, true);
  assert.equal(stubborn.signal, "SIGKILL");
  assert.ok(elapsed < 3000, `took ${elapsed} ms`);

  const polite = await runTool("sleep", ["30"], { timeoutMs: 200, addressSpaceBytes });
  assert.equal(polite.timedOut, true);
  assert.equal(polite.signal, "SIGTERM");

  const loud = await runTool("sh", [
    "-c",
    "head -c 5000000 /dev/zero; head -c 5000000 /dev/zero >&2",
  ], {
    timeoutMs: 10_000,
    maxStdoutBytes: 1000,
    maxStderrBytes: 2000,
    addressSpaceBytes,
  });
  assert.equal(loud.stdout.length, 1000);
  assert.equal(loud.stdoutTruncated, true);
  assert.equal(loud.stderr.length, 2000);
});

Deno.test("tools: children get only a fixed environment and an address-space limit", async () => {
  // MEDIA_MEMORY_LIMIT_MB's default, as every run gets it from the configuration.
  const defaultBytes = DEFAULT_MEDIA_LIMITS.toolMemoryBytes;
  Deno.env.set("OFFCHAT_TEST_SECRET", "must-not-leak");
  try {
    const env = await runTool("env", [], { timeoutMs: 5000, addressSpaceBytes: defaultBytes });
    assert.equal(env.code, 0);
    const names = env.stdout.trim().split("\n").map((line) => line.split("=")[0]).sort();
    assert.deepEqual(names, Object.keys(TOOL_ENV).sort());
    assert.ok(!env.stdout.includes("must-not-leak"));
  } finally {
    Deno.env.delete("OFFCHAT_TEST_SECRET");
  }
  const limits = await runTool("cat", ["/proc/self/limits"], {
    timeoutMs: 5000,
    addressSpaceBytes: defaultBytes,
  });
  assert.match(
    limits.stdout,
    new RegExp(`Max address space\\s+${defaultBytes}\\s+${defaultBytes}`),
  );
  assert.match(limits.stdout, /Max core file size\s+0\s+0/);
  const custom = await runTool("cat", ["/proc/self/limits"], {
    timeoutMs: 5000,
    addressSpaceBytes: 300 * 1024 * 1024,
  });
  assert.match(custom.stdout, new RegExp(`Max address space\\s+${300 * 1024 * 1024}`));
  const none = await runTool("cat", ["/proc/self/limits"], {
    timeoutMs: 5000,
    addressSpaceBytes: 0,
  });
  assert.match(none.stdout, /Max address space\s+unlimited/);
  // No limit: still through setpriv, for the parent-death signal.
  assert.deepEqual(limitedCommand("ffmpeg", ["-version"], 0), {
    program: "setpriv",
    args: ["--pdeathsig", "KILL", "--", "ffmpeg", "-version"],
  });

  // A decode that needs more than the limit fails instead of taking the memory.
  const path = await fixture("h264.mp4");
  const decode = (addressSpaceBytes: number) =>
    runTool("ffmpeg", [
      "-nostdin",
      "-v",
      "error",
      ...hardenedInputArgs({ path, demuxer: "mov" }, DEFAULT_MEDIA_LIMITS),
      "-f",
      "null",
      "-",
    ], {
      timeoutMs: 20_000,
      addressSpaceBytes,
    });
  assert.equal((await decode(DEFAULT_MEDIA_LIMITS.toolMemoryBytes)).code, 0);
  assert.notEqual((await decode(32 * 1024 * 1024)).code, 0);
});
