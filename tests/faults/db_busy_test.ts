/**
 * Two server processes on one embedded database file, written through both
 * at once: SQLite lets one writer in at a time, and the other must wait for
 * the lock (`busy_timeout`, db/client.ts), never answer `SQLITE_BUSY`.
 */
import assert from "node:assert/strict";
import { fixture } from "../_fixtures.ts";
import { multipartBody } from "./_faults.ts";
import { messageOf, type ServerProcess, startServer } from "./_server.ts";

Deno.test("faults: two processes writing to one database file at once never answer SQLITE_BUSY", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-busy-" });
  try {
    // Limits off: this test is about the lock, not the rate limits.
    const env = {
      RATE_LIMIT_PER_MINUTE: "0",
      MAX_CONVERSATIONS_PER_HOUR: "0",
      WORKER_CONCURRENCY: "1",
    };
    await using first = await startServer(dataDir, { env });
    await using second = await startServer(dataDir, { env });
    const servers: ServerProcess[] = [first, second];
    const video = await Deno.readFile(await fixture("h264.mp4"));
    // Conversations (a transaction that counts the caller's), messages, and uploads (the
    // attachment, its jobs and the activity in one transaction) while both workers claim
    // and finish jobs: every kind of write, from both processes.
    const write = async (i: number): Promise<Response> => {
      const server = servers[i % 2]!;
      const user = `user-${i % 5}`;
      if (i % 3 === 0) {
        const messageId = await messageOf(server, user);
        const form = multipartBody(messageId, video, "video.mp4");
        return await fetch(`${server.url}/api/chat/videos/upload/`, {
          method: "POST",
          headers: { ...(await server.auth(user)), "content-type": form.contentType },
          body: form.bytes,
        });
      }
      return await fetch(`${server.url}/api/chat/conversations`, {
        method: "POST",
        headers: { ...(await server.auth(user)), "content-type": "application/json" },
        body: JSON.stringify({ participant_ids: [] }),
      });
    };
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => write(i)));
    for (const answer of answers) {
      const text = await answer.text();
      assert.doesNotMatch(text, /SQLITE_BUSY|database is locked/i);
      assert.equal(answer.status, 201, text);
    }
    for (const server of servers) {
      assert.doesNotMatch(server.output(), /SQLITE_BUSY|database is locked/i);
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
