/**
 * OffChat Media command line.
 *
 *   deno task start            migrate, then serve HTTP with an in-process worker
 *   deno task worker           run processing workers only
 *   deno task migrate          apply pending migrations
 *   deno task token USER [--admin] [--ttl SECONDS]
 *   deno task backfill [--dry-run] [--wait] [--work]
 *                              queue what the current policy asks of existing attachments
 *   deno task fsck [--repair]  check the database against the data directory (and fix it)
 *   deno task runner           a remote runner: jobs over HTTP from RUNNER_API_URL, no database
 *   deno task setup            find ffmpeg/ffprobe >= 4, install Debian's ffmpeg as root when missing
 *   deno task setup:test       the same, and Debian's Chromium for the browser tests (setup --browser)
 *
 * `start`, `dev`, `worker`, `migrate`, `token` and `backfill` go through `launch`, which
 * starts the command under the permissions its configuration needs
 * (lib/config/permissions.ts); `deno task start --print` shows them.
 */
// deno-lint-ignore-file no-console -- this is the command line; printing is its job
import type { Config } from "./lib/config/config.ts";
import type { Server } from "./lib/serving/server.ts";
import type { JobReport } from "./lib/processing/worker.ts";

function fail(message: string): never {
  console.error(message);
  Deno.exit(1);
}

type Launched = import("./lib/config/permissions.ts").LaunchedCommand;

/**
 * The configuration from the environment; stops with every bad variable
 * named, or (given the command about to run) with every setting whose path
 * or host this process may not touch.
 */
