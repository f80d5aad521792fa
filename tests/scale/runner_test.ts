/**
 * Issue 14, point 3: remote runners. The API server runs as a child process
 * with no worker (WORKER_CONCURRENCY=0); a runner runs as another, started
 * in an empty directory with nothing but the API URL and a registration
 * token in its environment (no database, no data directory, permissions
 * for its own directory only). It brings uploads to `ready`; SIGKILLed in
 * the middle of a job, that job goes back to the queue after
 * RUNNER_STALL_MS and a local worker finishes it. Started again with only
 * the API URL and its token, it clears what the killed run left; revoked,
 * its token gets 401 and it exits.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config/config.ts";
import { denoRunArgs, runnerDenoRunArgs } from "../../lib/config/permissions.ts";
import { createAuth } from "../../lib/auth/auth.ts";
import { parseRunnerConfig } from "../../lib/runners/runner_config.ts";
import { TOKEN_FILE } from "../../lib/runners/runner.ts";
import { fixture } from "../_fixtures.ts";
import { TEST_SECRET } from "../_helpers.ts";
import { multipartBody } from "../faults/_faults.ts";
import {
  attachmentOf,
  messageOf,
  type ServerProcess,
  startServer,
  toolsUsing,
  waitFor,
} from "../faults/_server.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const STALL_MS = 3000;

/** A child process of the test and its output, line by line. */
interface Child {
  process: Deno.ChildProcess;
  /** Resolves when it has exited and its output is read. */
  status: Promise<Deno.CommandStatus>;
  output(): string;
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal: Deno.Signal): void;
  [Symbol.asyncDispose](): Promise<void>;
}

function spawn(args: string[], options: { cwd: string; env: Record<string, string> }): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd,
    clearEnv: true,
    env: { ...options.env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const pumped = Promise.all([process.stdout, process.stderr].map(async (stream) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  }));
  const status = process.status.then(async (s) => (await pumped, s));
  let exited = false;
  status.then(() => (exited = true));
  const kill = (signal: Deno.Signal): void => {
    try {
      process.kill(signal);
    } catch {
      // already exited
    }
  };
  return {
    process,
    status,
    output: () => text,
    waitForLine: (pattern, timeoutMs = 30_000) =>
      waitFor(`a line matching ${pattern}`, () => {
        const line = text.split("\n").find((l) => pattern.test(l));
        if (line === undefined && exited) throw new Error(`exited before ${pattern}:\n${text}`);
        return line;
      }, { timeoutMs, intervalMs: 10 }),
    kill,
    async [Symbol.asyncDispose]() {
      kill("SIGKILL");
      await status;
    },
  };
}

/** Uploads a fixture as `user`; the attachment id. */
async function upload(server: ServerProcess, user: string, name: "vp9.webm" | "h264.mp4") {
  const file = await Deno.readFile(await fixture(name));
  const form = multipartBody(await messageOf(server, user), file, name);
  const response = await fetch(`${server.url}/api/chat/videos/upload/`, {
    method: "POST",
    headers: { ...(await server.auth(user)), "content-type": form.contentType },
    body: form.bytes,
  });
  const json = await response.json();
  assert.equal(response.status, 201, JSON.stringify(json));
  return String(json.id);
}

async function ready(server: ServerProcess, user: string, id: string, timeoutMs = 40_000) {
  return await waitFor(`attachment ${id} ready`, async () => {
    const attachment = await attachmentOf(server, user, id);
    assert.notEqual(attachment.status, "failed", JSON.stringify(attachment));
    return attachment.status === "ready" ? attachment : undefined;
  }, { timeoutMs, intervalMs: 100 });
}

