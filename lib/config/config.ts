import { z } from "zod";
import { isIpLiteral, isLoopbackName } from "../webhooks/addresses.ts";

/** Names of the environment variables the service reads; `--allow-env` can be scoped to these. */
export const CONFIG_ENV_NAMES = [
  "PORT",
  "HOST",
  "PUBLIC_URL",
  "DATA_DIR",
  "DATABASE_URL",
  "DATABASE_AUTH_TOKEN",
  "STORAGE",
  "S3_ENDPOINT",
  "S3_REGION",
  "S3_BUCKET",
  "S3_FORCE_PATH_STYLE",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
  "S3_PART_SIZE_MB",
  "S3_PRESIGNED_MEDIA",
  "JWT_SECRET",
  "JWT_PUBLIC_KEY",
  "JWT_JWKS_URL",
  "JWT_ISSUER",
  "JWT_AUDIENCE",
  "JWT_ALGORITHMS",
  "MAX_UPLOAD_BYTES",
  "WORKER_CONCURRENCY",
  "PROBE_TIMEOUT_MS",
  "FFMPEG_PATH",
  "FFPROBE_PATH",
  "MEDIA_URL_TTL",
  "MEDIA_URL_SECRET",
  "ACCEL_REDIRECT_PREFIX",
  "UPLOAD_EXPIRY",
  "MAX_UNFINISHED_UPLOADS",
  "DEV_LOGIN",
  "METRICS_TOKEN",
  "LOG_LEVEL",
  "MAX_PIXELS",
  "MAX_STREAMS",
  "MAX_DURATION_SECONDS",
  "MEDIA_MEMORY_LIMIT_MB",
  "JOB_PRIORITY",
  "RATE_LIMIT_PER_MINUTE",
  "MAX_CONCURRENT_UPLOADS",
  "UPLOADS_PER_PROCESS",
  "UPLOAD_QUEUE_MAX",
  "USER_QUOTA_BYTES",
  "MAX_PARTICIPANTS",
  "MAX_CONVERSATIONS_PER_HOUR",
  "MAX_PARTICIPANT_ADDS_PER_HOUR",
  "MAX_ATTACHMENTS_PER_MESSAGE",
  "HEADER_TIMEOUT_MS",
  "REUSE_PORT",
  "SHUTDOWN_GRACE_MS",
  "STRIP_METADATA",
  "RENDITION_MAX_HEIGHT",
  "RENDITION_MAX_BITRATE",
  "RENDITION_MAX_FPS",
  "HLS",
  "HLS_MIN_DURATION",
  "HLS_MIN_BITRATE",
  "MIN_FREE_BYTES",
  "UPLOAD_IDLE_TIMEOUT_MS",
  "DISK_FULL_RETRY_MS",
  // Remote runners (lib/runners/).
  "RUNNER_STALL_MS",
  // Webhooks (lib/webhooks/).
  "WEBHOOK_URL",
  "WEBHOOK_SECRET",
  "WEBHOOK_ALLOW_HOSTS",
  "WEBHOOK_NAMESERVER",
  "WEBHOOK_RETRY_BASE_MS",
  "WEBHOOK_MAX_ATTEMPTS",
] as const;

