/**
 * The server as a child process, killed (SIGKILL) or stopped (SIGTERM) at
 * the worst moments, then started again on the same data directory. After
 * each fault: fsck finds nothing, every upload answered 201 ends `ready`
 * with the right bytes, no ffmpeg/ffprobe of the test is left, and the
 * server's file descriptors are back to where they were.
 */
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { fixture } from "../_fixtures.ts";
import {
  type Accepted,
  assertConsistent,
  dataDirectory,
  multipartBody,
  partialUploads,
  started,
  twoPartBody,
  upload,
} from "./_faults.ts";
import {
  attachmentOf,
  messageOf,
  type ServerProcess,
  sha256Hex,
  startServer,
  toolsUsing,
  waitFor,
} from "./_server.ts";

const TUS_PATH = "/api/chat/videos/uploads/";

/**
 * Starts a multipart upload of `file` as alice whose body sends its first
 * half and then waits, and resolves once that half is on disk: the moment a
 * fault is meant to hit. `body.finish()` sends the rest.
 */
async function halfSentUpload(server: ServerProcess, dataDir: string, file: Uint8Array) {
  const messageId = await messageOf(server, "alice");
  const form = multipartBody(messageId, file, "video.mp4");
  const body = twoPartBody(form.bytes, form.fileStart + Math.floor(file.length / 2));
  const response = fetch(`${server.url}/api/chat/videos/upload/`, {
    method: "POST",
    headers: { ...(await server.auth("alice")), "content-type": form.contentType },
    body: body.stream,
  });
  await waitFor(
    "the partial upload on disk",
    async () => (await partialUploads(dataDir)).some((part) => part.size > 0),
  );
  return { response, body };
}

Deno.test("faults: SIGKILL in the middle of a multipart upload leaves no partial file after the restart", async () => {
  await using data = await dataDirectory();
  // 16 MiB: half of it is well past the writer's buffers.
  const file = await Deno.readFile(await fixture("padded.mp4"));
  {
    await using server = await startServer(data.path, { env: { WORKER_CONCURRENCY: "1" } });
    const half = await halfSentUpload(server, data.path, file);
    const { body } = half;
    const response = half.response.catch((error) => error);
    server.kill("SIGKILL");
    await server.status;
    assert.ok(await response instanceof Error, "the client saw the connection drop");
    body.finish();
  }
  const { server, baselineFds, baselineFiles } = await started(data.path);
  await using _ = server;
  // The start swept the dead process's temp directory: nothing of the upload is left.
  assert.deepEqual(await partialUploads(data.path), []);
  const accepted = [await upload(server, "alice", file)];
  await assertConsistent(server, { accepted, baselineFds, baselineFiles });
});

Deno.test("faults: SIGKILL in the middle of a tus PATCH; after the restart the upload resumes from its offset and completes", async () => {
  await using data = await dataDirectory();
  const file = await Deno.readFile(await fixture("h264.mp4"));
  let location: string;
  {
    await using server = await startServer(data.path, { env: { WORKER_CONCURRENCY: "1" } });
    const messageId = await messageOf(server, "alice");
    const tus = { ...(await server.auth("alice")), "tus-resumable": "1.0.0" };
    const created = await fetch(`${server.url}${TUS_PATH}`, {
      method: "POST",
      headers: {
        ...tus,
        "upload-length": String(file.length),
        "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("video.mp4")}`,
      },
    });
    await created.body?.cancel();
    assert.equal(created.status, 201);
    location = new URL(created.headers.get("location")!, `${server.url}${TUS_PATH}`).pathname;
    const body = twoPartBody(file, Math.floor(file.length / 2));
    const patch = fetch(`${server.url}${location}`, {
      method: "PATCH",
      headers: {
        ...tus,
        "upload-offset": "0",
        "content-type": "application/offset+octet-stream",
      },
      body: body.stream,
    }).catch((error) => error);
    const id = location.split("/").pop()!;
    await waitFor(
      "the first half on disk",
      async () => ((await Deno.stat(`${data.path}/tus/${id}`).catch(() => null))?.size ?? 0) > 0,
    );
    server.kill("SIGKILL");
    await server.status;
    await patch;
    body.finish();
  }
  const { server, baselineFds, baselineFiles } = await started(data.path);
  await using _ = server;
  const tus = { ...(await server.auth("alice")), "tus-resumable": "1.0.0" };
  const head = await fetch(`${server.url}${location}`, { method: "HEAD", headers: tus });
  assert.equal(head.status, 200);
  const offset = Number(head.headers.get("upload-offset"));
  assert.ok(offset > 0 && offset < file.length, `resumes from ${offset}`);
  const rest = await fetch(`${server.url}${location}`, {
    method: "PATCH",
    headers: {
      ...tus,
      "upload-offset": String(offset),
      "content-type": "application/offset+octet-stream",
    },
    body: file.slice(offset),
  });
  const json = await rest.json();
  // The last PATCH answers with the attachment.
  assert.equal(rest.status, 200, JSON.stringify(json));
  const accepted = [{ id: String(json.id), user: "alice", sha256: await sha256Hex(file) }];
  await assertConsistent(server, { accepted, baselineFds, baselineFiles });
});

