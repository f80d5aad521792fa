/**
 * A full disk (issue 13, point 4), on a real small filesystem: a tmpfs of a
 * few MiB the test mounts as DATA_DIR, with the database outside it (so that
 * what fills up is the media's disk) or on it. The server is the real one, a
 * child process (tests/faults/_server.ts). An upload (multipart or a tus
 * PATCH) that hits ENOSPC answers 507 and leaves nothing behind, a job that
 * hits it waits for space without using an attempt, `/readyz` fails below
 * MIN_FREE_BYTES and new uploads are refused up front, and everything works
 * again once space returns, with nothing restarted. After each fault the
 * checks of every fault test hold (`assertConsistent`). Mounting needs
 * root; without it these tests fail.
 */
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { freeBytes } from "../../lib/storage/disk_space.ts";
import { fixture } from "../_fixtures.ts";
import { listFiles } from "../_helpers.ts";
import { type Accepted, assertConsistent, multipartBody, started, upload } from "./_faults.ts";
import { messageOf, type ServerProcess, sha256Hex, waitFor } from "./_server.ts";

const MiB = 1024 * 1024;
const TUS_PATH = "/api/chat/videos/uploads/";

/** A tmpfs of `sizeMiB` mounted on a new directory; dispose to unmount and remove it. */
async function smallDisk(sizeMiB: number): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "offchat-small-disk-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0700`, "tmpfs", dir],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!mount.success) {
    await Deno.remove(dir);
    throw new Error(
      `Cannot mount a tmpfs on "${dir}" (this test needs root): ${
        new TextDecoder().decode(mount.stderr).trim()
      }`,
    );
  }
  return {
    dir,
    async [Symbol.asyncDispose]() {
      const umount = (args: string[]) =>
        new Deno.Command("umount", { args, stdout: "null", stderr: "null" }).output();
      // A descriptor still closing in a process that just exited: then the mount is detached
      // now and freed once that descriptor goes (a lazy unmount).
      if (!(await umount([dir])).success && !(await umount(["-l", dir])).success) {
        throw new Error(`Cannot unmount "${dir}"`);
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Where the database lives: beside the small disk, or on it. */
type Layout = "elsewhere" | "on the small disk";

/**
 * The server on `disk` (its database placed by `layout`, or in `dbDir`, which
 * the caller then removes), at rest, with its baseline of open files;
 * disposing it kills it and removes the database's directory it made.
 */
async function serverOn(
  disk: string,
  layout: Layout,
  env: Record<string, string>,
  dbDir?: string,
) {
  const made = !dbDir && layout === "elsewhere"
    ? await Deno.makeTempDir({ prefix: "offchat-db-" })
    : null;
  const dir = dbDir ?? made;
  const rest = await started(disk, {
    ...(dir ? { DATABASE_URL: `file:${dir}/offchat.db` } : {}),
    ...env,
  });
  return {
    ...rest,
    async [Symbol.asyncDispose]() {
      await rest.server[Symbol.asyncDispose]();
      if (made) await Deno.remove(made, { recursive: true });
    },
  };
}

/** Writes zeros to `path` until the disk is full, or has only `leaveBytes` free. */
async function fill(path: string, leaveBytes = 0): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true });
  // Large writes first, then page-sized ones for the last pages.
  for (const size of [64 * 1024, 4096]) {
    const chunk = new Uint8Array(size);
    while (leaveBytes === 0 || await freeBytes(path) > leaveBytes) {
      try {
        await file.write(chunk);
      } catch {
        break; // full for writes of this size
      }
    }
  }
}

/** POSTs `file` as a multipart upload of alice's (to a new message), without checking the answer. */
async function postMultipart(server: ServerProcess, file: Uint8Array): Promise<Response> {
  const form = multipartBody(await messageOf(server, "alice"), file, "big.mp4");
  return await fetch(`${server.url}/api/chat/videos/upload/`, {
    method: "POST",
    headers: { ...(await server.auth("alice")), "content-type": form.contentType },
    body: form.bytes,
  });
}

