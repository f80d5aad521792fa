import { type Context, Hono } from "hono";
import type { AppEnv } from "./_env.ts";
import { ApiError } from "../lib/core/errors.ts";
import { recentReadiness } from "../lib/setup/readiness.ts";

/** Headers a reverse proxy adds: a request that has one came from outside, whatever its address. */
const FORWARDING_HEADERS = ["forwarded", "x-forwarded-for", "x-real-ip"];

/** True for a client on this host that did not come through a proxy that says so. */
function isLocalClient(c: Context<AppEnv>): boolean {
  const remote = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  const host = remote?.hostname ?? "";
  const loopback = /^127\./.test(host) || host === "::1" || /^::ffff:127\./i.test(host);
  return loopback && FORWARDING_HEADERS.every((name) => c.req.header(name) === undefined);
}

/** Compares two secrets in time that does not depend on where they differ. */
async function sameSecret(given: string, expected: string): Promise<boolean> {
  const digest = async (text: string) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

/**
 * `/healthz` and `/readyz` (unauthenticated), and `/metrics`: with
 * METRICS_TOKEN set, only for that Bearer token; unset, only for clients on
 * this host that did not come through a proxy (docs/SECURITY.md).
 */
export const healthRoutes = new Hono<AppEnv>({ strict: false })
  .get("/healthz", (c) => c.json({ status: "ok" }))
  .get("/readyz", async (c) => {
    const checks = await recentReadiness(c.get("deps"));
    const ok = Object.values(checks).every((check) => check.ok);
    return c.json({ status: ok ? "ok" : "unavailable", checks }, ok ? 200 : 503);
  })
  .get("/metrics", async (c) => {
    const { config, metrics } = c.get("deps");
    if (config.metricsToken !== undefined) {
      const given = /^Bearer (\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
      if (given === undefined || !(await sameSecret(given, config.metricsToken))) {
        throw new ApiError("unauthorized", "/metrics takes the METRICS_TOKEN as a Bearer token", {
          "WWW-Authenticate": 'Bearer realm="metrics"',
        });
      }
    } else if (!isLocalClient(c)) {
      throw new ApiError(
        "forbidden",
        "/metrics answers clients on this host only, unless METRICS_TOKEN is set",
      );
    }
    return c.body(await metrics.text(), 200, {
      "content-type": metrics.contentType,
      "cache-control": "no-store",
    });
  });
