import assert from "node:assert/strict";
import { ApiError } from "../../../lib/core/errors.ts";
import {
  parseSubtitles,
  sanitizeCueText,
  SIDECAR_LIMITS,
  toWebVtt,
} from "../../../lib/media/subtitle_text.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function refused(input: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => parseSubtitles(input, SIDECAR_LIMITS),
    (error) =>
      error instanceof ApiError && error.code === "invalid_subtitles" &&
      pattern.test(error.message),
  );
}

Deno.test("SubRip (CRLF, BOM, comma times, <font>) becomes WebVTT with the same cues", () => {
  const srt = "\uFEFF1\r\n00:00:01,000 --> 00:00:02,500\r\nHello <b>there</b>\r\n\r\n" +
    '2\r\n00:01:00,250 --> 01:00:00,000\r\n<font color="red">Two</font>\r\nlines\r\n';
  const cues = parseSubtitles(bytes(srt), SIDECAR_LIMITS);
  assert.deepEqual(cues, [
    { start: 1000, end: 2500, text: "Hello <b>there</b>" },
    { start: 60250, end: 3600000, text: "Two\nlines" },
  ]);
  assert.equal(
    toWebVtt(cues),
    "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello <b>there</b>\n\n" +
      "00:01:00.250 --> 01:00:00.000\nTwo\nlines\n",
  );
});

Deno.test("WebVTT: header, NOTE and STYLE blocks, ids and settings are read; the cues round-trip", () => {
  const vtt =
    "WEBVTT - a title\nKind: captions\n\nNOTE who made it\n\nSTYLE\n::cue { color: red }\n\n" +
    "intro\n00:01.000 --> 00:02.000 align:start\n<v Alice>Hi &amp; bye</v>\n\n" +
    "00:00:03.000 --> 00:00:04.000\n<c.yellow>Yo</c> <00:00:03.500>ho\n";
  const cues = parseSubtitles(bytes(vtt), SIDECAR_LIMITS);
  assert.deepEqual(cues.map((c) => c.text), [
    "<v Alice>Hi &amp; bye</v>",
    "<c.yellow>Yo</c> <00:00:03.500>ho",
  ]);
  assert.deepEqual(parseSubtitles(bytes(toWebVtt(cues)), SIDECAR_LIMITS), cues);
});

Deno.test("cue text keeps WebVTT's tags only: script, HTML and stray markup are neutralised", () => {
  assert.equal(sanitizeCueText("<script>alert(1)</script>"), "alert(1)");
  assert.equal(sanitizeCueText('<img src=x onerror="alert(1)">x'), "x");
  assert.equal(sanitizeCueText("a < b > c & d"), "a &lt; b &gt; c &amp; d");
  assert.equal(sanitizeCueText("--> not a timing"), "--&gt; not a timing");
  assert.equal(sanitizeCueText("{\\an8}top\u202Etxt.exe"), "toptxt.exe");
  assert.equal(sanitizeCueText('<v Bob"><i>ok</i></v>'), "<i>ok</i></v>");
});

Deno.test("hostile files are refused: binary, a playlist, no cue, bad timings, too many cues", () => {
  refused(new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x80, 0x81]), /UTF-8/);
  refused(bytes("1\n00:00:01,000 --> 00:00:02,000\nnul\0byte\n"), /not text/);
  refused(
    bytes("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
    /not a cue/,
  );
  refused(bytes("WEBVTT\n\n#EXTM3U\n#EXTINF:10,\nhttp://example.com/a.ts\n"), /not a cue/);
  refused(bytes("WEBVTT\n"), /no cues/);
  refused(bytes("1\n00:00:02,000 --> 00:00:01,000\nbackwards\n"), /bad timing/);
  refused(bytes("1\n00:00:01,000 --> 99:99:99,999\nnonsense\n"), /bad timing/);
  const many = Array.from(
    { length: SIDECAR_LIMITS.maxCues + 1 },
    (_, i) => `00:00:${String(i % 60).padStart(2, "0")}.000 --> 00:00:59.000\nx\n`,
  ).join("\n");
  refused(bytes(`WEBVTT\n\n${many}`), /more than 5000 cues/);
});
