import type { User } from "../lib/auth/auth.ts";
import type { AppDeps } from "../lib/deps.ts";

/** Hono environment shared by every sub-app. */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    user: User;
    /** When the media token that authenticated the request expires (epoch ms); unset for bearer. */
    mediaTokenExpiresAt: number | undefined;
  };
}
