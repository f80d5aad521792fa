/**
 * Text that lies about itself: a right-to-left override that makes
 * `gpj.exe` read as `exe.jpg`, zero-width and byte-order marks that make two
 * names look alike, line separators, terminal escapes, and a NUL that used to
 * cut a stored message short while the POST echoed it whole. Titles and
 * bodies are refused with 400; file names and logged header values lose the
 * characters; legitimate text (line breaks in bodies, emoji sequences, flags,
 * Persian with ZWNJ) comes back byte for byte. The rule is `lib/core/unsafe_text.ts`.
 */
import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { activityLog } from "../../db/schema.ts";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  countRows,
  createTestContext,
  localPath,
  postJson,
} from "../_helpers.ts";
import { assertProblem, uploadBytes } from "./_world.ts";

/** Each is refused in titles and bodies, and removed from file names. */
const SPOOFING = {
  "U+202E": "\u202E", // right-to-left override
  "U+2066": "\u2066", // left-to-right isolate
  "U+200F": "\u200F", // right-to-left mark
  "U+200B": "\u200B", // zero-width space
  "U+0007": "\u0007", // BEL
  "U+001B": "\u001B", // ESC, terminal escape sequences
  "U+0000": "\u0000", // NUL, which truncated the stored text
  "U+0085": "\u0085", // NEL, a C1 control
  "U+2028": "\u2028", // line separator
  "U+2029": "\u2029", // paragraph separator
  "U+FEFF": "\uFEFF", // byte order mark
  "U+00AD": "\u00AD", // soft hyphen
  "U+E0041": "\u{E0041}", // a tag character outside a flag: invisible text
  "U+D800": "\uD800", // a lone surrogate, stored as U+FFFD
};

/** Refused in titles (single line) but allowed in bodies. */
const LINE_BREAKS = { "U+000A": "\n", "U+0009": "\t" };

/** Everything a real message may hold, and that must come back unchanged. */
const LEGITIMATE = "Line one\nline\ttwo\r\nthree: 👨‍👩‍👧 family, 🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland, " +
  "می‌خواهم (Persian with ZWNJ), क्‍ष (Devanagari with ZWJ), ❤️ and 👍🏽, עברית, العربية";

Deno.test("text spoofing: titles and bodies with control or bidi characters are 400 and create nothing", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { conversationId } = await conversationWithMessage(ctx, "alice");
  const conversations = await countRows(ctx, "conversations");
  const messages = await countRows(ctx, "messages");
  const titleCases = { ...SPOOFING, ...LINE_BREAKS };
  for (const [label, char] of Object.entries(titleCases)) {
    const response = await postJson(ctx, "alice", "/api/chat/conversations", {
      title: `invoice${char}gpj.exe`,
    });
    const problem = await assertProblem(response, `title ${label}`, [400]);
    assert.equal(problem.code, "invalid_request");
    assert.equal(
      problem.detail,
      `Field "title": must not contain control, invisible or bidirectional-override characters (found "${label}")`,
    );
    // Leading or trailing, where trimming could have hidden it.
    for (const title of [`${char}title`, `title${char}`]) {
      const edge = await postJson(ctx, "alice", "/api/chat/conversations", { title });
      await assertProblem(edge, `title edge ${label}`, [400]);
    }
  }
  const bodyCases = { ...SPOOFING, "U+000D": "\r" };
  for (const [label, char] of Object.entries(bodyCases)) {
    const response = await postJson(
      ctx,
      "alice",
      `/api/chat/conversations/${conversationId}/messages`,
      { body: `pay to${char} account 1234 and then the rest of the message` },
    );
    const problem = await assertProblem(response, `body ${label}`, [400]);
    assert.equal(problem.code, "invalid_request");
    assert.equal(
      problem.detail,
      `Field "body": must not contain control, invisible or bidirectional-override characters (found "${label}")`,
    );
  }
  assert.equal(await countRows(ctx, "conversations"), conversations, "no conversation was made");
  assert.equal(await countRows(ctx, "messages"), messages, "no message was stored");
  const listed = await body<{ messages: { body: string }[] }>(
    await ctx.request("alice", `/api/chat/conversations/${conversationId}/messages`),
  );
  assert.deepEqual(listed.messages.map((m) => m.body), ["a video"]);
});

