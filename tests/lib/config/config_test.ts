import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../../lib/config/config.ts";

Deno.test("config: defaults follow DESIGN.md", () => {
  const config = parseConfig({});
  assert.equal(config.port, 8000);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.publicUrl, "http://localhost:8000");
  assert.equal(config.dataDir, "./data");
  assert.equal(config.databaseUrl, "file:./data/offchat.db");
  assert.equal(config.maxUploadBytes, 104857600);
  assert.equal(config.workerConcurrency, 2);
  assert.equal(config.probeTimeoutMs, 30000);
  assert.equal(config.jwtSecret, undefined);
  assert.equal(config.headerTimeoutMs, 20000);
});

Deno.test("config: HEADER_TIMEOUT_MS is 0 (off) or at least 100 ms", () => {
  assert.equal(parseConfig({ HEADER_TIMEOUT_MS: "0" }).headerTimeoutMs, 0);
  assert.equal(parseConfig({ HEADER_TIMEOUT_MS: "100" }).headerTimeoutMs, 100);
  assert.throws(
    () => parseConfig({ HEADER_TIMEOUT_MS: "50" }),
    /HEADER_TIMEOUT_MS: must be 0 \(off\) or at least 100/,
  );
});

Deno.test("config: METRICS_TOKEN and LOG_LEVEL", () => {
  assert.equal(parseConfig({}).metricsToken, undefined);
  assert.equal(parseConfig({}).logLevel, "info");
  const token = "0123456789abcdef0123456789abcdef";
  assert.equal(parseConfig({ METRICS_TOKEN: token }).metricsToken, token);
  for (const bad of ["short", `${token} with spaces`, "x".repeat(257)]) {
    assert.throws(() => parseConfig({ METRICS_TOKEN: bad }), /METRICS_TOKEN: must be 16 to 256/);
  }
  assert.equal(parseConfig({ LOG_LEVEL: "warning" }).logLevel, "warning");
  assert.throws(() => parseConfig({ LOG_LEVEL: "loud" }), /LOG_LEVEL: must be debug, info/);
});

Deno.test("config: STORAGE=s3 needs a bucket, both keys or neither, and no nginx prefix", () => {
  assert.equal(parseConfig({}).storage, "disk");
  assert.equal(parseConfig({}).s3, undefined);
  const s3 = parseConfig({
    STORAGE: "s3",
    S3_BUCKET: "offchat-media",
    S3_ENDPOINT: "http://127.0.0.1:9000/",
    S3_FORCE_PATH_STYLE: "1",
    S3_ACCESS_KEY_ID: "id",
    S3_SECRET_ACCESS_KEY: "secret",
  }).s3;
  assert.deepEqual(s3, {
    endpoint: "http://127.0.0.1:9000",
    region: "us-east-1",
    bucket: "offchat-media",
    forcePathStyle: true,
    credentials: { accessKeyId: "id", secretAccessKey: "secret" },
    partSizeBytes: 16 * 1024 * 1024,
    presignedMedia: false,
  });
  assert.throws(() => parseConfig({ STORAGE: "s3" }), /S3_BUCKET: required with STORAGE=s3/);
  assert.throws(
    () => parseConfig({ STORAGE: "s3", S3_BUCKET: "media", S3_ACCESS_KEY_ID: "id" }),
    /S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: set both/,
  );
  assert.throws(
    () => parseConfig({ STORAGE: "s3", S3_BUCKET: "media", ACCEL_REDIRECT_PREFIX: "/_m/" }),
    /ACCEL_REDIRECT_PREFIX, STORAGE/,
  );
  assert.throws(() => parseConfig({ S3_PRESIGNED_MEDIA: "1" }), /only works with STORAGE=s3/);
  assert.throws(() => parseConfig({ STORAGE: "s3", S3_BUCKET: "Media.Bucket" }), /S3_BUCKET:/);
  assert.throws(
    () => parseConfig({ STORAGE: "s3", S3_BUCKET: "media", S3_PART_SIZE_MB: "4" }),
    /S3_PART_SIZE_MB:/,
  );
});

Deno.test("config: every bad value is named", () => {
  try {
    parseConfig({ PORT: "eighty", MAX_UPLOAD_BYTES: "-1", JWT_SECRET: "short", STORAGE: "ftp" });
    assert.fail("expected a ConfigError");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    const text = error.issues.join("\n");
    for (const name of ["PORT", "MAX_UPLOAD_BYTES", "JWT_SECRET", "STORAGE"]) {
      assert.match(text, new RegExp(`^${name}:`, "m"), name);
    }
    assert.match(text, /JWT_SECRET: must be at least 32 bytes/);
  }
});

Deno.test("config: only one token key source at a time", () => {
  assert.throws(
    () => parseConfig({ JWT_SECRET: "x".repeat(32), JWT_JWKS_URL: "https://id.example/jwks" }),
    ConfigError,
  );
});

Deno.test("config: main.ts stops before serving when a variable is bad", async () => {
  const dataDir = `${
    Deno.env.get("TMPDIR") ?? "/tmp"
  }/offchat-never-created-${crypto.randomUUID()}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../../../main.ts", import.meta.url).pathname, "serve"],
    env: { PORT: "not-a-port", DATA_DIR: dataDir },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1);
  assert.match(new TextDecoder().decode(out.stderr), /PORT: /);
  assert.equal(await Deno.stat(dataDir).catch(() => null), null, "nothing created");
});

Deno.test("config: JOB_PRIORITY is idle by default, and idle, nice or normal", () => {
  assert.equal(parseConfig({}).jobPriority, "idle");
  assert.equal(parseConfig({ JOB_PRIORITY: "nice" }).jobPriority, "nice");
  assert.equal(parseConfig({ JOB_PRIORITY: "normal" }).jobPriority, "normal");
  assert.throws(() => parseConfig({ JOB_PRIORITY: "low" }), /JOB_PRIORITY: must be idle, nice/);
});
