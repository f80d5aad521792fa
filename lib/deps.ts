import type { Auth } from "./auth/auth.ts";
import type { Config } from "./config/config.ts";
import type { Clock } from "./core/clock.ts";
import type { Database } from "../db/client.ts";
import type { MediaTools } from "./media/tools.ts";
import type { Metrics } from "./observability/metrics.ts";
import type { JobSignal } from "./processing/job_signal.ts";
import type { RecentAccess } from "./serving/recent_access.ts";
import type { ResumableUploads } from "./uploads/resumable_uploads.ts";
import type { UploadAdmission } from "./uploads/admission.ts";
import type { Storage } from "./storage/storage.ts";

/** Everything the app needs from the outside, passed in rather than imported. */
export interface AppDeps {
  config: Config;
  db: Database;
  storage: Storage;
  auth: Auth;
  media: MediaTools;
  clock: Clock;
  jobs: JobSignal;
  /** Short-lived memory of media access checks, for range requests. */
  recentAccess: RecentAccess;
  /** This process's Prometheus metrics (a registry of its own). */
  metrics: Metrics;
  /** Resumable uploads: who owns each, its checks and expiry, its last byte into ingest. */
  resumableUploads: ResumableUploads;
  /** Upload bodies this process reads at once, and the queue of the others. */
  uploadAdmission: UploadAdmission;
}
