import { z } from "zod";
import { ConfigError } from "../config/config.ts";
import { type JobKind, PROCESSING_JOBS } from "../processing/jobs.ts";

/**
 * Names of the environment variables a remote runner reads besides the
 * media ones it shares with the service (FFMPEG_PATH, FFPROBE_PATH,
 * PROBE_TIMEOUT_MS, MAX_PIXELS, MAX_STREAMS, MEDIA_MEMORY_LIMIT_MB,
 * JOB_PRIORITY, LOG_LEVEL, from lib/config/config.ts).
 */
export const RUNNER_ENV_NAMES = [
  "RUNNER_API_URL",
  "RUNNER_TOKEN",
  "RUNNER_REGISTRATION_TOKEN",
  "RUNNER_NAME",
  "RUNNER_WORK_DIR",
  "RUNNER_KINDS",
  "RUNNER_CONCURRENCY",
] as const;

/** A remote runner's own settings. */
export interface RunnerConfig {
  /** The service's base URL (its PUBLIC_URL). */
  apiUrl: string;
  /** The runner token; when unset, read from the work directory or registered for. */
  token?: string;
  /** For the first start: an admin's registration token, and the name to register as. */
  registrationToken?: string;
  name: string;
  /** The runner's only directory: its token file and each job's input and outputs. */
  workDir: string;
  kinds: JobKind[];
  concurrency: number;
}

const optional = z.string().trim().min(1).optional();

const runnerSchema = z.object({
  RUNNER_API_URL: z.string().trim().url().refine(
    (url) => /^https?:\/\//.test(url),
    "must be an http(s) URL",
  ),
  RUNNER_TOKEN: optional,
  RUNNER_REGISTRATION_TOKEN: optional,
  RUNNER_NAME: z.string().trim().min(1).max(100).regex(/^[\w .@:+-]+$/).default("runner"),
  RUNNER_WORK_DIR: z.string().trim().min(1).default("./runner"),
  RUNNER_KINDS: z.string().trim().min(1).optional(),
  RUNNER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
});

/** Parses the runner's settings (empty strings count as unset); lists every bad variable. */
export function parseRunnerConfig(env: Record<string, string | undefined>): RunnerConfig {
  const present = Object.fromEntries(
    RUNNER_ENV_NAMES.map((name) => [name, env[name] === "" ? undefined : env[name]]),
  );
  const parsed = runnerSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`),
    );
  }
  const e = parsed.data;
  const kinds = e.RUNNER_KINDS?.split(",").map((kind) => kind.trim()).filter(Boolean) ??
    [...PROCESSING_JOBS];
  const unknown = kinds.filter((kind) => !PROCESSING_JOBS.includes(kind as JobKind));
  if (unknown.length > 0 || kinds.length === 0) {
    throw new ConfigError([
      `RUNNER_KINDS: "${unknown.join(",")}" is not a job kind; use ${PROCESSING_JOBS.join(",")}`,
    ]);
  }
  return {
    apiUrl: e.RUNNER_API_URL.replace(/\/+$/, ""),
    token: e.RUNNER_TOKEN,
    registrationToken: e.RUNNER_REGISTRATION_TOKEN,
    name: e.RUNNER_NAME,
    workDir: e.RUNNER_WORK_DIR.replace(/\/+$/, "") || "/",
    kinds: kinds as JobKind[],
    concurrency: e.RUNNER_CONCURRENCY,
  };
}
