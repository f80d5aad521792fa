import assert from "node:assert/strict";
import { findUnsafeCharacter, stripUnsafeCharacters } from "../../../lib/core/unsafe_text.ts";
import { sanitizeFileName } from "../../../lib/core/file_name.ts";

Deno.test("unsafe text: names the first refused character as U+XXXX", () => {
  assert.equal(findUnsafeCharacter("plain text, émoji 👍🏽"), null);
  assert.equal(findUnsafeCharacter("a\u202Eb\u0000"), "U+202E");
  assert.equal(findUnsafeCharacter("a\u0000"), "U+0000");
  assert.equal(findUnsafeCharacter("tag\u{E0041}"), "U+E0041");
  assert.equal(findUnsafeCharacter("lone\uDC00"), "U+DC00");
});

Deno.test("unsafe text: line breaks only in multi-line text, and CR only before LF", () => {
  assert.equal(findUnsafeCharacter("a\nb"), "U+000A");
  assert.equal(findUnsafeCharacter("a\tb"), "U+0009");
  assert.equal(findUnsafeCharacter("a\nb\tc\r\nd", { multiline: true }), null);
  assert.equal(findUnsafeCharacter("a\rb", { multiline: true }), "U+000D");
  assert.equal(findUnsafeCharacter("a\r", { multiline: true }), "U+000D");
  assert.equal(findUnsafeCharacter("a\u2028b", { multiline: true }), "U+2028");
});

Deno.test("unsafe text: ZWJ, ZWNJ and whole emoji tag sequences are kept", () => {
  const scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
  for (const text of ["👨‍👩‍👧", "می‌خواهم", scotland, `${scotland}${scotland}`]) {
    assert.equal(findUnsafeCharacter(text), null, text);
    assert.equal(stripUnsafeCharacters(text), text);
  }
  // Tags without their flag, or a flag cut before its cancel tag, are invisible text.
  assert.equal(stripUnsafeCharacters("\u{E0067}\u{E0062}x"), "x");
  assert.equal(stripUnsafeCharacters("\u{1F3F4}\u{E0067}\u{E0062}"), "\u{1F3F4}");
  assert.equal(stripUnsafeCharacters("a\u200Bb\uFEFFc\u00AD", { multiline: true }), "abc");
  assert.equal(stripUnsafeCharacters("a\r\nb\rc", { multiline: true }), "a\r\nbc");
});

Deno.test("sanitizeFileName: a cut through an emoji flag leaves no tag characters", () => {
  const scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
  const name = sanitizeFileName(`${"a".repeat(250)}${scotland}.mp4`);
  assert.equal(findUnsafeCharacter(name), null);
  assert.ok(name.endsWith(".mp4"));
});
