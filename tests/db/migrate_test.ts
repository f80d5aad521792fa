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

Deno.test("migrate: 0007 queues a strip job for every live attachment made before it", async () => {
  await withDatabase(async (dir, url) => {
    const before = `${dir}/before`;
    await copyMigrations(before);
    await Deno.remove(`${before}/0007_stripped_copy.sql`);
    const handle = await openDatabase(url);
    try {
      await migrate(handle.client, { dir: before });
      // Rows with every required column filled, whatever the schema holds by then.
      const insert = async (table: string, values: Record<string, unknown>) => {
        const columns = await handle.client.execute(`PRAGMA table_info(${table})`);
        const row: Record<string, unknown> = {};
        for (const c of columns.rows) {
          const name = String(c.name);
          if (name in values) row[name] = values[name];
          else if (Number(c.notnull) && c.dflt_value === null) {
            row[name] = /INT|REAL/i.test(String(c.type)) ? 1 : "x";
          }
        }
        const names = Object.keys(row);
        await handle.client.execute({
          sql: `INSERT INTO ${table} (${names.join(",")}) VALUES (${
            names.map(() => "?").join(",")
          })`,
          args: names.map((n) => row[n] as string | number),
        });
      };
      await insert("conversations", { id: "c1" });
      await insert("messages", { id: "m1", conversation_id: "c1" });
      for (
        const [id, status, deleted] of [["a1", "ready", null], ["a2", "failed", null], [
          "a3",
          "ready",
          5,
        ]] as const
      ) {
        await insert("attachments", {
          id,
          message_id: "m1",
          conversation_id: "c1",
          status,
          deleted_at: deleted,
        });
      }
      const result = await migrate(handle.client);
      assert.deepEqual(result.applied, ["0007_stripped_copy.sql"]);
      const jobs = await handle.client.execute(
        "SELECT id, kind, attachment_id, status FROM jobs ORDER BY attachment_id",
      );
      assert.deepEqual(
        jobs.rows.map((r) => [r.kind, r.attachment_id, r.status]),
        [["strip", "a1", "queued"]],
      );
      assert.match(
        String(jobs.rows[0]!.id),
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    } finally {
      handle.close();
    }
  });
});
