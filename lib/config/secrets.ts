import { encodeBase64Url } from "../core/encoding.ts";

const SECRET_FILE = "jwt_secret";

/** Where the generated HS256 secret lives under the data directory. */
export function secretPath(dataDir: string): string {
  return `${dataDir}/${SECRET_FILE}`;
}

/**
 * Returns the secret generated on first start, creating it (mode 0600) when
 * missing. `created` tells the caller to print how to mint a token.
 */
export async function loadOrCreateSecret(
  dataDir: string,
): Promise<{ secret: string; created: boolean }> {
  const path = secretPath(dataDir);
  try {
    return { secret: (await Deno.readTextFile(path)).trim(), created: false };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const secret = encodeBase64Url(crypto.getRandomValues(new Uint8Array(48)));
  try {
    // createNew: two processes starting at once must not overwrite each other's secret.
    await Deno.writeTextFile(path, `${secret}\n`, { createNew: true, mode: 0o600 });
    await Deno.chmod(path, 0o600);
    return { secret, created: true };
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    return { secret: (await Deno.readTextFile(path)).trim(), created: false };
  }
}
