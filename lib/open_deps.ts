import { openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { createAuth } from "./auth/auth.ts";
import type { Config } from "./config/config.ts";
import type { Clock } from "./core/clock.ts";
import type { AppDeps } from "./deps.ts";
import { mediaToolsOf } from "./media/tools.ts";
import { Metrics } from "./observability/metrics.ts";
import { loadOrCreateSecret } from "./config/secrets.ts";
import { DiskStorage, type Storage } from "./storage/storage.ts";
import { S3Storage } from "./storage/s3_storage.ts";
import { claimProcessTempDir } from "./storage/process_temp_dir.ts";
import { RecentAccess } from "./serving/recent_access.ts";
import { ResumableUploads } from "./uploads/resumable_uploads.ts";
import { Semaphore } from "./core/semaphore.ts";
import { UploadAdmission } from "./uploads/admission.ts";
import type { Worker } from "./processing/worker.ts";

/** Dependencies built from a configuration, and how to release them. */
export interface OpenedDeps {
  deps: AppDeps;
  /** Set by {@linkcode openDeps} callers that run a worker, so uploads wake it. */
  attachWorker(worker: Worker): void;
  close(): void;
  /** True when this start generated the token secret. */
  secretCreated: boolean;
  /** This process's name in the data directory (its temp directory's owner). */
  owner: string;
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
  let releaseTemp = (): void => {};
  let closeStorage = (): void => {};
  try {
    await migrate(handle.client);
    const local = config.jwtSecret
      ? { secret: config.jwtSecret, created: false }
      : await loadOrCreateSecret(config.dataDir);
    let worker: Worker | null = null;
    const temp = await claimProcessTempDir(`${config.dataDir}/tmp`);
    releaseTemp = temp.release;
    const storage: Storage = config.s3
      ? new S3Storage(config.s3, { tempDir: temp.path })
      : new DiskStorage(config.dataDir, { tempDir: temp.path });
    closeStorage = () => storage.close();
    const media = mediaToolsOf(config, new Semaphore(PROBE_SLOTS));
    const jobs = { notify: () => worker?.notify() };
    const uploadAdmission = new UploadAdmission({
      slots: config.uploadsPerProcess,
      maxWaiting: config.uploadQueueMax,
    });
    const deps: AppDeps = {
      config,
      db: handle.db,
      storage,
      auth: await createAuth(config, local.secret),
      media,
      clock,
      jobs,
      recentAccess: new RecentAccess(),
      metrics: new Metrics({
        db: handle.db,
        clock,
        uploads: uploadAdmission,
        runnerStallMs: config.runnerStallMs,
        storage: storage instanceof S3Storage ? storage : undefined,
      }),
      uploadAdmission,
      resumableUploads: await ResumableUploads.open({
        config,
        db: handle.db,
        storage,
        media,
        clock,
        jobs,
      }),
    };
    return {
      deps,
      attachWorker: (w) => (worker = w),
      close: () => {
        deps.recentAccess[Symbol.dispose]();
        handle.close();
        closeStorage();
        releaseTemp();
      },
      secretCreated: local.created,
      owner: temp.owner,
    };
  } catch (error) {
    handle.close();
    closeStorage();
    releaseTemp();
    throw error;
  }
}
