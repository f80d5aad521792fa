import assert from "node:assert/strict";
import {
  makeStoryboard,
  planStoryboard,
  type StoryboardLayout,
  storyboardVtt,
} from "../../../lib/media/storyboard.ts";
import { ffprobeJson, fixture, TEST_TOOLS } from "../../_fixtures.ts";

const tools = TEST_TOOLS;

Deno.test("planStoryboard: one tile a second, then 100 tiles at most", () => {
  const short = planStoryboard({ duration: 0.4, width: 160, height: 120 });
  assert.deepEqual(short, {
    interval: 1,
    columns: 1,
    rows: 1,
    count: 1,
    tileWidth: 160,
    tileHeight: 120,
    duration: 0.4,
  });
  const twoSeconds = planStoryboard({ duration: 2, width: 320, height: 240 });
  assert.equal(twoSeconds.count, 2);
  assert.equal(twoSeconds.columns, 2);
  assert.equal(twoSeconds.rows, 1);
  assert.equal(twoSeconds.interval, 1);

  const tenMinutes = planStoryboard({ duration: 600, width: 1920, height: 1080 });
  assert.deepEqual(tenMinutes, {
    interval: 6,
    columns: 10,
    rows: 10,
    count: 100,
    tileWidth: 160,
    tileHeight: 90,
    duration: 600,
  });
  const tenHours = planStoryboard({ duration: 36_000, width: 1920, height: 1080 });
  assert.equal(tenHours.count, 100);
  assert.equal(tenHours.interval, 360);
  assert.equal(tenHours.rows, 10);

  // Between the bounds: 100 s is the last duration at one tile a second.
  assert.equal(planStoryboard({ duration: 100, width: 320, height: 240 }).count, 100);
  assert.equal(planStoryboard({ duration: 100, width: 320, height: 240 }).interval, 1);
  assert.equal(planStoryboard({ duration: 45.2, width: 320, height: 240 }).count, 46);
  assert.equal(planStoryboard({ duration: 45.2, width: 320, height: 240 }).rows, 5);
  const odd = planStoryboard({ duration: 123.456, width: 320, height: 240 });
  assert.equal(odd.interval, 1.235);
  assert.equal(odd.count, 100);
  for (const duration of [0.001, 1, 99.999, 100.001, 333.3, 7207.77, 86_400]) {
    const layout = planStoryboard({ duration: duration, width: 320, height: 240 });
    assert.ok(layout.count >= 1 && layout.count <= 100, `count for ${duration}`);
    assert.ok(layout.columns * layout.rows >= layout.count, `cells for ${duration}`);
    assert.ok((layout.count - 1) * layout.interval < layout.duration, `last tile for ${duration}`);
  }
});

Deno.test("planStoryboard: tiles keep the display aspect ratio with even sides", () => {
  const portrait = planStoryboard({ duration: 2, width: 240, height: 320 });
  assert.equal(portrait.tileWidth, 160);
  assert.equal(portrait.tileHeight, 214);
  assert.ok(portrait.tileHeight > portrait.tileWidth);
  assert.equal(planStoryboard({ duration: 10, width: 1080, height: 1920 }).tileHeight, 284);
  assert.equal(planStoryboard({ duration: 10, width: 8192, height: 2 }).tileHeight, 2);
  // Taller than 1:4: the height is capped and the width shrinks to keep the ratio.
  assert.deepEqual(
    [
      planStoryboard({ duration: 10, width: 2, height: 8192 }).tileWidth,
      planStoryboard({ duration: 10, width: 2, height: 8192 }).tileHeight,
    ],
    [2, 640],
  );
  assert.deepEqual(
    [
      planStoryboard({ duration: 10, width: 1000, height: 8000 }).tileWidth,
      planStoryboard({ duration: 10, width: 1000, height: 8000 }).tileHeight,
    ],
    [80, 640],
  );
});

Deno.test("planStoryboard: refuses what it cannot lay out", () => {
  assert.throws(() => planStoryboard({ duration: 0, width: 320, height: 240 }), /duration "0"/);
  assert.throws(() => planStoryboard({ duration: NaN, width: 320, height: 240 }), /duration "NaN"/);
  assert.throws(
    () => planStoryboard({ duration: Infinity, width: 320, height: 240 }),
    /duration "Infinity"/,
  );
  assert.throws(() => planStoryboard({ duration: 2, width: 0, height: 240 }), /dimensions "0x240"/);
});

Deno.test("storyboardVtt: one cue per tile, the fragment after the query", () => {
  const layout: StoryboardLayout = {
    interval: 1.5,
    columns: 2,
    rows: 2,
    count: 3,
    tileWidth: 160,
    tileHeight: 90,
    duration: 4.2,
  };
  assert.equal(
    storyboardVtt(layout, "https://chat.example/api/chat/videos/a1/storyboard.jpg?token=abc.def"),
    [
      "WEBVTT",
      "",
      "00:00:00.000 --> 00:00:01.500",
      "https://chat.example/api/chat/videos/a1/storyboard.jpg?token=abc.def#xywh=0,0,160,90",
      "",
      "00:00:01.500 --> 00:00:03.000",
      "https://chat.example/api/chat/videos/a1/storyboard.jpg?token=abc.def#xywh=160,0,160,90",
      "",
      "00:00:03.000 --> 00:00:04.200",
      "https://chat.example/api/chat/videos/a1/storyboard.jpg?token=abc.def#xywh=0,90,160,90",
      "",
    ].join("\n"),
  );
});