async function loadConfig(command?: Launched): Promise<Config> {
  const { CONFIG_ENV_NAMES, ConfigError, parseConfig } = await import("./lib/config/config.ts");
  const env: Record<string, string | undefined> = {};
  for (const name of CONFIG_ENV_NAMES) env[name] = Deno.env.get(name);
  let config: Config;
  try {
    config = parseConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  if (command) {
    const { missingGrants } = await import("./lib/config/permissions.ts");
    const missing = missingGrants(config, command);
    if (missing.length > 0) {
      fail(
        `Not permitted:\n  ${missing.join("\n  ")}\n` +
          "Start it with its task (deno task start, worker, migrate, token, backfill or fsck), " +
          "which grants what the configuration names; `deno task start --print` shows the flags.",
      );
    }
  }
  return config;
}

const LAUNCHED: readonly Launched[] = ["serve", "worker", "migrate", "token", "backfill", "fsck"];

/**
 * `launch COMMAND [ARGS…] [--watch] [--print]`: runs `deno run <flags> main.ts
 * COMMAND ARGS…` with the permission flags computed from the configuration,
 * passing SIGINT and SIGTERM on and exiting with its code. `--print` prints
 * the command instead; `--watch` restarts the server when ui/ changes.
 */
async function launch(args: string[]): Promise<void> {
  const [command, ...rest] = args;
  if (command === "runner") return await launchRunner(rest);
  if (!LAUNCHED.includes(command as Launched)) {
    fail(`launch: unknown command "${command}"; use ${LAUNCHED.join(", ")}`);
  }
  const launched = command as Launched;
  const config = await loadConfig();
  const { denoRunArgs, launchEnv } = await import("./lib/config/permissions.ts");
  const runArgs = [
    ...denoRunArgs(config, launched, { watch: rest.includes("--watch") }),
    ...rest.filter((arg) => arg !== "--watch" && arg !== "--print"),
  ];
  if (rest.includes("--print")) {
    console.log(["deno", ...runArgs].join(" "));
    return;
  }
  await runLaunched(runArgs, launchEnv(config));
}

/**
 * Runs `deno <runArgs>` as the launcher's child, passing SIGINT and SIGTERM
 * on, and exits with its status. On Linux the child dies with the launcher,
 * as the tools die with the server (lib/media/run_tool.ts): a launcher killed
 * with SIGKILL leaves no server behind. `env` is added to the inherited one.
 */
async function runLaunched(runArgs: string[], env?: Record<string, string>): Promise<never> {
  const linux = Deno.build.os === "linux";
  const child = new Deno.Command(linux ? "setpriv" : Deno.execPath(), {
    args: linux ? ["--pdeathsig", "KILL", "--", Deno.execPath(), ...runArgs] : runArgs,
    cwd: new URL(".", import.meta.url).pathname,
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => child.kill(signal));
  }
  Deno.exit((await child.status).code);
}

/** A remote runner's settings from the environment; stops with every bad variable named. */
async function loadRunnerConfig(): Promise<import("./lib/runners/runner_config.ts").RunnerConfig> {
  const { ConfigError } = await import("./lib/config/config.ts");
  const { parseRunnerConfig, RUNNER_ENV_NAMES } = await import("./lib/runners/runner_config.ts");
  const env: Record<string, string | undefined> = {};
  for (const name of RUNNER_ENV_NAMES) env[name] = Deno.env.get(name);
  try {
    return parseRunnerConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

/**
 * `launch runner [--print]`: starts `main.ts runner` under the runner's own
 * permissions (lib/config/permissions.ts, runnerDenoRunArgs), creating its
 * work directory first.
 */
async function launchRunner(rest: string[]): Promise<void> {
  const config = await loadConfig();
  const runner = await loadRunnerConfig();
  const { runnerDenoRunArgs } = await import("./lib/config/permissions.ts");
  const runArgs = runnerDenoRunArgs(config, runner);
  if (rest.includes("--print")) {
    console.log(["deno", ...runArgs].join(" "));
    return;
  }
  await Deno.mkdir(runner.workDir, { recursive: true, mode: 0o700 });
  await runLaunched(runArgs);
}

/**
 * `runner`: a remote runner (lib/runners/runner.ts). Registers on its first
 * start when given RUNNER_REGISTRATION_TOKEN (the token it gets is kept in
 * RUNNER_WORK_DIR), then works until SIGINT/SIGTERM, which lets its running
 * jobs finish, or until the service refuses its token (revoked: exit 1).
 */
async function runnerCommand(): Promise<void> {
  const runner = await loadRunnerConfig();
  const config = await loadConfig();
  const { configureLogging, literalMessage } = await import("./lib/observability/logging.ts");
  await configureLogging({ level: config.logLevel });
  const { getLogger } = await import("@logtape/logtape");
  const log = getLogger(["offchat", "service"]);
  const { mediaToolsOf } = await import("./lib/media/tools.ts");
  const { removeLeftoverRuns, runnerToken, startRunner } = await import(
    "./lib/runners/runner.ts"
  );
  await Deno.mkdir(runner.workDir, { recursive: true, mode: 0o700 });
  await removeLeftoverRuns(runner.workDir);
  let token: string;
  try {
    token = runner.token ?? await runnerToken(runner);
  } catch (error) {
    fail(`runner: ${(error as Error).message}`);
  }
  const remote = startRunner({
    apiUrl: runner.apiUrl,
    token,
    workDir: runner.workDir,
    kinds: runner.kinds,
    concurrency: runner.concurrency,
    tools: mediaToolsOf(config),
    onError: (error) => log.error("runner error", { error }),
  });
  log.info(literalMessage(
    `runner "${runner.name}" working for ${runner.apiUrl} ` +
      `(${runner.kinds.join(",")}) with ${runner.concurrency} slot(s)`,
  ));
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) Deno.exit(1);
    stopping = true;
    log.info("stopping after the running jobs");
    await remote.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  await remote.revoked;
  log.error("the service refused the runner token (revoked?); exiting");
  Deno.exit(1);
}

async function setup(args: string[]): Promise<void> {
  const { findTool, installInstructions, isUsable } = await import("./lib/setup/setup.ts");
  const ffmpegPath = Deno.env.get("FFMPEG_PATH") || "ffmpeg";
  const ffprobePath = Deno.env.get("FFPROBE_PATH") || "ffprobe";
  const check = async () => [await findTool(ffmpegPath), await findTool(ffprobePath)] as const;
  const canApt = Deno.build.os === "linux" && Deno.uid() === 0 &&
    (await Deno.stat("/usr/bin/apt-get").catch(() => null)) !== null;
  let aptUpdated = false;
  const apt = async (packages: readonly string[]): Promise<boolean> => {
    const run = (aptArgs: string[]) =>
      new Deno.Command("apt-get", {
        args: aptArgs,
        stdin: "null",
        stdout: "inherit",
        stderr: "inherit",
        env: { DEBIAN_FRONTEND: "noninteractive" },
      }).output();
    if (!aptUpdated) {
      if (!(await run(["update", "-q"])).success) fail("setup: apt-get update failed");
      aptUpdated = true;
    }
    return (await run(["install", "-y", "-q", "--no-install-recommends", ...packages])).success;
  };

  let [ffmpeg, ffprobe] = await check();
  if (isUsable(ffmpeg) && isUsable(ffprobe)) {
    console.log(`setup: ffmpeg ${ffmpeg.version} and ffprobe ${ffprobe.version} found`);
  } else {
    if (!canApt) fail(installInstructions(Deno.build.os));
    console.log(
      "setup: ffmpeg/ffprobe missing or older than 4; installing Debian's ffmpeg with apt-get",
    );
    if (!(await apt(["ffmpeg"]))) fail("setup: apt-get install ffmpeg failed");
    [ffmpeg, ffprobe] = await check();
    if (!isUsable(ffmpeg) || !isUsable(ffprobe)) fail(installInstructions(Deno.build.os));
    console.log(`setup: installed ffmpeg ${ffmpeg.version}`);
  }

  if (!args.includes("--browser")) return;
  // The dashboard's browser tests drive the system's Chromium; none is downloaded.
  const { CHROMIUM_APT_PACKAGES, findChromium } = await import("./lib/setup/chromium.ts");
  let chromium = await findChromium();
  if (chromium) {
    console.log(`setup: Chromium ${chromium.version} found at ${chromium.path}`);
    return;
  }
  if (!canApt || Deno.env.get("CHROMIUM_PATH")) {
    fail(
      "setup: Chromium is needed for the browser tests. Install it (Debian/Ubuntu: " +
        "sudo apt-get install chromium), or point CHROMIUM_PATH at a Chromium or Chrome binary",
    );
  }
  console.log("setup: Chromium missing; installing Debian's chromium with apt-get");
  if (!(await apt(CHROMIUM_APT_PACKAGES))) fail("setup: apt-get install chromium failed");
  chromium = await findChromium();
  if (!chromium) fail("setup: chromium was installed but does not run");
  console.log(`setup: installed Chromium ${chromium.version}`);
}

async function migrateCommand(): Promise<void> {
  const config = await loadConfig("migrate");
  await Deno.mkdir(config.dataDir, { recursive: true });
  const { openDatabase } = await import("./db/client.ts");
  const { migrate } = await import("./db/migrate.ts");
  const handle = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });
  try {
    const result = await migrate(handle.client);
    console.log(
      `migrate: applied ${result.applied.length} (${result.applied.join(", ") || "none"}), ` +
        `${result.skipped.length} already applied`,
    );
  } finally {
    handle.close();
  }
}

