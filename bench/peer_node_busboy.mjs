// deno-lint-ignore-file no-console explicit-function-return-type -- plain JavaScript CLI run by node
/**
 * The comparison peer for bench/upload.ts: a minimal Node `http` + busboy
 * server doing the same streaming work as the upload route minus ffprobe and
 * the database. The one file part goes to a temporary file, counted and hashed
 * with SHA-256 on the way, then is moved into a storage directory and the
 * server answers 201 JSON.
 *
 *   PEER_PORT=8123 PEER_DIR=/tmp/peer BUSBOY_PATH=/path/to/node_modules/busboy \
 *     node bench/peer_node_busboy.mjs
 *
 * GET /healthz answers 200 once the server listens.
 */
import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

const require = createRequire(import.meta.url);
const busboy = require(process.env.BUSBOY_PATH || "busboy");

const port = Number(process.env.PEER_PORT || 0);
const host = process.env.PEER_HOST || "127.0.0.1";
const root = process.env.PEER_DIR;
if (!root) throw new Error("PEER_DIR is required");
const maxBytes = Number(process.env.MAX_UPLOAD_BYTES || 100 * 1024 * 1024);
const tempDir = `${root}/tmp`;
const storeDir = `${root}/media`;
await mkdir(tempDir, { recursive: true });
await mkdir(storeDir, { recursive: true });

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Streams the `file` part to disk; resolves with its size and hash. */
function receive(req) {
  return new Promise((resolve, reject) => {
    let parser;
    try {
      parser = busboy({
        headers: req.headers,
        defParamCharset: "utf8",
        limits: { files: 1, fields: 16, parts: 20, fieldSize: 4096, fieldNameSize: 100 },
      });
    } catch (error) {
      reject(error);
      return;
    }
    const fields = {};
    let written = null;
    parser.on("field", (name, value) => (fields[name] = value));
    parser.on("file", (name, stream, info) => {
      if (name !== "file" || written) {
        stream.resume();
        return;
      }
      const tempPath = `${tempDir}/upload-${randomUUID()}.part`;
      const hash = createHash("sha256");
      let size = 0;
      const counter = new Transform({
        transform(chunk, _encoding, callback) {
          size += chunk.length;
          if (size > maxBytes) {
            callback(new Error("file too large"));
            return;
          }
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      written = pipeline(stream, counter, createWriteStream(tempPath, { flags: "wx", mode: 0o600 }))
        .then(() => ({ tempPath, size, sha256: hash.digest("hex"), fileName: info.filename }))
        .catch(async (error) => {
          await rm(tempPath, { force: true });
          throw error;
        });
      written.catch(() => {});
    });
    parser.on("error", reject);
    parser.on("close", () => {
      if (!written) reject(new Error('field "file" is required'));
      else written.then((file) => resolve({ ...file, fields }), reject);
    });
    req.on("error", reject);
    req.pipe(parser);
  });
}

const server = createServer(async (req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    send(res, 200, { status: "ok" });
    return;
  }
  if (req.method !== "POST" || !req.url.startsWith("/upload")) {
    send(res, 404, { error: "not_found" });
    return;
  }
  try {
    const file = await receive(req);
    const id = randomUUID();
    await rename(file.tempPath, `${storeDir}/${id}.mp4`);
    send(res, 201, {
      id,
      message_id: file.fields.message_id ?? null,
      file_name: file.fileName,
      file_size: file.size,
      sha256: file.sha256,
    });
  } catch (error) {
    req.resume();
    send(res, 400, { error: "invalid_request", detail: String(error?.message ?? error) });
  }
});
server.requestTimeout = 0;
server.listen(port, host, () => {
  const address = server.address();
  console.log(`peer listening on http://${host}:${address.port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