const optionalText = z.string().trim().min(1).optional();

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const envSchema = z.object({
  PORT: integer(0, 65535).default(8000),
  HOST: z.string().min(1).default("0.0.0.0"),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  DATA_DIR: z.string().min(1).default("./data"),
  DATABASE_URL: z.string().regex(/^(file|libsql|https?|wss?):/, {
    message: "must start with file:, libsql:, http(s): or ws(s):",
  }).optional(),
  DATABASE_AUTH_TOKEN: optionalText,
  STORAGE: z.enum(["disk", "s3"], { message: "must be disk or s3" }).default("disk"),
  S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  S3_REGION: z.string().regex(/^[a-z0-9-]{1,64}$/, {
    message: "must be a region name such as us-east-1",
  }).default("us-east-1"),
  // S3's own rules for a bucket name (no dots: virtual-hosted style over TLS breaks on them).
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, {
    message: "must be 3 to 63 lowercase letters, digits or hyphens",
  }).optional(),
  S3_FORCE_PATH_STYLE: z.enum(["0", "1", "false", "true"], { message: "must be 1 or 0" })
    .default("0"),
  S3_ACCESS_KEY_ID: optionalText,
  S3_SECRET_ACCESS_KEY: optionalText,
  S3_PART_SIZE_MB: integer(5, 5120).default(16),
  S3_PRESIGNED_MEDIA: z.enum(["0", "1", "false", "true"], { message: "must be 1 or 0" })
    .default("0"),
  JWT_SECRET: z.string().refine((s) => new TextEncoder().encode(s).length >= 32, {
    message: "must be at least 32 bytes",
  }).optional(),
  JWT_PUBLIC_KEY: optionalText,
  JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  JWT_ISSUER: optionalText,
  JWT_AUDIENCE: optionalText,
  JWT_ALGORITHMS: z.string().regex(/^(RS256|ES256|EdDSA)(,(RS256|ES256|EdDSA))*$/, {
    message: "must be a comma-separated list of RS256, ES256, EdDSA",
  }).optional(),
  MAX_UPLOAD_BYTES: integer(1, 64 * 1024 ** 3).default(100 * 1024 * 1024),
  WORKER_CONCURRENCY: integer(0, 64).default(2),
  PROBE_TIMEOUT_MS: integer(100, 600_000).default(30_000),
  FFMPEG_PATH: z.string().min(1).default("ffmpeg"),
  FFPROBE_PATH: z.string().min(1).default("ffprobe"),
  MEDIA_URL_TTL: integer(10, 7 * 24 * 3600).default(3600),
  ACCEL_REDIRECT_PREFIX: z.string().regex(/^\/[\w\-/]*\/$/, {
    message: "must be a URL path that starts and ends with /, e.g. /_offchat_media/",
  }).optional(),
  MEDIA_URL_SECRET: z.string().refine((s) => new TextEncoder().encode(s).length >= 32, {
    message: "must be at least 32 bytes",
  }).optional(),
  UPLOAD_EXPIRY: integer(60, 30 * 24 * 3600).default(24 * 3600),
  MAX_UNFINISHED_UPLOADS: integer(1, 1000).default(5),
  DEV_LOGIN: z.enum(["0", "1", "false", "true"], { message: "must be 1 or 0" }).default("0"),
  LOG_LEVEL: z.enum(["debug", "info", "warning", "error"], {
    message: "must be debug, info, warning or error",
  }).default("info"),
  METRICS_TOKEN: z.string().regex(/^[\x21-\x7e]{16,256}$/, {
    message: "must be 16 to 256 printable ASCII characters without spaces",
  }).optional(),
  MAX_PIXELS: integer(1, 8192 * 8192).default(8192 * 4320),
  MAX_STREAMS: integer(1, 1000).default(16),
  MAX_DURATION_SECONDS: integer(1, 24 * 3600).default(24 * 3600),
  MEDIA_MEMORY_LIMIT_MB: integer(0, 1024 * 1024).default(2048),
  JOB_PRIORITY: z.enum(["idle", "nice", "normal"], {
    message: "must be idle, nice or normal",
  }).default("idle"),
  RATE_LIMIT_PER_MINUTE: integer(0, 1_000_000).default(600),
  MAX_CONCURRENT_UPLOADS: integer(0, 1000).default(2),
  UPLOADS_PER_PROCESS: integer(0, 10_000).default(4),
  UPLOAD_QUEUE_MAX: integer(0, 100_000).default(1000),
  USER_QUOTA_BYTES: integer(0, 2 ** 53 - 1).default(0),
  MAX_PARTICIPANTS: integer(2, 10_000).default(100),
  MAX_CONVERSATIONS_PER_HOUR: integer(0, 1_000_000).default(30),
  MAX_PARTICIPANT_ADDS_PER_HOUR: integer(0, 1_000_000).default(100),
  MAX_ATTACHMENTS_PER_MESSAGE: integer(1, 1000).default(10),
  HEADER_TIMEOUT_MS: integer(0, 600_000).refine((ms) => ms === 0 || ms >= 100, {
    message: "must be 0 (off) or at least 100",
  }).default(20_000),
  REUSE_PORT: z.enum(["0", "1", "false", "true"], { message: "must be 1 or 0" }).default("0"),
  SHUTDOWN_GRACE_MS: integer(0, 3_600_000).default(10_000),
  STRIP_METADATA: z.enum(["0", "1", "false", "true"], { message: "must be 1 or 0" })
    .default("1"),
  RENDITION_MAX_HEIGHT: integer(144, 4320).default(1080),
  RENDITION_MAX_BITRATE: integer(100, 1_000_000).default(5000),
  RENDITION_MAX_FPS: integer(10, 240).default(60),
  HLS: z.enum(["0", "1", "false", "true"], { message: "must be 1 or 0" }).default("1"),
  HLS_MIN_DURATION: integer(0, 24 * 3600).default(10),
  HLS_MIN_BITRATE: integer(0, 1_000_000).default(1200),
  MIN_FREE_BYTES: integer(0, 2 ** 53 - 1).default(1024 ** 3),
  UPLOAD_IDLE_TIMEOUT_MS: integer(100, 3_600_000).default(30_000),
  DISK_FULL_RETRY_MS: integer(100, 3_600_000).default(60_000),
  RUNNER_STALL_MS: integer(1000, 3_600_000).default(60_000),
  WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  // The Standard Webhooks form: whsec_ and base64 of 24 to 64 random bytes.
  WEBHOOK_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/, {
    message: "must be whsec_ followed by the base64 of 24 to 64 random bytes",
  }).optional(),
  WEBHOOK_ALLOW_HOSTS: z.string().regex(/^[\w.:\-\[\]]+(,[\w.:\-\[\]]+)*$/, {
    message: "must be a comma-separated list of host names or addresses",
  }).optional(),
  WEBHOOK_NAMESERVER: z.string().regex(/^[0-9a-fA-F.:]+$/, {
    message: "must be the IP address of a DNS server",
  }).optional(),
  WEBHOOK_RETRY_BASE_MS: integer(1, 3_600_000).default(10_000),
  WEBHOOK_MAX_ATTEMPTS: integer(1, 100).default(10),
});

