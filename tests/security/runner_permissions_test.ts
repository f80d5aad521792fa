/**
 * What a remote runner (`deno task runner`) may touch: its work directory,
 * the API's host, the media tools, the environment names it reads; no data
 * directory, no database, no FFI, no system information.
 */
import assert from "node:assert/strict";
import { CONFIG_ENV_NAMES, ConfigError, parseConfig } from "../../lib/config/config.ts";
import { runnerDenoRunArgs } from "../../lib/config/permissions.ts";
import { parseRunnerConfig, RUNNER_ENV_NAMES } from "../../lib/runners/runner_config.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const deno = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));

Deno.test("runner permissions: `deno task runner` runs through the launcher", () => {
  assert.equal(deno.tasks.runner.command, "deno run --allow-env --allow-run main.ts launch runner");
});

Deno.test("runner permissions: its work directory, the API host and the media tools, nothing else", () => {
  const args = runnerDenoRunArgs(
    parseConfig({ FFMPEG_PATH: "/opt/ffmpeg/bin/ffmpeg" }),
    parseRunnerConfig({
      RUNNER_API_URL: "https://media.example.com/",
      RUNNER_WORK_DIR: "/var/lib/runner",
    }),
  );
  const flags = new Map(
    args.filter((arg) => arg.startsWith("--allow-") || arg.startsWith("--ignore-"))
      .map((arg) => [arg.split("=")[0]!, arg.split("=")[1] ?? null] as const),
  );
  assert.deepEqual([...flags.keys()].sort(), [
    "--allow-env",
    "--allow-net",
    "--allow-read",
    "--allow-run",
    "--allow-write",
    "--ignore-env",
  ]);
  assert.equal(flags.get("--allow-read"), "/var/lib/runner");
  assert.equal(flags.get("--allow-write"), "/var/lib/runner");
  assert.equal(flags.get("--allow-net"), "media.example.com:443");
  assert.equal(flags.get("--allow-run"), "/opt/ffmpeg/bin/ffmpeg,ffprobe,setpriv");
  assert.deepEqual(
    flags.get("--allow-env")!.split(",").sort(),
    [...CONFIG_ENV_NAMES, ...RUNNER_ENV_NAMES].sort(),
  );
  // Absolute paths: it may start from any directory, its work directory included.
  assert.ok(args.includes(`${root}/main.ts`) && args.includes(`--config=${root}/deno.json`));
});

Deno.test("runner permissions: its settings are checked, every bad one named", () => {
  const config = parseRunnerConfig({ RUNNER_API_URL: "http://127.0.0.1:8000" });
  assert.deepEqual(config.kinds, [
    "thumbnail",
    "strip",
    "subtitles",
    "rendition",
    "hls",
    "storyboard",
  ]);
  assert.equal(config.concurrency, 1);
  assert.equal(config.workDir, "./runner");
  assert.throws(
    () => parseRunnerConfig({}),
    (e) => e instanceof ConfigError && /RUNNER_API_URL/.test(e.message),
  );
  assert.throws(
    () => parseRunnerConfig({ RUNNER_API_URL: "file:///etc/passwd" }),
    /RUNNER_API_URL/,
  );
  assert.throws(
    () => parseRunnerConfig({ RUNNER_API_URL: "http://x", RUNNER_KINDS: "thumbnail,shell" }),
    /RUNNER_KINDS.*shell/,
  );
  assert.throws(
    () => parseRunnerConfig({ RUNNER_API_URL: "http://x", RUNNER_CONCURRENCY: "0" }),
    /RUNNER_CONCURRENCY/,
  );
  assert.deepEqual(
    parseRunnerConfig({ RUNNER_API_URL: "http://x", RUNNER_KINDS: "hls, rendition" }).kinds,
    ["hls", "rendition"],
  );
});