async function assertInsufficientStorage(response: Response, what: string): Promise<void> {
  assert.equal(response.status, 507, what);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.ok(response.headers.get("retry-after"), `${what}: Retry-After`);
  assert.equal((await response.json()).code, "insufficient_storage", what);
}

/** Creates a tus upload of `size` bytes; the answer (its Location on 201). */
async function tusCreate(server: ServerProcess, size: number): Promise<Response> {
  const messageId = await messageOf(server, "alice");
  return await fetch(`${server.url}${TUS_PATH}`, {
    method: "POST",
    headers: {
      ...(await server.auth("alice")),
      "tus-resumable": "1.0.0",
      "upload-length": String(size),
      "upload-metadata": `message_id ${btoa(messageId)},filename ${btoa("v.mp4")}`,
    },
  });
}

/** PATCHes `bytes` at offset 0 to the upload at `location`. */
async function tusPatch(
  server: ServerProcess,
  location: string,
  bytes: Uint8Array,
): Promise<Response> {
  return await fetch(new URL(location, server.url), {
    method: "PATCH",
    headers: {
      ...(await server.auth("alice")),
      "tus-resumable": "1.0.0",
      "upload-offset": "0",
      "content-type": "application/offset+octet-stream",
    },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
}

/** A whole tus upload of `file`: what the test expects of it once it answered 200. */
async function tusUpload(server: ServerProcess, file: Uint8Array): Promise<Accepted> {
  const created = await tusCreate(server, file.length);
  assert.equal(created.status, 201);
  const done = await tusPatch(server, created.headers.get("location")!, file);
  const json = await done.json();
  assert.equal(done.status, 200, JSON.stringify(json));
  return { id: String(json.id), user: "alice", sha256: await sha256Hex(file) };
}

/** The files under `dir` (none when it does not exist). */
async function filesIn(dir: string): Promise<string[]> {
  return await listFiles(dir).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  });
}

/** The multipart temp files and tus parts left on the disk. */
async function partials(disk: string): Promise<string[]> {
  const temp = (await filesIn(`${disk}/tmp`)).filter((name) => !name.endsWith(".lock"));
  return [...temp, ...(await filesIn(`${disk}/tus`))];
}

for (const layout of ["elsewhere", "on the small disk"] as const) {
  Deno.test(`disk full: a multipart upload that hits ENOSPC gets 507 and leaves nothing (database ${layout})`, async () => {
    await using disk = await smallDisk(8);
    await using at = await serverOn(disk.dir, layout, { MIN_FREE_BYTES: "0" });
    const { server } = at;
    const before = await freeBytes(disk.dir);

    const refused = await postMultipart(server, new Uint8Array(12 * MiB).fill(7));
    await assertInsufficientStorage(refused, "the upload larger than the disk");
    assert.deepEqual(await partials(disk.dir), [], "the partial file is removed");
    assert.ok(await freeBytes(disk.dir) >= before - 256 * 1024, "the space is given back");

    // Nothing else was affected: the next upload that fits goes through, and is processed.
    const accepted = [
      await upload(server, "alice", await Deno.readFile(await fixture("short.mp4"))),
    ];
    await assertConsistent(server, { ...at, accepted });
  });
}

Deno.test("disk full: a tus PATCH that hits ENOSPC gets 507 and the upload is removed", async () => {
  await using disk = await smallDisk(8);
  await using at = await serverOn(disk.dir, "elsewhere", { MIN_FREE_BYTES: "0" });
  const { server } = at;
  const size = 12 * MiB;
  const created = await tusCreate(server, size);
  assert.equal(created.status, 201);
  const location = created.headers.get("location")!;

  const refused = await tusPatch(server, location, new Uint8Array(size).fill(7));
  await assertInsufficientStorage(refused, "the PATCH larger than the disk");
  assert.deepEqual(await partials(disk.dir), [], "the partial bytes are removed");
  const gone = await fetch(new URL(location, server.url), {
    method: "HEAD",
    headers: { ...(await server.auth("alice")), "tus-resumable": "1.0.0" },
  });
  assert.equal(gone.status, 404, "the upload is gone");

  // The disk has room again for an upload that fits.
  const accepted = [await tusUpload(server, await Deno.readFile(await fixture("short.mp4")))];
  await assertConsistent(server, { ...at, accepted });
});

