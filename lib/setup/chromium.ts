/**
 * Finding the Chromium the end-to-end tests drive. Only a browser installed by
 * the system's package manager is used; none is ever downloaded.
 */

import { versionOutput } from "./setup.ts";

/** Where distributions install Chromium (Debian: `chromium`), and Chrome. */
export const CHROMIUM_CANDIDATES = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome-stable",
  "/usr/bin/google-chrome",
] as const;

/** Debian's packages for the browser and a font for it to draw text with. */
export const CHROMIUM_APT_PACKAGES = ["chromium", "fonts-dejavu-core"] as const;

/** A Chromium found on this machine. */
export interface FoundChromium {
  path: string;
  version: string;
}

/**
 * The first Chromium that runs: `CHROMIUM_PATH` when set (and then only it),
 * else the usual install paths. Null when none does.
 */
export async function findChromium(
  chromiumPath: string | undefined = Deno.env.get("CHROMIUM_PATH"),
): Promise<FoundChromium | null> {
  const candidates = chromiumPath ? [chromiumPath] : CHROMIUM_CANDIDATES;
  for (const path of candidates) {
    const output = await versionOutput(path, ["--version"]);
    if (output === null) continue; // not installed here; try the next path
    const version = /(\d+\.\d+\.\d+\.\d+)/.exec(output);
    return { path, version: version?.[1] ?? "unknown" };
  }
  return null;
}
