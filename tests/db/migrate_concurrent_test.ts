/**
 * Two processes migrating one fresh database file at the same moment (two
 * services starting together): both succeed, every migration is applied once
 * between them, and the schema is whole.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../../db/client.ts";
import { readMigrations } from "../../db/migrate.ts";
import { parseConfig } from "../../lib/config/config.ts";
import { denoRunArgs } from "../../lib/config/permissions.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** `main.ts migrate` on `dataDir` as the launcher starts it; its exit code and output. */
async function migrateProcess(dataDir: string): Promise<{ code: number; output: string }> {
  const env = { DATA_DIR: dataDir };
  const result = await new Deno.Command(Deno.execPath(), {
    args: denoRunArgs(parseConfig(env), "migrate"),
    cwd: ROOT,
    clearEnv: true,
    env: { ...env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

Deno.test("migrate: two processes starting at once on a fresh file apply each migration once", async () => {
  const migrations = await readMigrations();
  const dataDir = await Deno.makeTempDir({ prefix: "offchat-migrate-race-" });
  try {
    const runs = await Promise.all([migrateProcess(dataDir), migrateProcess(dataDir)]);
    for (const run of runs) assert.equal(run.code, 0, run.output);
    const applied = runs.map((run) => {
      const match = /migrate: applied (\d+) .*, (\d+) already applied/.exec(run.output);
      assert.ok(match, run.output);
      return { applied: Number(match[1]), skipped: Number(match[2]) };
    });
    // Between them, each migration was applied by exactly one of the two.
    assert.equal(applied[0]!.applied + applied[1]!.applied, migrations.length);
    for (const run of applied) assert.equal(run.applied + run.skipped, migrations.length);

    const handle = await openDatabase(`file:${dataDir}/offchat.db`);
    try {
      const rows = await handle.client.execute(
        "SELECT version, checksum FROM schema_migrations ORDER BY version",
      );
      assert.deepEqual(
        rows.rows.map((row) => [Number(row.version), String(row.checksum)]),
        migrations.map((m) => [m.version, m.checksum]),
      );
      const integrity = await handle.client.execute("PRAGMA integrity_check");
      assert.equal(String(integrity.rows[0]![0]), "ok");
    } finally {
      handle.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
