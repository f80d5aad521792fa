/**
 * The HTTP server: `Deno.serve`'s own HTTP engine, with a header and idle
 * timeout that `Deno.serve` lacks.
 *
 * `Deno.serve` (Deno 2.9) has no option to close a connection that never
 * completes its request head: hyper's `header_read_timeout` needs a timer that
 * Deno does not give it, so 300 sockets that each sent half a request line
 * stay open for as long as their clients like (slowloris). The legacy
 * `Deno.serveHttp(conn)` lets a loop race each request against a timer, but
 * it is untyped in Deno 2, and its older engine served 64 KiB ranges about 25%
 * slower here; `node:http` enforces `headersTimeout` but streams a 100 MB file
 * about 1.6 times slower. So connections are accepted here and each one is
 * handed to the engine `Deno.serve` itself uses for one connection,
 * `serveHttpOnConnection` — measured at the same speed as `Deno.serve` — with
 * a timer per connection. That function is internal to Deno (reached through
 * `Deno[Deno.internal]`): when a Deno lacks it, `serve` falls back to a plain
 * `Deno.serve` and says so in {@linkcode Server.headerTimeout}, and the test
 * (tests/security/slowloris_test.ts) fails.
 *
 * @module
 */

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  hostname: string;
  port: number;
  /**
   * How long a connection may take to deliver a complete request head,
   * counted from when it opens and again from the end of each response (so it
   * is also the keep-alive idle timeout); then it is closed. 0 turns the guard
   * off and serves with a plain `Deno.serve`.
   */
  headerTimeoutMs: number;
  /**
   * Listen with `SO_REUSEPORT` (Linux): several processes of one user bind
   * the same address and the kernel spreads new connections over them. The
   * listener's `reusePort` is an unstable Deno API (`--unstable-net`); the
   * launcher adds that flag when REUSE_PORT is set.
   */
  reusePort?: boolean;
  /** Called once the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** The answer when the handler throws (default: a bare 500). */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Called when accepting a connection fails (say, out of file descriptors); serving goes on. */
  onAcceptError?: (error: unknown) => void;
}

/** A running server. */
export interface Server extends AsyncDisposable {
  readonly addr: Deno.NetAddr;
  /** Whether connections are closed after {@linkcode ServeOptions.headerTimeoutMs}. */
  readonly headerTimeout: boolean;
  /** Settles once the server has shut down and every connection has ended. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting connections, closes idle ones, lets requests in flight
   * finish (then closes their connections) and waits for all of that.
   */
  shutdown(): Promise<void>;
}

/** How long to wait before accepting again after a failed accept (EMFILE and the like). */
const ACCEPT_RETRY_MS = 100;
/**
 * How long a connection whose answer said `Connection: close` stays open
 * after the answer is handed over, so that its bytes reach the client before
 * the close (as nginx's lingering close). Closing at once could drop an
 * answer still being written: a refused flood's client then saw no 413.
 */
const CLOSE_AFTER_ANSWER_MS = 1000;

/** The signature of Deno's internal one-connection server (ext/http/00_serve.ts). */
type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: (scheme: string) => void,
) => { finished: Promise<void> };

/** Deno's `serveHttpOnConnection`, or null when this Deno has none of that shape. */
function findServeOnConnection(): ServeOnConnection | null {
  const deno = Deno as unknown as { internal?: symbol } & Record<symbol, unknown>;
  const internals = deno.internal === undefined ? undefined : deno[deno.internal];
  const candidate = (internals as { serveHttpOnConnection?: unknown } | undefined)
    ?.serveHttpOnConnection;
  return typeof candidate === "function" && candidate.length === 5
    ? candidate as ServeOnConnection
    : null;
}

function internalServerError(): Response {
  return new Response("Internal Server Error", { status: 500 });
}

