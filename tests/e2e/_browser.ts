import { type Browser, chromium } from "playwright-core";
import { findChromium } from "../../lib/chromium.ts";

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
