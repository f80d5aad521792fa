/**
 * Point 2 of the threat model: resource bombs are refused on the probe
 * result, ffmpeg's own ceilings and the child's limits hold, and the server
 * keeps answering `/healthz` while it deals with them.
 */
import assert from "node:assert/strict";
import { assertWithinLimits, DEFAULT_MEDIA_LIMITS } from "../../lib/media/limits.ts";
import { parseProbeOutput } from "../../lib/media/probe.ts";
import { limitedCommand, runTool, TOOL_ENV } from "../../lib/media/run_tool.ts";
import { hardenedInputArgs } from "../../lib/media/tools.ts";
import { fixture } from "../_fixtures.ts";
import { conversationWithMessage, createTestContext } from "../_helpers.ts";
import { bombs } from "./_payloads.ts";
import { assertNothingLeft, assertProblem, pollHealth, snapshot, uploadBytes } from "./_world.ts";

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
    // Each bomb is stopped by the check meant for it (or by ffmpeg's own ceiling).
    assert.match(String(details["16000×16000 frames"]), /dimensions|pixels/);
    assert.match(String(details["50 million frames"]), /frames/);
    assert.match(
      String(details["a header claiming six days"]),
      /duration "500000" s|declares 500000 s/,
    );
    assert.match(String(details["300 streams"]), /could not be read|streams/);
    assert.match(String(details["truncated MP4 (index whole, samples cut)"]), /truncated/);
    assert.match(String(details["truncated MP4 (no index)"]), /could not be read/);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("bombs: the probe-result limits are configurable", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_PIXELS: String(320 * 240 - 1), MAX_STREAMS: "1", MAX_DURATION_SECONDS: "1" },
  });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const before = await snapshot(ctx);
  // h264.mp4: 320×240, 2 s, video and audio: over each of the three limits.
  const bytes = await Deno.readFile(await fixture("h264.mp4"));
  const response = await uploadBytes(ctx, "alice", messageId, bytes, "clip.mp4");
  await assertProblem(response, "over the configured limits", [422]);
  await assertNothingLeft(ctx, before);

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
    /pixels/,
  );
  assert.throws(
    () => assertWithinLimits(inventory, { ...DEFAULT_MEDIA_LIMITS, maxDurationSeconds: 1 }),
    /declares 2 s/,
  );
  assertWithinLimits(inventory, DEFAULT_MEDIA_LIMITS);
});

Deno.test("bombs: ffmpeg's own ceilings refuse a picture over max_pixels and files over max_streams", async () => {
  const path = await fixture("h264.mp4");
  const probe = (limits: { maxPixels: number; maxStreams: number }) =>
    runTool("ffprobe", [
      "-v",
      "error",
      ...hardenedInputArgs("mov", path, limits),
      "-show_streams",
      "-of",
      "json",
    ], {
      timeoutMs: 10_000,
    });
  const ok = await probe({ maxPixels: 320 * 240, maxStreams: 2 });
  assert.equal(ok.code, 0);
  const pixels = await probe({ maxPixels: 320 * 240 - 1, maxStreams: 2 });
  assert.notEqual(pixels.code, 0);
  assert.match(pixels.stderr, /exceeds specified max pixel count/);
  const streams = await probe({ maxPixels: 320 * 240, maxStreams: 1 });
  assert.notEqual(streams.code, 0);
  assert.match(streams.stderr, /exceeds max_streams/);
  const args = hardenedInputArgs("mov", "/x.mp4");
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
  assert.ok(!hardenedInputArgs("matroska", "/x.mkv").includes("-enable_drefs"));
});

Deno.test("tools: a child that ignores SIGTERM is killed with SIGKILL; output is capped", async () => {
  const started = performance.now();
  const stubborn = await runTool("sh", ["-c", "trap '' TERM; exec sleep 30"], {
    timeoutMs: 200,
    killAfterMs: 300,
  });
  const elapsed = performance.now() - started;
  assert.equal(stubborn.timedOut, true);
  assert.equal(stubborn.signal, "SIGKILL");
  assert.ok(elapsed < 3000, `took ${elapsed} ms`);

  const polite = await runTool("sleep", ["30"], { timeoutMs: 200 });
  assert.equal(polite.timedOut, true);
  assert.equal(polite.signal, "SIGTERM");

  const loud = await runTool("sh", [
    "-c",
    "head -c 5000000 /dev/zero; head -c 5000000 /dev/zero >&2",
  ], {
    timeoutMs: 10_000,
    maxStdoutBytes: 1000,
    maxStderrBytes: 2000,
  });
  assert.equal(loud.stdout.length, 1000);
  assert.equal(loud.stdoutTruncated, true);
  assert.equal(loud.stderr.length, 2000);
});

Deno.test("tools: children get only a fixed environment and an address-space limit", async () => {
  Deno.env.set("OFFCHAT_TEST_SECRET", "must-not-leak");
  try {
    const env = await runTool("env", [], { timeoutMs: 5000 });
    assert.equal(env.code, 0);
    const names = env.stdout.trim().split("\n").map((line) => line.split("=")[0]).sort();
    assert.deepEqual(names, Object.keys(TOOL_ENV).sort());
    assert.ok(!env.stdout.includes("must-not-leak"));
  } finally {
    Deno.env.delete("OFFCHAT_TEST_SECRET");
  }
  const limits = await runTool("cat", ["/proc/self/limits"], { timeoutMs: 5000 });
  const defaultBytes = DEFAULT_MEDIA_LIMITS.toolMemoryBytes;
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
  assert.deepEqual(limitedCommand("ffmpeg", ["-version"], 0), {
    program: "ffmpeg",
    args: ["-version"],
  });

  // A decode that needs more than the limit fails instead of taking the memory.
  const path = await fixture("h264.mp4");
  const decode = (addressSpaceBytes: number) =>
    runTool("ffmpeg", [
      "-nostdin",
      "-v",
      "error",
      ...hardenedInputArgs("mov", path),
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
