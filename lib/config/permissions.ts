/**
 * The Deno permissions each command of the service runs under, derived from
 * its configuration: the one list of them. `deno task start` (and `worker`,
 * `dev`, `migrate`, `token`, `backfill`) run a small launcher (`main.ts launch …`) that
 * parses the configuration, computes these flags and starts the command
 * under them; so a data directory, a database server or an identity
 * provider set in the environment works without editing deno.json, and the
 * process still gets nothing else.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { CONFIG_ENV_NAMES } from "./config.ts";
import { RUNNER_ENV_NAMES, type RunnerConfig } from "../runners/runner_config.ts";

/** The commands the launcher starts. */
export type LaunchedCommand = "serve" | "worker" | "migrate" | "token" | "backfill" | "fsck";

/** Commands that run ffmpeg and ffprobe: `backfill` may run a worker while it waits (`--work`). */
function runsTools(command: LaunchedCommand): boolean {
  return command === "serve" || command === "worker" || command === "backfill";
}

/** Files the service reads besides its data: migrations, the dashboard, npm packages. */
const PROJECT_READS = [
  "./migrations",
  "./ui",
  "./node_modules",
  // Node's module resolution looks here for swagger-ui-dist, and is refused rather
  // than told "not found" without it.
  "./routes/node_modules",
];

/**
 * What libSQL's native addon and its loader ask of the system, and `statfs`:
 * the free space of the data directory (MIN_FREE_BYTES, lib/storage/disk_space.ts).
 */
const SYSTEM = "cpus,networkInterfaces,hostname,statfs";

/** One network address as `--allow-net` takes it: IPv6 literals in brackets. */
function netAddress(host: string, port?: string): string {
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return port ? `${bracketed}:${port}` : bracketed;
}

/** The host (and port) of a URL, for `--allow-net`. */
function urlHost(url: string): string {
  const parsed = new URL(url);
  const port = parsed.port ||
    ({ "http:": "80", "https:": "443", "ws:": "80", "wss:": "443", "libsql:": "443" })[
      parsed.protocol
    ];
  return netAddress(parsed.hostname.replace(/^\[|\]$/g, ""), port);
}

/** The directory of the database file when it is outside the data directory. */
function databaseFileDirectory(config: Config): string | null {
  if (!config.databaseUrl.startsWith("file:")) return null;
  const path = config.databaseUrl.slice("file:".length).replace(/\?.*$/, "");
  const directory = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const inside = directory === config.dataDir || directory.startsWith(`${config.dataDir}/`);
  // The directory, not the file: SQLite writes -wal and -shm files beside it.
  return inside ? null : directory;
}

/** Commands that read or write stored media: with `STORAGE=s3`, they reach the bucket. */
function touchesStorage(command: LaunchedCommand): boolean {
  return command === "serve" || command === "worker" || command === "backfill" ||
    command === "fsck";
}

/**
 * The hosts of the bucket (`STORAGE=s3`): the endpoint, and with
 * virtual-hosted addressing (no `S3_FORCE_PATH_STYLE`) `<bucket>.<endpoint>`;
 * AWS's regional endpoint without `S3_ENDPOINT`.
 */
export function s3Hosts(config: Config): string[] {
  const s3 = config.s3;
  if (!s3) return [];
  const endpoint = s3.endpoint ?? `https://s3.${s3.region}.amazonaws.com`;
  const hosts = [urlHost(endpoint)];
  if (!s3.forcePathStyle) {
    const url = new URL(endpoint);
    url.hostname = `${s3.bucket}.${url.hostname}`;
    hosts.push(urlHost(url.href));
  }
  return hosts;
}

/**
 * Environment variables besides the configuration's, with `STORAGE=s3`:
 * without `S3_ACCESS_KEY_ID`, the SDK's environment credentials; `HOME`, from
 * which the SDK names its shared config files (reading them is not granted:
 * it finds none and goes on); and `TMPDIR` (see {@linkcode launchEnv}).
 */
function extraEnvNames(config: Config): string[] {
  if (!config.s3) return [];
  const names = ["TMPDIR", "HOME"];
  if (!config.s3.credentials) {
    names.push("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN");
  }
  return names;
}

