import assert from "node:assert/strict";
import { contentDisposition } from "../../../lib/serving/content_disposition.ts";
import { sanitizeFileName } from "../../../lib/core/file_name.ts";
import { isNotModified } from "../../../lib/serving/not_modified.ts";
import { parseRange } from "../../../lib/serving/range.ts";

Deno.test("parseRange: single, suffix, open, unsatisfiable, malformed, multi", () => {
  const size = 1000;
  assert.deepEqual(parseRange(null, size), { kind: "full" });
  assert.deepEqual(parseRange("bytes=0-0", size), { kind: "partial", range: { start: 0, end: 0 } });
  assert.deepEqual(parseRange("bytes=-500", size), {
    kind: "partial",
    range: { start: 500, end: 999 },
  });
  assert.deepEqual(parseRange("bytes=-5000", size), {
    kind: "partial",
    range: { start: 0, end: 999 },
  });
  assert.deepEqual(parseRange("bytes=100-", size), {
    kind: "partial",
    range: { start: 100, end: 999 },
  });
  assert.deepEqual(parseRange("bytes=900-5000", size), {
    kind: "partial",
    range: { start: 900, end: 999 },
  });
  assert.equal(parseRange("bytes=1000-", size).kind, "unsatisfiable");
  assert.equal(parseRange("bytes=5-1", size).kind, "unsatisfiable");
  assert.equal(parseRange("bytes=-0", size).kind, "unsatisfiable");
  assert.equal(parseRange("bytes=abc", size).kind, "unsatisfiable");
  assert.equal(parseRange("bytes=-", size).kind, "unsatisfiable");
  assert.equal(parseRange("bytes=99999999999999999999-", size).kind, "unsatisfiable");
  assert.equal(parseRange("bytes=0-1,5-6", size).kind, "full");
  assert.equal(parseRange("items=0-1", size).kind, "full");
  const many = `bytes=${Array.from({ length: 300 }, (_, i) => `${i}-${i}`).join(",")}`;
  assert.equal(parseRange(many, size).kind, "unsatisfiable");
});

Deno.test("isNotModified: If-None-Match first, then If-Modified-Since; never on a no-cache reload", () => {
  const etag = '"abc"';
  const lastModified = "Wed, 21 Oct 2015 07:28:00 GMT";
  const ask = (headers: Record<string, string>) =>
    isNotModified(new Headers(headers), etag, lastModified);
  assert.equal(ask({}), false);
  assert.equal(ask({ "if-none-match": '"abc"' }), true);
  assert.equal(ask({ "if-none-match": 'W/"abc"' }), true, "weak comparison");
  assert.equal(ask({ "if-none-match": '"x", W/"abc"' }), true, "a list");
  assert.equal(ask({ "if-none-match": "*" }), true);
  assert.equal(ask({ "if-none-match": '"abcd"' }), false);
  assert.equal(ask({ "if-none-match": '"abc"', "cache-control": "no-cache" }), false);
  assert.equal(ask({ "if-modified-since": lastModified }), true);
  assert.equal(ask({ "if-modified-since": "Wed, 21 Oct 2015 07:27:59 GMT" }), false);
  // If-None-Match wins over If-Modified-Since.
  assert.equal(ask({ "if-none-match": '"other"', "if-modified-since": lastModified }), false);
  assert.equal(isNotModified(new Headers({ "if-modified-since": lastModified }), etag), false);
});

Deno.test("contentDisposition: plain for safe ASCII, RFC 5987 otherwise", () => {
  assert.equal(contentDisposition("attachment", "video.mp4"), 'attachment; filename="video.mp4"');
  assert.equal(
    contentDisposition("attachment", 'a"b.mp4'),
    `attachment; filename="a_b.mp4"; filename*=UTF-8''a%22b.mp4`,
  );
  assert.equal(
    contentDisposition("inline", "видео.mp4"),
    `inline; filename="_____.mp4"; filename*=UTF-8''%D0%B2%D0%B8%D0%B4%D0%B5%D0%BE.mp4`,
  );
  // Header values must never contain CR/LF whatever the stored name.
  assert.doesNotMatch(contentDisposition("attachment", "a\r\nSet-Cookie: x"), /[\r\n]/);
});

Deno.test("sanitizeFileName: last segment, no controls, bounded", () => {
  assert.equal(sanitizeFileName("../../etc/passwd"), "passwd");
  assert.equal(sanitizeFileName("C:\\Users\\me\\clip.mp4"), "clip.mp4");
  assert.equal(sanitizeFileName("a\r\nb\u0000c.mp4"), "abc.mp4");
  assert.equal(sanitizeFileName("...hidden.mp4"), "hidden.mp4");
  assert.equal(sanitizeFileName("   ", { fallback: "video.mp4" }), "video.mp4");
  assert.equal(sanitizeFileName("evil\u202egpj.mp4"), "evilgpj.mp4");
  const long = sanitizeFileName(`${"é".repeat(400)}.mp4`);
  assert.equal(Array.from(long).length, 255);
  assert.ok(long.endsWith(".mp4"));
});
