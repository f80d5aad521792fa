// deno-lint-ignore-file no-console
/**
 * One tus upload with tus-js-client, for bench/upload.ts; usable on its own:
 *
 *   TUS_TOKEN=<bearer token> deno run --allow-net=127.0.0.1:PORT --allow-read=VIDEO \
 *     --allow-env=TUS_TOKEN,GRACEFUL_FS_PLATFORM,NODE_DEBUG,TEST_GRACEFUL_FS_GLOBAL_PATCH \
 *     bench/tus_client.ts \
 *     http://127.0.0.1:PORT/api/chat/videos/uploads/ VIDEO MESSAGE_ID [CHUNK_MIB]
 *
 * The file is given to the client as an `fs.ReadStream`, so each PATCH body
 * (CHUNK_MIB, default 5) is read from disk as it is sent, as curl reads the
 * multipart body. The environment names past TUS_TOKEN are read by graceful-fs,
 * which tus-js-client's node build loads. The clock starts when the client
 * sends the creation POST and stops at the final PATCH's answer: process
 * start-up and module loading are not counted. Prints one JSON line (see
 * `TusClientResult`). Exits 1 on a failed upload.
 */

import { createReadStream } from "node:fs";
import * as tus from "tus-js-client";

const MIB = 1024 * 1024;

/** What the client prints, as one JSON line. */
export interface TusClientResult {
  /** From sending the creation POST to the final answer, in milliseconds. */
  ms: number;
  /**
   * Each request, in order, from sending it to its answer; the last includes
   * the server's work on the finished file.
   */
  requestMs: number[];
  /** How many requests of each method. */
  requests: Record<string, number>;
  /** The final answer's status (200 for the PATCH that completes an upload). */
  status: number;
  /** The final answer's JSON: the Attachment. */
  answer: Record<string, unknown>;
}

function upload(
  endpoint: string,
  path: string,
  messageId: string,
  chunkBytes: number,
  token: string,
): Promise<TusClientResult> {
  const requests: Record<string, number> = {};
  let started: number | null = null;
  let requestStarted = 0;
  const requestMs: number[] = [];
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(createReadStream(path), {
      endpoint,
      chunkSize: chunkBytes,
      headers: { authorization: `Bearer ${token}` },
      metadata: { message_id: messageId, filename: "video.mp4" },
      // A failure ends the run: a retried request would count in the time.
      retryDelays: [],
      onBeforeRequest(request) {
        requestStarted = performance.now();
        started ??= requestStarted;
        const method = request.getMethod();
        requests[method] = (requests[method] ?? 0) + 1;
      },
      onAfterResponse() {
        requestMs.push(performance.now() - requestStarted);
      },
      onSuccess({ lastResponse }) {
        const ms = performance.now() - (started ?? performance.now());
        const text = lastResponse.getBody();
        resolve({
          ms,
          requestMs,
          requests,
          status: lastResponse.getStatus(),
          answer: text ? JSON.parse(text) : {},
        });
      },
      onError: reject,
    });
    upload.start();
  });
}

async function main(): Promise<void> {
  const [endpoint, path, messageId, chunkMiB = "5"] = Deno.args;
  const token = Deno.env.get("TUS_TOKEN");
  if (!endpoint || !path || !messageId || !token) {
    throw new Error(
      "usage: TUS_TOKEN=… deno run … bench/tus_client.ts ENDPOINT FILE MESSAGE_ID [CHUNK_MIB]",
    );
  }
  const chunk = Number(chunkMiB);
  if (!(chunk > 0)) throw new Error(`CHUNK_MIB must be a positive number, not "${chunkMiB}"`);
  const result = await upload(endpoint, path, messageId, Math.round(chunk * MIB), token);
  console.log(JSON.stringify(result));
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
