import { openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { createApp } from "../routes/app.ts";
import { createAuth } from "./auth.ts";
import type { Config } from "./config.ts";
import type { AppDeps, Clock } from "./deps.ts";
import { loadOrCreateSecret, secretPath } from "./secrets.ts";
import { DiskStorage } from "./storage.ts";
import { RecentAccess } from "./recent_access.ts";
import { Semaphore } from "./semaphore.ts";
import { sweepTempFiles } from "./temp_sweep.ts";
import { startWorker, type Worker } from "./worker.ts";

/** Dependencies built from a configuration, and how to release them. */
export interface OpenedDeps {
  deps: AppDeps;
  /** Set by {@linkcode openDeps} callers that run a worker, so uploads wake it. */
  attachWorker(worker: Worker): void;
  close(): void;
  /** True when this start generated the token secret. */
  secretCreated: boolean;
}

/** ffprobe runs at once per process for uploads; more uploads wait their turn. */
const PROBE_SLOTS = 4;

/**
 * Opens the database (migrating it), the secret, storage and media tools for
 * a configuration.
 */
export async function openDeps(
  config: Config,
  clock: Clock = () => new Date(),
): Promise<OpenedDeps> {
  await Deno.mkdir(config.dataDir, { recursive: true });
  const handle = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });
  try {
    await migrate(handle.client);
    const local = config.jwtSecret
      ? { secret: config.jwtSecret, created: false }
      : await loadOrCreateSecret(config.dataDir);
    let worker: Worker | null = null;
    const deps: AppDeps = {
      config,
      db: handle.db,
      storage: new DiskStorage(config.dataDir),
      auth: await createAuth(config, local.secret),
      media: {
        ffmpegPath: config.ffmpegPath,
        ffprobePath: config.ffprobePath,
        probeTimeoutMs: config.probeTimeoutMs,
        probeSlots: new Semaphore(PROBE_SLOTS),
      },
      clock,
      jobs: { notify: () => worker?.notify() },
      recentAccess: new RecentAccess(),
    };
    return {
      deps,
      attachWorker: (w) => (worker = w),
      close: () => handle.close(),
      secretCreated: local.created,
    };
  } catch (error) {
    handle.close();
    throw error;
  }
}

/** Temp files older than this are leftovers of a crash (uploads are far shorter). */
const TEMP_MAX_AGE_MS = 6 * 3600 * 1000;

/** A running server and/or worker. */
export interface Service {
  /** Where the HTTP server listens (null in worker mode). */
  url: string | null;
  finished: Promise<void>;
  stop(): Promise<void>;
}

/** Starts `serve` (HTTP + in-process worker) or `worker` (workers only). */
export async function startService(
  config: Config,
  options: {
    mode: "serve" | "worker";
    log: (line: string) => void;
    logError: (line: string, error: unknown) => void;
  },
): Promise<Service> {
  const opened = await openDeps(config);
  const { deps } = opened;
  if (opened.secretCreated) {
    options.log(
      `Generated a token secret in ${secretPath(config.dataDir)} (mode 0600).\n` +
        "Mint a token with:  deno task token alice      (add --admin for an admin)",
    );
  }
  const concurrency = options.mode === "worker"
    ? Math.max(1, config.workerConcurrency)
    : config.workerConcurrency;
  const worker = concurrency > 0
    ? startWorker(deps, {
      concurrency,
      onError: (error) => options.logError("worker error:", error),
    })
    : null;
  if (worker) opened.attachWorker(worker);
  const sweep = async (): Promise<void> => {
    const removed = await sweepTempFiles(deps.storage.tempDir(), TEMP_MAX_AGE_MS, deps.clock())
      .catch((error) => {
        options.logError("temp sweep failed:", error);
        return 0;
      });
    if (removed > 0) options.log(`removed ${removed} stale temporary file(s)`);
  };
  await sweep();
  const sweepTimer = setInterval(sweep, TEMP_MAX_AGE_MS);

  if (options.mode === "worker") {
    options.log(`worker ${worker!.id} running ${concurrency} job slot(s)`);
    let release: () => void = () => {};
    const finished = new Promise<void>((resolve) => (release = resolve));
    return {
      url: null,
      finished,
      async stop() {
        clearInterval(sweepTimer);
        await worker?.stop();
        opened.close();
        release();
      },
    };
  }

  const app = createApp(deps, {
    onUnexpectedError: (error) => options.logError("unexpected error:", error),
  });
  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) => {
      options.log(
        `OffChat Media listening on http://${hostname}:${port} (public URL ${config.publicUrl})`,
      );
      options.log(`API docs: ${config.publicUrl}/docs`);
    },
  }, app.fetch);
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://${addr.hostname}:${addr.port}`,
    finished: server.finished,
    async stop() {
      clearInterval(sweepTimer);
      await server.shutdown();
      await worker?.stop();
      opened.close();
    },
  };
}
