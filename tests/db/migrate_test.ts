import assert from "node:assert/strict";
import { openDatabase } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";

async function withDatabase(fn: (dir: string, url: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "offchat-migrate-" });
  try {
    await fn(dir, `file:${dir}/test.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function copyMigrations(to: string): Promise<void> {
  await Deno.mkdir(to);
  for await (const entry of Deno.readDir(new URL("../../migrations/", import.meta.url))) {
    await Deno.copyFile(
      new URL(`../../migrations/${entry.name}`, import.meta.url),
      `${to}/${entry.name}`,
    );
  }
}

Deno.test("migrate: applies every migration once; a re-run is a no-op", async () => {
  await withDatabase(async (_dir, url) => {
    const handle = await openDatabase(url);
    try {
      const first = await migrate(handle.client);
      assert.ok(first.applied.includes("0001_init.sql"));
      const second = await migrate(handle.client);
      assert.deepEqual(second.applied, []);
      assert.deepEqual(second.skipped, first.applied);
      const tables = await handle.client.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
      );
      const names = tables.rows.map((r) => String(r.name));
      for (
        const t of [
          "activity_log",
          "attachments",
          "conversation_participants",
          "conversations",
          "jobs",
          "messages",
          "schema_migrations",
        ]
      ) assert.ok(names.includes(t), t);
      const indexes = await handle.client.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'attachments'",
      );
      const indexNames = indexes.rows.map((r) => String(r.name));
      for (
        const i of [
          "attachments_message_idx",
          "attachments_file_type_idx",
          "attachments_uploaded_at_idx",
        ]
      ) {
        assert.ok(indexNames.includes(i), i);
      }
    } finally {
      handle.close();
    }
  });
});

Deno.test("migrate: a changed landed migration is refused", async () => {
  await withDatabase(async (dir, url) => {
    const migrations = `${dir}/migrations`;
    await copyMigrations(migrations);
    const handle = await openDatabase(url);
    try {
      await migrate(handle.client, { dir: migrations });
      await Deno.writeTextFile(`${migrations}/0001_init.sql`, "\n-- edited\n", { append: true });
      await assert.rejects(
        () => migrate(handle.client, { dir: migrations }),
        /Migration "0001_init.sql" was changed after it was applied/,
      );
    } finally {
      handle.close();
    }
  });
});

Deno.test("migrate: a failing migration leaves no trace (atomic with its row)", async () => {
  await withDatabase(async (dir, url) => {
    const migrations = `${dir}/migrations`;
    await copyMigrations(migrations);
    await Deno.writeTextFile(
      `${migrations}/9999_broken.sql`,
      "CREATE TABLE half_done (id INTEGER);\nTHIS IS NOT SQL;\n",
    );
    const handle = await openDatabase(url);
    try {
      await assert.rejects(() => migrate(handle.client, { dir: migrations }), /9999_broken\.sql/);
      const table = await handle.client.execute(
        "SELECT name FROM sqlite_master WHERE name = 'half_done'",
      );
      assert.equal(table.rows.length, 0);
      const row = await handle.client.execute(
        "SELECT * FROM schema_migrations WHERE version = 9999",
      );
      assert.equal(row.rows.length, 0);
      // The earlier migrations did land, and fixing the file lets the run finish.
      await Deno.writeTextFile(
        `${migrations}/9999_broken.sql`,
        "CREATE TABLE half_done (id INTEGER);\n",
      );
      const result = await migrate(handle.client, { dir: migrations });
      assert.deepEqual(result.applied, ["9999_broken.sql"]);
    } finally {
      handle.close();
    }
  });
});