Deno.test("runner: a remote runner with no database processes uploads; killed mid-job, its job goes back after RUNNER_STALL_MS; revoked, its token gets 401", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-runner-api-" });
  const workDir = await Deno.makeTempDir({ prefix: "offchat-runner-work-" });
  try {
    const serverEnv = {
      WORKER_CONCURRENCY: "0",
      RUNNER_STALL_MS: String(STALL_MS),
      // A one-second clip gets a ladder too, so the runner makes every kind of output.
      HLS_MIN_DURATION: "1",
    };
    await using server = await startServer(dataDir, { env: serverEnv });
    const config = parseConfig({ JWT_SECRET: TEST_SECRET });
    const admin = {
      authorization: `Bearer ${await (await createAuth(config, TEST_SECRET))
        .signUserToken("root", { admin: true })}`,
    };
    const made = await fetch(`${server.url}/api/admin/runner-registration-tokens`, {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: JSON.stringify({}),
    });
    assert.equal(made.status, 201);
    const { token: registrationToken } = await made.json();

    // The runner: its work directory is empty, and the API URL and token are all it knows.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(workDir)), []);
    const runnerEnv = {
      RUNNER_API_URL: server.url,
      RUNNER_REGISTRATION_TOKEN: registrationToken,
      RUNNER_NAME: "test-runner",
      RUNNER_WORK_DIR: workDir,
    };
    const runnerArgs = runnerDenoRunArgs(parseConfig({}), parseRunnerConfig(runnerEnv));
    assert.ok(runnerArgs.every((arg) => !arg.includes(dataDir)));
    assert.ok(!runnerArgs.some((arg) => /^--allow-(ffi|all)|^-A$/.test(arg)));
    await using runner = spawn(runnerArgs, { cwd: workDir, env: runnerEnv });
    await runner.waitForLine(/runner \\"test-runner\\" working for/, 60_000);
    const token = (await Deno.readTextFile(`${workDir}/${TOKEN_FILE}`)).trim();
    assert.equal((await Deno.stat(`${workDir}/${TOKEN_FILE}`)).mode! & 0o777, 0o600);

    // Every kind of job (a transcode and a ladder among them) done by the runner.
    const first = await upload(server, "alice", "vp9.webm");
    const second = await upload(server, "alice", "h264.mp4");
    const made1 = await ready(server, "alice", first);
    await ready(server, "alice", second);
    assert.equal(made1.playback, "transcode");
    assert.ok(made1.thumbnail_url && made1.storyboard_url && made1.hls_url, JSON.stringify(made1));
    const renditions = made1.renditions as { kind: string }[];
    assert.ok(renditions.some((r) => r.kind === "progressive"));
    assert.ok(renditions.some((r) => r.kind === "hls"));
    const thumbnail = await fetch(String(made1.thumbnail_url));
    assert.equal(thumbnail.status, 200);
    assert.deepEqual([...new Uint8Array(await thumbnail.arrayBuffer()).slice(0, 2)], [0xff, 0xd8]);
    const doneKinds = new Set(
      runner.output().split("\n").filter((l) => /"message":"job \w+ done"/.test(l))
        .map((l) => JSON.parse(l).kind),
    );
    assert.deepEqual([...doneKinds].sort(), [
      "hls",
      "rendition",
      "storyboard",
      "strip",
      "thumbnail",
    ]);
    // The API logged and counted the runs (the h264 original plays as it is: its rendition
    // job was settled by the API without ffmpeg, and counted too).
    await server.waitForOutput(/"message":"job hls done".*"runnerName":"test-runner"/);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /offchat_runners\{state="registered"\} 1/);
    assert.match(
      metrics,
      /offchat_job_duration_seconds_count\{kind="rendition",outcome="done"\} 2/,
    );

    // SIGKILL the runner while it holds a job.
    const third = await upload(server, "alice", "vp9.webm");
    // Its ladder, the longest run (after the thumbnail, the copy and the rendition).
    const accepted = await runner.waitForLine(
      new RegExp(`"message":"job hls accepted".*"attachmentId":"${third}"`),
    );
    runner.kill("SIGKILL");
    await runner.process.status;
    const killedAt = Date.now();
    const jobId = JSON.parse(accepted).jobId as string;
    const listed = await (await fetch(`${server.url}/api/admin/runners`, { headers: admin }))
      .json();
    assert.equal(listed.items[0].job?.id, jobId, JSON.stringify(listed));
    // Its ffmpeg died with it.
    await waitFor(
      "the runner's tools to exit",
      async () => (await toolsUsing(workDir)).length === 0,
    );

    // A local worker on the API's data directory takes the job once the lease ran out.
    const workerEnv = {
      DATA_DIR: dataDir,
      JWT_SECRET: TEST_SECRET,
      RUNNER_STALL_MS: String(STALL_MS),
      HLS_MIN_DURATION: "1",
      WORKER_CONCURRENCY: "1",
    };
    await using worker = spawn(denoRunArgs(parseConfig(workerEnv), "worker"), {
      cwd: ROOT,
      env: workerEnv,
    });
    const redone = await worker.waitForLine(
      new RegExp(`"message":"job \\w+ done".*"jobId":"${jobId}"`),
      60_000,
    );
    assert.ok(Date.now() - killedAt >= STALL_MS - 1000, "the job came back before the stall");
    assert.equal(JSON.parse(redone).attempt, 2);
    await ready(server, "alice", third);

    // Started again with only the API URL and its token: it clears what the killed run left.
    assert.ok((await Deno.stat(`${workDir}/jobs`)).isDirectory, "the killed run left its files");
    const restartEnv = {
      RUNNER_API_URL: server.url,
      RUNNER_TOKEN: token,
      RUNNER_WORK_DIR: workDir,
    };
    await using restarted = spawn(
      runnerDenoRunArgs(parseConfig({}), parseRunnerConfig(restartEnv)),
      { cwd: workDir, env: restartEnv },
    );
    await restarted.waitForLine(/working for/, 60_000);
    await waitFor("the leftovers to go", async () => {
      return await Deno.stat(`${workDir}/jobs`).then(() => false, () => true);
    });

    // Revoked: the runner's token gets 401 from then on, and the runner exits.
    const request = () =>
      fetch(`${server.url}/api/runners/jobs/request`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: "{}",
      });
    const before = await request();
    await before.body?.cancel();
    assert.ok(before.status === 204 || before.status === 200, String(before.status));
    const revoked = await fetch(`${server.url}/api/admin/runners/${listed.items[0].id}`, {
      method: "DELETE",
      headers: admin,
    });
    assert.equal(revoked.status, 204);
    const after = await request();
    assert.equal(after.status, 401);
    assert.equal((await after.json()).code, "unauthorized");
    assert.equal((await restarted.status).code, 1, restarted.output());
    assert.match(restarted.output(), /refused the runner token/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(workDir, { recursive: true });
  }
});
