/**
 * Many processes on one host: two API processes (`main.ts serve` with
 * WORKER_CONCURRENCY=0) and two worker processes (`main.ts worker`, what
 * `deno task worker` runs), started together as children on one database file
 * and one data directory, as the launcher starts them.
 *
 * "Each job ran exactly once to completion" means, for every job of every
 * upload:
 * - its row ends `done` and its attachment `ready`, with the bytes uploaded;
 * - exactly one `offchat.job` line with `outcome: "done"` was written for it,
 *   by either worker, and no line with another outcome (no failure, no retry);
 * - its `attempts` is 1 — one run started, in one worker — except for the
 *   jobs the SIGKILLed worker was running when it died (read from the jobs
 *   table once it has exited: `running`, locked by it): those have
 *   `attempts` 2, the killed run and one run to completion, whose `done`
 *   line is the surviving worker's, at attempt 2.
 * A job claimed twice at once would show as a second attempt, or a second
 * `done` line.
 */
import assert from "node:assert/strict";
import { PROCESSING_JOBS } from "../../lib/processing/jobs.ts";
import { createClient } from "@libsql/client";
import { fixture } from "../_fixtures.ts";
import { freePort } from "../_helpers.ts";
import { multipartBody, twoPartBody } from "../faults/_faults.ts";
import {
  messageOf,
  type ServerProcess,
  type ServiceProcess,
  sha256Hex,
  startServer,
  startWorkerProcess,
  waitFor,
} from "../faults/_server.ts";

const TUS_PATH = "/api/chat/videos/uploads/";

/**
 * What every process of the test gets: the cheapest processing that still
 * runs ffmpeg for every upload (a thumbnail and a storyboard; a rendition for
 * the AVIs), and jobs at the server's own CPU priority so that a busy machine
 * cannot starve them.
 */
const ENV = { STRIP_METADATA: "0", HLS: "0", JOB_PRIORITY: "normal" };

/** A data directory removed at the end of the test. */
async function dataDirectory(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "offchat-scale-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Disposes every process (SIGKILL, then the exit) at the end of the test. */
function disposeAll(processes: ServiceProcess[]): AsyncDisposable {
  return {
    async [Symbol.asyncDispose]() {
      await Promise.all(processes.map((process) => process[Symbol.asyncDispose]()));
    },
  };
}

/** An upload of the test: the attachment's id and the SHA-256 of its bytes. */
interface Uploaded {
  id: string;
  sha256: string;
}

/** Uploads `file` as multipart to `api` as `user`, in a new message of theirs. */
async function upload(api: ServerProcess, user: string, file: Uint8Array): Promise<Uploaded> {
  const messageId = await messageOf(api, user);
  const form = multipartBody(messageId, file, "video.avi");
  const response = await fetch(`${api.url}/api/chat/videos/upload/`, {
    method: "POST",
    headers: { ...(await api.auth(user)), "content-type": form.contentType },
    body: form.bytes,
  });
  const json = await response.json();
  assert.equal(response.status, 201, JSON.stringify(json));
  return { id: String(json.id), sha256: await sha256Hex(file) };
}

/** What the test reads of an `offchat.job` line: one job run and how it ended. */
interface JobLine {
  logger: string;
  jobId: string;
  attempt: number;
  outcome: string;
}

/** The `offchat.job` lines a process wrote. */
function jobLines(process: ServiceProcess): JobLine[] {
  return process.output().split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as JobLine)
    .filter((record) => record.logger === "offchat.job");
}

/** A tus request's headers as `user` on `api`. */
async function tusHeaders(api: ServerProcess, user = "tess"): Promise<Record<string, string>> {
  return { ...(await api.auth(user)), "tus-resumable": "1.0.0" };
}

