import assert from "node:assert/strict";
import { formatDuration } from "../../routes/_serialize.ts";

Deno.test("formatDuration: M:SS below an hour, H:MM:SS from one hour", () => {
  assert.equal(formatDuration(0.4), "0:00");
  assert.equal(formatDuration(120.04), "2:00");
  assert.equal(formatDuration(59.6), "1:00");
  assert.equal(formatDuration(3600), "1:00:00");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(formatDuration(null), null);
});
