// deno-lint-ignore-file no-console
/**
 * The runtime's ceiling for bench/stream.ts: a minimal `Deno.serve` static
 * file server for one file, with no framework, no authentication, no
 * database and no headers beyond the ones a range answer needs. It serves the
 * file the way lib/file_response.ts does, minus everything around it:
 *
 * - to the end of the file (a whole GET, or `Range: bytes=N-`): a handle of
 *   its own, positioned, answered with the file's own `.readable`, which the
 *   HTTP server pumps without JavaScript;
 * - a bounded `Range: bytes=A-B`: one synchronous seek and read from a handle
 *   opened at start-up and kept open, sent from memory.
 *
 * What it reaches is what any Deno service can reach on this machine without
 * `sendfile`. Run it with read access to the one file and net access to the
 * one address:
 *
 *   deno run --allow-read=/path/video.mp4 --allow-net=127.0.0.1:8124 \
 *     bench/peer_deno_static.ts /path/video.mp4 8124
 *
 * `GET /healthz` answers 200; any other path answers the file.
 */

const [path, portText] = Deno.args;
const port = Number(portText);
if (!path || !Number.isInteger(port) || port <= 0) {
  console.error("usage: peer_deno_static.ts <file> <port>");
  Deno.exit(2);
}

/** Kept open for bounded ranges: a seek and a read in one synchronous step never interleave. */
const shared = Deno.openSync(path, { read: true });
const size = shared.statSync().size;

function read(start: number, length: number): Uint8Array<ArrayBuffer> {
  const buffer = new Uint8Array(length);
  shared.seekSync(start, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = shared.readSync(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}

function handler(request: Request): Response {
  if (new URL(request.url).pathname === "/healthz") return new Response("ok");
  const headers = new Headers({ "content-type": "video/mp4", "accept-ranges": "bytes" });
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.get("range") ?? "");
  if (range) {
    start = Number(range[1]);
    end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
    if (start > end) {
      headers.set("content-range", `bytes */${size}`);
      return new Response(null, { status: 416, headers });
    }
    status = 206;
    headers.set("content-range", `bytes ${start}-${end}/${size}`);
  }
  headers.set("content-length", String(end - start + 1));
  if (end < size - 1) return new Response(read(start, end - start + 1), { status, headers });
  const own = Deno.openSync(path!, { read: true });
  if (start > 0) own.seekSync(start, Deno.SeekMode.Start);
  return new Response(own.readable, { status, headers });
}

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ hostname, port }) => console.error(`serving ${path} on ${hostname}:${port}`),
}, handler);
