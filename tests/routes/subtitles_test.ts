import assert from "node:assert/strict";
import { sql } from "drizzle-orm";
import { ffmpeg, X264 } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  countRows,
  createTestContext,
  listFiles,
  localPath,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";
import { SIDECAR_MAX_BYTES } from "../../routes/subtitles.ts";
import { fsck } from "../../lib/storage/fsck.ts";

const SRT_EN = "1\n00:00:00,100 --> 00:00:00,800\nHello world\n\n" +
  "2\n00:00:00,900 --> 00:00:01,400\nSecond line\n";
const SRT_FR = "1\n00:00:00,100 --> 00:00:00,800\nBonjour le monde\n";
const ASS_FR = `[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.10,0:00:00.80,Default,,0,0,0,,Salut {\\i1}tout{\\i0} le monde
`;

interface Track {
  id: string;
  language: string;
  label: string;
  source: string;
  url: string;
}

/** An MP4 with two mov_text tracks and an MKV with a SubRip and an ASS track (1 s, 160×120). */
async function makeFixtures(dir: string): Promise<{ mp4: string; mkv: string }> {
  await Deno.writeTextFile(`${dir}/en.srt`, SRT_EN);
  await Deno.writeTextFile(`${dir}/fr.srt`, SRT_FR);
  await Deno.writeTextFile(`${dir}/fr.ass`, ASS_FR);
  const video = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1.5"];
  const tracks = (second: string, codecs: string[], format: string, out: string) => [
    ...video,
    "-i",
    `${dir}/en.srt`,
    "-i",
    `${dir}/${second}`,
    "-map",
    "0:v",
    "-map",
    "1",
    "-map",
    "2",
    ...X264,
    ...codecs,
    "-metadata:s:s:0",
    "language=eng",
    "-metadata:s:s:0",
    "title=English",
    "-metadata:s:s:1",
    "language=fre",
    "-metadata:s:s:1",
    "title=Français",
    "-f",
    format,
    "-y",
    out,
  ];
  const mp4 = `${dir}/subs.mp4`;
  const mkv = `${dir}/subs.mkv`;
  await Promise.all([
    ffmpeg(tracks("fr.srt", ["-c:s", "mov_text"], "mp4", mp4)),
    ffmpeg(tracks("fr.ass", ["-c:s:0", "srt", "-c:s:1", "ass"], "matroska", mkv)),
  ]);
  return { mp4, mkv };
}

async function uploadReady(
  ctx: TestContext,
  messageId: string,
  path: string,
): Promise<Record<string, unknown>> {
  const created = await body(await uploadFile(ctx, "alice", messageId, path));
  const attachment = await waitForProcessed(ctx, "alice", String(created.id));
  assert.equal(attachment.status, "ready", JSON.stringify(attachment.error));
  return attachment;
}

/** The cue texts of a served WebVTT track, checking how it is served. */
async function cueTexts(ctx: TestContext, url: string, user = "bob"): Promise<string[]> {
  const response = await ctx.request(user, localPath(url));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/vtt; charset=utf-8");
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.match(response.headers.get("content-security-policy") ?? "", /sandbox/);
  const text = await response.text();
  assert.match(text, /^WEBVTT\n/);
  return text.split("\n\n").slice(1).map((cue) => cue.split("\n").slice(1).join("\n").trim())
    .filter(Boolean);
}

function sidecarForm(file: BlobPart, name: string, language = "en", label = "English"): FormData {
  const form = new FormData();
  form.append("language", language);
  form.append("label", label);
  form.append("file", new Blob([file]), name);
  return form;
}

/** A multipart body streamed from `chunks` (never held whole); counts what was pulled. */
function streamedSidecar(name: string, chunks: () => Generator<Uint8Array>) {
  const boundary = "----subtitle-test-boundary";
  const encoder = new TextEncoder();
  const head = encoder.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
      "Content-Type: application/octet-stream\r\n\r\n",
  );
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const state = { pulled: 0 };
  const parts = (function* () {
    yield head;
    yield* chunks();
    yield tail;
  })();
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = parts.next();
      if (next.done) return controller.close();
      state.pulled += next.value.byteLength;
      controller.enqueue(next.value);
    },
  });
  return {
    state,
    init: {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body: stream,
      duplex: "half",
    } as RequestInit,
  };
}