/**
 * The environment the launcher sets for the command, with `STORAGE=s3`:
 * `TMPDIR` in the data directory (`DATA_DIR/tus`), where `@tus/s3-store`
 * (which writes to the system temp directory) keeps the pieces of a PATCH
 * while it cuts them into parts, since the process may write nowhere else;
 * and `HOME` as the launcher has it (the SDK asks for it).
 */
export function launchEnv(config: Config): Record<string, string> {
  if (!config.s3) return {};
  const home = Deno.env.get("HOME");
  return { TMPDIR: `${config.dataDir}/tus`, ...(home ? { HOME: home } : {}) };
}

/** The hosts a command connects to: a database server, an identity provider's keys, a bucket. */
function outboundHosts(config: Config, command: LaunchedCommand): string[] {
  const hosts: string[] = [];
  if (command !== "token" && !config.databaseUrl.startsWith("file:")) {
    hosts.push(urlHost(config.databaseUrl));
  }
  if (touchesStorage(command)) hosts.push(...s3Hosts(config));
  if (command === "serve" && config.jwtJwksUrl) hosts.push(urlHost(config.jwtJwksUrl));
  hosts.push(...webhookHosts(config, command));
  return hosts;
}

/**
 * The webhook receiver and the DNS server its name is resolved with
 * (`Deno.resolveDns` needs net access to the server it asks), for the
 * commands that deliver: `serve` (its in-process worker) and `worker`.
 */
export function webhookHosts(config: Config, command: LaunchedCommand): string[] {
  if (!config.webhook || (command !== "serve" && command !== "worker")) return [];
  const hosts = [urlHost(config.webhook.url)];
  if (config.webhook.nameServer) hosts.push(netAddress(config.webhook.nameServer, "53"));
  return hosts;
}

/**
 * The `deno run` permission flags of `command` under `config`.
 *
 * @example
 * ```ts
 * const flags = permissionFlags(parseConfig({ DATA_DIR: "/var/lib/offchat" }), "serve");
 * // ["--allow-read=/var/lib/offchat,./migrations,…", "--allow-write=/var/lib/offchat", …]
 * ```
 */
export function permissionFlags(config: Config, command: LaunchedCommand): string[] {
  const data = [config.dataDir];
  const databaseDirectory = databaseFileDirectory(config);
  if (databaseDirectory && command !== "token") data.push(databaseDirectory);
  const flags = [
    `--allow-read=${[...data, ...PROJECT_READS].join(",")}`,
    `--allow-write=${data.join(",")}`,
    `--allow-env=${[...CONFIG_ENV_NAMES, ...extraEnvNames(config)].join(",")}`,
    // Anything else in the environment reads as unset (libsql and debug enumerate it).
    "--ignore-env",
  ];
  // The AWS SDK names the OS release in its User-Agent.
  const system = config.s3 && touchesStorage(command) ? `${SYSTEM},osRelease` : SYSTEM;
  if (command !== "token") flags.push(`--allow-sys=${system}`, "--allow-ffi=./node_modules");
  const net = outboundHosts(config, command);
  // The server listens on its bind address and connects to nothing else unasked.
  if (command === "serve") net.unshift(netAddress(config.host));
  if (net.length > 0) flags.push(`--allow-net=${[...new Set(net)].join(",")}`);
  if (runsTools(command)) {
    // The tools run through setpriv (and prlimit, which setpriv execs): lib/media/run_tool.ts.
    flags.push(`--allow-run=${[config.ffmpegPath, config.ffprobePath, "setpriv"].join(",")}`);
  }
  return flags;
}

/** What a command needs that a process may have been started without, to name in an error. */
export interface RequiredGrant {
  /** The setting that asks for it. */
  setting: string;
  value: string;
  descriptor: Deno.PermissionDescriptor;
}

