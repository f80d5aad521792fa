/**
 * Point 8 of the threat model: every command runs with the narrowest Deno
 * permissions that work, computed from its configuration by one function
 * (lib/config/permissions.ts) that the launcher behind the tasks uses
 * (`tests/cli_test.ts` starts them for real). This keeps the grants from
 * widening unnoticed, the environment list in step with the configuration
 * (with `--ignore-env`, a variable missing from the list would silently read
 * as unset), and shows that the service cannot write outside its data
 * directory.
 */
import assert from "node:assert/strict";
import { CONFIG_ENV_NAMES, parseConfig } from "../../lib/config/config.ts";
import {
  denoRunArgs,
  type LaunchedCommand,
  permissionFlags,
} from "../../lib/config/permissions.ts";

const root = new URL("../..", import.meta.url).pathname;
const deno = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));

function parseFlags(words: string[]): Map<string, string | null> {
  const found = new Map<string, string | null>();
  for (const word of words) {
    const match = /^(--allow-[a-z]+|--ignore-[a-z]+|-A|--allow-all)(?:=(.*))?$/.exec(word);
    if (match) found.set(match[1]!, match[2] ?? null);
  }
  return found;
}

function grants(env: Record<string, string>, command: LaunchedCommand) {
  const flags = parseFlags(permissionFlags(parseConfig(env), command));
  const list = (name: string) => flags.get(name)?.split(",") ?? [];
  return { flags, list };
}

for (
  const [task, command] of [["start", "serve"], ["dev", "serve"], ["worker", "worker"]] as const
) {
  Deno.test(`permissions: \`deno task ${task}\` runs the launcher, which may only read the environment and start Deno`, () => {
    const words: string[] = deno.tasks[task].command.split(/\s+/);
    assert.deepEqual(
      words.slice(0, 7),
      ["deno", "run", "--allow-env", "--allow-run", "main.ts", "launch", command],
    );
    const launcher = parseFlags(words);
    assert.deepEqual([...launcher.keys()].sort(), ["--allow-env", "--allow-run"]);
  });
}

for (const task of ["migrate", "token", "backfill", "fsck"]) {
  Deno.test(`permissions: \`deno task ${task}\` runs through the launcher too`, () => {
    assert.equal(
      deno.tasks[task].command,
      `deno run --allow-env --allow-run main.ts launch ${task}`,
    );
  });
}

for (const command of ["serve", "worker", "migrate", "token", "backfill", "fsck"] as const) {
  Deno.test(`permissions: \`${command}\` with the default configuration is scoped`, () => {
    const { flags, list } = grants({}, command);
    assert.ok(!flags.has("-A") && !flags.has("--allow-all"), "no --allow-all");
    for (const [name, value] of flags) {
      if (name !== "--ignore-env") assert.notEqual(value, null, `${name} is scoped to a list`);
    }
    assert.deepEqual(list("--allow-write"), ["./data"]);
    assert.deepEqual(list("--allow-read"), [
      "./data",
      "./migrations",
      "./ui",
      "./node_modules",
      "./routes/node_modules",
    ]);
    assert.deepEqual(list("--allow-env").sort(), [...CONFIG_ENV_NAMES].sort());
    assert.ok(flags.has("--ignore-env"), "other variables read as unset instead of failing");
    // `backfill --work` runs a worker while it waits.
    const runsTools = command === "serve" || command === "worker" || command === "backfill";
    assert.deepEqual(list("--allow-run").sort(), runsTools ? ["ffmpeg", "ffprobe", "setpriv"] : []);
    assert.deepEqual(list("--allow-ffi"), command === "token" ? [] : ["./node_modules"]);
    // The server listens on its bind address and connects nowhere; the rest need no network.
    assert.deepEqual(list("--allow-net"), command === "serve" ? ["0.0.0.0"] : []);
  });
}

Deno.test("permissions: a data directory, database, identity provider and tools set in the environment are granted, and nothing more", () => {
  const env = {
    DATA_DIR: "/var/lib/offchat",
    HOST: "::1",
    DATABASE_URL: "libsql://db.example.com:8080",
    JWT_JWKS_URL: "https://idp.example.com/.well-known/jwks.json",
    FFMPEG_PATH: "/opt/ffmpeg/bin/ffmpeg",
    FFPROBE_PATH: "/opt/ffmpeg/bin/ffprobe",
  };
  const serve = grants(env, "serve");
  assert.deepEqual(serve.list("--allow-write"), ["/var/lib/offchat"]);
  assert.equal(serve.list("--allow-read")[0], "/var/lib/offchat");
  assert.deepEqual(serve.list("--allow-net"), [
    "[::1]",
    "db.example.com:8080",
    "idp.example.com:443",
  ]);
  assert.deepEqual(serve.list("--allow-run"), [
    "/opt/ffmpeg/bin/ffmpeg",
    "/opt/ffmpeg/bin/ffprobe",
    "setpriv",
  ]);
  // The worker and migrations reach the database, not the identity provider.
  assert.deepEqual(grants(env, "worker").list("--allow-net"), ["db.example.com:8080"]);
  assert.deepEqual(grants(env, "migrate").list("--allow-net"), ["db.example.com:8080"]);
  assert.deepEqual(grants(env, "backfill").list("--allow-net"), ["db.example.com:8080"]);
  assert.deepEqual(grants(env, "token").list("--allow-net"), []);
  // A database file elsewhere: its directory (SQLite writes -wal and -shm beside it).
  const file = grants({ DATA_DIR: "/srv/media", DATABASE_URL: "file:/srv/db/offchat.db" }, "serve");
  assert.deepEqual(file.list("--allow-write"), ["/srv/media", "/srv/db"]);
});