async function tokenCommand(args: string[]): Promise<void> {
  const userId = args.find((a) => !a.startsWith("--"));
  if (!userId) fail("usage: deno task token USER [--admin] [--ttl SECONDS]");
  const ttlIndex = args.indexOf("--ttl");
  const ttl = ttlIndex >= 0 ? Number(args[ttlIndex + 1]) : 24 * 3600;
  if (!Number.isInteger(ttl) || ttl < 1) fail("--ttl takes a whole number of seconds");
  const config = await loadConfig("token");
  const { loadOrCreateSecret } = await import("./lib/config/secrets.ts");
  const { createAuth } = await import("./lib/auth/auth.ts");
  const secret = config.jwtSecret ?? (await loadOrCreateSecret(config.dataDir)).secret;
  const auth = await createAuth(config, secret);
  try {
    console.log(
      await auth.signUserToken(userId, { admin: args.includes("--admin"), ttlSeconds: ttl }),
    );
  } catch (error) {
    fail(`token: ${(error as Error).message}`);
  }
}

/**
 * A human line for a job run that `backfill --work` reports (the service's
 * worker writes a JSON log line of its own for every run).
 */
function logJobEnd(r: JobReport): void {
  const line = `job ${r.kind} ${r.outcome} attachment=${r.attachmentId} job=${r.jobId} ` +
    `attempt=${r.attempt} ms=${r.ms}${r.error ? ` error=${JSON.stringify(r.error)}` : ""}`;
  if (r.outcome === "done") console.log(line);
  else console.error(line);
}

