import fs from "node:fs";
import type { Browser } from "playwright-core";
import { findChromium } from "../../lib/setup/chromium.ts";

/**
 * Loads playwright-core. At load it asks `fs.existsSync` whether it runs under
 * WSL, by a path under /proc/sys, which Deno refuses (it throws NotCapable)
 * unless the whole process has --allow-all; the test task grants every
 * permission by name instead. Node's existsSync never throws, so a path Deno
 * will not look at counts as absent, as Node would say of one it cannot read.
 */
async function loadPlaywright(): Promise<typeof import("playwright-core")> {
  const existsSync = fs.existsSync;
  fs.existsSync = (path: fs.PathLike): boolean => {
    try {
      return existsSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) return false;
      throw error;
    }
  };
  return await import("playwright-core");
}

/**
 * Launches the system's Chromium headless (`deno task setup:test` installs
 * Debian's when missing; CHROMIUM_PATH points at another). Never downloads one.
 */
export async function launchChromium(): Promise<Browser & AsyncDisposable> {
  const found = await findChromium();
  if (!found) {
    throw new Error(
      "No Chromium found: run `deno task setup:test` as root on Debian/Ubuntu, " +
        "install chromium, or set CHROMIUM_PATH",
    );
  }
  const { chromium } = await loadPlaywright();
  const browser = await chromium.launch({
    executablePath: found.path,
    headless: true,
    args: ["--disable-gpu", "--disable-dev-shm-usage"],
  });
  return Object.assign(browser, {
    async [Symbol.asyncDispose]() {
      await browser.close();
    },
  });
}