/** The service configuration, parsed once from the environment. */
export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  dataDir: string;
  databaseUrl: string;
  databaseAuthToken: string | undefined;
  /** Where media is kept: the data directory, or an S3 bucket (`s3`). */
  storage: "disk" | "s3";
  /** The bucket and how to reach it; set when `storage` is `s3`. */
  s3: S3Config | undefined;
  /** HS256 secret for user tokens; undefined when an identity provider's key is configured. */
  jwtSecret: string | undefined;
  jwtPublicKey: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  jwtAlgorithms: string[];
  maxUploadBytes: number;
  workerConcurrency: number;
  probeTimeoutMs: number;
  ffmpegPath: string;
  ffprobePath: string;
  /** Lifetime of signed media URLs, in seconds. */
  mediaUrlTtl: number;
  /**
   * Key material for signed media URLs; defaults to the HS256 secret. Set it on
   * every process when tokens come from an identity provider and processes
   * do not share a data directory.
   */
  mediaUrlSecret: string | undefined;
  /**
   * Behind nginx: media bytes are handed to nginx with `X-Accel-Redirect:
   * <prefix><storage key>` after this service has authorized the request.
   */
  accelRedirectPrefix: string | undefined;
  /** Seconds an unfinished resumable upload is kept after it was created. */
  uploadExpiry: number;
  /** Resumable uploads one user may have unfinished at once. */
  maxUnfinishedUploads: number;
  /**
   * The dashboard's "dev sign-in": anyone who can reach the server may mint a
   * token for any user name. Only allowed with the generated secret and a
   * loopback `host`.
   */
  devLogin: boolean;
  /**
   * The Bearer token `/metrics` asks for. Unset: `/metrics` answers loopback
   * clients only, and none that came through a proxy.
   */
  metricsToken: string | undefined;
  /** The lowest level of the JSON log; `warning` leaves out the request and job lines that went well. */
  logLevel: "debug" | "info" | "warning" | "error";
  /** Largest frame (width × height) of any video stream an upload may have. */
  maxPixels: number;
  /** Most streams (of any kind) an upload may have. */
  maxStreams: number;
  /** Longest duration an upload may declare, in seconds (24 hours at most). */
  maxDurationSeconds: number;
  /** Address-space limit of each ffmpeg/ffprobe run, in MiB; 0 runs them without one. */
  mediaMemoryLimitMb: number;
  /** CPU priority of the ffmpeg/ffprobe runs of jobs: idle (SCHED_IDLE), nice (19) or normal. */
  jobPriority: "idle" | "nice" | "normal";
  /** API requests one user (or, without a token, one address) may make per minute; 0 = unlimited. */
  rateLimitPerMinute: number;
  /** Multipart uploads one user may stream at once; 0 = unlimited. */
  maxConcurrentUploads: number;
  /**
   * Upload bodies (multipart and tus PATCH) this process reads at once; the
   * others wait their turn unread, so that a burst of uploads cannot take
   * the event loop from every other request. 0 = unlimited.
   */
  uploadsPerProcess: number;
  /** Uploads that may wait for one of those slots; one more gets 503 with `Retry-After`. */
  uploadQueueMax: number;
  /** Bytes of originals one user may keep stored; 0 = no quota. */
  userQuotaBytes: number;
  /** Participants one conversation may have, its creator included. */
  maxParticipants: number;
  /** Conversations one user may create in any hour; 0 = unlimited. */
  maxConversationsPerHour: number;
  /** Participants one user may add to existing conversations in any hour; 0 = unlimited. */
  maxParticipantAddsPerHour: number;
  /** Live videos one message may carry. */
  maxAttachmentsPerMessage: number;
  /**
   * Milliseconds a connection may take to send a complete request head, from
   * when it opens or from its last response; then it is closed. 0 = no limit.
   */
  headerTimeoutMs: number;
  /**
   * Whether `serve` listens with `SO_REUSEPORT`, so that several API processes
   * of one user share `HOST:PORT` and the kernel spreads connections over them.
   */
  reusePort: boolean;
  /**
   * Milliseconds that uploads and streams in flight get to finish after
   * SIGTERM/SIGINT before the process exits anyway; 0 = exit at once.
   */
  shutdownGraceMs: number;
  /**
   * Whether receivers get a copy of each original without its metadata
   * (location, device, software, dates, chapters); on by default.
   */
  stripMetadata: boolean;
  /** Above these, receivers stream a compact rendition instead of the original. */
  renditionPolicy: RenditionPolicy;
  /** Which videos also get an adaptive (HLS and DASH) ladder. */
  hlsPolicy: HlsPolicy;
  /**
   * Free bytes the data directory's filesystem must keep: below it `/readyz`
   * fails and new uploads are refused with 507. 0 turns both off.
   */
  minFreeBytes: number;
  /** Milliseconds an upload body may send nothing before it is cut with 408. */
  uploadIdleTimeoutMs: number;
  /** How long a job that found the disk full waits before it runs again. */
  diskFullRetryMs: number;
  /**
   * A remote runner's lease on its job: a runner that reports nothing for
   * this long loses the job back to the queue (lib/runners/).
   */
  runnerStallMs: number;
  /** Where attachment events are POSTed, signed (lib/webhooks/); undefined: no webhooks. */
  webhook: WebhookConfig | undefined;
}