/** Creates a tus upload of `size` bytes as `user` through `api`, to a new message; its path. */
async function createTus(api: ServerProcess, user: string, size: number): Promise<string> {
  const messageId = await messageOf(api, user);
  const created = await fetch(`${api.url}${TUS_PATH}`, {
    method: "POST",
    headers: {
      ...(await tusHeaders(api, user)),
      "upload-length": String(size),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("video.mp4")}`,
    },
  });
  await created.body?.cancel();
  assert.equal(created.status, 201);
  return new URL(created.headers.get("location")!, `${api.url}${TUS_PATH}`).pathname;
}

Deno.test("scale: 2 API and 2 worker processes on one database; 20 uploads spread over both APIs run each job exactly once, also when a worker is SIGKILLed mid-job; a tus upload alternating between the APIs completes, and resumes on one API after the other is killed mid-PATCH", async (t) => {
  await using data = await dataDirectory();
  const [small, transcoded, long] = await Promise.all([
    Deno.readFile(await fixture("h264.mp4")),
    Deno.readFile(await fixture("mpeg4.avi")),
    Deno.readFile(await fixture("long.avi")),
  ]);
  // All four at once on a fresh data directory: the migrations race too (db/migrate.ts).
  const api = { env: { ...ENV, WORKER_CONCURRENCY: "0" } };
  const work = { env: { ...ENV, WORKER_CONCURRENCY: "2" } };
  const [a, b, w1, w2] = await Promise.all([
    startServer(data.path, api),
    startServer(data.path, api),
    startWorkerProcess(data.path, work),
    startWorkerProcess(data.path, work),
  ]);
  await using _processes = disposeAll([a, b, w1, w2]);
  const apis = [a, b];
  const db = createClient({ url: `file:${data.path}/offchat.db` });
  await using _db = { [Symbol.asyncDispose]: () => Promise.resolve(db.close()) };

  await t.step("a tus upload whose PATCHes alternate between the two APIs", async () => {
    const path = await createTus(a, "tess", small.length);
    const chunk = Math.ceil(small.length / 4);
    let answer: Record<string, unknown> = {};
    for (let offset = 0, i = 0; offset < small.length; offset += chunk, i++) {
      // The first PATCH goes to the API that did not create the upload.
      const to = apis[(i + 1) % 2]!;
      const response = await fetch(`${to.url}${path}`, {
        method: "PATCH",
        headers: {
          ...(await tusHeaders(to)),
          "upload-offset": String(offset),
          "content-type": "application/offset+octet-stream",
        },
        body: small.slice(offset, offset + chunk),
      });
      if (offset + chunk < small.length) {
        await response.body?.cancel();
        assert.equal(response.status, 204);
        assert.equal(response.headers.get("upload-offset"), String(offset + chunk));
      } else {
        answer = await response.json();
        assert.equal(response.status, 200, JSON.stringify(answer));
      }
    }
    assert.equal(answer.sha256, await sha256Hex(small));
    assert.equal(answer.file_size, small.length);
    // Either API now says the upload is complete, and which attachment it made.
    for (const api of apis) {
      const head = await fetch(`${api.url}${path}`, {
        method: "HEAD",
        headers: await tusHeaders(api),
      });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("upload-offset"), String(small.length));
      assert.equal(head.headers.get("offchat-attachment-id"), answer.id);
    }
    // No lock is left behind: each request released its lease.
    const locks = await db.execute("SELECT count(*) AS n FROM upload_locks");
    assert.equal(Number(locks.rows[0]!.n), 0);
  });

  await t.step("20 uploads over both APIs; one worker SIGKILLed mid-job", async () => {
    // One long video first (its rendition and storyboard take seconds: a job to be killed in),
    // then small ones, a third of them transcoded.
    const files = [long, ...Array.from({ length: 19 }, (_, i) => i % 3 === 0 ? transcoded : small)];
    // Killed while the uploads go on, as soon as it runs a long job (a rendition or a
    // storyboard) and has finished another before.
    const killed = (async () => {
      await waitFor("the second worker running a long job, after one it finished", async () => {
        if (jobLines(w2).length === 0) return false;
        const rows = await db.execute({
          sql: "SELECT id FROM jobs WHERE status = 'running' AND locked_by = ? " +
            "AND kind IN ('rendition', 'storyboard')",
          args: [w2.workerId],
        });
        return rows.rows.length > 0;
      }, { timeoutMs: 60_000, intervalMs: 10 });
      w2.kill("SIGKILL");
      await w2.status;
      // The dead worker's rows no longer change: the jobs it was running when it died.
      const rows = await db.execute({
        sql: "SELECT id FROM jobs WHERE status = 'running' AND locked_by = ?",
        args: [w2.workerId],
      });
      return new Set(rows.rows.map((row) => String(row.id)));
    })();
    const uploaded: Uploaded[] = [];
    // Four at a time, each to the API after the last one's.
    for (let start = 0; start < files.length; start += 4) {
      uploaded.push(
        ...await Promise.all(
          files.slice(start, start + 4).map((file, i) =>
            upload(apis[(start + i) % 2]!, `user${start + i}`, file)
          ),
        ),
      );
    }
    const interrupted = await killed;
    assert.ok(interrupted.size > 0, "the worker was killed between two jobs");

    // The survivor takes the dead worker's jobs once their 20-second leases expire.
    const ids = uploaded.map((u) => u.id);
    const marks = ids.map(() => "?").join(",");
    await waitFor("every attachment ready", async () => {
      const rows = await db.execute({
        sql: `SELECT count(*) AS n FROM attachments WHERE status = 'ready' AND id IN (${marks})`,
        args: ids,
      });
      return Number(rows.rows[0]!.n) === ids.length;
    }, { timeoutMs: 90_000, intervalMs: 200 });

    const attachments = await db.execute({
      sql: `SELECT id, sha256, status FROM attachments WHERE id IN (${marks})`,
      args: ids,
    });
    const stored = new Map(attachments.rows.map((row) => [String(row.id), String(row.sha256)]));
    for (const u of uploaded) assert.equal(stored.get(u.id), u.sha256);

    const jobs = await db.execute({
      sql: `SELECT id, kind, status, attempts FROM jobs WHERE attachment_id IN (${marks})`,
      args: ids,
    });
    assert.equal(jobs.rows.length, ids.length * PROCESSING_JOBS.length);
    const lines = [
      ...jobLines(w1).map((line) => ({ ...line, by: w1 })),
      ...jobLines(w2).map((line) => ({ ...line, by: w2 })),
    ];
    for (const job of jobs.rows) {
      const id = String(job.id);
      const runs = lines.filter((line) => line.jobId === id);
      assert.equal(job.status, "done", `job ${id}`);
      assert.equal(runs.length, 1, `job ${id} (${job.kind}) ended ${runs.length} times`);
      const [run] = runs;
      assert.equal(run!.outcome, "done", `job ${id}`);
      if (interrupted.has(id)) {
        assert.equal(Number(job.attempts), 2, `interrupted job ${id}`);
        assert.equal(run!.attempt, 2);
        assert.equal(run!.by, w1, `interrupted job ${id} finished by the survivor`);
      } else {
        assert.equal(Number(job.attempts), 1, `job ${id} (${job.kind}) started more than once`);
        assert.equal(run!.attempt, 1);
      }
    }
    // Both workers did jobs before the kill; both APIs took uploads (by construction).
    assert.ok(jobLines(w2).length > 0, "the killed worker had finished jobs before");
    assert.ok(jobLines(w1).length > 0);
    // Nothing went wrong on the way: no process logged an error (a failed claim, a busy database).
    for (const process of [a, b, w1, w2]) {
      const errors = process.output().split("\n").filter((line) =>
        line.includes('"level":"ERROR"')
      );
      assert.deepEqual(errors, [], `errors in process ${process.pid}`);
    }
  });

  await t.step(
    "an API SIGKILLed mid-PATCH: the other resumes the upload once the lock's lease is over",
    async () => {
      const path = await createTus(a, "tess", small.length);
      const id = path.split("/").pop()!;
      const body = twoPartBody(small, Math.floor(small.length / 2));
      const patch = fetch(`${a.url}${path}`, {
        method: "PATCH",
        headers: {
          ...(await tusHeaders(a)),
          "upload-offset": "0",
          "content-type": "application/offset+octet-stream",
        },
        body: body.stream,
      }).catch((error) => error);
      await waitFor(
        "the first half on disk",
        async () => ((await Deno.stat(`${data.path}/tus/${id}`).catch(() => null))?.size ?? 0) > 0,
      );
      // The dead process's lock stays in the table; nobody renews it.
      const held = await db.execute({
        sql: "SELECT expires_at FROM upload_locks WHERE upload_id = ?",
        args: [id],
      });
      assert.equal(held.rows.length, 1);
      a.kill("SIGKILL");
      await a.status;
      await patch;
      body.finish();
      const head = await fetch(`${b.url}${path}`, { method: "HEAD", headers: await tusHeaders(b) });
      assert.equal(head.status, 200);
      // Answered only once the lease had run out: the lock held across the processes.
      assert.ok(Date.now() >= Number(held.rows[0]!.expires_at), "the lock was taken while leased");
      const offset = Number(head.headers.get("upload-offset"));
      assert.ok(offset > 0 && offset < small.length, `resumes from ${offset}`);
      const rest = await fetch(`${b.url}${path}`, {
        method: "PATCH",
        headers: {
          ...(await tusHeaders(b)),
          "upload-offset": String(offset),
          "content-type": "application/offset+octet-stream",
        },
        body: small.slice(offset),
      });
      const json = await rest.json();
      assert.equal(rest.status, 200, JSON.stringify(json));
      assert.equal(json.sha256, await sha256Hex(small));
    },
  );
});

Deno.test("scale: with REUSE_PORT=1 two API processes listen on one port and both answer", async () => {
  await using data = await dataDirectory();
  const port = freePort();
  const options = { port, env: { ...ENV, WORKER_CONCURRENCY: "0", REUSE_PORT: "1" } };
  const first = await startServer(data.path, options);
  await using _first = first;
  const second = await startServer(data.path, options);
  await using _second = second;
  // Each request on a new connection: the kernel spreads connections over the two listeners.
  const answered = (server: ServerProcess) => server.output().includes('"route":"/healthz"');
  await waitFor("both processes to answer", async () => {
    const connection = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await connection.write(
        new TextEncoder().encode(
          "GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        ),
      );
      const reply = new Uint8Array(1024);
      const n = await connection.read(reply);
      assert.match(new TextDecoder().decode(reply.subarray(0, n ?? 0)), /^HTTP\/1\.1 200/);
    } finally {
      connection.close();
    }
    return answered(first) && answered(second);
  }, { timeoutMs: 20_000, intervalMs: 10 });
});