/** The grants `command` needs because of settings an operator may change. */
export function requiredGrants(config: Config, command: LaunchedCommand): RequiredGrant[] {
  const grants: RequiredGrant[] = [
    {
      setting: "DATA_DIR",
      value: config.dataDir,
      descriptor: { name: "write", path: config.dataDir },
    },
  ];
  const databaseDirectory = databaseFileDirectory(config);
  if (databaseDirectory && command !== "token") {
    grants.push({
      setting: "DATABASE_URL",
      value: config.databaseUrl,
      descriptor: { name: "write", path: databaseDirectory },
    });
  }
  if (command !== "token" && !config.databaseUrl.startsWith("file:")) {
    grants.push({
      setting: "DATABASE_URL",
      value: config.databaseUrl,
      descriptor: { name: "net", host: urlHost(config.databaseUrl) },
    });
  }
  if (command === "serve" && config.jwtJwksUrl) {
    grants.push({
      setting: "JWT_JWKS_URL",
      value: config.jwtJwksUrl,
      descriptor: { name: "net", host: urlHost(config.jwtJwksUrl) },
    });
  }
  for (const host of webhookHosts(config, command)) {
    grants.push({
      setting: "WEBHOOK_URL",
      value: config.webhook!.url,
      descriptor: { name: "net", host },
    });
  }
  if (touchesStorage(command)) {
    for (const host of s3Hosts(config)) {
      grants.push({
        setting: "S3_ENDPOINT",
        value: config.s3?.endpoint ?? `(AWS, ${config.s3?.region})`,
        descriptor: { name: "net", host },
      });
    }
  }
  if (runsTools(command)) {
    grants.push(
      {
        setting: "FFMPEG_PATH",
        value: config.ffmpegPath,
        descriptor: { name: "run", command: config.ffmpegPath },
      },
      {
        setting: "FFPROBE_PATH",
        value: config.ffprobePath,
        descriptor: { name: "run", command: config.ffprobePath },
      },
    );
  }
  return grants;
}

/**
 * The settings whose paths or hosts this process was not granted, as one
 * message per setting; empty when everything is granted.
 */
export function missingGrants(config: Config, command: LaunchedCommand): string[] {
  const missing: string[] = [];
  for (const grant of requiredGrants(config, command)) {
    if (Deno.permissions.querySync(grant.descriptor).state === "granted") continue;
    missing.push(
      `${grant.setting}="${grant.value}" needs ${grant.descriptor.name} access that this process ` +
        "was not started with",
    );
  }
  return missing;
}

/**
 * The `deno run` arguments that start `command` as the launcher does: the
 * runtime flags, the permission flags, then `main.ts COMMAND`.
 */
export function denoRunArgs(
  config: Config,
  command: LaunchedCommand,
  options: { watch?: boolean } = {},
): string[] {
  const service = command === "serve" || command === "worker";
  return [
    "run",
    // A smaller young generation: upload chunks die young, and peak memory stays low.
    ...(service ? ["--v8-flags=--max-semi-space-size=2"] : []),
    ...(options.watch ? ["--watch=ui/"] : []),
    // Deno.listen's reusePort (REUSE_PORT) is still behind this flag; it grants no permission.
    ...(command === "serve" && config.reusePort ? ["--unstable-net"] : []),
    ...permissionFlags(config, command),
    "main.ts",
    command,
  ];
}

/**
 * The `deno run` arguments of a remote runner (`main.ts runner`,
 * lib/runners/runner.ts): read and write only its work directory, the
 * environment it reads, the network only to the service's host, and the
 * media tools with their `setpriv` prefix (lib/media/run_tool.ts). No
 * database, no data directory, no FFI. The paths of main.ts and deno.json
 * are absolute, so the runner may be started from any directory.
 */
export function runnerDenoRunArgs(config: Config, runner: RunnerConfig): string[] {
  const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  return [
    "run",
    `--config=${root}/deno.json`,
    `--allow-read=${runner.workDir}`,
    `--allow-write=${runner.workDir}`,
    `--allow-env=${[...CONFIG_ENV_NAMES, ...RUNNER_ENV_NAMES].join(",")}`,
    "--ignore-env",
    `--allow-net=${urlHost(runner.apiUrl)}`,
    `--allow-run=${[config.ffmpegPath, config.ffprobePath, "setpriv"].join(",")}`,
    `${root}/main.ts`,
    "runner",
  ];
}
