/**
 * What every fault test checks after its fault, and the pieces of uploads it
 * needs (a body it can stop half-way, a multipart frame, tus requests).
 *
 * @module
 */
import assert from "node:assert/strict";
import { denoRunArgs } from "../../lib/config/permissions.ts";
import { parseConfig } from "../../lib/config/config.ts";
import { TEST_SECRET } from "../_helpers.ts";
import {
  attachmentOf,
  fdCount,
  messageOf,
  openFiles,
  type ServerProcess,
  sha256Hex,
  startServer,
  steadyOpenFiles,
  toolsUsing,
  waitFor,
} from "./_server.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** A request body sent in two parts: `head` at once, the rest when `finish()` is called. */
export function twoPartBody(bytes: Uint8Array, headBytes: number) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(bytes.slice(0, headBytes));
      await released;
      try {
        controller.enqueue(bytes.slice(headBytes));
        controller.close();
      } catch {
        // the request was already cancelled
      }
    },
  });
  return { stream, finish: release };
}

/** A multipart/form-data body: `message_id`, then the file. */
export function multipartBody(messageId: string, file: Uint8Array, fileName: string) {
  const boundary = `----offchat-fault-${crypto.randomUUID()}`;
  const encoder = new TextEncoder();
  const head = encoder.encode(
    `--${boundary}\r\ncontent-disposition: form-data; name="message_id"\r\n\r\n${messageId}\r\n` +
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${fileName}"\r\n` +
      "content-type: application/octet-stream\r\n\r\n",
  );
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const bytes = new Uint8Array(head.length + file.length + tail.length);
  bytes.set(head);
  bytes.set(file, head.length);
  bytes.set(tail, head.length + file.length);
  return {
    bytes,
    contentType: `multipart/form-data; boundary=${boundary}`,
    fileStart: head.length,
  };
}

/** The partial multipart uploads in the data directory's temp directories, with their sizes. */
export async function partialUploads(dataDir: string): Promise<{ path: string; size: number }[]> {
  const found: { path: string; size: number }[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (/^upload-.*\.part$/.test(entry.name)) {
        found.push({ path, size: (await Deno.stat(path).catch(() => ({ size: 0 }))).size });
      }
    }
  };
  await walk(`${dataDir}/tmp`).catch(() => {});
  return found;
}

/** Runs `main.ts fsck` (with the permissions the launcher gives it) on `dataDir`. */
export async function runFsck(
  dataDir: string,
  args: string[] = [],
  /** More configuration: the server's (DATABASE_URL…). */
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  const config = parseConfig({ ...env, DATA_DIR: dataDir });
  const run = await new Deno.Command(Deno.execPath(), {
    args: [...denoRunArgs(config, "fsck"), ...args],
    cwd: ROOT,
    clearEnv: true,
    env: {
      ...env,
      DATA_DIR: dataDir,
      JWT_SECRET: TEST_SECRET,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: run.code, output: decode(run.stdout) + decode(run.stderr) };
}

/** The original of an attachment on disk: `media/…/<id>.<ext>`. */
async function originalOf(dataDir: string, id: string): Promise<string | null> {
  const walk = async (dir: string): Promise<string | null> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) {
        const found = await walk(path);
        if (found) return found;
      } else if (entry.name.startsWith(`${id}.`)) return path;
    }
    return null;
  };
  return await walk(`${dataDir}/media`).catch(() => null);
}

/** What a test expects of an attachment that was answered 201: its bytes' SHA-256. */
export interface Accepted {
  id: string;
  user: string;
  sha256: string;
}

/**
 * The checks after every fault: every accepted upload ends `ready` with a
 * stored original of the right SHA-256; no ffmpeg/ffprobe of the data
 * directory is left; fsck finds nothing; the server's file descriptors are
 * back to `baselineFds` (waited for: the open-file cache lets go after 2 s).
 */
export async function assertConsistent(
  server: ServerProcess,
  options: {
    accepted: readonly Accepted[];
    baselineFds: number;
    baselineFiles?: string[];
    readyWithinMs?: number;
  },
): Promise<void> {
  for (const { id, user, sha256 } of options.accepted) {
    const attachment = await waitFor(`attachment ${id} to be processed`, async () => {
      const json = await attachmentOf(server, user, id);
      return json.status === "processing" ? undefined : json;
    }, { timeoutMs: options.readyWithinMs ?? 90_000, intervalMs: 200 });
    assert.equal(attachment.status, "ready", JSON.stringify(attachment));
    assert.equal(attachment.sha256, sha256);
    const original = await originalOf(server.dataDir, id);
    assert.ok(original, `the original of ${id} is stored`);
    assert.equal(await sha256Hex(await Deno.readFile(original)), sha256);
  }
  await waitFor("every job to finish", async () => (await toolsUsing(server.dataDir)).length === 0);
  const fsck = await runFsck(server.dataDir, [], server.env);
  assert.equal(fsck.code, 0, fsck.output);
  assert.match(fsck.output, /fsck: consistent/);
  await waitFor(
    `the server's open files to be back to ${options.baselineFds}`,
    async () => (await fdCount(server.pid)) <= options.baselineFds,
    { timeoutMs: 15_000, intervalMs: 100 },
  ).catch(async (error) => {
    const now = await openFiles(server.pid);
    const extra = now.filter((f) => !(options.baselineFiles ?? []).includes(f));
    throw new Error(
      `${error.message}: now ${now.length}, not in the baseline: ${extra.join(", ")}`,
    );
  });
}

/** A data directory removed at the end of the test. */
export async function dataDirectory(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "offchat-faults-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Uploads `file` as multipart in one go; the attachment's id (asserting 201). */
export async function upload(
  server: ServerProcess,
  user: string,
  file: Uint8Array,
): Promise<Accepted> {
  const messageId = await messageOf(server, user);
  const form = multipartBody(messageId, file, "video.mp4");
  const response = await fetch(`${server.url}/api/chat/videos/upload/`, {
    method: "POST",
    headers: { ...(await server.auth(user)), "content-type": form.contentType },
    body: form.bytes,
  });
  const json = await response.json();
  assert.equal(response.status, 201, JSON.stringify(json));
  return { id: String(json.id), user, sha256: await sha256Hex(file) };
}

/** A server on `dataDir` and its idle file descriptor count. */
export async function started(dataDir: string, env: Record<string, string> = {}) {
  const server = await startServer(dataDir, { env: { WORKER_CONCURRENCY: "1", ...env } });
  // The baseline is the server at rest after a first request that runs the tools (/readyz):
  // what it opens lazily once (the runtime's child-process and signal drivers' sockets, the
  // database's connections) is not a leak; the idle keep-alive connection closes after
  // HEADER_TIMEOUT_MS (1 s here).
  await (await fetch(`${server.url}/readyz`)).body?.cancel();
  const baselineFiles = await steadyOpenFiles(server.pid);
  return { server, baselineFds: baselineFiles.length, baselineFiles };
}
