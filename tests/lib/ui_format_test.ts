import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  formatList,
  formatQuality,
  formatTimeLeft,
  RateMeter,
} from "../../ui/format.js";

Deno.test("dashboard format: sizes, durations, time left, lists", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1536), "1.5 KB");
  assert.equal(formatBytes(8 * 1024 * 1024), "8 MB");
  assert.equal(formatBytes(104857600), "100 MB");
  assert.equal(formatBytes(1646709), "1.57 MB");
  assert.equal(formatBytes(-1), "–");
  assert.equal(formatDuration(8.04), "0:08");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(formatTimeLeft(Number.NaN), "calculating…");
  assert.equal(formatTimeLeft(4.2), "about 5 s left");
  assert.equal(formatTimeLeft(150), "about 3 min left");
  assert.equal(formatList(["MP4", "WebM", "AVI"]), "MP4, WebM or AVI");
});

Deno.test("dashboard format: a rung's quality is named by its shorter side", () => {
  assert.equal(formatQuality(1280, 720), "720p");
  assert.equal(formatQuality(720, 1280), "720p", "portrait too");
  assert.equal(formatQuality(640, 360), "360p");
  assert.equal(formatQuality(undefined, 1080), "1080p", "hls.js may not know a width");
  assert.equal(formatQuality(undefined, undefined), "–");
});

Deno.test("dashboard format: the upload speed is measured over a sliding window", () => {
  const meter = new RateMeter(3000);
  assert.equal(meter.add(0, 0), 0);
  assert.equal(meter.add(100_000, 100), 0, "too soon to tell");
  assert.equal(meter.add(1_000_000, 1000), 1_000_000);
  // Samples older than the window are dropped: the rate follows the connection.
  meter.add(1_100_000, 5000);
  assert.equal(Math.round(meter.add(1_200_000, 6000)), 100_000);
  meter.reset();
  assert.equal(meter.rate(), 0);
});
