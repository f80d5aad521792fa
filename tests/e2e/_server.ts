import { createTestContext, type TestContext } from "../_helpers.ts";

/** The app behind a real HTTP server on an ephemeral loopback port, as a browser needs it. */
export interface ServedApp {
  url: string;
  ctx: TestContext;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Serves a test app over HTTP on 127.0.0.1 with `PUBLIC_URL` set to its real
 * address (signed media URLs must point at it), dev sign-in on and the
 * generated secret (dev sign-in refuses a configured one).
 */
export async function serveApp(env: Record<string, string> = {}): Promise<ServedApp> {
  let handler: Deno.ServeHandler = () => new Response("starting", { status: 503 });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => handler(request, info),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  let ctx: TestContext;
  try {
    ctx = await createTestContext({
      env: { PUBLIC_URL: url, DEV_LOGIN: "1", JWT_SECRET: "", ...env },
    });
  } catch (error) {
    await server.shutdown();
    throw error;
  }
  handler = (request, info) => ctx.app.fetch(request, info);
  return {
    url,
    ctx,
    async [Symbol.asyncDispose]() {
      // Event streams end by themselves within 30 s; the browser is closed before this.
      await server.shutdown();
      await ctx[Symbol.asyncDispose]();
    },
  };
}