const BACKFILL_USAGE = "usage: deno task backfill [--dry-run] [--wait] [--work]";
/** How often `backfill --wait` reads the batch's progress. */
const BACKFILL_POLL_MS = 1000;

/**
 * `backfill [--dry-run] [--wait] [--work]`: queues the jobs that bring
 * existing attachments to the current policy (lib/processing/backfill.ts)
 * and prints what it queued by kind. `--wait` then prints "N/M done, F
 * failed" as the batch's jobs finish, which takes a worker: a running
 * `deno task start` or `worker`, or `--work`, which runs one in this process
 * (WORKER_CONCURRENCY slots, at least one) until the batch is finished.
 * Exits 1 when one of the batch's jobs failed.
 */
async function backfillCommand(args: string[]): Promise<void> {
  const unknown = args.filter((arg) => !["--dry-run", "--wait", "--work"].includes(arg));
  if (unknown.length > 0) fail(`backfill: unknown argument "${unknown[0]}"\n${BACKFILL_USAGE}`);
  const dryRun = args.includes("--dry-run");
  const work = args.includes("--work") && !dryRun;
  const wait = (args.includes("--wait") || work) && !dryRun;
  const config = await loadConfig("backfill");
  const { openDeps } = await import("./lib/open_deps.ts");
  const { backfill, backfillProgress } = await import("./lib/processing/backfill.ts");
  const { startWorker } = await import("./lib/processing/worker.ts");
  const opened = await openDeps(config);
  const { deps } = opened;
  let worker: import("./lib/processing/worker.ts").Worker | null = null;
  let stopping: Promise<never> | null = null;
  // Ctrl-C reaches this process twice under `deno task` (from the terminal and from the launcher).
  const stop = (code: number): Promise<never> =>
    stopping ??= (async () => {
      await worker?.stop();
      opened.close();
      Deno.exit(code);
    })();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    if (signal === "SIGTERM" && Deno.build.os === "windows") continue;
    Deno.addSignalListener(signal, () => {
      if (stopping) return;
      console.log(
        worker
          ? "backfill: stopping the worker after its running jobs; the rest stay queued"
          : "backfill: stopped waiting; the batch's jobs stay queued",
      );
      stop(130);
    });
  }

  const result = await backfill(deps, {
    dryRun,
    // Not a user: the parentheses keep it apart from every user id.
    actor: { actorId: "(task)", ip: null, userAgent: "deno task backfill" },
  });
  const kinds = Object.entries(result.jobs).filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`);
  const total = Object.values(result.jobs).reduce((sum, n) => sum + n, 0);
  const what = `${total} job(s) for ${result.attachments} of ${result.scanned} attachment(s)` +
    (kinds.length > 0 ? ` (${kinds.join(", ")})` : "");
  console.log(
    dryRun
      ? `backfill (dry run): would queue ${what}`
      : result.batchId
      ? `backfill: queued ${what} as batch ${result.batchId}`
      : `backfill: nothing to queue; ${result.scanned} attachment(s) match the current policy`,
  );
  if (result.missingOriginals > 0) {
    console.log(
      `backfill: skipped ${result.missingOriginals} attachment(s) whose original is missing`,
    );
  }
  if (!wait || !result.batchId) return await stop(0);

  if (work) {
    worker = startWorker(deps, {
      concurrency: Math.max(1, config.workerConcurrency),
      diskFullRetryMs: config.diskFullRetryMs,
      onError: (error) => console.error("worker error:", error),
      // The progress lines say what is done; a failure or a retry is worth its own line.
      onJobEnd: (report) => {
        if (report.outcome !== "done") logJobEnd(report);
      },
    });
    opened.attachWorker(worker);
    console.log(
      `backfill: running a worker here (${Math.max(1, config.workerConcurrency)} slot(s))`,
    );
  } else {
    console.log(
      "backfill: waiting; the jobs run in a worker: a running `deno task start` or " +
        "`deno task worker` (or add --work to run one here)",
    );
  }
  let last = "";
  while (true) {
    const progress = await backfillProgress(deps.db, result.batchId);
    if (!progress) {
      console.log("backfill: the batch has no jobs left (its attachments were reprocessed)");
      return await stop(0);
    }
    const line = `${progress.done}/${progress.total} done, ${progress.failed} failed`;
    if (line !== last) console.log(line);
    last = line;
    if (progress.queued + progress.running === 0) {
      if (progress.failed > 0) {
        console.log(
          "backfill: the failed jobs' attachments keep what they had; their reasons: " +
            `SELECT attachment_id, kind, last_error FROM jobs WHERE batch_id = '${result.batchId}' ` +
            "AND status = 'failed'",
        );
      }
      return await stop(progress.failed > 0 ? 1 : 0);
    }
    await new Promise((resolve) => setTimeout(resolve, BACKFILL_POLL_MS));
  }
}

/**
 * `fsck [--repair]`: reports live attachments whose rows name missing files,
 * stored files no row owns and the temp directories of dead processes
 * (lib/storage/fsck.ts); exits 1 when it found any, unless `--repair` fixed them.
 */
async function fsckCommand(args: string[]): Promise<void> {
  const unknown = args.filter((arg) => arg !== "--repair");
  if (unknown.length > 0) {
    fail(`fsck: unknown argument "${unknown[0]}"\nusage: deno task fsck [--repair]`);
  }
  const repair = args.includes("--repair");
  const config = await loadConfig("fsck");
  const { openDeps } = await import("./lib/open_deps.ts");
  const { fsck } = await import("./lib/storage/fsck.ts");
  const { adoptInterruptedIngest } = await import("./lib/uploads/ingest.ts");
  const opened = await openDeps(config);
  try {
    const { deps } = opened;
    const report = await fsck({ ...deps, dataDir: config.dataDir }, {
      repair,
      adopt: async (path) => void await adoptInterruptedIngest(deps, path),
    });
    for (const issue of report.issues) {
      console.log(
        issue.type === "missing_file"
          ? `missing file: attachment ${issue.attachmentId} ${issue.column} ${issue.key}`
          : issue.type === "unowned_file"
          ? `unowned file: ${issue.key}`
          : `dead temp directory: tmp/${issue.name}`,
      );
    }
    const found = report.issues.length;
    console.log(
      found === 0
        ? "fsck: consistent"
        : repair
        ? `fsck: repaired ${found} issue(s)`
        : `fsck: ${found} issue(s); run \`deno task fsck --repair\` to fix them`,
    );
    if (found > 0 && !repair) {
      opened.close();
      Deno.exit(1);
    }
  } finally {
    opened.close();
  }
}

