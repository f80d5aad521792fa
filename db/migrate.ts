import type { Client } from "@libsql/client";
import { createHash } from "node:crypto";

/** One migration file: `NNNN_name.sql`. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** What {@linkcode migrate} did. */
export interface MigrateResult {
  applied: string[];
  skipped: string[];
}

const DEFAULT_DIR = new URL("../migrations/", import.meta.url);
const FILE_PATTERN = /^(\d{4})_[a-z0-9_]+\.sql$/;

/** Reads the numbered SQL files of a directory, in order. */
export async function readMigrations(dir: URL | string = DEFAULT_DIR): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = entry.isFile ? FILE_PATTERN.exec(entry.name) : null;
    if (!match) continue;
    const sql = await Deno.readTextFile(new URL(entry.name, ensureDirUrl(dir)));
    migrations.push({
      version: Number(match[1]),
      name: entry.name,
      sql,
      checksum: createHash("sha256").update(sql).digest("hex"),
    });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new Error(`Two migrations share version "${migrations[i]!.version}"`);
    }
  }
  return migrations;
}

function ensureDirUrl(dir: URL | string): URL {
  if (dir instanceof URL) return dir.href.endsWith("/") ? dir : new URL(`${dir.href}/`);
  const absolute = dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
  return new URL(`file://${absolute.replace(/\/?$/, "/")}`);
}

function changedAfterApplied(migration: Migration): Error {
  return new Error(
    `Migration "${migration.name}" was changed after it was applied; add a new migration instead`,
  );
}

/**
 * Applies pending migrations, each in one transaction together with its
 * `schema_migrations` row. A migration that was applied and has since changed
 * stops the run: landed migrations are never edited, a new file is added instead.
 *
 * Safe when several processes start at once on one database: each migration
 * is applied in a write transaction (`BEGIN IMMEDIATE`, so only one process
 * holds it at a time; the others wait on the busy timeout) that first checks
 * again whether another process applied it meanwhile, and then skips it
 * (tests/db/migrate_concurrent_test.ts starts two `migrate` processes at once).
 */
export async function migrate(
  client: Client,
  options: { dir?: URL | string; now?: () => number } = {},
): Promise<MigrateResult> {
  const now = options.now ?? Date.now;
  await client.execute(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      checksum TEXT NOT NULL,
      applied_at INTEGER NOT NULL
    )`,
  );
  const rows = await client.execute("SELECT version, name, checksum FROM schema_migrations");
  const landed = new Map(rows.rows.map((r) => [Number(r.version), r]));
  const result: MigrateResult = { applied: [], skipped: [] };
  for (const migration of await readMigrations(options.dir)) {
    const row = landed.get(migration.version);
    if (row) {
      if (row.checksum !== migration.checksum) throw changedAfterApplied(migration);
      result.skipped.push(migration.name);
      continue;
    }
    const tx = await client.transaction("write");
    try {
      // Another process may have applied it while this one waited for the lock.
      const again = await tx.execute({
        sql: "SELECT checksum FROM schema_migrations WHERE version = ?",
        args: [migration.version],
      });
      if (again.rows.length > 0) {
        await tx.rollback();
        if (again.rows[0]!.checksum !== migration.checksum) throw changedAfterApplied(migration);
        result.skipped.push(migration.name);
        continue;
      }
      await tx.executeMultiple(migration.sql);
      await tx.execute({
        sql:
          "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        args: [migration.version, migration.name, migration.checksum, now()],
      });
      await tx.commit();
      result.applied.push(migration.name);
    } catch (error) {
      if (!tx.closed) await tx.rollback();
      throw new Error(`Migration "${migration.name}" failed: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      tx.close();
    }
  }
  return result;
}
