import type { Auth, User } from "./auth/auth.ts";
import type { Config } from "./config/config.ts";
import type { Database } from "../db/client.ts";
import type { MediaTools } from "./media/tools.ts";
import type { RecentAccess } from "./serving/recent_access.ts";
import type { ResumableUploads } from "./uploads/resumable_uploads.ts";
import type { Storage } from "./storage/storage.ts";

/** A source of the current time; tests may pass a fixed one. */
export type Clock = () => Date;

/** Wakes workers when a job is queued in this process (others poll). */
export interface JobSignal {
  notify(): void;
}

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
  /** The tus server for resumable uploads. */
  resumableUploads: ResumableUploads;
}

/** Hono environment shared by every sub-app. */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    user: User;
    /** When the media token that authenticated the request expires (epoch ms); unset for bearer. */
    mediaTokenExpiresAt: number | undefined;
  };
}