Deno.test("disk full: a job that hits ENOSPC waits for space without using an attempt, then finishes", async () => {
  await using disk = await smallDisk(8);
  const dbDir = await Deno.makeTempDir({ prefix: "offchat-db-" });
  try {
    const env = { MIN_FREE_BYTES: "0", DISK_FULL_RETRY_MS: "300" };
    let accepted: Accepted;
    {
      // The upload lands on a server with no worker, so that no job runs before the disk is full.
      await using first = await serverOn(disk.dir, "elsewhere", {
        ...env,
        WORKER_CONCURRENCY: "0",
      }, dbDir);
      const video = await Deno.readFile(await fixture("short.mp4"));
      accepted = await upload(first.server, "alice", video);
    }
    await fill(`${disk.dir}/filler`);

    await using at = await serverOn(disk.dir, "elsewhere", env, dbDir);
    const db = createClient({ url: `file:${dbDir}/offchat.db` });
    try {
      // Every job that needs the disk was put back, with its attempt given back.
      const waiting = await waitFor("a job to find the disk full", async () => {
        const rows = await db.execute({
          sql: "SELECT kind, status, attempts, last_error FROM jobs WHERE attachment_id = ?",
          args: [accepted.id],
        });
        // Queued again, not running its next try (a running job holds its attempt meanwhile).
        const full = rows.rows.filter((row) =>
          row.status === "queued" &&
          /No space left on device|ENOSPC/.test(String(row.last_error ?? ""))
        );
        return full.length > 0 ? { all: rows.rows, full } : undefined;
      });
      for (const job of waiting.full) {
        assert.equal(Number(job.attempts), 0, `${job.kind} used no attempt`);
      }
      assert.ok(waiting.all.every((job) => job.status !== "failed"), "no job failed");
      const [attachment] = (await db.execute({
        sql: "SELECT status FROM attachments WHERE id = ?",
        args: [accepted.id],
      })).rows;
      assert.equal(attachment?.status, "processing", "the attachment has not failed");
    } finally {
      db.close();
    }

    // Space returns: the jobs run again after their delay, by themselves, and finish.
    await Deno.remove(`${disk.dir}/filler`);
    await assertConsistent(at.server, { ...at, accepted: [accepted] });
  } finally {
    await Deno.remove(dbDir, { recursive: true });
  }
});

Deno.test("disk full: below MIN_FREE_BYTES /readyz fails and uploads are refused up front; then it recovers", async () => {
  await using disk = await smallDisk(8);
  await using at = await serverOn(disk.dir, "elsewhere", { MIN_FREE_BYTES: String(4 * MiB) });
  const { server } = at;
  await fill(`${disk.dir}/filler`, 2 * MiB);

  const ready = await fetch(`${server.url}/readyz`);
  assert.equal(ready.status, 503);
  const { checks } = await ready.json();
  assert.deepEqual(checks.disk_space, { ok: false, detail: "less than MIN_FREE_BYTES free" });
  assert.equal(checks.storage?.ok, true, "the disk can still be written");

  const video = await Deno.readFile(await fixture("short.mp4"));
  await assertInsufficientStorage(await postMultipart(server, video), "a multipart upload");
  await assertInsufficientStorage(await tusCreate(server, video.length), "a tus creation");
  assert.deepEqual(await partials(disk.dir), []);

  // Space returns: ready again, and uploads are taken, with nothing restarted.
  await Deno.remove(`${disk.dir}/filler`);
  const again = await fetch(`${server.url}/readyz`);
  assert.equal(again.status, 200, JSON.stringify(await again.json()));
  const accepted = [await upload(server, "alice", video)];
  await assertConsistent(server, { ...at, accepted });
});