Deno.test("text spoofing: line breaks, emoji sequences, flags and ZWNJ are stored and listed byte-identical", async () => {
  await using ctx = await createTestContext({ worker: false });
  const title = "👨‍👩‍👧 🏴󠁧󠁢󠁳󠁣󠁴󠁿 می‌خواهم";
  const created = await postJson(ctx, "alice", "/api/chat/conversations", { title });
  assert.equal(created.status, 201);
  const conversation = await body<{ id: string; title: string }>(created);
  assert.equal(conversation.title, title);
  const posted = await postJson(
    ctx,
    "alice",
    `/api/chat/conversations/${conversation.id}/messages`,
    { body: LEGITIMATE },
  );
  assert.equal(posted.status, 201);
  assert.equal((await body<{ body: string }>(posted)).body, LEGITIMATE);
  const listed = await body<{ messages: { body: string }[] }>(
    await ctx.request("alice", `/api/chat/conversations/${conversation.id}/messages`),
  );
  const encoder = new TextEncoder();
  assert.deepEqual(encoder.encode(listed.messages[0]!.body), encoder.encode(LEGITIMATE));
  const shown = await body<{ title: string }>(
    await ctx.request("alice", `/api/chat/conversations/${conversation.id}`),
  );
  assert.deepEqual(encoder.encode(shown.title), encoder.encode(title));
});

Deno.test("text spoofing: user ids cannot carry control or bidi characters", async () => {
  await using ctx = await createTestContext({ worker: false });
  for (const char of Object.values(SPOOFING)) {
    const response = await postJson(ctx, "alice", "/api/chat/conversations", {
      participant_ids: [`bob${char}`],
    });
    await assertProblem(response, JSON.stringify(char), [400]);
  }
  const { conversationId } = await conversationWithMessage(ctx, "alice");
  const added = await postJson(
    ctx,
    "alice",
    `/api/chat/conversations/${conversationId}/participants`,
    { user_id: "mallory\u202Enimda" },
  );
  await assertProblem(added, "participant", [400]);
  await assert.rejects(() => ctx.token("mallory\u202E"), /Invalid user id/);
});

/** Names whose spoofing characters must be dropped, and what is left. */
const FILE_NAMES: [string, string][] = [
  ["invoice\u202Egpj.exe", "invoicegpj.exe"],
  ["clip\u200F\u200B.mp4", "clip.mp4"],
  ["two\u2028lines\u2029.mp4", "twolines.mp4"],
  ["\uFEFFbom\u00AD.mp4", "bom.mp4"],
  ["hidden\u{E0041}\u{E0042}.mp4", "hidden.mp4"],
  ["👨‍👩‍👧 🏴󠁧󠁢󠁳󠁣󠁴󠁿 می‌خواهم.mp4", "👨‍👩‍👧 🏴󠁧󠁢󠁳󠁣󠁴󠁿 می‌خواهم.mp4"],
];

Deno.test("text spoofing: file names lose control and bidi characters (multipart and tus)", async () => {
  // Every name goes to the same message.
  await using ctx = await createTestContext({
    worker: false,
    env: { MAX_ATTACHMENTS_PER_MESSAGE: "1000" },
  });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("h264.mp4"));
  for (const [name, expected] of FILE_NAMES) {
    const response = await uploadBytes(ctx, "alice", messageId, video, name);
    assert.equal(response.status, 201, JSON.stringify(name));
    assert.equal((await body(response)).file_name, expected, JSON.stringify(name));
  }
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => ctx.app.fetch(request, { remoteAddr: info.remoteAddr }),
  );
  try {
    const token = await ctx.token("alice");
    for (const [name, expected] of FILE_NAMES) {
      const utf8 = String.fromCharCode(...new TextEncoder().encode(name));
      const response = await fetch(
        `http://127.0.0.1:${server.addr.port}/api/chat/videos/uploads/`,
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "tus-resumable": "1.0.0",
            "upload-length": String(video.length),
            "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa(utf8)}`,
            "content-type": "application/offset+octet-stream",
          },
          body: video,
        },
      );
      assert.equal(response.status, 201, JSON.stringify(name));
      assert.equal((await body(response)).file_name, expected, `tus ${JSON.stringify(name)}`);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("text spoofing: header values are logged and echoed without control characters", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const video = await Deno.readFile(await fixture("h264.mp4"));
  const attachment = await body(await uploadBytes(ctx, "alice", messageId, video, "a.mp4"));
  // Latin-1 header bytes: 0x9B is the C1 CSI, 0x85 NEL, 0xAD a soft hyphen.
  const download = await ctx.app.request(localPath(String(attachment.url)), {
    headers: { "user-agent": "agent\u009B2J\u0085\u00ADname" },
  });
  assert.ok(download.status < 300, String(download.status));
  await download.body?.cancel();
  const [row] = await ctx.deps.db.select().from(activityLog)
    .where(eq(activityLog.action, "video.download"));
  assert.equal(row?.userAgent, "agent2Jname");
  const unsatisfiable = await ctx.app.request(localPath(String(attachment.url)), {
    headers: { range: "bytes=999999999-\u009B31m" },
  });
  const problem = await assertProblem(unsatisfiable, "416", [416]);
  assert.doesNotMatch(String(problem.detail), /[\u0080-\u009f]/);
});
