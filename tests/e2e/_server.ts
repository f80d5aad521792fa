import { createTestContext, type TestContext } from "../_helpers.ts";

/** The app behind a real HTTP server, reached through a TCP relay that can drop connections. */
export interface ServedApp {
  /** The address the browser uses (the relay's); `PUBLIC_URL` names it `localhost`. */
  url: string;
  ctx: TestContext;
  /** Closes every open connection at once, as a network drop would, and keeps accepting. */
  dropConnections(): number;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A loopback TCP relay to `port`; every pair of sockets can be cut at once. */
function startRelay(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const close = (conn: Deno.Conn) => {
    if (!open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // already closed by the other side
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
      if (!upstream) {
        client.close();
        continue;
      }
      open.add(client);
      open.add(upstream);
      const done = () => {
        close(client);
        close(upstream);
      };
      client.readable.pipeTo(upstream.writable).catch(() => {}).finally(done);
      upstream.readable.pipeTo(client.writable).catch(() => {}).finally(done);
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    drop(): number {
      const count = open.size / 2;
      for (const conn of [...open]) close(conn);
      return count;
    },
    async close(): Promise<void> {
      listener.close();
      for (const conn of [...open]) close(conn);
      await accepting;
    },
  };
}

/** Options for {@linkcode serveApp}. */
export interface ServeAppOptions {
  /** `false`: no worker, so the test runs the jobs itself, in the order it needs. */
  worker?: boolean;
}

/**
 * Serves a test app over HTTP on 127.0.0.1 behind a relay, with `PUBLIC_URL`
 * naming the relay `localhost`, dev sign-in on and the generated secret (dev
 * sign-in refuses a configured one).
 */
export async function serveApp(
  env: Record<string, string> = {},
  options: ServeAppOptions = {},
): Promise<ServedApp> {
  let handler: Deno.ServeHandler = () => new Response("starting", { status: 503 });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => handler(request, info),
  );
  const relay = startRelay(server.addr.port);
  const url = `http://127.0.0.1:${relay.port}`;
  let ctx: TestContext;
  try {
    ctx = await createTestContext({
      // The browser goes to 127.0.0.1 while the server signs its media URLs for
      // localhost, as with the default PUBLIC_URL: the page must cope.
      env: {
        PUBLIC_URL: `http://localhost:${relay.port}`,
        DEV_LOGIN: "1",
        // Dev sign-in is refused unless the configured address is a loopback one.
        HOST: "127.0.0.1",
        JWT_SECRET: "",
        ...env,
      },
      worker: options.worker,
    });
  } catch (error) {
    await relay.close();
    await server.shutdown();
    throw error;
  }
  handler = (request, info) => ctx.app.fetch(request, info);
  return {
    url,
    ctx,
    dropConnections: () => relay.drop(),
    async [Symbol.asyncDispose]() {
      await relay.close();
      // Event streams end by themselves within 30 s; the browser is closed before this.
      await server.shutdown();
      await ctx[Symbol.asyncDispose]();
    },
  };
}