Deno.test("storyboardVtt: hours in cue times; the last cue ends at the duration", () => {
  const vtt = storyboardVtt(
    planStoryboard({ duration: 36_000, width: 1920, height: 1080 }),
    "/s.jpg?token=t",
  );
  const cues = vtt.split("\n\n").slice(1);
  assert.equal(cues.length, 100);
  assert.equal(cues[1], "00:06:00.000 --> 00:12:00.000\n/s.jpg?token=t#xywh=160,0,160,90");
  assert.equal(cues[99], "09:54:00.000 --> 10:00:00.000\n/s.jpg?token=t#xywh=1440,810,160,90\n");

  const short = storyboardVtt(planStoryboard({ duration: 0.4, width: 160, height: 120 }), "/s.jpg");
  assert.equal(short, "WEBVTT\n\n00:00:00.000 --> 00:00:00.400\n/s.jpg#xywh=0,0,160,120\n");
});

Deno.test("storyboardVtt: a URL that could break the track is refused", () => {
  const layout = planStoryboard({ duration: 2, width: 320, height: 240 });
  assert.throws(() => storyboardVtt(layout, "/s.jpg?token=a\n\n00:00:00.000 --> 99:00:00.000"), {
    message: /control character/,
  });
  assert.throws(() => storyboardVtt(layout, "/s.jpg?token=a\rb"), { message: /control character/ });
  assert.throws(() => storyboardVtt(layout, "/s.jpg?token=a-->b"), { message: /"-->"/ });
  assert.throws(() => storyboardVtt(layout, "/s.jpg?token=a#t=1"), { message: /fragment/ });
  assert.throws(() => storyboardVtt(layout, ""), { message: /empty/ });
});

/** Width and height of an image or video's first stream, by ffprobe. */
async function dimensions(path: string): Promise<[number, number]> {
  const streams = (await ffprobeJson(path)).streams as { width: number; height: number }[];
  assert.ok(streams[0], `no stream in ${path}`);
  return [streams[0].width, streams[0].height];
}

/**
 * PSNR between the first tile of a sprite and the video's first frame scaled
 * to the tile, with or without ffmpeg's autorotation: tells which
 * orientation the tile was made in.
 */
async function firstTilePsnr(
  sprite: string,
  video: string,
  layout: StoryboardLayout,
  autorotate: boolean,
): Promise<number> {
  const size = `${layout.tileWidth}:${layout.tileHeight}`;
  const out = await new Deno.Command("ffmpeg", {
    args: [
      "-nostdin",
      "-hide_banner",
      "-i",
      sprite,
      ...(autorotate ? [] : ["-noautorotate"]),
      "-i",
      video,
      "-filter_complex",
      `[0:v]crop=${size}:0:0,format=yuv420p[tile];` +
      `[1:v]trim=end_frame=1,scale=${size},setsar=1,format=yuv420p[frame];[tile][frame]psnr`,
      "-f",
      "null",
      "-",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const match = /PSNR .* average:([\d.]+|inf)/.exec(new TextDecoder().decode(out.stderr));
  assert.ok(match?.[1], "ffmpeg printed no PSNR");
  return match[1] === "inf" ? Infinity : Number(match[1]);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "offchat-storyboard-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("makeStoryboard: a 2 s landscape clip gives a 2 × 1 sprite of 160 × 120 tiles", async () => {
  const path = await fixture("h264.mp4");
  await withTempDir(async (dir) => {
    const out = `${dir}/storyboard.jpg`;
    const layout = await makeStoryboard(tools, {
      path,
      demuxer: "mov",
      duration: 2,
      width: 320,
      height: 240,
    }, out);
    assert.deepEqual(layout, planStoryboard({ duration: 2, width: 320, height: 240 }));
    assert.ok((await Deno.stat(out)).size > 0);
    assert.deepEqual(await dimensions(out), [2 * 160, 120]);
    assert.ok(await firstTilePsnr(out, path, layout, true) > 25);
  });
});

Deno.test("makeStoryboard: a rotated phone video gives upright portrait tiles", async () => {
  const path = await fixture("portrait.mp4");
  await withTempDir(async (dir) => {
    const out = `${dir}/storyboard.jpg`;
    const layout = await makeStoryboard(tools, {
      path,
      demuxer: "mov",
      duration: 2,
      width: 240,
      height: 320,
    }, out);
    assert.equal(layout.tileHeight, 214);
    assert.deepEqual(await dimensions(out), [layout.columns * 160, layout.rows * 214]);
    // The tile matches the rotated frame, not the stored landscape pixels squeezed upright.
    const upright = await firstTilePsnr(out, path, layout, true);
    const sideways = await firstTilePsnr(out, path, layout, false);
    assert.ok(upright > 25 && upright > sideways + 10, `upright ${upright}, sideways ${sideways}`);
  });
});

Deno.test("makeStoryboard: a 0.4 s clip still gives one tile", async () => {
  const path = await fixture("short.mp4");
  await withTempDir(async (dir) => {
    const out = `${dir}/storyboard.jpg`;
    const layout = await makeStoryboard(tools, {
      path,
      demuxer: "mov",
      duration: 0.4,
      width: 160,
      height: 120,
    }, out);
    assert.equal(layout.count, 1);
    assert.ok((await Deno.stat(out)).size > 0);
    assert.deepEqual(await dimensions(out), [160, 120]);
    assert.ok(await firstTilePsnr(out, path, layout, true) > 25);
  });
});

Deno.test("makeStoryboard: a file ffmpeg cannot read fails and leaves no sprite", async () => {
  const path = await fixture("text.mp4");
  await withTempDir(async (dir) => {
    const out = `${dir}/storyboard.jpg`;
    await Deno.writeTextFile(out, "stale");
    await assert.rejects(
      makeStoryboard(tools, { path, demuxer: "mov", duration: 2, width: 320, height: 240 }, out),
      { message: /^Storyboard failed: ffmpeg exited with \d+: .+/s },
    );
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
  });
});