Deno.test("permissions: STORAGE=s3 adds the bucket's host to the commands that touch media, and nothing to the others", () => {
  const env = {
    DATA_DIR: "/var/lib/offchat",
    HOST: "127.0.0.1",
    STORAGE: "s3",
    S3_ENDPOINT: "https://objects.example.com:9000",
    S3_BUCKET: "offchat-media",
    S3_ACCESS_KEY_ID: "key",
    S3_SECRET_ACCESS_KEY: "secret",
  };
  for (const command of ["serve", "worker", "backfill", "fsck"] as const) {
    const { list } = grants(env, command);
    assert.deepEqual(
      list("--allow-net").filter((host) => host !== "127.0.0.1"),
      ["objects.example.com:9000", "offchat-media.objects.example.com:9000"],
      command,
    );
    assert.ok(list("--allow-sys").includes("osRelease"), "the SDK's User-Agent");
    // Still nothing written outside the data directory (TMPDIR points into it).
    assert.deepEqual(list("--allow-write"), ["/var/lib/offchat"]);
  }
  for (const command of ["migrate", "token"] as const) {
    assert.deepEqual(grants(env, command).list("--allow-net"), [], command);
  }
  const pathStyle = grants({ ...env, S3_FORCE_PATH_STYLE: "1" }, "worker");
  assert.deepEqual(pathStyle.list("--allow-net"), ["objects.example.com:9000"]);
  const names = pathStyle.list("--allow-env");
  assert.deepEqual(names.filter((n) => !CONFIG_ENV_NAMES.includes(n as never)).sort(), [
    "HOME",
    "TMPDIR",
  ]);
  // Without keys: the SDK's environment credentials are readable, and AWS's endpoint reachable.
  const aws = grants(
    { DATA_DIR: "/d", STORAGE: "s3", S3_BUCKET: "media", S3_REGION: "eu-west-1" },
    "worker",
  );
  assert.deepEqual(aws.list("--allow-net"), [
    "s3.eu-west-1.amazonaws.com:443",
    "media.s3.eu-west-1.amazonaws.com:443",
  ]);
  assert.ok(aws.list("--allow-env").includes("AWS_SECRET_ACCESS_KEY"));
});

/** Runs `code` as a module under the flags `serve` gets for `dataDir`; its stdout. */
async function underServeFlags(dataDir: string, code: string): Promise<string> {
  const flags = permissionFlags(parseConfig({ DATA_DIR: dataDir }), "serve");
  const probe = `${dataDir}/../offchat-probe-${crypto.randomUUID()}.ts`;
  await Deno.writeTextFile(probe, code);
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...flags, probe],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    return new TextDecoder().decode(run.stdout).trim();
  } finally {
    await Deno.remove(probe);
  }
}

Deno.test("permissions: under its flags the service writes in its data directory and nowhere else", async () => {
  const parent = await Deno.makeTempDir({ prefix: "offchat-confine-" });
  const dataDir = `${parent}/data`;
  await Deno.mkdir(dataDir);
  try {
    const outcome = await underServeFlags(
      dataDir,
      `
      const places = [
        ${JSON.stringify(`${dataDir}/inside.txt`)},
        ${JSON.stringify(`${parent}/beside.txt`)},
        ${JSON.stringify(`${root}/escaped.txt`)},
        ${JSON.stringify(`${dataDir}/../escaped.txt`)},
        "/tmp/offchat-escaped.txt",
      ];
      const results = [];
      for (const path of places) {
        try {
          await Deno.writeTextFile(path, "x");
          results.push("written");
        } catch (error) {
          results.push(error instanceof Deno.errors.NotCapable ? "refused" : String(error));
        }
      }
      console.log(results.join(","));
      `,
    );
    assert.equal(outcome, "written,refused,refused,refused,refused");
    const beside = [];
    for await (const entry of Deno.readDir(parent)) beside.push(entry.name);
    assert.deepEqual(beside, ["data"], "nothing was written beside the data directory");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("permissions: started without a grant its configuration needs, the service stops naming the setting", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-ungranted-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      // The flags of the default configuration: ./data, not the directory asked for.
      args: [
        "run",
        "--no-prompt",
        ...permissionFlags(parseConfig({}), "serve"),
        "main.ts",
        "serve",
      ],
      cwd: root,
      env: { DATA_DIR: dataDir, PORT: "0" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 1, stderr);
    assert.match(stderr, new RegExp(`DATA_DIR="${dataDir}" needs write access`));
    assert.doesNotMatch(stderr, /NotCapable|\bat file:/, "a message, not a stack trace");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("permissions: REUSE_PORT=1 adds --unstable-net to `serve` only, and no permission", () => {
  const unstable = (env: Record<string, string>, command: LaunchedCommand) =>
    denoRunArgs(parseConfig(env), command).filter((arg) => arg.startsWith("--unstable"));
  assert.deepEqual(unstable({}, "serve"), []);
  assert.deepEqual(unstable({ REUSE_PORT: "1" }, "serve"), ["--unstable-net"]);
  for (const command of ["worker", "migrate", "token", "backfill", "fsck"] as const) {
    assert.deepEqual(unstable({ REUSE_PORT: "1" }, command), []);
  }
  assert.deepEqual(
    permissionFlags(parseConfig({ REUSE_PORT: "1" }), "serve"),
    permissionFlags(parseConfig({}), "serve"),
  );
});