/** `WEBHOOK_*`: the receiver of attachment events and how deliveries are retried. */
export interface WebhookConfig {
  /** `WEBHOOK_URL`: https:, or http: to loopback or to a host of `allowHosts`. */
  url: string;
  /** `WEBHOOK_SECRET`: the Standard Webhooks signing secret (`whsec_…`). */
  secret: string;
  /**
   * `WEBHOOK_ALLOW_HOSTS`: hosts (lowercase, IPv6 without brackets) that may be
   * reached over http: and at private, loopback or CGNAT addresses: an
   * operator's receiver on the internal network.
   */
  allowHosts: string[];
  /**
   * `WEBHOOK_NAMESERVER`: the DNS server the URL's host is resolved with (the
   * process is granted only it); required when the URL names a host by name.
   */
  nameServer: string | undefined;
  /** `WEBHOOK_RETRY_BASE_MS`: the first retry's delay; each next one doubles, up to an hour. */
  retryBaseMs: number;
  /** `WEBHOOK_MAX_ATTEMPTS`: attempts before a delivery is marked failed. */
  maxAttempts: number;
}

/** An S3-speaking object store (`STORAGE=s3`). */
export interface S3Config {
  /** `S3_ENDPOINT`: another S3-speaking server's URL; unset means AWS for `region`. */
  endpoint: string | undefined;
  region: string;
  bucket: string;
  /** `S3_FORCE_PATH_STYLE`: `<endpoint>/<bucket>/<key>` instead of `<bucket>.<endpoint>/<key>`. */
  forcePathStyle: boolean;
  /** Both or neither; neither means the SDK's environment chain (AWS_ACCESS_KEY_ID, …). */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Bytes of each part of a multipart upload (S3's minimum is 5 MiB). */
  partSizeBytes: number;
  /**
   * `S3_PRESIGNED_MEDIA`: media routes answer 302 to a short-lived presigned
   * URL of the bucket instead of sending the bytes themselves.
   */
  presignedMedia: boolean;
}

/** Which videos get an adaptive ladder besides their progressive file. */
export interface HlsPolicy {
  /** `HLS`: on by default. */
  enabled: boolean;
  /** `HLS_MIN_DURATION`: seconds; a video this long gets a ladder. */
  minDuration: number;
  /**
   * `HLS_MIN_BITRATE`: kbit/s; a shorter video gets a ladder too when its
   * overall bitrate is above this (0: never). Short, light clips play from the
   * progressive file alone.
   */
  minBitrate: number;
}

/**
 * The compact-rendition policy: an original over any limit is transcoded to
 * one within them all, even when browsers could play it as it is.
 */
export interface RenditionPolicy {
  /**
   * The "p" of a rendition: its shorter side (a landscape video's height, a
   * portrait one's width); the longer side may be 16/9 of it (1920 for 1080).
   */
  maxHeight: number;
  /** Overall bitrate, kbit/s, of the original; the rendition's video peaks at it. */
  maxBitrate: number;
  /** Frames a second. */
  maxFps: number;
}

/** Raised when the environment does not describe a valid configuration; lists every bad variable. */
export class ConfigError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`Invalid configuration:\n  ${issues.join("\n  ")}`);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/**
 * Parses the configuration from environment variables (empty strings count as unset).
 *
 * @example
 * ```ts
 * const config = parseConfig(Deno.env.toObject());
 * ```
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const present = Object.fromEntries(
    CONFIG_ENV_NAMES.map((name) => [name, env[name] === "" ? undefined : env[name]]),
  );
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`),
    );
  }
  const e = parsed.data;
  const keySources = [e.JWT_SECRET, e.JWT_PUBLIC_KEY, e.JWT_JWKS_URL].filter(Boolean).length;
  if (keySources > 1) {
    throw new ConfigError([
      "JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL: set at most one of them",
    ]);
  }
  const devLogin = e.DEV_LOGIN === "1" || e.DEV_LOGIN === "true";
  if (devLogin && keySources > 0) {
    throw new ConfigError([
      "DEV_LOGIN: dev sign-in only works with the generated secret; " +
      "unset DEV_LOGIN, or JWT_SECRET / JWT_PUBLIC_KEY / JWT_JWKS_URL",
    ]);
  }
  if (devLogin && !isLoopbackHost(e.HOST)) {
    throw new ConfigError([
      `DEV_LOGIN, HOST: dev sign-in hands out admin tokens to anyone who can reach the server, ` +
      `so it only listens on a loopback address; HOST is "${e.HOST}", set HOST=127.0.0.1 ` +
      "(or ::1, localhost) or unset DEV_LOGIN",
    ]);
  }
  const dataDir = e.DATA_DIR.replace(/\/+$/, "") || "/";
  const s3 = s3ConfigOf(e);
  const webhook = webhookConfigOf(e);
  return {
    port: e.PORT,
    host: e.HOST,
    publicUrl: (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ""),
    dataDir,
    databaseUrl: e.DATABASE_URL ?? `file:${dataDir}/offchat.db`,
    databaseAuthToken: e.DATABASE_AUTH_TOKEN,
    storage: e.STORAGE,
    s3,
    jwtSecret: e.JWT_SECRET,
    jwtPublicKey: e.JWT_PUBLIC_KEY?.replaceAll("\\n", "\n"),
    jwtJwksUrl: e.JWT_JWKS_URL,
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    jwtAlgorithms: e.JWT_ALGORITHMS?.split(",") ?? ["RS256", "ES256", "EdDSA"],
    maxUploadBytes: e.MAX_UPLOAD_BYTES,
    workerConcurrency: e.WORKER_CONCURRENCY,
    probeTimeoutMs: e.PROBE_TIMEOUT_MS,
    ffmpegPath: e.FFMPEG_PATH,
    ffprobePath: e.FFPROBE_PATH,
    mediaUrlTtl: e.MEDIA_URL_TTL,
    mediaUrlSecret: e.MEDIA_URL_SECRET,
    accelRedirectPrefix: e.ACCEL_REDIRECT_PREFIX,
    uploadExpiry: e.UPLOAD_EXPIRY,
    maxUnfinishedUploads: e.MAX_UNFINISHED_UPLOADS,
    devLogin,
    metricsToken: e.METRICS_TOKEN,
    logLevel: e.LOG_LEVEL,
    maxPixels: e.MAX_PIXELS,
    maxStreams: e.MAX_STREAMS,
    maxDurationSeconds: e.MAX_DURATION_SECONDS,
    mediaMemoryLimitMb: e.MEDIA_MEMORY_LIMIT_MB,
    jobPriority: e.JOB_PRIORITY,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    maxConcurrentUploads: e.MAX_CONCURRENT_UPLOADS,
    uploadsPerProcess: e.UPLOADS_PER_PROCESS,
    uploadQueueMax: e.UPLOAD_QUEUE_MAX,
    userQuotaBytes: e.USER_QUOTA_BYTES,
    maxParticipants: e.MAX_PARTICIPANTS,
    maxConversationsPerHour: e.MAX_CONVERSATIONS_PER_HOUR,
    maxParticipantAddsPerHour: e.MAX_PARTICIPANT_ADDS_PER_HOUR,
    maxAttachmentsPerMessage: e.MAX_ATTACHMENTS_PER_MESSAGE,
    headerTimeoutMs: e.HEADER_TIMEOUT_MS,
    reusePort: e.REUSE_PORT === "1" || e.REUSE_PORT === "true",
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    stripMetadata: e.STRIP_METADATA === "1" || e.STRIP_METADATA === "true",
    renditionPolicy: {
      maxHeight: e.RENDITION_MAX_HEIGHT,
      maxBitrate: e.RENDITION_MAX_BITRATE,
      maxFps: e.RENDITION_MAX_FPS,
    },
    hlsPolicy: {
      enabled: e.HLS === "1" || e.HLS === "true",
      minDuration: e.HLS_MIN_DURATION,
      minBitrate: e.HLS_MIN_BITRATE,
    },
    minFreeBytes: e.MIN_FREE_BYTES,
    uploadIdleTimeoutMs: e.UPLOAD_IDLE_TIMEOUT_MS,
    diskFullRetryMs: e.DISK_FULL_RETRY_MS,
    runnerStallMs: e.RUNNER_STALL_MS,
    webhook,
  };
}

/**
 * The webhook settings: both the URL and the secret, or neither. The URL is
 * https:, or http: to a loopback host or one `WEBHOOK_ALLOW_HOSTS` names;
 * credentials in it are refused (they would be sent to wherever it points).
 * Its addresses are checked again at each delivery (lib/webhooks/addresses.ts).
 */