/**
 * Serves `handler` on `hostname:port` with `Deno.serve`'s HTTP engine, closing
 * any connection that takes longer than `headerTimeoutMs` to deliver a request
 * head, whether it is new or idle after a response. A request in flight is
 * never cut: the timer runs only while a connection has no request. A
 * response with `Connection: close` (a refused body, say) ends its connection
 * a second after it has been handed over, so the rest of that body is not
 * read for long.
 *
 * @example
 * ```ts
 * const server = serve({ hostname: "127.0.0.1", port: 8000, headerTimeoutMs: 20_000 }, app.fetch);
 * Deno.addSignalListener("SIGTERM", () => server.shutdown());
 * await server.finished;
 * ```
 */
export function serve(options: ServeOptions, handler: Deno.ServeHandler<Deno.NetAddr>): Server {
  const onError = options.onError ?? internalServerError;
  const serveOnConnection = options.headerTimeoutMs > 0 ? findServeOnConnection() : null;
  if (serveOnConnection === null) {
    const server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      reusePort: options.reusePort,
      onListen: (addr) => options.onListen?.(addr),
      onError,
    }, handler);
    return {
      addr: server.addr,
      headerTimeout: false,
      finished: server.finished,
      shutdown: () => server.shutdown(),
      [Symbol.asyncDispose]: () => server.shutdown(),
    };
  }

  const serveConnection: ServeOnConnection = serveOnConnection;
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
    ...(options.reusePort ? { reusePort: true } : {}),
  } as Deno.TcpListenOptions);
  let closing = false;
  /**
   * Each open connection's way to close itself at shutdown: at once when idle,
   * after its response when a request is in flight (an upload still sending
   * its body, a download, an event stream), so that the request finishes.
   */
  const closers = new Set<() => void>();
  const connections = new Set<Promise<void>>();

  function guard(conn: Deno.TcpConn): Promise<void> {
    const closer = new AbortController();
    let inFlight = 0;
    let closeAfterResponse = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const close = () => closer.abort();
    const startTimer = () => timer = setTimeout(close, options.headerTimeoutMs);
    const served = serveConnection(
      conn,
      closer.signal,
      async (request, info) => {
        inFlight++;
        clearTimeout(timer);
        const responded = () => {
          if (--inFlight > 0 || closer.signal.aborted) return;
          if (closeAfterResponse) timer = setTimeout(close, CLOSE_AFTER_ANSWER_MS);
          else startTimer();
        };
        info.completed.then(responded, responded);
        const response = await handler(request, info);
        if (response.headers.get("connection")?.toLowerCase() === "close") {
          closeAfterResponse = true;
        }
        return response;
      },
      onError,
      () => {},
    );
    startTimer(); // no request can have arrived yet: requests come in later turns
    const shut = (): void => {
      if (inFlight === 0) close();
      else closeAfterResponse = true;
    };
    closers.add(shut);
    if (closing) close();
    // A connection reset by its client rejects `finished`: that is the client's business.
    return served.finished.catch(() => {}).finally(() => {
      clearTimeout(timer);
      closers.delete(shut);
    });
  }

  async function accept(): Promise<void> {
    while (!closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closing || error instanceof Deno.errors.BadResource) return;
        options.onAcceptError?.(error);
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      let connection: Promise<void>;
      try {
        connection = guard(conn);
      } catch (error) {
        // Deno's internal function refused the connection: drop it, keep serving the others.
        options.onAcceptError?.(error);
        try {
          conn.close();
        } catch {
          // already taken and closed by Deno
        }
        continue;
      }
      connections.add(connection);
      connection.finally(() => connections.delete(connection));
    }
  }

  const accepting = accept();
  const finished = (async () => {
    await accepting;
    while (connections.size > 0) await Promise.all(connections);
  })();
  const shutdown = async (): Promise<void> => {
    if (!closing) {
      closing = true;
      listener.close();
      for (const shut of closers) shut();
    }
    await finished;
  };
  options.onListen?.(listener.addr);
  return {
    addr: listener.addr,
    headerTimeout: true,
    finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