Deno.test("subtitles: embedded tracks are extracted; sidecars round-trip; hostile ones leave nothing", async (t) => {
  await using ctx = await createTestContext();
  const dir = await Deno.makeTempDir({ prefix: "offchat-subs-" });
  try {
    const { mp4, mkv } = await makeFixtures(dir);
    const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
    const [fromMp4, fromMkv] = await Promise.all([
      uploadReady(ctx, messageId, mp4),
      uploadReady(ctx, messageId, mkv),
    ]);

    await t.step(
      "MP4 mov_text and MKV SubRip + ASS give WebVTT tracks in two languages",
      async () => {
        for (
          const [attachment, french] of [[fromMp4, "Bonjour le monde"], [
            fromMkv,
            "Salut <i>tout</i> le monde",
          ]] as const
        ) {
          const tracks = attachment.subtitles as Track[];
          assert.deepEqual(
            tracks.map(({ language, label, source }) => ({ language, label, source })),
            // ISO 639-2 tags become BCP 47's; MP4 keeps no track title, MKV does.
            attachment === fromMp4
              ? [
                { language: "en", label: "en", source: "embedded" },
                { language: "fr", label: "fr", source: "embedded" },
              ]
              : [
                { language: "en", label: "English", source: "embedded" },
                { language: "fr", label: "Français", source: "embedded" },
              ],
          );
          assert.equal(attachment.subtitles_skipped, 0);
          assert.deepEqual(await cueTexts(ctx, tracks[0]!.url), ["Hello world", "Second line"]);
          assert.deepEqual(await cueTexts(ctx, tracks[1]!.url), [french]);
        }
      },
    );

    const id = String(fromMkv.id);
    const base = `/api/chat/attachments/${id}/subtitles`;
    const subtitleFiles = async () =>
      (await listFiles(ctx.dataDir)).filter((f) =>
        f.startsWith("subtitles/") || f.startsWith("tmp/")
      );
    const before = await subtitleFiles();

    await t.step(
      "a sidecar SRT and a VTT round-trip; listed, served, deleted and logged",
      async () => {
        const srt = await ctx.request("alice", base, {
          method: "POST",
          body: sidecarForm(SRT_EN, "captions.srt", "EN-us", "English (CC)"),
        });
        assert.equal(srt.status, 201);
        const added = await body<Track>(srt);
        assert.deepEqual([added.language, added.label, added.source], [
          "en-US",
          "English (CC)",
          "sidecar",
        ]);
        assert.deepEqual(await cueTexts(ctx, added.url), ["Hello world", "Second line"]);

        const vttText = "WEBVTT\n\n00:00.100 --> 00:00.800\n<i>Hola</i> &amp; adiós\n";
        const vtt = await body<Track>(
          await ctx.request("alice", base, {
            method: "POST",
            body: sidecarForm(vttText, "es.vtt", "es", "Español"),
          }),
        );
        assert.deepEqual(await cueTexts(ctx, vtt.url), ["<i>Hola</i> &amp; adiós"]);

        // fsck owns every subtitle file, embedded (a job's directory) and sidecar.
        const { db, storage, clock } = ctx.deps;
        assert.deepEqual((await fsck({ db, storage, clock, dataDir: ctx.dataDir })).issues, []);
        const listed = await body<Track[]>(await ctx.request("bob", base));
        assert.deepEqual(listed.map((track) => track.source), [
          "embedded",
          "embedded",
          "sidecar",
          "sidecar",
        ]);
        assert.equal(
          (await ctx.request("bob", base, { method: "POST", body: sidecarForm(SRT_EN, "b.srt") }))
            .status,
          403,
        );
        assert.equal(
          (await ctx.request("bob", `${base}/${vtt.id}`, { method: "DELETE" })).status,
          403,
        );
        for (const track of [added, vtt]) {
          assert.equal(
            (await ctx.request("alice", `${base}/${track.id}`, { method: "DELETE" })).status,
            204,
          );
        }
        assert.equal((await ctx.request("bob", localPath(added.url))).status, 404);
        assert.deepEqual(await subtitleFiles(), before);
        const actions = await ctx.deps.db.all<{ action: string }>(
          sql`SELECT action FROM activity_log WHERE action LIKE 'subtitle.%' ORDER BY at, id`,
        );
        assert.deepEqual(actions.map((row) => row.action), [
          "subtitle.add",
          "subtitle.add",
          "subtitle.delete",
          "subtitle.delete",
        ]);
      },
    );

    await t.step("<script> in a cue is neutralised", async () => {
      const hostile = "1\n00:00:00,100 --> 00:00:00,800\n<script>alert(1)</script><b>bold</b>\n";
      const response = await ctx.request("alice", base, {
        method: "POST",
        body: sidecarForm(hostile, "x.srt"),
      });
      assert.equal(response.status, 201);
      const track = await body<Track>(response);
      assert.deepEqual(await cueTexts(ctx, track.url), ["alert(1)<b>bold</b>"]);
      assert.equal(
        (await ctx.request("alice", `${base}/${track.id}`, { method: "DELETE" })).status,
        204,
      );
    });

    await t.step("hostile sidecars are refused with a 4xx and leave nothing behind", async () => {
      const rows = await countRows(ctx, "activity_log");
      const refuse = async (init: RequestInit, status: number, type: string) => {
        const response = await ctx.request("alice", base, init);
        assert.equal(response.status, status);
        assert.equal((await body(response)).type?.toString().endsWith(type), true);
      };
      const post = (form: FormData) => ({ method: "POST", body: form });
      // 1 million cues, streamed: refused once past the size limit, long before the end.
      const cue = new TextEncoder().encode("00:00:00.000 --> 00:00:00.001\nx\n\n");
      const million = streamedSidecar("many.vtt", function* () {
        yield new TextEncoder().encode("WEBVTT\n\n");
        for (let i = 0; i < 1_000_000; i++) yield cue;
      });
      await refuse(million.init, 413, "file_too_large");
      assert.ok(million.state.pulled < 1_000_000 * cue.byteLength / 4);
      // 50 MB, streamed.
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      const big = streamedSidecar("big.srt", function* () {
        for (let sent = 0; sent < 50_000_000; sent += chunk.byteLength) yield chunk;
      });
      await refuse(big.init, 413, "file_too_large");
      assert.ok(big.state.pulled < 8 * SIDECAR_MAX_BYTES, `pulled ${big.state.pulled}`);
      // A binary file named .srt.
      const binary = crypto.getRandomValues(new Uint8Array(4096));
      await refuse(post(sidecarForm(binary, "movie.srt")), 422, "invalid_subtitles");
      // An HLS playlist named .vtt, with and without a WEBVTT header.
      const playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n";
      await refuse(post(sidecarForm(playlist, "list.vtt")), 422, "invalid_subtitles");
      await refuse(
        post(sidecarForm(`WEBVTT\n\n${playlist}`, "list.vtt")),
        422,
        "invalid_subtitles",
      );
      // Not .srt/.vtt, a bad language.
      await refuse(post(sidecarForm(SRT_EN, "x.ass")), 415, "unsupported_media_type");
      await refuse(post(sidecarForm(SRT_EN, "x.srt", "<b>")), 400, "invalid_request");
      assert.deepEqual(await subtitleFiles(), before);
      assert.equal(await countRows(ctx, "activity_log"), rows);
      const tracks = await body<Track[]>(await ctx.request("alice", base));
      assert.equal(tracks.length, 2);
    });

    await t.step("deleting the attachment removes its subtitle files", async () => {
      await ctx.request("alice", base, { method: "POST", body: sidecarForm(SRT_EN, "a.srt") });
      for (const attachment of [fromMp4, fromMkv]) {
        const path = `/api/chat/attachments/${attachment.id}`;
        assert.equal((await ctx.request("alice", path, { method: "DELETE" })).status, 204);
      }
      assert.deepEqual(
        (await listFiles(ctx.dataDir)).filter((f) => f.startsWith("subtitles/")),
        [],
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