Deno.test("faults: SIGKILL while ffmpeg runs a job: the ffmpeg dies with the server, and the job is done within 30 s of the restart", async () => {
  await using data = await dataDirectory();
  const file = await Deno.readFile(await fixture("long.avi"));
  let accepted: Accepted;
  let jobId: string;
  {
    await using server = await startServer(data.path, { env: { WORKER_CONCURRENCY: "1" } });
    accepted = await upload(server, "alice", file);
    // The rendition and the ladder report progress: a long ffmpeg run of a job.
    const tool = await waitFor(
      "a job's ffmpeg",
      async () =>
        (await toolsUsing(data.path)).find(({ cmdline }) => cmdline.includes("-progress")),
      {
        timeoutMs: 60_000,
      },
    );
    jobId = tool.cmdline.join(" ").match(
      /\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(mp4|hls)/,
    )![1]!;
    server.kill("SIGKILL");
    await server.status;
    // The parent-death signal: the kernel kills the ffmpeg with its server.
    await waitFor(
      "the orphaned ffmpeg to die",
      async () => (await toolsUsing(data.path)).length === 0,
      { timeoutMs: 5000 },
    );
  }
  // From the restart itself: the process's start, which takes the dead one's jobs back, counts.
  const restarted = Date.now();
  const { server, baselineFds, baselineFiles } = await started(data.path);
  await using _ = server;
  const db = createClient({ url: `file:${data.path}/offchat.db` });
  try {
    await waitFor("the interrupted job to be done", async () => {
      const rows = await db.execute({ sql: "SELECT status FROM jobs WHERE id = ?", args: [jobId] });
      return rows.rows[0]?.status === "done";
    }, { timeoutMs: 60_000, intervalMs: 200 });
  } finally {
    db.close();
  }
  const took = Date.now() - restarted;
  assert.ok(took < 30_000, `the interrupted job was done ${took} ms after the restart`);
  await assertConsistent(server, { accepted: [accepted], baselineFds, baselineFiles });
});

Deno.test("faults: SIGTERM during an upload and a download lets both finish, puts the running job back and exits 0; a second signal exits at once", async () => {
  await using data = await dataDirectory();
  const small = await Deno.readFile(await fixture("padded.mp4"));
  const long = await Deno.readFile(await fixture("long.avi"));
  const accepted: Accepted[] = [];
  {
    await using server = await startServer(data.path, {
      env: { WORKER_CONCURRENCY: "1", SHUTDOWN_GRACE_MS: "20000" },
    });
    accepted.push(await upload(server, "alice", long));
    await waitFor(
      "a job's ffmpeg",
      async () =>
        (await toolsUsing(data.path)).find(({ cmdline }) => cmdline.includes("-progress")),
      {
        timeoutMs: 60_000,
      },
    );
    // A download in flight: its first bytes read before the signal, the rest after.
    const { original_url } = await attachmentOf(server, "alice", accepted[0]!.id);
    const download = await fetch(String(original_url));
    assert.equal(download.status, 200);
    const reader = download.body!.getReader();
    const first = await reader.read();
    assert.ok(first.value && first.value.length > 0);
    const { response, body } = await halfSentUpload(server, data.path, small);
    server.kill("SIGTERM");
    await server.waitForOutput(/shutting down/);
    // The job's ffmpeg is stopped at once, not when the process exits after the grace: every
    // tool run of a job, whatever its step (the upload in flight has not reached its probe).
    await waitFor(
      "the job's tools to stop",
      async () => (await toolsUsing(data.path)).length === 0,
      { timeoutMs: 5000 },
    );
    // New connections are refused while the upload in flight goes on.
    await waitFor("the listener to close", async () => {
      const refused = await fetch(`${server.url}/healthz`).then((r) => r.body?.cancel())
        .then(() => false, () => true);
      return refused;
    });
    const chunks = [first.value!];
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      chunks.push(chunk.value);
    }
    const downloaded = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((offset, c) => (downloaded.set(c, offset), offset + c.length), 0);
    assert.equal(await sha256Hex(downloaded), accepted[0]!.sha256, "the download finished");
    body.finish();
    const answer = await response.catch((error) => {
      throw new Error(`the upload in flight failed: ${error}\n${server.output()}`);
    });
    const json = await answer.json();
    assert.equal(answer.status, 201, JSON.stringify(json));
    accepted.push({ id: String(json.id), user: "alice", sha256: await sha256Hex(small) });
    const status = await server.status;
    assert.equal(status.code, 0, server.output());
    await waitFor(
      "the job's ffmpeg to stop",
      async () => (await toolsUsing(data.path)).length === 0,
      { timeoutMs: 5000 },
    );
  }
  // The released job was not counted as an attempt.
  const db = createClient({ url: `file:${data.path}/offchat.db` });
  try {
    const rows = await db.execute(
      "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND attempts = 0 AND last_error IS NULL",
    );
    assert.ok(Number(rows.rows[0]!.n) >= 1, "the running job went back to the queue");
    const running = await db.execute("SELECT COUNT(*) AS n FROM jobs WHERE status = 'running'");
    assert.equal(Number(running.rows[0]!.n), 0);
  } finally {
    db.close();
  }
  {
    const { server, baselineFds, baselineFiles } = await started(data.path);
    await using _ = server;
    await assertConsistent(server, { accepted, baselineFds, baselineFiles });
  }
  // A second signal does not wait for the upload in flight.
  {
    await using server = await startServer(data.path, {
      env: { WORKER_CONCURRENCY: "0", SHUTDOWN_GRACE_MS: "60000" },
    });
    const half = await halfSentUpload(server, data.path, small);
    const { body } = half;
    const response = half.response.catch((error) => error);
    server.kill("SIGTERM");
    await server.waitForOutput(/shutting down/);
    server.kill("SIGTERM");
    const status = await server.status;
    assert.notEqual(status.code, 0);
    await response;
    body.finish();
  }
});