/** Temp files older than this are leftovers of a crash (uploads are far shorter). */
const TEMP_MAX_AGE_MS = 6 * 3600 * 1000;
/**
 * How often stale temporary files, the temp directories of dead processes,
 * interrupted deletions and expired resumable uploads are swept: what a
 * killed process was writing is gone within this
 * (lib/storage/process_temp_dir.ts).
 */
const SWEEP_INTERVAL_MS = 30 * 1000;
/**
 * Deletions whose files were never removed are finished by the sweep once a
 * minute old (one still running elsewhere takes milliseconds), a bounded
 * number per pass.
 */
const DELETION_SWEEP = { graceMs: 60 * 1000, limit: 200 };
/** Posted runner outputs untouched this long, of a job no runner holds, are removed. */
const RUNNER_OUTPUTS_GRACE_MS = 10 * 60 * 1000;

/** A process's worker id: its temp directory's owner name (lib/storage/process_temp_dir.ts). */
function workerIdOf(owner: string): string {
  return `worker-${owner}`;
}

/**
 * `serve` (HTTP with an in-process worker unless WORKER_CONCURRENCY=0) or
 * `worker` (workers only): the composition root of the service.
 */
async function runService(mode: "serve" | "worker"): Promise<void> {
  const config = await loadConfig(mode);
  // From here on every line is a JSON log record on stdout (docs/OPERATIONS.md, Logs).
  const { configureLogging, literalMessage } = await import("./lib/observability/logging.ts");
  await configureLogging({ level: config.logLevel });
  const { getLogger } = await import("@logtape/logtape");
  const log = getLogger(["offchat", "service"]);
  const { openDeps } = await import("./lib/open_deps.ts");
  const { secretPath } = await import("./lib/config/secrets.ts");
  const { startWorker } = await import("./lib/processing/worker.ts");
  const { sweepTempFiles } = await import("./lib/storage/temp_sweep.ts");
  const { sweepDeadOwners } = await import("./lib/storage/process_temp_dir.ts");
  const { adoptInterruptedIngest } = await import("./lib/uploads/ingest.ts");
  const { finishDeletions } = await import("./lib/chat/attachments.ts");
  const { sweepRunnerOutputs } = await import("./lib/runners/runner_jobs.ts");
  const { expireLeasesOf } = await import("./lib/processing/jobs.ts");
  const { createApp } = await import("./routes/app.ts");
  const { serve } = await import("./lib/serving/server.ts");

  const opened = await openDeps(config);
  const { deps } = opened;
  if (opened.secretCreated) {
    log.info(literalMessage(
      `Generated a token secret in ${secretPath(config.dataDir)} (mode 0600). ` +
        "Mint a token with:  deno task token alice      (add --admin for an admin)",
    ));
  }
  if (config.devLogin) {
    log.warn(
      "DEV_LOGIN=1: anyone who can reach this server can sign in as any user, admins included. " +
        "Never use it in production.",
    );
  }
  const sweep = async (): Promise<void> => {
    const removed = await sweepTempFiles(deps.storage.tempDir(), TEMP_MAX_AGE_MS, deps.clock())
      .catch((error) => {
        log.error("temp sweep failed", { error });
        return 0;
      });
    if (removed > 0) log.info("removed {removed} stale temporary file(s)", { removed });
    const dead = await sweepDeadOwners(`${config.dataDir}/tmp`, {
      adopt: async (path) => {
        if (await adoptInterruptedIngest(deps, path)) log.info("finished an interrupted upload");
      },
      onDeadOwner: async (owner) => {
        const expired = await expireLeasesOf(deps.db, workerIdOf(owner), deps.clock());
        if (expired > 0) log.info("took back {expired} job(s) of a stopped process", { expired });
      },
    }).catch((error) => {
      log.error("temp sweep failed", { error });
      return 0;
    });
    if (dead > 0) log.info("removed the temporary files of {dead} stopped process(es)", { dead });
    const outputs = await sweepRunnerOutputs(deps, RUNNER_OUTPUTS_GRACE_MS).catch((error) => {
      log.error("runner output sweep failed", { error });
      return 0;
    });
    if (outputs > 0) {
      log.info("removed the outputs of {outputs} abandoned runner job(s)", { outputs });
    }
    const finished = await finishDeletions(deps, DELETION_SWEEP).catch((error) => {
      log.error("deletion sweep failed", { error });
      return 0;
    });
    if (finished > 0) log.info("finished {finished} interrupted deletion(s)", { finished });
    const expired = await deps.resumableUploads.sweepExpired().catch((error) => {
      log.error("upload sweep failed", { error });
      return 0;
    });
    if (expired > 0) log.info("removed {expired} expired resumable upload(s)", { expired });
  };
  // Before the worker starts: a previous incarnation's jobs are taken back first.
  await sweep();
  const concurrency = mode === "worker"
    ? Math.max(1, config.workerConcurrency)
    : config.workerConcurrency;
  const worker = concurrency > 0
    ? startWorker(deps, {
      concurrency,
      // Named after this process's temp directory, whose lock tells the others it is alive.
      workerId: workerIdOf(opened.owner),
      diskFullRetryMs: config.diskFullRetryMs,
      onError: (error) => log.error("worker error", { error }),
    })
    : null;
  if (worker) opened.attachWorker(worker);
  // Webhook deliveries run where jobs do (they are queued by jobs), one at a time, no tools.
  const { startWebhookSender } = await import("./lib/webhooks/deliveries.ts");
  const webhooks = worker
    ? startWebhookSender(deps, {
      workerId: `${workerIdOf(opened.owner)}-webhooks`,
      onError: (error) => log.error("webhook delivery error", { error }),
    })
    : null;
  const sweepTimer = setInterval(sweep, SWEEP_INTERVAL_MS);

  let server: Server | null = null;
  if (mode === "worker") {
    log.info(literalMessage(`worker ${worker!.id} running ${concurrency} job slot(s)`));
  } else {
    const app = createApp(deps, {
      onUnexpectedError: (error) => log.error("unexpected error", { error }),
    });
    server = serve({
      port: config.port,
      hostname: config.host,
      headerTimeoutMs: config.headerTimeoutMs,
      reusePort: config.reusePort,
      onListen: ({ hostname, port }) => {
        log.info(literalMessage(
          `OffChat Media listening on http://${hostname}:${port} (public URL ${config.publicUrl})`,
        ));
        log.info(literalMessage(`API docs: ${config.publicUrl}/docs`));
      },
      onError: (error) => {
        log.error("unexpected error", { error });
        return new Response("Internal Server Error", { status: 500 });
      },
      onAcceptError: (error) => log.error("accepting a connection failed", { error }),
    }, app.fetch);
    if (config.metricsToken === undefined) {
      log.info(
        "/metrics answers clients on this host only: set METRICS_TOKEN to scrape it from " +
          "elsewhere, or through a reverse proxy (docs/SECURITY.md)",
      );
    }
    if (config.headerTimeoutMs > 0 && !server.headerTimeout) {
      log.warn(
        `HEADER_TIMEOUT_MS=${config.headerTimeoutMs} cannot be enforced by this Deno ` +
          `(${Deno.version.deno}): connections that never send a complete request stay open. ` +
          "Serve behind a reverse proxy with its own timeouts (docs/OPERATIONS.md).",
      );
    }
  }

  let stopping = false;
  // The first signal: stop accepting, give requests in flight SHUTDOWN_GRACE_MS, put running
  // jobs back in the queue (uncounted), close the database; exiting stops their ffmpeg runs
  // (runTool's parent-death signal). A second signal exits at once.
  const stop = async (): Promise<void> => {
    if (stopping) {
      log.warn("second signal: exiting now");
      Deno.exit(1);
    }
    stopping = true;
    log.info("shutting down");
    clearInterval(sweepTimer);
    const graceOver = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownGraceMs));
    await Promise.all([
      Promise.race([server?.shutdown(), graceOver]),
      worker?.stop({ release: true }),
      webhooks?.stop(),
    ]);
    opened.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  await (server?.finished ?? new Promise(() => {}));
}

if (import.meta.main) {
  const [command = "serve", ...args] = Deno.args;
  switch (command) {
    case "serve":
    case "worker":
      await runService(command);
      break;
    case "migrate":
      await migrateCommand();
      break;
    case "token":
      await tokenCommand(args);
      break;
    case "backfill":
      await backfillCommand(args);
      break;
    case "fsck":
      await fsckCommand(args);
      break;
    case "runner":
      await runnerCommand();
      break;
    case "setup":
      await setup(args);
      break;
    case "launch":
      await launch(args);
      break;
    default:
      fail(
        `Unknown command "${command}"; use serve, worker, migrate, token, backfill, fsck, runner, setup or launch`,
      );
  }
}
