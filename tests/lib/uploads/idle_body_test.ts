import assert from "node:assert/strict";
import { ApiError } from "../../../lib/core/errors.ts";
import { idleGuardedBody } from "../../../lib/uploads/idle_body.ts";
import { isOutOfSpace } from "../../../lib/storage/disk_space.ts";

/** A body whose chunks the test pushes, and which records its cancellation. */
function manualBody(): {
  body: ReadableStream<Uint8Array>;
  push(chunk: Uint8Array): void;
  end(): void;
  cancelled: Promise<unknown>;
} {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let onCancel: (reason: unknown) => void = () => {};
  const cancelled = new Promise<unknown>((resolve) => onCancel = resolve);
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    cancel: (reason) => onCancel(reason),
  });
  return {
    body,
    push: (chunk) => controller.enqueue(chunk),
    end: () => controller.close(),
    cancelled,
  };
}

Deno.test("idleGuardedBody: passes a steady body through unchanged", async () => {
  const source = manualBody();
  const reader = idleGuardedBody(source.body, 1000).getReader();
  source.push(new Uint8Array([1, 2]));
  source.push(new Uint8Array([3]));
  source.end();
  const chunks: number[] = [];
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(...value);
  }
  assert.deepEqual(chunks, [1, 2, 3]);
});

Deno.test("idleGuardedBody: a silent body fails with 408 and the source is cancelled", async () => {
  const source = manualBody();
  let reported: ApiError | null = null;
  const reader = idleGuardedBody(source.body, 50, { onIdle: (error) => reported = error })
    .getReader();
  source.push(new Uint8Array([1]));
  assert.deepEqual((await reader.read()).value, new Uint8Array([1]));
  const error = await reader.read().then(() => null, (error: unknown) => error);
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 408);
  assert.equal(error.code, "request_timeout");
  assert.equal(error.headers.connection, "close");
  assert.equal(reported, error, "onIdle got the same error");
  assert.equal(await source.cancelled, error, "the source was cancelled with it");
});

Deno.test("idleGuardedBody: the clock runs only while the consumer waits for the client", async () => {
  const source = manualBody();
  const reader = idleGuardedBody(source.body, 50).getReader();
  source.push(new Uint8Array([1]));
  await reader.read();
  // The consumer is busy (a slow disk), with no read pending, until a guard of the same
  // timeout, started later, has fired: longer than the timeout, by the guard's own clock.
  const witness = idleGuardedBody(manualBody().body, 50).getReader();
  await assert.rejects(witness.read());
  source.push(new Uint8Array([2]));
  assert.deepEqual((await reader.read()).value, new Uint8Array([2]));
  source.end();
  assert.equal((await reader.read()).done, true);
});

Deno.test("isOutOfSpace: ENOSPC, EDQUOT, SQLITE_FULL and ffmpeg's message; nothing else", () => {
  const withCode = (code: string) => Object.assign(new Error("write failed"), { code });
  assert.ok(isOutOfSpace(withCode("ENOSPC")));
  assert.ok(isOutOfSpace(withCode("EDQUOT")));
  assert.ok(isOutOfSpace(withCode("SQLITE_FULL")));
  assert.ok(isOutOfSpace(new Error("ffmpeg exited with 1: <file>: No space left on device")));
  assert.ok(!isOutOfSpace(withCode("EACCES")));
  assert.ok(!isOutOfSpace(new Error("ffmpeg exited with 1: Invalid data found")));
  assert.ok(!isOutOfSpace(null));
  assert.ok(!isOutOfSpace("No space left on device"));
});
