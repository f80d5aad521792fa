/**
 * Point 1 of the threat model: content that ffmpeg would read as a playlist,
 * a script, a subtitle, a terminal "video" or any demuxer outside the
 * allowlist, whatever its name, and such content inside an accepted
 * container, never makes ffprobe/ffmpeg open another file or a URL.
 */
import assert from "node:assert/strict";
import { ApiError } from "../../lib/core/errors.ts";
import { probeVideo } from "../../lib/media/probe.ts";
import { runTool } from "../../lib/media/run_tool.ts";
import { type Container, CONTAINERS, DEMUXER_ALLOWLIST } from "../../lib/media/containers.ts";
import { fixture, TEST_TOOLS } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";
import {
  disguisedPayloads,
  mkvWithPlaylistAttachment,
  mp4WithDataReference,
  otherFormats,
  type Targets,
  textPayloads,
} from "./_payloads.ts";
import {
  assertNothingLeft,
  assertProblem,
  openListener,
  openTripwire,
  snapshot,
  storedPath,
  uploadBytes,
} from "./_world.ts";

const enc = new TextEncoder();

function containerFor(demuxer: Container["demuxer"]): Container {
  return CONTAINERS.find((c) => c.demuxer === demuxer)!;
}

Deno.test("demuxers: hostile uploads under any name are 4xx problems; nothing is opened, connected or left", async () => {
  await using ctx = await createTestContext();
  await using listener = openListener();
  const scratch = await Deno.makeTempDir({ prefix: "offchat-payloads-" });
  try {
    await using tripwire = await openTripwire(scratch);
    // Bob's stored upload is what the payloads try to read.
    const bobs = await conversationWithMessage(ctx, "bob");
    const victim = await body(
      await uploadFile(ctx, "bob", bobs.messageId, await fixture("h264.mp4")),
    );
    // Its thumbnail, rendition and storyboard are made first, so that what the
    // payloads leave (nothing) is not confused with the victim's own files.
    assert.equal((await waitForProcessed(ctx, "bob", String(victim.id))).status, "ready");
    const victimPath = await storedPath(ctx, String(victim.id));
    const targets: Targets = {
      victim: victimPath,
      victimRelative: `..${victimPath.slice(ctx.dataDir.length)}`,
      tripwire: tripwire.path,
      url: `${listener.url}/segment.ts`,
    };
    const payloads: Record<string, Uint8Array> = {};
    for (const [name, text] of Object.entries(textPayloads(targets))) {
      payloads[name] = enc.encode(text);
    }
    Object.assign(payloads, disguisedPayloads(targets));
    Object.assign(payloads, await otherFormats(scratch));
    payloads["MP4 whose track data is another user's upload (absolute alias)"] =
      await mp4WithDataReference(scratch, targets.victim);
    payloads["MP4 whose track data is another user's upload (relative alias)"] =
      await mp4WithDataReference(scratch, targets.victimRelative, 1);
    payloads["MP4 whose track data is /etc/passwd"] = await mp4WithDataReference(
      scratch,
      "/etc/passwd",
    );
    payloads["MP4 whose track data is the tripwire"] = await mp4WithDataReference(
      scratch,
      tripwire.path,
    );
    payloads["MKV carrying an HLS playlist as an attachment"] = await mkvWithPlaylistAttachment(
      scratch,
      textPayloads(targets)["HLS playlist reading another user's upload"]!,
    );

    const alices = await conversationWithMessage(ctx, "alice");
    const before = await snapshot(ctx);
    const names = [
      "clip.mp4",
      "playlist.m3u8",
      "list.ffconcat",
      "notes.txt",
      "%03d.png",
      "video.mkv",
    ];
    for (const [label, bytes] of Object.entries(payloads)) {
      for (const fileName of names) {
        const response = await uploadBytes(ctx, "alice", alices.messageId, bytes, fileName);
        await assertProblem(response, `${label} as ${fileName}`, [415, 422]);
      }
    }
    assert.equal(listener.connections(), 0, "the loopback listener saw a connection");
    assert.equal(tripwire.opened(), false, "a media tool opened the tripwire");
    await assertNothingLeft(ctx, before);
    // Bob's video is untouched and still his alone.
    const theirs = await ctx.request("alice", `/api/chat/attachments/${victim.id}`);
    assert.equal(theirs.status, 404, JSON.stringify(await body(theirs)));
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("demuxers: ffprobe under the hardened flags refuses every payload with every allowed demuxer", async () => {
  await using listener = openListener();
  const scratch = await Deno.makeTempDir({ prefix: "offchat-payloads-" });
  try {
    await using tripwire = await openTripwire(scratch);
    const victim = await fixture("h264.mp4");
    const targets: Targets = {
      victim,
      victimRelative: victim.slice(victim.lastIndexOf("/") + 1),
      tripwire: tripwire.path,
      url: `${listener.url}/segment.ts`,
    };
    const payloads: Record<string, Uint8Array> = {};
    for (const [name, text] of Object.entries(textPayloads(targets))) {
      payloads[name] = enc.encode(text);
    }
    Object.assign(payloads, disguisedPayloads(targets));
    for (const [label, bytes] of Object.entries(payloads)) {
      const path = `${scratch}/payload.bin`;
      await Deno.writeFile(path, bytes);
      for (const demuxer of DEMUXER_ALLOWLIST) {
        await assert.rejects(
          () => probeVideo(TEST_TOOLS, path, { container: containerFor(demuxer) }),
          (e) => e instanceof ApiError && e.status === 422,
          `${label} read as ${demuxer}`,
        );
      }
    }
    assert.equal(listener.connections(), 0);
    assert.equal(tripwire.opened(), false);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("demuxers (control): the same payloads are live without the hardened flags", async () => {
  // Proof that the payloads above are real attacks: ffprobe left to guess the
  // format, or with data references on, does open another file. (ffmpeg 5.1
  // itself limits a local playlist to the file, crypto and data protocols, so
  // no network control is possible; the listener above guards against that
  // ever changing, and against other demuxers.)
  await using listener = openListener();
  const scratch = await Deno.makeTempDir({ prefix: "offchat-payloads-" });
  try {
    {
      await using tripwire = await openTripwire(scratch);
      const targets: Targets = {
        victim: tripwire.path,
        victimRelative: tripwire.path,
        tripwire: tripwire.path,
        url: `${listener.url}/segment.ts`,
      };
      const playlist = `${scratch}/clip.mp4`;
      await Deno.writeTextFile(
        playlist,
        textPayloads(targets)["HLS playlist reading the tripwire"]!,
      );
      const probe = runTool("ffprobe", ["-v", "error", "-show_streams", playlist], {
        timeoutMs: 10_000,
        addressSpaceBytes: TEST_TOOLS.limits.toolMemoryBytes,
      });
      for (let i = 0; i < 100 && !tripwire.opened(); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(tripwire.opened(), true, "an HLS playlist named .mp4 opens a local file");
      // Disposing closes our end, so ffprobe sees the end of the "segment".
      await tripwire[Symbol.asyncDispose]();
      await probe;
    }
    {
      await using tripwire = await openTripwire(scratch);
      const movie = `${scratch}/alias.mp4`;
      await Deno.writeFile(movie, await mp4WithDataReference(scratch, tripwire.path));
      const probe = runTool("ffprobe", [
        "-v",
        "error",
        "-enable_drefs",
        "1",
        "-use_absolute_path",
        "1",
        "-show_streams",
        movie,
      ], { timeoutMs: 10_000, addressSpaceBytes: TEST_TOOLS.limits.toolMemoryBytes });
      for (let i = 0; i < 100 && !tripwire.opened(); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(tripwire.opened(), true, "a data reference opens another file when allowed");
      await tripwire[Symbol.asyncDispose]();
      await probe;
    }
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
