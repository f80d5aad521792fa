import { type Client, createClient } from "@libsql/client";
import { drizzle, type LibSQLDatabase } from "drizzle-orm/libsql";
import * as schema from "./schema.ts";
import { serializeClient } from "./_serialized_client.ts";

/** The drizzle database the app talks to. */
export type Database = LibSQLDatabase<typeof schema>;

/** An open database: drizzle on top, the raw libSQL client for migrations and closing. */
export interface DatabaseHandle {
  db: Database;
  client: Client;
  close(): void;
}

/** Options for {@linkcode openDatabase}. */
export interface OpenDatabaseOptions {
  authToken?: string;
  /** How long a writer waits for a lock before failing, in milliseconds. */
  busyTimeoutMs?: number;
}

/**
 * Opens a libSQL database (a `file:` path or a server URL) with foreign keys on and,
 * for files, WAL so readers do not block the writer.
 */
export async function openDatabase(
  url: string,
  options: OpenDatabaseOptions = {},
): Promise<DatabaseHandle> {
  const raw = createClient({
    url,
    authToken: options.authToken,
    timeout: options.busyTimeoutMs ?? 10_000,
  });
  const client = url.startsWith("file:") ? serializeClient(raw) : raw;
  if (url.startsWith("file:")) {
    await client.execute("PRAGMA journal_mode = WAL");
  }
  await client.execute("PRAGMA foreign_keys = ON");
  const db = drizzle(client, { schema });
  return { db, client, close: () => raw.close() };
}