function webhookConfigOf(e: z.infer<typeof envSchema>): WebhookConfig | undefined {
  const others = [e.WEBHOOK_ALLOW_HOSTS, e.WEBHOOK_NAMESERVER].some(Boolean);
  if (!e.WEBHOOK_URL) {
    if (e.WEBHOOK_SECRET || others) {
      throw new ConfigError(["WEBHOOK_URL: required with the other WEBHOOK_ settings"]);
    }
    return undefined;
  }
  if (!e.WEBHOOK_SECRET) throw new ConfigError(["WEBHOOK_SECRET: required with WEBHOOK_URL"]);
  const url = new URL(e.WEBHOOK_URL);
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  const allowHosts = (e.WEBHOOK_ALLOW_HOSTS ?? "").split(",").filter(Boolean)
    .map((name) => name.toLowerCase().replace(/^\[(.*)\]$/, "$1"));
  if (url.username || url.password) {
    throw new ConfigError(["WEBHOOK_URL: must not carry a user name or password"]);
  }
  if (url.protocol === "http:" && !isLoopbackName(host) && !allowHosts.includes(host)) {
    throw new ConfigError([
      `WEBHOOK_URL: must be https: (or http: to a loopback host, or to a host named in ` +
      `WEBHOOK_ALLOW_HOSTS); "${host}" is neither`,
    ]);
  }
  if (!isIpLiteral(host) && !isLoopbackName(host) && !e.WEBHOOK_NAMESERVER) {
    throw new ConfigError([
      `WEBHOOK_NAMESERVER: required when WEBHOOK_URL names a host ("${host}"): its addresses ` +
      "are checked before each delivery, and the process is granted only this DNS server " +
      "(e.g. the first nameserver of /etc/resolv.conf)",
    ]);
  }
  if (e.WEBHOOK_NAMESERVER && !isIpLiteral(e.WEBHOOK_NAMESERVER)) {
    throw new ConfigError(["WEBHOOK_NAMESERVER: must be the IP address of a DNS server"]);
  }
  return {
    url: url.href,
    secret: e.WEBHOOK_SECRET,
    allowHosts,
    nameServer: e.WEBHOOK_NAMESERVER,
    retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
    maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
  };
}

