/**
 * OffChat Media command line.
 *
 *   deno task start            migrate, then serve HTTP with an in-process worker
 *   deno task worker           run processing workers only
 *   deno task migrate          apply pending migrations
 *   deno task token USER [--admin] [--ttl SECONDS]
 *   deno task setup            find ffmpeg/ffprobe >= 4, install Debian's ffmpeg as root when missing
 */
// deno-lint-ignore-file no-console -- this is the command line; printing is its job
import type { Config } from "./lib/config.ts";

function fail(message: string): never {
  console.error(message);
  Deno.exit(1);
}

async function loadConfig(): Promise<Config> {
  const { CONFIG_ENV_NAMES, ConfigError, parseConfig } = await import("./lib/config.ts");
  const env: Record<string, string | undefined> = {};
  for (const name of CONFIG_ENV_NAMES) env[name] = Deno.env.get(name);
  try {
    return parseConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

async function setup(): Promise<void> {
  const { findTool, installInstructions, isUsable } = await import("./lib/setup.ts");
  const ffmpegPath = Deno.env.get("FFMPEG_PATH") || "ffmpeg";
  const ffprobePath = Deno.env.get("FFPROBE_PATH") || "ffprobe";
  const check = async () => [await findTool(ffmpegPath), await findTool(ffprobePath)] as const;
  let [ffmpeg, ffprobe] = await check();
  if (isUsable(ffmpeg) && isUsable(ffprobe)) {
    console.log(`setup: ffmpeg ${ffmpeg.version} and ffprobe ${ffprobe.version} found`);
    return;
  }
  const canApt = Deno.build.os === "linux" && Deno.uid() === 0 &&
    (await Deno.stat("/usr/bin/apt-get").catch(() => null)) !== null;
  if (!canApt) fail(installInstructions(Deno.build.os));
  console.log(
    "setup: ffmpeg/ffprobe missing or older than 4; installing Debian's ffmpeg with apt-get",
  );
  const apt = (args: string[]) =>
    new Deno.Command("apt-get", {
      args,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
      env: { DEBIAN_FRONTEND: "noninteractive" },
    }).output();
  if (!(await apt(["update", "-q"])).success) fail("setup: apt-get update failed");
  const install = await apt(["install", "-y", "-q", "--no-install-recommends", "ffmpeg"]);
  if (!install.success) fail("setup: apt-get install ffmpeg failed");
  [ffmpeg, ffprobe] = await check();
  if (!isUsable(ffmpeg) || !isUsable(ffprobe)) fail(installInstructions(Deno.build.os));
  console.log(`setup: installed ffmpeg ${ffmpeg.version}`);
}

async function migrateCommand(): Promise<void> {
  const config = await loadConfig();
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
  const config = await loadConfig();
  const { loadOrCreateSecret } = await import("./lib/secrets.ts");
  const { createAuth } = await import("./lib/auth.ts");
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

async function runService(mode: "serve" | "worker"): Promise<void> {
  const config = await loadConfig();
  const { startService } = await import("./lib/service.ts");
  const service = await startService(config, {
    mode,
    log: (line) => console.log(line),
    logError: (line, error) => console.error(line, error),
  });
  const stop = async () => {
    console.log("shutting down");
    await service.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  await service.finished;
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
    case "setup":
      await setup();
      break;
    default:
      fail(`Unknown command "${command}"; use serve, worker, migrate, token or setup`);
  }
}