/** The S3 settings when `STORAGE=s3`; refuses a half-given credential or a missing bucket. */
function s3ConfigOf(e: z.infer<typeof envSchema>): S3Config | undefined {
  const flag = (value: string) => value === "1" || value === "true";
  if (e.STORAGE !== "s3") {
    if (flag(e.S3_PRESIGNED_MEDIA)) {
      throw new ConfigError(["S3_PRESIGNED_MEDIA: only works with STORAGE=s3"]);
    }
    return undefined;
  }
  if (!e.S3_BUCKET) throw new ConfigError(["S3_BUCKET: required with STORAGE=s3"]);
  if (e.ACCEL_REDIRECT_PREFIX) {
    throw new ConfigError([
      "ACCEL_REDIRECT_PREFIX, STORAGE: nginx sends files of the data directory only; " +
      "with STORAGE=s3 use S3_PRESIGNED_MEDIA=1 to let the bucket send the bytes",
    ]);
  }
  if (Boolean(e.S3_ACCESS_KEY_ID) !== Boolean(e.S3_SECRET_ACCESS_KEY)) {
    throw new ConfigError([
      "S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: set both, or neither for the SDK's " +
      "environment chain",
    ]);
  }
  return {
    endpoint: e.S3_ENDPOINT?.replace(/\/+$/, ""),
    region: e.S3_REGION,
    bucket: e.S3_BUCKET,
    forcePathStyle: flag(e.S3_FORCE_PATH_STYLE),
    credentials: e.S3_ACCESS_KEY_ID && e.S3_SECRET_ACCESS_KEY
      ? { accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY }
      : undefined,
    partSizeBytes: e.S3_PART_SIZE_MB * 1024 * 1024,
    presignedMedia: flag(e.S3_PRESIGNED_MEDIA),
  };
}

/**
 * Whether a listen address is only reachable from this machine: 127.0.0.0/8,
 * `::1` (in any spelling) or `localhost`. Anything else, the wildcards
 * `0.0.0.0` and `::` first of all, may be reached from the network.
 */
function isLoopbackHost(host: string): boolean {
  const name = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (name === "localhost") return true;
  const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  if (ipv4) return ipv4.slice(1).every((octet) => Number(octet) <= 255) && ipv4[1] === "127";
  return isIpv6Loopback(name);
}

/** `::1`, written in full or shortened (`0:0:0:0:0:0:0:1`, `0::1`). */
function isIpv6Loopback(name: string): boolean {
  const halves = name.split("::");
  if (halves.length > 2) return false;
  const groups = (part: string | undefined) => part ? part.split(":") : [];
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return false;
  const all = [...head, ...Array(missing).fill("0"), ...tail];
  if (!all.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return false;
  return all.every((group, i) => parseInt(group, 16) === (i === 7 ? 1 : 0));
}
